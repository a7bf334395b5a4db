//! Postgres twin of the SQLite `provider_keys`: customer provider keys, the rows behind
//! `/customers/me/provider-keys` (secrets arrive and leave encrypted; this module never sees
//! plaintext). Edits of one key serialise on its row lock (taken by their `UPDATE`), which is
//! also the lock the key queue (`key_leases`) takes before it re-checks a key.

use crate::db::provider_keys::{NewProviderKey, ProviderKeyPatch, ProviderKeyRow};
use crate::db::{DbError, now_ms};
use sqlx::PgConnection;

const SELECT_KEYS: &str = "SELECT k.id, k.customer_id, k.provider, k.label, k.secret_last4, k.status, k.weight,
        k.last_used_at, k.cooldown_until, k.disabled_reason, k.source,
        COALESCE((SELECT string_agg(c.model, ',' ORDER BY c.model) FROM provider_key_capabilities c
                  WHERE c.key_id = k.id), '') AS models_csv,
        EXISTS (SELECT 1 FROM provider_key_leases l WHERE l.key_id = k.id AND l.expires_at > $1) AS leased,
        k.created_at, k.updated_at
    FROM customer_provider_keys k";

/// SQLite's `column IS $n` for a key's owner (`None`: the platform), written so the index on
/// `customer_id` serves both cases (`IS NOT DISTINCT FROM` would not): `$n` is bound either way.
pub(super) fn owner_is(column: &str, param: usize, owner: Option<&str>) -> String {
    match owner {
        Some(_) => format!("{column} = ${param}::TEXT"),
        None => format!("({column} IS NULL AND ${param}::TEXT IS NULL)"),
    }
}

impl super::Pg {
    /// Postgres twin of `Sqlite::insert_provider_key`. No read decides anything: the
    /// transaction only makes the key and its models appear together.
    pub async fn insert_provider_key(&self, key: &NewProviderKey<'_>) -> Result<(), DbError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO customer_provider_keys (id, customer_id, provider, label, encrypted_secret, secret_last4,
                status, weight, source, created_at, updated_at)
             VALUES ($1, $2::TEXT, $3, $4::TEXT, $5, $6, 'active', $7, $8, $9, $9)",
        )
        .bind(key.id)
        .bind(key.customer_id)
        .bind(key.provider)
        .bind(key.label)
        .bind(key.encrypted_secret)
        .bind(key.secret_last4)
        .bind(key.weight)
        .bind(key.source)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        set_models(&mut tx, key.id, key.models).await?;
        tx.commit().await
    }

    /// Postgres twin of `Sqlite::provider_keys`: a customer's keys (or, with `None`, the
    /// platform's), oldest first.
    pub async fn provider_keys(&self, customer_id: Option<&str>) -> Result<Vec<ProviderKeyRow>, DbError> {
        let owner = owner_is("k.customer_id", 2, customer_id);
        sqlx::query_as(&format!("{SELECT_KEYS} WHERE {owner} ORDER BY k.created_at, k.id"))
            .bind(now_ms())
            .bind(customer_id)
            .fetch_all(&self.pool)
            .await
    }

    /// Postgres twin of `Sqlite::provider_key`.
    pub async fn provider_key(&self, customer_id: Option<&str>, id: &str) -> Result<Option<ProviderKeyRow>, DbError> {
        let owner = owner_is("k.customer_id", 2, customer_id);
        sqlx::query_as(&format!("{SELECT_KEYS} WHERE {owner} AND k.id = $3"))
            .bind(now_ms())
            .bind(customer_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Postgres twin of `Sqlite::provider_key_by_id`: a key by id whoever owns it (operators).
    pub async fn provider_key_by_id(&self, id: &str) -> Result<Option<ProviderKeyRow>, DbError> {
        sqlx::query_as(&format!("{SELECT_KEYS} WHERE k.id = $2"))
            .bind(now_ms())
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Postgres twin of `Sqlite::provider_key_secret`: the encrypted secret of a key the
    /// customer may use.
    pub async fn provider_key_secret(&self, customer_id: &str, id: &str) -> Result<Option<String>, DbError> {
        sqlx::query_scalar(
            "SELECT encrypted_secret FROM customer_provider_keys
             WHERE id = $1 AND (customer_id = $2 OR customer_id IS NULL)",
        )
        .bind(id)
        .bind(customer_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Postgres twin of `Sqlite::update_provider_key`: apply `patch`; false when the customer
    /// has no such key. The `UPDATE` locks the key row first, so a concurrent edit of the same
    /// key (or a lease re-checking its models) waits until the models are replaced too.
    pub async fn update_provider_key(
        &self,
        customer_id: Option<&str>,
        id: &str,
        patch: ProviderKeyPatch,
    ) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        let reactivate = patch.status.as_deref() == Some("active") || patch.secret.is_some();
        let (secret, last4) = patch.secret.map_or((None, None), |(s, l)| (Some(s), Some(l)));
        let owner = owner_is("customer_id", 10, customer_id);
        let done = sqlx::query(&format!(
            "UPDATE customer_provider_keys SET
                label = CASE WHEN $1::BOOLEAN THEN $2::TEXT ELSE label END,
                weight = COALESCE($3::BIGINT, weight),
                status = CASE WHEN $4::BOOLEAN THEN 'active' ELSE COALESCE($5::TEXT, status) END,
                disabled_reason = CASE WHEN $4::BOOLEAN THEN NULL ELSE disabled_reason END,
                encrypted_secret = COALESCE($6::TEXT, encrypted_secret),
                secret_last4 = COALESCE($7::TEXT, secret_last4),
                updated_at = $8
             WHERE id = $9 AND {owner}"
        ))
        .bind(patch.label.is_some())
        .bind(patch.label.flatten())
        .bind(patch.weight)
        .bind(reactivate && patch.status.as_deref() != Some("paused"))
        .bind(patch.status)
        .bind(secret)
        .bind(last4)
        .bind(now_ms())
        .bind(id)
        .bind(customer_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(models) = &patch.models {
            set_models(&mut tx, id, models).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Postgres twin of `Sqlite::delete_provider_key`: delete a key (its lease and
    /// capabilities go with it by cascade; its usage history stays).
    pub async fn delete_provider_key(&self, customer_id: Option<&str>, id: &str) -> Result<bool, DbError> {
        let owner = owner_is("customer_id", 2, customer_id);
        let done = sqlx::query(&format!("DELETE FROM customer_provider_keys WHERE id = $1 AND {owner}"))
            .bind(id)
            .bind(customer_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Postgres twin of `Sqlite::upsert_platform_key`: store a platform key read from the
    /// environment under a stable id, replacing the secret if it changed (a status an operator
    /// set is kept). One statement: hosts starting together each upsert, and the last wins.
    pub async fn upsert_platform_key(&self, key: &NewProviderKey<'_>) -> Result<(), DbError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO customer_provider_keys (id, customer_id, provider, label, encrypted_secret, secret_last4,
                status, weight, source, created_at, updated_at)
             VALUES ($1, NULL, $2, $3::TEXT, $4, $5, 'active', $6, $7, $8, $8)
             ON CONFLICT (id) DO UPDATE SET
                status = CASE WHEN customer_provider_keys.secret_last4 = excluded.secret_last4
                    THEN customer_provider_keys.status ELSE 'active' END,
                encrypted_secret = excluded.encrypted_secret, secret_last4 = excluded.secret_last4,
                source = excluded.source, updated_at = excluded.updated_at",
        )
        .bind(key.id)
        .bind(key.provider)
        .bind(key.label)
        .bind(key.encrypted_secret)
        .bind(key.secret_last4)
        .bind(key.weight)
        .bind(key.source)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Postgres twin of `Sqlite::remove_platform_keys_except`: platform keys no longer in the
    /// environment stop being used (an empty `keep` removes them all, as SQLite's `NOT IN`).
    pub async fn remove_platform_keys_except(&self, keep: &[String]) -> Result<(), DbError> {
        sqlx::query("DELETE FROM customer_provider_keys WHERE customer_id IS NULL AND id <> ALL($1::TEXT[])")
            .bind(keep.to_vec())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Replace a key's models (inside the caller's transaction, which holds or created the key row).
async fn set_models(conn: &mut PgConnection, key_id: &str, models: &[String]) -> Result<(), DbError> {
    sqlx::query("DELETE FROM provider_key_capabilities WHERE key_id = $1").bind(key_id).execute(&mut *conn).await?;
    sqlx::query(
        "INSERT INTO provider_key_capabilities (key_id, model) SELECT $1::TEXT, m FROM unnest($2::TEXT[]) AS m
         ON CONFLICT DO NOTHING",
    )
    .bind(key_id)
    .bind(models.to_vec())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

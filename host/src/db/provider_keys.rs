//! Customer provider keys: the rows behind `/customers/me/provider-keys` (secrets arrive and
//! leave encrypted; this module never sees plaintext).

use super::{DbError, Sqlite, now_ms};
use serde::Serialize;

/// A key as shown to its owner: never the secret, only its last four characters.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ProviderKeyRow {
    pub id: String,
    #[serde(skip)]
    pub customer_id: Option<String>,
    pub provider: String,
    pub label: Option<String>,
    pub secret_last4: String,
    pub status: String,
    pub weight: i64,
    pub last_used_at: Option<i64>,
    pub cooldown_until: Option<i64>,
    pub disabled_reason: Option<String>,
    pub source: String,
    /// Comma-separated; empty: every model.
    #[serde(skip)]
    pub models_csv: String,
    /// Whether a live lease holds the key right now.
    pub leased: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ProviderKeyRow {
    pub fn models(&self) -> Vec<String> {
        self.models_csv.split(',').filter(|m| !m.is_empty()).map(str::to_string).collect()
    }
}

/// A key to store.
pub struct NewProviderKey<'a> {
    pub id: &'a str,
    /// `None` for a platform key.
    pub customer_id: Option<&'a str>,
    pub provider: &'a str,
    pub label: Option<&'a str>,
    pub encrypted_secret: &'a str,
    pub secret_last4: &'a str,
    pub weight: i64,
    pub models: &'a [String],
    pub source: &'a str,
}

/// Changes to a key; `None` leaves a field as it is.
#[derive(Default)]
pub struct ProviderKeyPatch {
    pub label: Option<Option<String>>,
    pub weight: Option<i64>,
    /// `active` or `paused` (activating also clears `invalid` and its reason).
    pub status: Option<String>,
    pub models: Option<Vec<String>>,
    /// A rotated secret: (encrypted, last four).
    pub secret: Option<(String, String)>,
}

const SELECT_KEYS: &str = "SELECT k.id, k.customer_id, k.provider, k.label, k.secret_last4, k.status, k.weight,
        k.last_used_at, k.cooldown_until, k.disabled_reason, k.source,
        COALESCE((SELECT group_concat(model, ',') FROM provider_key_capabilities c WHERE c.key_id = k.id), '') AS models_csv,
        EXISTS (SELECT 1 FROM provider_key_leases l WHERE l.key_id = k.id AND l.expires_at > ?1) AS leased,
        k.created_at, k.updated_at
    FROM customer_provider_keys k";

impl Sqlite {
    pub async fn insert_provider_key(&self, key: &NewProviderKey<'_>) -> Result<(), DbError> {
        let now = now_ms();
        let mut tx = self.writer().begin().await?;
        sqlx::query(
            "INSERT INTO customer_provider_keys (id, customer_id, provider, label, encrypted_secret, secret_last4,
                status, weight, source, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)",
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
        .bind(now)
        .execute(&mut *tx)
        .await?;
        set_models(&mut tx, key.id, key.models).await?;
        tx.commit().await
    }

    /// A customer's keys (or, with `None`, the platform's), oldest first.
    pub async fn provider_keys(&self, customer_id: Option<&str>) -> Result<Vec<ProviderKeyRow>, DbError> {
        sqlx::query_as(&format!("{SELECT_KEYS} WHERE k.customer_id IS ?2 ORDER BY k.created_at, k.id"))
            .bind(now_ms())
            .bind(customer_id)
            .fetch_all(self.pool())
            .await
    }

    pub async fn provider_key(&self, customer_id: Option<&str>, id: &str) -> Result<Option<ProviderKeyRow>, DbError> {
        sqlx::query_as(&format!("{SELECT_KEYS} WHERE k.customer_id IS ?2 AND k.id = ?3"))
            .bind(now_ms())
            .bind(customer_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await
    }

    /// A key by id whoever owns it (operators).
    pub async fn provider_key_by_id(&self, id: &str) -> Result<Option<ProviderKeyRow>, DbError> {
        sqlx::query_as(&format!("{SELECT_KEYS} WHERE k.id = ?2"))
            .bind(now_ms())
            .bind(id)
            .fetch_optional(self.pool())
            .await
    }

    /// The stored (encrypted) secret of a key the customer may use (their own, or a platform
    /// key), whatever its state: a video generation an earlier attempt submitted with it is
    /// collected with the same key.
    pub async fn provider_key_secret(&self, customer_id: &str, id: &str) -> Result<Option<String>, DbError> {
        sqlx::query_scalar(
            "SELECT encrypted_secret FROM customer_provider_keys
             WHERE id = ? AND (customer_id = ? OR customer_id IS NULL)",
        )
        .bind(id)
        .bind(customer_id)
        .fetch_optional(self.pool())
        .await
    }

    /// Apply `patch`; false when the customer has no such key.
    pub async fn update_provider_key(
        &self,
        customer_id: Option<&str>,
        id: &str,
        patch: ProviderKeyPatch,
    ) -> Result<bool, DbError> {
        let mut tx = self.writer().begin().await?;
        let reactivate = patch.status.as_deref() == Some("active") || patch.secret.is_some();
        let (secret, last4) = patch.secret.map_or((None, None), |(s, l)| (Some(s), Some(l)));
        let done = sqlx::query(
            "UPDATE customer_provider_keys SET
                label = CASE WHEN ?1 THEN ?2 ELSE label END,
                weight = COALESCE(?3, weight),
                status = CASE WHEN ?4 THEN 'active' ELSE COALESCE(?5, status) END,
                disabled_reason = CASE WHEN ?4 THEN NULL ELSE disabled_reason END,
                encrypted_secret = COALESCE(?6, encrypted_secret),
                secret_last4 = COALESCE(?7, secret_last4),
                updated_at = ?8
             WHERE id = ?9 AND customer_id IS ?10",
        )
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
            return Ok(false);
        }
        if let Some(models) = &patch.models {
            set_models(&mut tx, id, models).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Delete a key (its lease and capabilities go with it; its usage history stays).
    pub async fn delete_provider_key(&self, customer_id: Option<&str>, id: &str) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM customer_provider_keys WHERE id = ? AND customer_id IS ?")
            .bind(id)
            .bind(customer_id)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Store a platform key read from the environment under a stable id, replacing the
    /// secret if it changed (a status an operator set is kept).
    pub async fn upsert_platform_key(&self, key: &NewProviderKey<'_>) -> Result<(), DbError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO customer_provider_keys (id, customer_id, provider, label, encrypted_secret, secret_last4,
                status, weight, source, created_at, updated_at)
             VALUES (?1, NULL, ?2, ?3, ?4, ?5, 'active', ?6, ?7, ?8, ?8)
             ON CONFLICT (id) DO UPDATE SET
                status = CASE WHEN secret_last4 = excluded.secret_last4 THEN status ELSE 'active' END,
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
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Platform keys no longer in the environment stop being used.
    pub async fn remove_platform_keys_except(&self, keep: &[String]) -> Result<(), DbError> {
        let keep = serde_json::to_string(keep).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "DELETE FROM customer_provider_keys WHERE customer_id IS NULL
             AND id NOT IN (SELECT value FROM json_each(?))",
        )
        .bind(keep)
        .execute(self.writer())
        .await?;
        Ok(())
    }
}

async fn set_models(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    key_id: &str,
    models: &[String],
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM provider_key_capabilities WHERE key_id = ?").bind(key_id).execute(&mut **tx).await?;
    for model in models {
        sqlx::query("INSERT OR IGNORE INTO provider_key_capabilities (key_id, model) VALUES (?, ?)")
            .bind(key_id)
            .bind(model)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

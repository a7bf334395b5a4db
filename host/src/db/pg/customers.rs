//! Postgres twin of the SQLite `customers`: customers, API keys (stored as SHA-256 hashes) and
//! per-customer template configs. Every write here is one statement, so none needs a lock of
//! its own (`customers` gains columns over time; `SELECT *` reads them into [`Customer`] by
//! name and ignores the ones it has no field for).

use crate::db::customers::{ApiKey, Customer, ShareChanges};
use crate::db::{DbError, now_ms};

impl super::Pg {
    /// Postgres twin of `Sqlite::create_customer`.
    pub async fn create_customer(&self, id: &str, name: &str) -> Result<Customer, DbError> {
        sqlx::query_as("INSERT INTO customers (id, name, created_at) VALUES ($1, $2, $3) RETURNING *")
            .bind(id)
            .bind(name)
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await
    }

    /// Postgres twin of `Sqlite::customer`.
    pub async fn customer(&self, id: &str) -> Result<Option<Customer>, DbError> {
        sqlx::query_as("SELECT * FROM customers WHERE id = $1").bind(id).fetch_optional(&self.pool).await
    }

    /// Postgres twin of `Sqlite::set_customer_shares`: apply `changes` to a customer's caps;
    /// the customer as it is now, `None` if unknown. One statement: the row lock it takes
    /// orders it with the customer's money decisions.
    pub async fn set_customer_shares(&self, id: &str, changes: &ShareChanges) -> Result<Option<Customer>, DbError> {
        let set = |c: &Option<Option<i64>>| (c.is_some(), c.flatten());
        let (jobs, per_minute, renders, deliveries, quota) = (
            set(&changes.max_concurrent_jobs),
            set(&changes.jobs_per_minute),
            set(&changes.max_concurrent_renders),
            set(&changes.max_concurrent_deliveries),
            set(&changes.storage_quota_bytes),
        );
        sqlx::query_as(
            "UPDATE customers SET
                max_concurrent_jobs = CASE WHEN $1::BOOLEAN THEN $2::BIGINT ELSE max_concurrent_jobs END,
                jobs_per_minute = CASE WHEN $3::BOOLEAN THEN $4::BIGINT ELSE jobs_per_minute END,
                max_concurrent_renders = CASE WHEN $5::BOOLEAN THEN $6::BIGINT ELSE max_concurrent_renders END,
                max_concurrent_deliveries = CASE WHEN $7::BOOLEAN THEN $8::BIGINT ELSE max_concurrent_deliveries END,
                storage_quota_bytes = CASE WHEN $9::BOOLEAN THEN $10::BIGINT ELSE storage_quota_bytes END
             WHERE id = $11 RETURNING *",
        )
        .bind(jobs.0)
        .bind(jobs.1)
        .bind(per_minute.0)
        .bind(per_minute.1)
        .bind(renders.0)
        .bind(renders.1)
        .bind(deliveries.0)
        .bind(deliveries.1)
        .bind(quota.0)
        .bind(quota.1)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Postgres twin of `Sqlite::insert_api_key`.
    pub async fn insert_api_key(&self, key: &ApiKey, key_hash: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO api_keys (id, customer_id, key_hash, prefix, label, created_at, last_four)
             VALUES ($1, $2, $3, $4, $5::TEXT, $6, $7::TEXT)",
        )
        .bind(&key.id)
        .bind(&key.customer_id)
        .bind(key_hash)
        .bind(&key.prefix)
        .bind(&key.label)
        .bind(key.created_at)
        .bind(&key.last_four)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Postgres twin of `Sqlite::api_keys`.
    pub async fn api_keys(&self, customer_id: &str) -> Result<Vec<ApiKey>, DbError> {
        sqlx::query_as(
            "SELECT id, customer_id, prefix, label, created_at, revoked_at, last_four, last_used_at
             FROM api_keys WHERE customer_id = $1 ORDER BY created_at",
        )
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Postgres twin of `Sqlite::touch_api_key`: note that a key was just used.
    pub async fn touch_api_key(&self, key_hash: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE key_hash = $2")
            .bind(now_ms())
            .bind(key_hash)
            .execute(&self.pool)
            .await
            .map(drop)
    }

    /// Postgres twin of `Sqlite::revoke_customer_api_key`: revoke a customer's own key; false
    /// if they have no such live key.
    pub async fn revoke_customer_api_key(&self, customer_id: &str, key_id: &str) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND customer_id = $3 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(key_id)
        .bind(customer_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Postgres twin of `Sqlite::revoke_api_key`: revoke a key; false if there is no such live key.
    pub async fn revoke_api_key(&self, key_id: &str) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(key_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Postgres twin of `Sqlite::authenticate`: the customer owning a live key with this hash,
    /// if it is `customer_id`.
    pub async fn authenticate(&self, customer_id: &str, key_hash: &str) -> Result<Option<Customer>, DbError> {
        sqlx::query_as(
            "SELECT c.* FROM api_keys k JOIN customers c ON c.id = k.customer_id
             WHERE k.key_hash = $1 AND k.customer_id = $2 AND k.revoked_at IS NULL",
        )
        .bind(key_hash)
        .bind(customer_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Postgres twin of `Sqlite::set_template_config`.
    pub async fn set_template_config(&self, customer_id: &str, template_id: &str, config: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO template_configs (customer_id, template_id, config, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (customer_id, template_id) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
        )
        .bind(customer_id)
        .bind(template_id)
        .bind(config)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Postgres twin of `Sqlite::template_config`.
    pub async fn template_config(&self, customer_id: &str, template_id: &str) -> Result<Option<String>, DbError> {
        sqlx::query_scalar("SELECT config FROM template_configs WHERE customer_id = $1 AND template_id = $2")
            .bind(customer_id)
            .bind(template_id)
            .fetch_optional(&self.pool)
            .await
    }
}

//! Customers, API keys (stored as SHA-256 hashes) and per-customer template configs.

use super::{DbError, Sqlite, now_ms};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub max_concurrent_jobs: Option<i64>,
    pub jobs_per_minute: Option<i64>,
    pub created_at: i64,
    /// Charge = cost × margin; `None`: the host default.
    pub margin: Option<f64>,
    /// Prepaid credit ever added, nano-USD; `None`: no prepaid limit.
    pub credit_nusd: Option<i64>,
    /// Most chargeable per calendar month, nano-USD; `None`: no cap.
    pub monthly_cap_nusd: Option<i64>,
    /// Renders running at once; `None`: the host default.
    pub max_concurrent_renders: Option<i64>,
    /// Webhook deliveries in flight at once; `None`: the host default.
    pub max_concurrent_deliveries: Option<i64>,
    /// Bytes this customer may store; `None`: the host default.
    pub storage_quota_bytes: Option<i64>,
    /// Bytes stored now (kept by a trigger on `stored_objects`).
    pub stored_bytes: i64,
}

/// Changes to a customer's fair-share caps: `None` leaves a cap as it is, `Some(None)` returns
/// it to the host default, `Some(Some(n))` sets it (n >= 1, checked by the caller).
#[derive(Debug, Clone, Default)]
pub struct ShareChanges {
    pub max_concurrent_jobs: Option<Option<i64>>,
    pub jobs_per_minute: Option<Option<i64>>,
    pub max_concurrent_renders: Option<Option<i64>>,
    pub max_concurrent_deliveries: Option<Option<i64>>,
    pub storage_quota_bytes: Option<Option<i64>>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiKey {
    pub id: String,
    pub customer_id: String,
    pub prefix: String,
    pub label: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// The key's last four characters (keys made before the dashboard have none).
    pub last_four: Option<String>,
    /// When a request last authenticated with it (to a few seconds).
    pub last_used_at: Option<i64>,
}

impl Sqlite {
    pub async fn create_customer(&self, id: &str, name: &str) -> Result<Customer, DbError> {
        sqlx::query_as("INSERT INTO customers (id, name, created_at) VALUES (?, ?, ?) RETURNING *")
            .bind(id)
            .bind(name)
            .bind(now_ms())
            .fetch_one(self.writer())
            .await
    }

    pub async fn customer(&self, id: &str) -> Result<Option<Customer>, DbError> {
        sqlx::query_as("SELECT * FROM customers WHERE id = ?").bind(id).fetch_optional(self.pool()).await
    }

    /// Apply `changes` to a customer's caps; the customer as it is now, `None` if unknown.
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
                max_concurrent_jobs = CASE WHEN ?1 THEN ?2 ELSE max_concurrent_jobs END,
                jobs_per_minute = CASE WHEN ?3 THEN ?4 ELSE jobs_per_minute END,
                max_concurrent_renders = CASE WHEN ?5 THEN ?6 ELSE max_concurrent_renders END,
                max_concurrent_deliveries = CASE WHEN ?7 THEN ?8 ELSE max_concurrent_deliveries END,
                storage_quota_bytes = CASE WHEN ?10 THEN ?11 ELSE storage_quota_bytes END
             WHERE id = ?9 RETURNING *",
        )
        .bind(jobs.0)
        .bind(jobs.1)
        .bind(per_minute.0)
        .bind(per_minute.1)
        .bind(renders.0)
        .bind(renders.1)
        .bind(deliveries.0)
        .bind(deliveries.1)
        .bind(id)
        .bind(quota.0)
        .bind(quota.1)
        .fetch_optional(self.writer())
        .await
    }

    pub async fn insert_api_key(&self, key: &ApiKey, key_hash: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO api_keys (id, customer_id, key_hash, prefix, label, created_at, last_four)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.customer_id)
        .bind(key_hash)
        .bind(&key.prefix)
        .bind(&key.label)
        .bind(key.created_at)
        .bind(&key.last_four)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    pub async fn api_keys(&self, customer_id: &str) -> Result<Vec<ApiKey>, DbError> {
        sqlx::query_as(
            "SELECT id, customer_id, prefix, label, created_at, revoked_at, last_four, last_used_at
             FROM api_keys WHERE customer_id = ? ORDER BY created_at",
        )
        .bind(customer_id)
        .fetch_all(self.pool())
        .await
    }

    /// Note that a key was just used.
    pub async fn touch_api_key(&self, key_hash: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE key_hash = ?")
            .bind(now_ms())
            .bind(key_hash)
            .execute(self.writer())
            .await
            .map(drop)
    }

    /// Revoke a customer's own key; false if they have no such live key.
    pub async fn revoke_customer_api_key(&self, customer_id: &str, key_id: &str) -> Result<bool, DbError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND customer_id = ? AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(key_id)
                .bind(customer_id)
                .execute(self.writer())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revoke a key; false if there is no such live key.
    pub async fn revoke_api_key(&self, key_id: &str) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(key_id)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The customer owning a live key with this hash, if it is `customer_id`.
    pub async fn authenticate(&self, customer_id: &str, key_hash: &str) -> Result<Option<Customer>, DbError> {
        sqlx::query_as(
            "SELECT c.* FROM api_keys k JOIN customers c ON c.id = k.customer_id
             WHERE k.key_hash = ? AND k.customer_id = ? AND k.revoked_at IS NULL",
        )
        .bind(key_hash)
        .bind(customer_id)
        .fetch_optional(self.pool())
        .await
    }

    pub async fn set_template_config(&self, customer_id: &str, template_id: &str, config: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO template_configs (customer_id, template_id, config, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (customer_id, template_id) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
        )
        .bind(customer_id)
        .bind(template_id)
        .bind(config)
        .bind(now_ms())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    pub async fn template_config(&self, customer_id: &str, template_id: &str) -> Result<Option<String>, DbError> {
        sqlx::query_scalar("SELECT config FROM template_configs WHERE customer_id = ? AND template_id = ?")
            .bind(customer_id)
            .bind(template_id)
            .fetch_optional(self.pool())
            .await
    }
}

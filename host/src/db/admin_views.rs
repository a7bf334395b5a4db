//! What the operator's dashboard shows of all customers at once: each customer's money, caps,
//! live keys and the work they have queued and running.

use super::{DbError, Sqlite};

/// One customer as the operator sees them.
#[derive(Debug, sqlx::FromRow)]
pub struct CustomerOverview {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub credit_nusd: Option<i64>,
    pub monthly_cap_nusd: Option<i64>,
    pub max_concurrent_jobs: Option<i64>,
    pub jobs_per_minute: Option<i64>,
    pub max_concurrent_renders: Option<i64>,
    pub storage_quota_bytes: Option<i64>,
    pub stored_bytes: i64,
    pub live_keys: i64,
    pub queued: i64,
    pub running: i64,
    pub waiting: i64,
    pub renders: i64,
}

impl Sqlite {
    /// The newest `limit` customers with their counts (each count one indexed lookup).
    pub async fn customers_overview(&self, limit: u32) -> Result<Vec<CustomerOverview>, DbError> {
        sqlx::query_as(
            "SELECT c.id, c.name, c.created_at, c.credit_nusd, c.monthly_cap_nusd, c.max_concurrent_jobs,
                    c.jobs_per_minute, c.max_concurrent_renders, c.storage_quota_bytes, c.stored_bytes,
                    (SELECT COUNT(*) FROM api_keys k WHERE k.customer_id = c.id AND k.revoked_at IS NULL) AS live_keys,
                    (SELECT COUNT(*) FROM jobs j WHERE j.customer_id = c.id AND j.status = 'queued') AS queued,
                    (SELECT COUNT(*) FROM jobs j WHERE j.customer_id = c.id AND j.status = 'running') AS running,
                    (SELECT COUNT(*) FROM jobs j WHERE j.customer_id = c.id
                        AND j.status IN ('waiting_for_child', 'waiting_for_human')) AS waiting,
                    (SELECT COUNT(*) FROM renders r WHERE r.customer_id = c.id AND r.status IN ('queued', 'running')) AS renders
             FROM customers c ORDER BY c.created_at DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
    }
}

//! Postgres twin of the SQLite `admin_views`: what the operator's dashboard shows of all
//! customers at once (reads only).

use crate::db::DbError;
use crate::db::admin_views::CustomerOverview;

impl super::Pg {
    /// Postgres twin of `Sqlite::customers_overview`: the newest `limit` customers with their
    /// counts (each count one indexed lookup; `COUNT(*)` is a BIGINT, read as `i64`).
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
             FROM customers c ORDER BY c.created_at DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
    }
}

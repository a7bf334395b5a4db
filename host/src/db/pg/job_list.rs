//! Postgres twin of the SQLite `job_list`: a customer's jobs across templates, filtered and
//! paged newest first (the dashboard's list and `GET /jobs`).

use crate::db::DbError;
use crate::db::job_list::JobFilter;
use crate::db::jobs::JobRow;

impl super::Pg {
    /// Postgres twin of `Sqlite::customer_jobs`: a customer's jobs, newest first (job ids are
    /// time-ordered), at most `limit`. A plain read: no lock.
    pub async fn customer_jobs(
        &self,
        customer_id: &str,
        filter: &JobFilter<'_>,
        limit: u32,
    ) -> Result<Vec<JobRow>, DbError> {
        sqlx::query_as(
            "SELECT * FROM jobs WHERE customer_id = $1 AND ($2::TEXT IS NULL OR status = $2)
               AND ($3::TEXT IS NULL OR template_id = $3) AND ($4::TEXT IS NULL OR tracer = $4)
               AND ($5::TEXT IS NULL OR id < $5) AND ($7::TEXT IS NULL OR parent_job_id = $7)
             ORDER BY id DESC LIMIT $6",
        )
        .bind(customer_id)
        .bind(filter.status)
        .bind(filter.template_id)
        .bind(filter.tracer)
        .bind(filter.before)
        .bind(i64::from(limit))
        .bind(filter.parent_job_id)
        .fetch_all(&self.pool)
        .await
    }
}

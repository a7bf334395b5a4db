//! A customer's jobs across templates, filtered and paged newest first (the dashboard's list
//! and `GET /jobs`).

use super::jobs::JobRow;
use super::{DbError, Sqlite};

/// What a list of jobs is narrowed to (`None`: any).
#[derive(Debug, Default)]
pub struct JobFilter<'a> {
    pub status: Option<&'a str>,
    pub template_id: Option<&'a str>,
    pub tracer: Option<&'a str>,
    /// Only jobs older than this one (the cursor of the previous page).
    pub before: Option<&'a str>,
    /// Only the children of this job.
    pub parent_job_id: Option<&'a str>,
}

impl Sqlite {
    /// A customer's jobs, newest first (job ids are time-ordered), at most `limit`.
    pub async fn customer_jobs(
        &self,
        customer_id: &str,
        filter: &JobFilter<'_>,
        limit: u32,
    ) -> Result<Vec<JobRow>, DbError> {
        sqlx::query_as(
            "SELECT * FROM jobs WHERE customer_id = ?1 AND (?2 IS NULL OR status = ?2)
               AND (?3 IS NULL OR template_id = ?3) AND (?4 IS NULL OR tracer = ?4) AND (?5 IS NULL OR id < ?5)
               AND (?7 IS NULL OR parent_job_id = ?7)
             ORDER BY id DESC LIMIT ?6",
        )
        .bind(customer_id)
        .bind(filter.status)
        .bind(filter.template_id)
        .bind(filter.tracer)
        .bind(filter.before)
        .bind(i64::from(limit))
        .bind(filter.parent_job_id)
        .fetch_all(self.pool())
        .await
    }
}

//! Job events: the structured log of a job, written by its worker and read (paged or live)
//! by the API.

use super::{Db, DbError, now_ms};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub job_id: String,
    pub at: i64,
    pub level: String,
    pub message: String,
    pub metadata: String,
    pub progress: Option<f64>,
    pub artifact: Option<String>,
}

/// An event to append.
pub struct NewEvent<'a> {
    pub level: &'a str,
    pub message: &'a str,
    pub metadata: &'a str,
    pub progress: Option<f64>,
    pub artifact: Option<&'a str>,
}

impl Db {
    /// Append an event, if `lease_token` still holds the job (`None`: written by the host
    /// itself, not by a run) and the job has no event with this key yet (a replay re-emits
    /// events it already has). Returns whether it was written.
    pub async fn insert_event(
        &self,
        job_id: &str,
        lease_token: Option<&str>,
        (position, ordinal): (u32, u32),
        event: &NewEvent<'_>,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "INSERT OR IGNORE INTO job_events (job_id, at, level, message, metadata, progress, artifact, position, ordinal)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?9, ?10 WHERE ?8 IS NULL OR EXISTS
                (SELECT 1 FROM jobs WHERE id = ?1 AND lease_token = ?8)",
        )
        .bind(job_id)
        .bind(now_ms())
        .bind(event.level)
        .bind(event.message)
        .bind(event.metadata)
        .bind(event.progress)
        .bind(event.artifact)
        .bind(lease_token)
        .bind(i64::from(position))
        .bind(i64::from(ordinal))
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Events of a job after event id `after`, oldest first.
    pub async fn events_after(&self, job_id: &str, after: i64, limit: u32) -> Result<Vec<EventRow>, DbError> {
        sqlx::query_as("SELECT * FROM job_events WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?")
            .bind(job_id)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
    }
}

//! Job events: the structured log of a job, written by its worker and read (paged or live)
//! by the API.

use super::{DbError, Sqlite, now_ms};
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

impl Sqlite {
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
        let owned = OwnedEvent {
            job_id: job_id.to_string(),
            lease_token: lease_token.map(str::to_string),
            position,
            ordinal,
            level: event.level.to_string(),
            message: event.message.to_string(),
            metadata: event.metadata.to_string(),
            progress: event.progress,
            artifact: event.artifact.map(str::to_string),
        };
        // Queued with the other hot writes: a run's events share commits with other jobs'.
        match self.batched(super::batch::Write::Event(Box::new(owned))).await? {
            super::batch::Written::Event(written) => Ok(written),
            _ => Err(DbError::Protocol("the batch writer answered out of turn".into())),
        }
    }

    /// [`Db::insert_event`] without waiting for the commit: the event is queued now, ahead of
    /// every write queued after it (the run's end among them, so a finished job never lacks an
    /// event it emitted); `written` learns later whether it was stored, called on the writer
    /// thread (so it must be short and must not block). A host that dies first
    /// loses it with the rest of the unfinished run, and the replay emits it again.
    pub fn queue_event(
        &self,
        job_id: &str,
        lease_token: Option<&str>,
        key: (u32, u32),
        event: &NewEvent<'_>,
        written: impl FnOnce(Result<bool, DbError>) + Send + 'static,
    ) {
        let owned = OwnedEvent {
            job_id: job_id.to_string(),
            lease_token: lease_token.map(str::to_string),
            position: key.0,
            ordinal: key.1,
            level: event.level.to_string(),
            message: event.message.to_string(),
            metadata: event.metadata.to_string(),
            progress: event.progress,
            artifact: event.artifact.map(str::to_string),
        };
        self.enqueue_then(super::batch::Write::Event(Box::new(owned)), move |result| {
            written(match result {
                Ok(super::batch::Written::Event(stored)) => Ok(stored),
                Ok(_) => Err(DbError::Protocol("the batch writer answered out of turn".into())),
                Err(e) => Err(e),
            })
        });
    }

    /// Events of a job after event id `after`, oldest first.
    /// The (position, ordinal) keys of the events stored for a job.
    pub async fn event_keys(&self, job_id: &str) -> Result<Vec<(u32, u32)>, DbError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT position, ordinal FROM job_events WHERE job_id = ?")
            .bind(job_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .into_iter()
            .map(|(p, o)| (u32::try_from(p).unwrap_or(u32::MAX), u32::try_from(o).unwrap_or(u32::MAX)))
            .collect())
    }

    pub async fn events_after(&self, job_id: &str, after: i64, limit: u32) -> Result<Vec<EventRow>, DbError> {
        sqlx::query_as("SELECT * FROM job_events WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?")
            .bind(job_id)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
    }
}

/// An event waiting in the write queue.
pub struct OwnedEvent {
    pub job_id: String,
    pub lease_token: Option<String>,
    pub position: u32,
    pub ordinal: u32,
    pub level: String,
    pub message: String,
    pub metadata: String,
    pub progress: Option<f64>,
    pub artifact: Option<String>,
}

/// [`Db::insert_event`] on the writing connection (inside a batch): the event, and with a
/// progress value (from a run holding the lease) the job row's progress, together.
pub(super) fn insert_event_on(conn: &rusqlite::Connection, event: &OwnedEvent) -> rusqlite::Result<bool> {
    use rusqlite::params;
    let now = now_ms();
    if let Some(lease) = &event.lease_token
        && !super::jobs::holds_lease_on(conn, &event.job_id, lease)?
    {
        return Ok(false);
    }
    let written = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO job_events (job_id, at, level, message, metadata, progress, artifact, position, ordinal)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            event.job_id,
            now,
            event.level,
            event.message,
            event.metadata,
            event.progress,
            event.artifact,
            i64::from(event.position),
            i64::from(event.ordinal)
        ])?
        == 1;
    if let (true, Some(progress), Some(lease)) = (written, event.progress, &event.lease_token) {
        conn.prepare_cached(
            "UPDATE jobs SET progress = ?, progress_message = ?, updated_at = ? WHERE id = ? AND lease_token = ?",
        )?
        .execute(params![progress, event.message, now, event.job_id, lease])?;
    }
    Ok(written)
}

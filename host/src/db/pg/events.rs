//! Postgres twin of the SQLite `events`: job events, the structured log of a job, written by
//! its worker and read (paged or live) by the API.
//!
//! SQLite sends every event through the batch's one queue, so a job's events are stored in the
//! order they were emitted and ahead of the run's later writes. Here events are committed in
//! batches of their own (`group_commit`: one INSERT for a batch, beside the batches of run
//! ends, which lock customers), at most one per job in a batch, so this module keeps a job's
//! order itself: every event write takes a
//! place in its job's line when it is made (a [`Turn`]) and starts only once the write before
//! it has ended; [`events_settled`] lets the run's later writes (its journal entries, its end)
//! wait for the line too. The line is per process: only the host that leases a job runs it.

use super::group_commit::{Queue, Write};
use crate::db::events::{EventRow, NewEvent, OwnedEvent};
use crate::db::{DbError, now_ms};
use sqlx::PgConnection;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use tokio::sync::watch;

/// Per job, the last event write in its line: (its number, whether it has ended).
type Tails = HashMap<String, (u64, watch::Receiver<bool>)>;
static TAILS: LazyLock<Mutex<Tails>> = LazyLock::new(Default::default);
static NUMBERS: AtomicU64 = AtomicU64::new(0);
/// Runs (job, lease) one of whose events could not be stored: the batch's `lost_events`.
static LOST: LazyLock<Mutex<HashSet<(String, String)>>> = LazyLock::new(Default::default);

impl super::Pg {
    /// Postgres twin of `Sqlite::insert_event`: append an event, if `lease_token` still holds
    /// the job (`None`: written by the host itself, not by a run) and the job has no event with
    /// this key yet (a replay re-emits events it already has). Returns whether it was written.
    /// Stored after the job's events queued before it, in a batch (see `group_commit`).
    pub async fn insert_event(
        &self,
        job_id: &str,
        lease_token: Option<&str>,
        (position, ordinal): (u32, u32),
        event: &NewEvent<'_>,
    ) -> Result<bool, DbError> {
        let owned = owned(job_id, lease_token, (position, ordinal), event);
        let mut turn = Turn::take(job_id);
        turn.wait().await;
        store(&self.event_writes, owned).await
    }

    /// Postgres twin of `Sqlite::queue_event`: [`Self::insert_event`] without waiting for the
    /// commit. The event's place in its job's line is taken now, so it is stored after the
    /// job's earlier events and before its later ones; a task stores it and then calls
    /// `written`. The run's later writes keep it ahead of them through [`events_settled`]. A
    /// host that dies first loses it with the rest of the unfinished run, and the replay emits
    /// it again.
    pub fn queue_event(
        &self,
        job_id: &str,
        lease_token: Option<&str>,
        key: (u32, u32),
        event: &NewEvent<'_>,
        written: impl FnOnce(Result<bool, DbError>) + Send + 'static,
    ) {
        let owned = owned(job_id, lease_token, key, event);
        let mut turn = Turn::take(job_id);
        let writes = self.event_writes.clone();
        tokio::spawn(async move {
            turn.wait().await;
            let result = store(&writes, owned).await;
            drop(turn);
            written(result);
        });
    }

    /// Postgres twin of `Sqlite::event_keys`: the (position, ordinal) keys of the events
    /// stored for a job.
    pub async fn event_keys(&self, job_id: &str) -> Result<Vec<(u32, u32)>, DbError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT position, ordinal FROM job_events WHERE job_id = $1")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(p, o)| (u32::try_from(p).unwrap_or(u32::MAX), u32::try_from(o).unwrap_or(u32::MAX)))
            .collect())
    }

    /// Postgres twin of `Sqlite::events_after`: events of a job after event id `after`, oldest
    /// first.
    pub async fn events_after(&self, job_id: &str, after: i64, limit: u32) -> Result<Vec<EventRow>, DbError> {
        sqlx::query_as("SELECT * FROM job_events WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3")
            .bind(job_id)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
    }
}

/// Postgres twin of the SQLite `insert_event_on`, on the caller's transaction: the event, and
/// with a progress value (from a run holding the lease) the job row's progress, together.
/// The lease check locks the job row (`FOR NO KEY UPDATE`, the lock the progress `UPDATE`
/// takes anyway, so there is no upgrade to deadlock on): the token is judged on the newest row
/// version and cannot change before the commit, so no event lands after its run lost the job.
pub(super) async fn insert_event_on(conn: &mut PgConnection, event: &OwnedEvent) -> Result<bool, DbError> {
    let now = now_ms();
    let written = sqlx::query(
        "INSERT INTO job_events (job_id, at, level, message, metadata, progress, artifact, position, ordinal)
         SELECT $1::TEXT, $2::BIGINT, $3::TEXT, $4::TEXT, $5::TEXT, $6::DOUBLE PRECISION, $7::TEXT,
                $9::BIGINT, $10::BIGINT
         WHERE $8::TEXT IS NULL
            OR EXISTS (SELECT 1 FROM jobs WHERE id = $1::TEXT AND lease_token = $8::TEXT FOR NO KEY UPDATE)
         ON CONFLICT DO NOTHING",
    )
    .bind(&event.job_id)
    .bind(now)
    .bind(&event.level)
    .bind(&event.message)
    .bind(&event.metadata)
    .bind(event.progress)
    .bind(&event.artifact)
    .bind(&event.lease_token)
    .bind(i64::from(event.position))
    .bind(i64::from(event.ordinal))
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if let (true, Some(progress), Some(lease)) = (written, event.progress, &event.lease_token) {
        sqlx::query(
            "UPDATE jobs SET progress = $1, progress_message = $2, updated_at = $3 WHERE id = $4 AND lease_token = $5",
        )
        .bind(progress)
        .bind(&event.message)
        .bind(now)
        .bind(&event.job_id)
        .bind(lease)
        .execute(&mut *conn)
        .await?;
    }
    Ok(written)
}

/// [`insert_event_on`] for many events of different jobs at once (a batch holds at most one
/// event per job, see `group_commit`): one INSERT and at most one UPDATE, whatever their
/// number. Per event, whether it was written.
pub(super) async fn insert_events_on(conn: &mut PgConnection, events: &[&OwnedEvent]) -> Result<Vec<bool>, DbError> {
    let now = now_ms();
    let column = |f: fn(&OwnedEvent) -> Option<String>| events.iter().map(|e| f(e)).collect::<Vec<_>>();
    let (job_ids, leases) = (column(|e| Some(e.job_id.clone())), column(|e| e.lease_token.clone()));
    let (levels, messages) = (column(|e| Some(e.level.clone())), column(|e| Some(e.message.clone())));
    let (metadata, artifacts) = (column(|e| Some(e.metadata.clone())), column(|e| e.artifact.clone()));
    let progress: Vec<Option<f64>> = events.iter().map(|e| e.progress).collect();
    let positions: Vec<i64> = events.iter().map(|e| i64::from(e.position)).collect();
    let ordinals: Vec<i64> = events.iter().map(|e| i64::from(e.ordinal)).collect();
    // The lease check locks each job row, as `insert_event_on` does.
    let written: Vec<(String, i64, i64)> = sqlx::query_as(
        "INSERT INTO job_events (job_id, at, level, message, metadata, progress, artifact, position, ordinal)
         SELECT e.job_id, $1::BIGINT, e.level, e.message, e.metadata, e.progress, e.artifact, e.position, e.ordinal
         FROM unnest($2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::DOUBLE PRECISION[], $8::TEXT[],
                     $9::BIGINT[], $10::BIGINT[])
              AS e(job_id, lease, level, message, metadata, progress, artifact, position, ordinal)
         WHERE e.lease IS NULL
            OR EXISTS (SELECT 1 FROM jobs WHERE id = e.job_id AND lease_token = e.lease FOR NO KEY UPDATE)
         ON CONFLICT DO NOTHING
         RETURNING job_id, position, ordinal",
    )
    .bind(now)
    .bind(&job_ids)
    .bind(&leases)
    .bind(&levels)
    .bind(&messages)
    .bind(&metadata)
    .bind(&progress)
    .bind(&artifacts)
    .bind(&positions)
    .bind(&ordinals)
    .fetch_all(&mut *conn)
    .await?;
    let written: HashSet<(String, i64, i64)> = written.into_iter().collect();
    let was_written: Vec<bool> = events
        .iter()
        .map(|e| written.contains(&(e.job_id.clone(), i64::from(e.position), i64::from(e.ordinal))))
        .collect();
    // A run's progress goes on its job's row with the event that carries it.
    let moved: Vec<&&OwnedEvent> = events
        .iter()
        .zip(&was_written)
        .filter(|(e, written)| **written && e.progress.is_some() && e.lease_token.is_some())
        .map(|(e, _)| e)
        .collect();
    if !moved.is_empty() {
        let ids: Vec<&str> = moved.iter().map(|e| e.job_id.as_str()).collect();
        let leases: Vec<&str> = moved.iter().filter_map(|e| e.lease_token.as_deref()).collect();
        let progress: Vec<f64> = moved.iter().filter_map(|e| e.progress).collect();
        let messages: Vec<&str> = moved.iter().map(|e| e.message.as_str()).collect();
        sqlx::query(
            "UPDATE jobs SET progress = e.progress, progress_message = e.message, updated_at = $1
             FROM unnest($2::TEXT[], $3::TEXT[], $4::DOUBLE PRECISION[], $5::TEXT[]) AS e(job_id, lease, progress, message)
             WHERE jobs.id = e.job_id AND jobs.lease_token = e.lease",
        )
        .bind(now)
        .bind(&ids)
        .bind(&leases)
        .bind(&progress)
        .bind(&messages)
        .execute(&mut *conn)
        .await?;
    }
    Ok(was_written)
}

/// Wait until every event of `job_id` queued so far in this process has been stored or has
/// failed. An error when one of the run's (`lease_token`'s) events could not be stored: the
/// caller then refuses the run's later write (a journal entry, its end), as the SQLite batch
/// does, so the run ends as a host fault and its replay emits the event again (a job never
/// finishes without an event its run emitted). `run_ends`: this is the run's end, after which
/// the run is forgotten (its replay runs under a new lease).
pub(super) async fn events_settled(job_id: &str, lease_token: &str, run_ends: bool) -> Result<(), DbError> {
    let tail = locked(&TAILS).get(job_id).map(|(_, ended)| ended.clone());
    if let Some(mut tail) = tail {
        // An error: the write was dropped without ending (its task panicked); it is over.
        let _ = tail.wait_for(|ended| *ended).await;
    }
    let run = (job_id.to_string(), lease_token.to_string());
    let lost = {
        let mut lost = locked(&LOST);
        if run_ends { lost.remove(&run) } else { lost.contains(&run) }
    };
    if lost {
        return Err(DbError::Protocol("an event of this run was not stored: the run will be replayed".into()));
    }
    Ok(())
}

/// Store one event; a run whose event fails is remembered (see [`events_settled`]).
async fn store(writes: &Queue, event: OwnedEvent) -> Result<bool, DbError> {
    let run = event.lease_token.clone().map(|lease| (event.job_id.clone(), lease));
    let result = writes.write(Write::Event(event)).await.map(|outcome| outcome.written());
    if let (Err(_), Some(run)) = (&result, run) {
        locked(&LOST).insert(run);
    }
    result
}

fn owned(job_id: &str, lease_token: Option<&str>, (position, ordinal): (u32, u32), event: &NewEvent<'_>) -> OwnedEvent {
    OwnedEvent {
        job_id: job_id.to_string(),
        lease_token: lease_token.map(str::to_string),
        position,
        ordinal,
        level: event.level.to_string(),
        message: event.message.to_string(),
        metadata: event.metadata.to_string(),
        progress: event.progress,
        artifact: event.artifact.map(str::to_string),
    }
}

/// An event write's place in its job's line. Taken synchronously when the write is made (that
/// fixes the order); the write starts after [`Turn::wait`], and dropping the turn (after the
/// commit, or on any early exit) lets the next one go.
struct Turn {
    job_id: String,
    number: u64,
    after: Option<watch::Receiver<bool>>,
    ended: watch::Sender<bool>,
}

impl Turn {
    fn take(job_id: &str) -> Self {
        let (ended, on_end) = watch::channel(false);
        let number = NUMBERS.fetch_add(1, Ordering::Relaxed);
        let after = locked(&TAILS).insert(job_id.to_string(), (number, on_end)).map(|(_, before)| before);
        Self { job_id: job_id.to_string(), number, after, ended }
    }

    async fn wait(&mut self) {
        if let Some(mut before) = self.after.take() {
            // An error: the write before was dropped without ending; it is over either way.
            let _ = before.wait_for(|ended| *ended).await;
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.ended.send_replace(true);
        let mut tails = locked(&TAILS);
        // The last of its line: the job's entry goes (the next event starts a new line).
        if tails.get(&self.job_id).is_some_and(|(number, _)| *number == self.number) {
            tails.remove(&self.job_id);
        }
    }
}

/// A lock of the line's state; a panic while it was held leaves nothing half-written.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

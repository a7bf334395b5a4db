//! Job journals (DESIGN.md §4): the effects a job performed, in order.

use super::jobs::{Inserted, NewJob};
use super::{DbError, Sqlite, now_ms};
use crate::capabilities::JournalEntry;

impl Sqlite {
    pub async fn journal(&self, job_id: &str) -> Result<Vec<JournalEntry>, DbError> {
        // An indexed read of a few rows, on this thread (see `direct`).
        self.read_direct(|conn| {
            conn.prepare_cached(
                "SELECT seq, kind, request_digest, result FROM job_journal WHERE job_id = ? ORDER BY seq",
            )?
            .query_map([job_id], |r| {
                Ok(JournalEntry {
                    seq: u32::try_from(r.get::<_, i64>(0)?).unwrap_or(u32::MAX),
                    kind: r.get(1)?,
                    request_digest: r.get(2)?,
                    result: r.get(3)?,
                })
            })?
            .collect()
        })
    }

    /// Append an entry if the lease still holds the job, creating `child` with it: the child's
    /// row and the entry commit in one transaction, so a crash leaves both or neither (never a
    /// child its parent's journal does not know of).
    pub async fn append_journal_creating(
        &self,
        job_id: &str,
        lease_token: &str,
        entry: &JournalEntry,
        child: Option<&NewJob>,
    ) -> Result<Journaled, DbError> {
        let write = Appended::new(job_id, lease_token, entry, child);
        match self.batched(super::batch::Write::Journal(Box::new(write))).await? {
            super::batch::Written::Journaled(journaled) => Ok(journaled),
            _ => Err(DbError::Protocol("the batch writer answered out of turn".into())),
        }
    }
}

impl super::Db {
    /// Append an entry if the lease still holds the job; false for a stale run. The effect's
    /// hold, if it has one with its actual charge noted, is captured in the same transaction:
    /// an effect is journaled and charged together or not at all. Either backend queues it with
    /// the other hot writes, so under load many effects share a commit.
    pub async fn append_journal(&self, job_id: &str, lease_token: &str, entry: &JournalEntry) -> Result<bool, DbError> {
        Ok(self.append_journal_creating(job_id, lease_token, entry, None).await? == Journaled::Appended)
    }
}

/// What appending a journal entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Journaled {
    /// The entry is in, with the child it creates if any.
    Appended,
    /// The run no longer holds the job (a stale run): nothing was written.
    LeaseLost,
    /// The child's reservation does not fit what the customer may still be charged: nothing
    /// was written.
    ChildOverLimit { headroom_nusd: i64 },
}

/// A journal entry waiting in the write queue.
pub struct Appended {
    pub job_id: String,
    pub lease_token: String,
    pub entry: JournalEntry,
    /// The child job the effect creates, written in the entry's transaction.
    pub child: Option<Box<NewJob>>,
}

impl Appended {
    pub(crate) fn new(job_id: &str, lease_token: &str, entry: &JournalEntry, child: Option<&NewJob>) -> Self {
        Self {
            job_id: job_id.to_string(),
            lease_token: lease_token.to_string(),
            entry: entry.clone(),
            child: child.map(|c| Box::new(c.clone())),
        }
    }
}

/// [`Db::append_journal`] on the writing connection (inside a batch's transaction).
pub(super) fn append_journal_on(conn: &rusqlite::Connection, write: &Appended) -> rusqlite::Result<Journaled> {
    let Appended { job_id, lease_token, entry, child } = write;
    if !super::jobs::holds_lease_on(conn, job_id, lease_token)? {
        return Ok(Journaled::LeaseLost);
    }
    if let Some(child) = child
        && let Inserted::OverLimit { headroom_nusd } = super::jobs::insert_job_on(conn, child)?
    {
        return Ok(Journaled::ChildOverLimit { headroom_nusd });
    }
    conn.prepare_cached(
        "INSERT INTO job_journal (job_id, seq, kind, request_digest, result, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(rusqlite::params![
        job_id,
        i64::from(entry.seq),
        entry.kind,
        entry.request_digest,
        entry.result,
        now_ms()
    ])?;
    super::holds::capture_on(conn, &format!("{job_id}:{}", entry.seq))?;
    Ok(Journaled::Appended)
}

//! Postgres twin of the SQLite `journal`: job journals (DESIGN.md §4), the effects a job
//! performed, in order.

use crate::capabilities::JournalEntry;
use crate::db::jobs::{Inserted, NewJob};
use crate::db::journal::{Appended, Journaled};
use crate::db::{DbError, now_ms};
use sqlx::PgConnection;

impl super::Pg {
    /// Postgres twin of `Sqlite::journal`: a job's entries in order.
    pub async fn journal(&self, job_id: &str) -> Result<Vec<JournalEntry>, DbError> {
        let rows: Vec<(i64, String, String, String)> =
            sqlx::query_as("SELECT seq, kind, request_digest, result FROM job_journal WHERE job_id = $1 ORDER BY seq")
                .bind(job_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, kind, request_digest, result)| JournalEntry {
                seq: u32::try_from(seq).unwrap_or(u32::MAX),
                kind,
                request_digest,
                result,
            })
            .collect())
    }

    /// Postgres twin of `Sqlite::append_journal_creating`: append an entry if the lease still
    /// holds the job, capturing the effect's hold and creating `child` in the same transaction.
    /// Committed with the other writes queued at the same time (see `group_commit`).
    pub async fn append_journal_creating(
        &self,
        job_id: &str,
        lease_token: &str,
        entry: &JournalEntry,
        child: Option<&NewJob>,
    ) -> Result<Journaled, DbError> {
        let write = Appended::new(job_id, lease_token, entry, child);
        // An effect is journaled only after the run's earlier events are stored.
        super::events::events_settled(job_id, lease_token, false).await?;
        match self.writes.write(super::group_commit::Write::Journal(write)).await? {
            super::group_commit::Outcome::Journaled(journaled) => Ok(journaled),
            super::group_commit::Outcome::Written(_) => {
                Err(DbError::Protocol("the group commit answered out of turn".into()))
            }
        }
    }
}

/// [`Pg::append_journal`](super::Pg) on the caller's transaction.
pub(super) async fn append_journal_on(conn: &mut PgConnection, write: &Appended) -> Result<Journaled, DbError> {
    let Appended { job_id, lease_token, entry, child } = write;
    let effect_key = format!("{job_id}:{}", entry.seq);
    // Capturing the effect's hold writes a ledger row, whose trigger updates the customer's
    // running totals: lock the customer first (customers before jobs), and only when there is
    // an open hold to capture (customers without a limit place none: no lock). `NO KEY`: see
    // `jobs::lock_customers`.
    sqlx::query(
        "SELECT 1 FROM customers c
         WHERE c.id = (SELECT h.customer_id FROM billing_holds h WHERE h.effect_key = $1 AND h.status = 'open')
         FOR NO KEY UPDATE OF c",
    )
    .bind(&effect_key)
    .execute(&mut *conn)
    .await?;
    // The lease check locks the job row `FOR SHARE` until the commit: the job cannot be
    // re-queued or re-claimed by another run (an UPDATE, which waits for us or skips the
    // row) in between, so a stale run's entry is either in before the next run loads the
    // journal, or refused — what SQLite's single writer gave. A duplicate `seq` is an error,
    // as there.
    if let Some(child) = child {
        // The child's row before the entry, after the lease check: a stale run creates no
        // child, and a child over the limit leaves no entry. Its reservation locks its
        // customer (the parent's), which comes before the job row in the lock order.
        if child.reserve_nusd > 0 {
            super::jobs::lock_customers(&mut *conn, std::slice::from_ref(&child.customer_id)).await?;
        }
        let leased: Option<i32> = sqlx::query_scalar("SELECT 1 FROM jobs WHERE id = $1 AND lease_token = $2 FOR SHARE")
            .bind(job_id)
            .bind(lease_token)
            .fetch_optional(&mut *conn)
            .await?;
        if leased.is_none() {
            return Ok(Journaled::LeaseLost);
        }
        if let Inserted::OverLimit { headroom_nusd } = super::jobs::insert_job_on(&mut *conn, child).await? {
            return Ok(Journaled::ChildOverLimit { headroom_nusd });
        }
    }
    let appended = sqlx::query(
        "INSERT INTO job_journal (job_id, seq, kind, request_digest, result, at)
         SELECT $1, $2, $3, $4, $5, $6
         WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND lease_token = $7 FOR SHARE)",
    )
    .bind(job_id)
    .bind(i64::from(entry.seq))
    .bind(&entry.kind)
    .bind(&entry.request_digest)
    .bind(&entry.result)
    .bind(now_ms())
    .bind(lease_token)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !appended {
        if child.is_some() {
            // Not possible while the `FOR SHARE` above holds; if it were, the child written
            // above must not commit without its entry: an error rolls the transaction back.
            return Err(DbError::Protocol("a run lost its lease after creating a child".into()));
        }
        return Ok(Journaled::LeaseLost);
    }
    super::holds::capture_on(&mut *conn, &effect_key).await?;
    Ok(Journaled::Appended)
}

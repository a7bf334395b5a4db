//! Job journals (DESIGN.md §4): the effects a job performed, in order.

use super::{Db, DbError, now_ms};
use crate::capabilities::JournalEntry;

impl Db {
    pub async fn journal(&self, job_id: &str) -> Result<Vec<JournalEntry>, DbError> {
        let rows: Vec<(i64, String, String, String)> =
            sqlx::query_as("SELECT seq, kind, request_digest, result FROM job_journal WHERE job_id = ? ORDER BY seq")
                .bind(job_id)
                .fetch_all(self.pool())
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

    /// Append an entry if the lease still holds the job; false for a stale run. The effect's
    /// hold, if it has one with its actual charge noted, is captured in the same transaction:
    /// an effect is journaled and charged together or not at all.
    pub async fn append_journal(&self, job_id: &str, lease_token: &str, entry: &JournalEntry) -> Result<bool, DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query(
            "INSERT INTO job_journal (job_id, seq, kind, request_digest, result, at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?1 AND lease_token = ?7)",
        )
        .bind(job_id)
        .bind(i64::from(entry.seq))
        .bind(&entry.kind)
        .bind(&entry.request_digest)
        .bind(&entry.result)
        .bind(now_ms())
        .bind(lease_token)
        .execute(&mut *tx)
        .await?;
        let appended = done.rows_affected() == 1;
        if appended {
            super::holds::capture_on(&mut tx, &format!("{job_id}:{}", entry.seq)).await?;
        }
        tx.commit().await?;
        Ok(appended)
    }
}

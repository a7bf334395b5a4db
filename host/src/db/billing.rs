//! The billing ledger: append-only rows, one per billable event.

use super::{Db, DbError, now_ms};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LedgerRow {
    pub id: i64,
    pub customer_id: String,
    pub job_id: Option<String>,
    pub template_id: Option<String>,
    pub event_type: String,
    pub cost_usd: f64,
    pub charge_usd: f64,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub metadata: String,
    pub created_at: i64,
}

/// A ledger row to append.
pub struct NewLedgerEntry<'a> {
    pub customer_id: &'a str,
    pub job_id: &'a str,
    pub template_id: &'a str,
    pub event_type: &'a str,
    pub cost_usd: f64,
    pub charge_usd: f64,
    pub provider: Option<&'a str>,
    pub model: Option<&'a str>,
    pub metadata: &'a str,
}

impl Db {
    /// Append to the ledger if the lease still holds the job; false for a stale run.
    pub async fn insert_ledger(&self, entry: &NewLedgerEntry<'_>, lease_token: &str) -> Result<bool, DbError> {
        let done = sqlx::query(
            "INSERT INTO billing_events (customer_id, job_id, template_id, event_type, cost_usd, charge_usd, provider, model,
                metadata, created_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?2 AND lease_token = ?11)",
        )
        .bind(entry.customer_id)
        .bind(entry.job_id)
        .bind(entry.template_id)
        .bind(entry.event_type)
        .bind(entry.cost_usd)
        .bind(entry.charge_usd)
        .bind(entry.provider)
        .bind(entry.model)
        .bind(entry.metadata)
        .bind(now_ms())
        .bind(lease_token)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn job_ledger(&self, job_id: &str) -> Result<Vec<LedgerRow>, DbError> {
        sqlx::query_as("SELECT * FROM billing_events WHERE job_id = ? ORDER BY id")
            .bind(job_id)
            .fetch_all(self.pool())
            .await
    }
}

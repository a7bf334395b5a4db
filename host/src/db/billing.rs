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

/// What appending a ledger row did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerWrite {
    Written,
    /// The charge would take the customer past a limit: nothing was written.
    OverLimit,
    /// The run no longer holds the job: nothing was written.
    LeaseLost,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct UsageRow {
    pub day: String,
    pub template_id: String,
    pub events: i64,
    pub cost_usd: f64,
    pub charge_usd: f64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct BillingSummary {
    pub credit_usd: Option<f64>,
    pub monthly_cap_usd: Option<f64>,
    pub margin: Option<f64>,
    pub charged_usd: f64,
    pub charged_this_month_usd: f64,
    /// What may still be charged (after reservations); 1e300 when unlimited.
    pub available_usd: f64,
}

/// A ledger row to append.
pub struct NewLedgerEntry<'a> {
    /// `<job id>:<effect number>`: the same effect is never written twice.
    pub effect_key: Option<&'a str>,
    pub customer_id: &'a str,
    pub job_id: &'a str,
    pub template_id: &'a str,
    pub event_type: &'a str,
    pub cost_usd: f64,
    /// The template's explicit charge, if any.
    pub charge_usd: Option<f64>,
    pub provider: Option<&'a str>,
    pub model: Option<&'a str>,
    pub metadata: &'a str,
}

impl Db {
    /// Append to the ledger if the lease still holds the job and, with `enforce_limit`, the
    /// charge fits what the customer may still be charged (checked and written in one
    /// statement; without it, for money already spent whose limit was checked beforehand). The charge is
    /// cost × the customer's margin (or `default_margin`), or the template's explicit charge
    /// when that is higher — never below cost × margin.
    pub async fn insert_ledger(
        &self,
        entry: &NewLedgerEntry<'_>,
        lease_token: &str,
        default_margin: f64,
        enforce_limit: bool,
    ) -> Result<LedgerWrite, DbError> {
        if let Some(key) = entry.effect_key {
            let applied: Option<i64> = sqlx::query_scalar("SELECT 1 FROM billing_events WHERE effect_key = ?")
                .bind(key)
                .fetch_optional(self.writer())
                .await?;
            if applied.is_some() {
                return Ok(LedgerWrite::Written);
            }
        }
        let charge = "MAX(COALESCE(?6, 0), ?5 * COALESCE((SELECT margin FROM customers WHERE id = ?1), ?12))";
        let headroom = super::limits::headroom("?1", "?2", "?13");
        let done = sqlx::query(&format!(
            "INSERT INTO billing_events (customer_id, job_id, template_id, event_type, cost_usd, charge_usd, provider, model,
                metadata, created_at, effect_key)
             SELECT ?1, ?2, ?3, ?4, ?5, {charge}, ?7, ?8, ?9, ?10, ?14
             WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?2 AND lease_token = ?11) AND (NOT ?15 OR {charge} <= {headroom} + 1e-9)"
        ))
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
        .bind(default_margin)
        .bind(super::limits::month_start_ms())
        .bind(entry.effect_key)
        .bind(enforce_limit)
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 1 {
            return Ok(LedgerWrite::Written);
        }
        let leased: Option<i64> = sqlx::query_scalar("SELECT 1 FROM jobs WHERE id = ? AND lease_token = ?")
            .bind(entry.job_id)
            .bind(lease_token)
            .fetch_optional(self.pool())
            .await?;
        Ok(if leased.is_some() { LedgerWrite::OverLimit } else { LedgerWrite::LeaseLost })
    }

    /// What the customer may still be charged beside this job's own reservation, and their
    /// margin (or `default_margin`).
    pub async fn charge_headroom(
        &self,
        customer_id: &str,
        job_id: &str,
        default_margin: f64,
    ) -> Result<(f64, f64), DbError> {
        let headroom = super::limits::headroom("?1", "?2", "?3");
        sqlx::query_as(&format!(
            "SELECT COALESCE({headroom}, 1e300), COALESCE((SELECT margin FROM customers WHERE id = ?1), ?4)"
        ))
        .bind(customer_id)
        .bind(job_id)
        .bind(super::limits::month_start_ms())
        .bind(default_margin)
        .fetch_one(self.pool())
        .await
    }

    /// Charges per day and template between two unix-ms instants.
    pub async fn usage(&self, customer_id: &str, from_ms: i64, to_ms: i64) -> Result<Vec<UsageRow>, DbError> {
        sqlx::query_as(
            "SELECT date(created_at / 1000, 'unixepoch') AS day, COALESCE(template_id, '') AS template_id,
                    COUNT(*) AS events, SUM(cost_usd) AS cost_usd, SUM(charge_usd) AS charge_usd
             FROM billing_events WHERE customer_id = ? AND created_at >= ? AND created_at < ?
             GROUP BY day, template_id ORDER BY day, template_id",
        )
        .bind(customer_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await
    }

    /// Add prepaid credit (a customer without a prepaid limit gets one).
    pub async fn add_credit(&self, customer_id: &str, usd: f64) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE customers SET credit_usd = COALESCE(credit_usd, 0) + ? WHERE id = ?")
            .bind(usd)
            .bind(customer_id)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Set (or with `None` remove) a customer's monthly cap and margin.
    pub async fn set_billing_terms(
        &self,
        customer_id: &str,
        monthly_cap_usd: Option<Option<f64>>,
        margin: Option<Option<f64>>,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE customers SET monthly_cap_usd = CASE WHEN ?1 THEN ?2 ELSE monthly_cap_usd END,
                                  margin = CASE WHEN ?3 THEN ?4 ELSE margin END WHERE id = ?5",
        )
        .bind(monthly_cap_usd.is_some())
        .bind(monthly_cap_usd.flatten())
        .bind(margin.is_some())
        .bind(margin.flatten())
        .bind(customer_id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A customer's limits and what they have been charged: (credit, monthly cap, charged in
    /// all, charged this month, still chargeable).
    pub async fn billing_summary(&self, customer_id: &str) -> Result<Option<BillingSummary>, DbError> {
        let headroom = super::limits::headroom("?1", "NULL", "?2");
        sqlx::query_as(&format!(
            "SELECT c.credit_usd, c.monthly_cap_usd, c.margin,
                    (SELECT TOTAL(charge_usd) FROM billing_events WHERE customer_id = c.id) AS charged_usd,
                    (SELECT TOTAL(charge_usd) FROM billing_events WHERE customer_id = c.id AND created_at >= ?2) AS charged_this_month_usd,
                    {headroom} AS available_usd
             FROM customers c WHERE c.id = ?1"
        ))
        .bind(customer_id)
        .bind(super::limits::month_start_ms())
        .fetch_optional(self.pool())
        .await
    }

    pub async fn job_ledger(&self, job_id: &str) -> Result<Vec<LedgerRow>, DbError> {
        sqlx::query_as("SELECT * FROM billing_events WHERE job_id = ? ORDER BY id")
            .bind(job_id)
            .fetch_all(self.pool())
            .await
    }
}

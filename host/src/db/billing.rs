//! The billing ledger: append-only rows, one per billable event, in integer nano-USD.

use super::{DbError, Sqlite, now_ms};
use crate::money;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct LedgerRow {
    pub id: i64,
    pub customer_id: String,
    pub job_id: Option<String>,
    pub template_id: Option<String>,
    pub event_type: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub metadata: String,
    pub created_at: i64,
    pub effect_key: Option<String>,
    /// What the platform paid, nano-USD.
    pub cost_nusd: i64,
    /// What the customer was charged, nano-USD.
    pub charge_nusd: i64,
}

/// What appending a ledger row did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerWrite {
    /// Written now, or by an earlier run of the same effect; the charge in nano-USD.
    Written { charge_nusd: i64 },
    /// The charge would take the customer past a limit: nothing was written.
    OverLimit { headroom_nusd: i64 },
    /// The run no longer holds the job: nothing was written.
    LeaseLost,
}

/// What to do with a charge that does not fit what the customer may still be charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverLimit {
    /// Write nothing (the effect has not happened yet and will not).
    Refuse,
    /// The money is spent (CPU burned): charge what still fits, record the rest as
    /// `uncollected_nusd` in the row's metadata. A limit is never crossed.
    ChargeWhatFits,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct UsageRow {
    pub day: String,
    pub template_id: String,
    pub events: i64,
    pub cost_nusd: i64,
    pub charge_nusd: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct BillingSummary {
    pub credit_nusd: Option<i64>,
    pub monthly_cap_nusd: Option<i64>,
    pub margin: Option<f64>,
    pub charged_nusd: i64,
    pub charged_this_month_nusd: i64,
    /// Held by the open holds of unfinished jobs.
    pub held_nusd: i64,
    /// What may still be charged (after holds and reservations); `money::UNLIMITED` when the
    /// customer has no limit.
    pub available_nusd: i64,
}

/// A ledger row to append.
pub struct NewLedgerEntry<'a> {
    /// `<job id>:<effect number>`: the same effect is never written twice.
    pub effect_key: Option<&'a str>,
    pub customer_id: &'a str,
    pub job_id: &'a str,
    pub template_id: &'a str,
    pub event_type: &'a str,
    pub cost_nusd: i64,
    /// The template's explicit charge, if any.
    pub charge_nusd: Option<i64>,
    pub provider: Option<&'a str>,
    pub model: Option<&'a str>,
    pub metadata: &'a str,
}

impl Sqlite {
    /// Append to the ledger if the lease still holds the job and the charge fits what the
    /// customer may still be charged (read and written in one `BEGIN IMMEDIATE` transaction,
    /// so racing jobs cannot both fit). The charge is cost × the customer's margin (or
    /// `default_margin`), or the template's explicit charge when that is higher — never below
    /// cost × margin. `over` says what happens when it does not fit.
    pub async fn insert_ledger(
        &self,
        entry: &NewLedgerEntry<'_>,
        lease_token: &str,
        default_margin: f64,
        over: OverLimit,
    ) -> Result<LedgerWrite, DbError> {
        let write = LedgerInsert {
            effect_key: entry.effect_key.map(str::to_string),
            customer_id: entry.customer_id.to_string(),
            job_id: entry.job_id.to_string(),
            template_id: entry.template_id.to_string(),
            event_type: entry.event_type.to_string(),
            cost_nusd: entry.cost_nusd,
            charge_nusd: entry.charge_nusd,
            provider: entry.provider.map(str::to_string),
            model: entry.model.map(str::to_string),
            metadata: entry.metadata.to_string(),
            lease_token: lease_token.to_string(),
            default_margin,
            over,
        };
        // Queued with the other hot writes: the check and the row share one transaction
        // (the batch's), so racing jobs still cannot both fit.
        match self.batched(super::batch::Write::Ledger(Box::new(write))).await? {
            super::batch::Written::Ledger(written) => Ok(written),
            _ => Err(DbError::Protocol("the batch writer answered out of turn".into())),
        }
    }

    /// Charges per day and template between two unix-ms instants.
    pub async fn usage(&self, customer_id: &str, from_ms: i64, to_ms: i64) -> Result<Vec<UsageRow>, DbError> {
        sqlx::query_as(
            "SELECT date(created_at / 1000, 'unixepoch') AS day, COALESCE(template_id, '') AS template_id,
                    COUNT(*) AS events, SUM(cost_nusd) AS cost_nusd, SUM(charge_nusd) AS charge_nusd
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
    pub async fn add_credit(&self, customer_id: &str, nusd: i64) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE customers SET credit_nusd = COALESCE(credit_nusd, 0) + ? WHERE id = ?")
            .bind(nusd)
            .bind(customer_id)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Set (or with `None` remove) a customer's monthly cap and margin.
    pub async fn set_billing_terms(
        &self,
        customer_id: &str,
        monthly_cap_nusd: Option<Option<i64>>,
        margin: Option<Option<f64>>,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE customers SET monthly_cap_nusd = CASE WHEN ?1 THEN ?2 ELSE monthly_cap_nusd END,
                                  margin = CASE WHEN ?3 THEN ?4 ELSE margin END WHERE id = ?5",
        )
        .bind(monthly_cap_nusd.is_some())
        .bind(monthly_cap_nusd.flatten())
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
            "SELECT c.credit_nusd, c.monthly_cap_nusd, c.margin,
                    c.charged_nusd AS charged_nusd,
                    CASE WHEN c.month_start_ms = ?2 THEN c.charged_month_nusd ELSE 0 END AS charged_this_month_nusd,
                    (SELECT COALESCE(SUM(h.held_nusd), 0) FROM billing_holds h JOIN jobs j ON j.id = h.job_id
                     WHERE h.customer_id = c.id AND h.status = 'open'
                       AND j.status NOT IN ('succeeded', 'failed', 'cancelled')) AS held_nusd,
                    {headroom} AS available_nusd
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

/// `metadata` (a JSON object) with `uncollected_nusd` added: what a charge could not collect.
pub(super) fn with_uncollected(metadata: &str, uncollected: i64) -> String {
    let mut value: serde_json::Value = serde_json::from_str(metadata).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(object) = value.as_object_mut() {
        object.insert("uncollected_nusd".into(), uncollected.into());
    }
    value.to_string()
}

/// A ledger row waiting in the write queue, with what deciding it needs.
pub struct LedgerInsert {
    pub effect_key: Option<String>,
    pub customer_id: String,
    pub job_id: String,
    pub template_id: String,
    pub event_type: String,
    pub cost_nusd: i64,
    pub charge_nusd: Option<i64>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub metadata: String,
    pub lease_token: String,
    pub default_margin: f64,
    pub over: OverLimit,
}

/// [`Db::insert_ledger`] on the writing connection (inside a batch's transaction).
pub(super) fn insert_ledger_on(conn: &rusqlite::Connection, entry: &LedgerInsert) -> rusqlite::Result<LedgerWrite> {
    use rusqlite::{OptionalExtension, params};
    let (lease_token, default_margin, over) = (entry.lease_token.as_str(), entry.default_margin, entry.over);
    if let Some(key) = &entry.effect_key {
        let applied: Option<i64> = conn
            .prepare_cached("SELECT charge_nusd FROM billing_events WHERE effect_key = ?")?
            .query_row([key], |r| r.get(0))
            .optional()?;
        if let Some(charge_nusd) = applied {
            return Ok(LedgerWrite::Written { charge_nusd });
        }
    }
    let charging =
        super::limits::Charging { customer_id: &entry.customer_id, job_id: &entry.job_id, lease_token, default_margin };
    let found = super::limits::headroom_under_lease(conn, &charging)?;
    let Some((headroom_nusd, margin)) = found else { return Ok(LedgerWrite::LeaseLost) };
    let wanted = money::charge(entry.cost_nusd, margin).max(entry.charge_nusd.unwrap_or(0));
    let (charge, metadata) = if wanted <= headroom_nusd {
        (wanted, entry.metadata.to_string())
    } else if over == OverLimit::Refuse {
        return Ok(LedgerWrite::OverLimit { headroom_nusd });
    } else {
        let fits = headroom_nusd.max(0);
        (fits, with_uncollected(&entry.metadata, wanted - fits))
    };
    conn.prepare_cached(
        "INSERT INTO billing_events (customer_id, job_id, template_id, event_type, cost_nusd, charge_nusd, provider,
                model, metadata, created_at, effect_key)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        entry.customer_id,
        entry.job_id,
        entry.template_id,
        entry.event_type,
        entry.cost_nusd,
        charge,
        entry.provider,
        entry.model,
        metadata,
        now_ms(),
        entry.effect_key
    ])?;
    Ok(LedgerWrite::Written { charge_nusd: charge })
}

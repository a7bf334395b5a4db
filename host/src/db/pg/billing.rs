//! Postgres twin of the SQLite `billing`: the ledger, append-only rows in integer nano-USD.
//! A ledger row that is checked against the customer's limit is written after locking the
//! customer row (then the job, for the lease), so racing hosts cannot both fit.

use super::limits::{Charging, headroom, headroom_under_lease, lock_customer, month_start_ms};
use crate::db::billing::{
    BillingSummary, LedgerInsert, LedgerRow, LedgerWrite, NewLedgerEntry, OverLimit, UsageRow, with_uncollected,
};
use crate::db::{DbError, now_ms};
use crate::money;
use sqlx::PgConnection;

impl super::Pg {
    /// Postgres twin of `Sqlite::insert_ledger`: append to the ledger if the lease still holds
    /// the job and the charge fits what the customer may still be charged. The charge is cost ×
    /// the customer's margin (or `default_margin`), or the template's explicit charge when that
    /// is higher. `over` says what happens when it does not fit. Its own transaction for now
    /// (the body is [`insert_ledger_on`], for a later group commit).
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
        let mut tx = self.pool.begin().await?;
        let written = insert_ledger_on(&mut tx, &write).await?;
        tx.commit().await?;
        Ok(written)
    }

    /// Charges per (UTC) day and template between two unix-ms instants.
    pub async fn usage(&self, customer_id: &str, from_ms: i64, to_ms: i64) -> Result<Vec<UsageRow>, DbError> {
        // Grouped by the stored `template_id` (NULL apart from ''), ordered by the shown one:
        // Postgres resolves the names as SQLite does.
        sqlx::query_as(
            "SELECT to_char(to_timestamp(created_at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
                    COALESCE(template_id, '') AS template_id,
                    COUNT(*) AS events, SUM(cost_nusd)::BIGINT AS cost_nusd, SUM(charge_nusd)::BIGINT AS charge_nusd
             FROM billing_events WHERE customer_id = $1 AND created_at >= $2 AND created_at < $3
             GROUP BY day, template_id ORDER BY day, template_id",
        )
        .bind(customer_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await
    }

    /// Add prepaid credit (a customer without a prepaid limit gets one). One UPDATE of the
    /// customer row: atomic against any other writer of it.
    pub async fn add_credit(&self, customer_id: &str, nusd: i64) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE customers SET credit_nusd = COALESCE(credit_nusd, 0) + $1 WHERE id = $2")
            .bind(nusd)
            .bind(customer_id)
            .execute(&self.pool)
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
            "UPDATE customers SET monthly_cap_nusd = CASE WHEN $1::BOOLEAN THEN $2::BIGINT ELSE monthly_cap_nusd END,
                                  margin = CASE WHEN $3::BOOLEAN THEN $4::DOUBLE PRECISION ELSE margin END
             WHERE id = $5",
        )
        .bind(monthly_cap_nusd.is_some())
        .bind(monthly_cap_nusd.flatten())
        .bind(margin.is_some())
        .bind(margin.flatten())
        .bind(customer_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A customer's limits and what they have been charged: (credit, monthly cap, charged in
    /// all, charged this month, held, still chargeable). A read: no lock.
    pub async fn billing_summary(&self, customer_id: &str) -> Result<Option<BillingSummary>, DbError> {
        let headroom = headroom("$1", "NULL", "$2");
        sqlx::query_as(&format!(
            "SELECT c.credit_nusd, c.monthly_cap_nusd, c.margin,
                    c.charged_nusd AS charged_nusd,
                    CASE WHEN c.month_start_ms = $2 THEN c.charged_month_nusd ELSE 0 END AS charged_this_month_nusd,
                    (SELECT COALESCE(SUM(h.held_nusd), 0)::BIGINT FROM billing_holds h JOIN jobs j ON j.id = h.job_id
                     WHERE h.customer_id = c.id AND h.status = 'open'
                       AND j.status NOT IN ('succeeded', 'failed', 'cancelled')) AS held_nusd,
                    {headroom} AS available_nusd
             FROM customers c WHERE c.id = $1"
        ))
        .bind(customer_id)
        .bind(month_start_ms())
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn job_ledger(&self, job_id: &str) -> Result<Vec<LedgerRow>, DbError> {
        sqlx::query_as("SELECT * FROM billing_events WHERE job_id = $1 ORDER BY id")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await
    }
}

/// Postgres twin of the SQLite `insert_ledger_on`, on the caller's transaction.
///
/// Relies on: the customer row locked first (the effect-key read, the headroom read and the
/// insert are one decision: no other host's charge, hold or reservation of this customer can
/// interleave, and a racing write of the same effect finds this one's row instead of failing
/// on the unique key), then the job row `FOR SHARE` in [`headroom_under_lease`] (the lease
/// holds until commit).
pub(super) async fn insert_ledger_on(conn: &mut PgConnection, entry: &LedgerInsert) -> Result<LedgerWrite, DbError> {
    let (lease_token, default_margin, over) = (entry.lease_token.as_str(), entry.default_margin, entry.over);
    lock_customer(conn, &entry.customer_id).await?;
    if let Some(key) = &entry.effect_key {
        let applied: Option<i64> = sqlx::query_scalar("SELECT charge_nusd FROM billing_events WHERE effect_key = $1")
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(charge_nusd) = applied {
            return Ok(LedgerWrite::Written { charge_nusd });
        }
    }
    let charging = Charging { customer_id: &entry.customer_id, job_id: &entry.job_id, lease_token, default_margin };
    let found = headroom_under_lease(conn, &charging).await?;
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
    sqlx::query(
        "INSERT INTO billing_events (customer_id, job_id, template_id, event_type, cost_nusd, charge_nusd, provider,
                model, metadata, created_at, effect_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&entry.customer_id)
    .bind(&entry.job_id)
    .bind(&entry.template_id)
    .bind(&entry.event_type)
    .bind(entry.cost_nusd)
    .bind(charge)
    .bind(entry.provider.as_deref())
    .bind(entry.model.as_deref())
    .bind(metadata)
    .bind(now_ms())
    .bind(entry.effect_key.as_deref())
    .execute(&mut *conn)
    .await?;
    Ok(LedgerWrite::Written { charge_nusd: charge })
}

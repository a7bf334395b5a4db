//! Postgres twin of the SQLite `limits`: how much a customer may still be charged, as an SQL
//! expression for the statements that insert a job, a hold or a ledger row. On Postgres the
//! expression alone is not atomic with the write (READ COMMITTED, many hosts): every
//! transaction that checks it and then writes first locks the customer row ([`lock_customer`]),
//! which serialises one customer's money decisions across hosts. Every write that changes the
//! inputs (a ledger row, through the running-totals trigger; a hold; a reservation) either
//! takes that lock or is bounded by a hold already counted. Amounts are integer nano-USD
//! (`crate::money`): comparisons are exact.

use crate::db::DbError;
use crate::money::UNLIMITED;
use sqlx::PgConnection;

pub(super) use crate::db::limits::Charging;
pub(super) use crate::db::month_start_ms;

/// Postgres twin of the SQLite `limits::headroom`: what the customer `cust` may still be
/// charged: the smaller of credit left and this month's cap left, minus every open hold of an
/// unfinished job and what unfinished jobs other than `job` still keep in reservation (their
/// reservation less what they have charged and hold); [`UNLIMITED`] when the customer has no
/// limit. `month` is the start of the current month (unix ms). `cust`, `job` and `month` are
/// SQL expressions (`$1`, `NULL`, `jobs.id`). The result is a BIGINT (every SUM is cast back
/// from NUMERIC), so it compares and decodes as `i64`.
pub(super) fn headroom(cust: &str, job: &str, month: &str) -> String {
    format!(
        "(SELECT CASE WHEN c.credit_nusd IS NULL AND c.monthly_cap_nusd IS NULL THEN {UNLIMITED}::BIGINT ELSE
            LEAST(COALESCE(c.credit_nusd - c.charged_nusd, {UNLIMITED}::BIGINT),
                  COALESCE(c.monthly_cap_nusd
                             - CASE WHEN c.month_start_ms = {month} THEN c.charged_month_nusd ELSE 0 END,
                           {UNLIMITED}::BIGINT))
            - (SELECT COALESCE(SUM(h.held_nusd), 0)::BIGINT FROM billing_holds h JOIN jobs hj ON hj.id = h.job_id
               WHERE h.customer_id = c.id AND h.status = 'open'
                 AND hj.status NOT IN ('succeeded', 'failed', 'cancelled'))
            - (SELECT COALESCE(SUM(GREATEST(j.reserved_nusd
                    - (SELECT COALESCE(SUM(b.charge_nusd), 0)::BIGINT FROM billing_events b WHERE b.job_id = j.id)
                    - (SELECT COALESCE(SUM(h.held_nusd), 0)::BIGINT FROM billing_holds h
                       WHERE h.job_id = j.id AND h.status = 'open'),
                  0)), 0)::BIGINT
               FROM jobs j WHERE j.customer_id = c.id AND j.reserved_nusd > 0
                 AND j.status IN ('queued', 'running', 'waiting_for_child', 'waiting_for_human')
                 AND j.id IS DISTINCT FROM {job})
          END FROM customers c WHERE c.id = {cust})"
    )
}

/// Postgres twin of the SQLite `limits::headroom_under_lease`: what the customer may still be
/// charged beside this job's own reservation, and their margin, read on the caller's write
/// transaction; `None` when the run no longer holds the job.
///
/// The caller must already hold the customer row lock ([`lock_customer`]), taken first, so
/// the headroom stays true until it commits. The job row is locked `FOR SHARE` (after the
/// customer: customers before jobs), so the lease cannot move to another run, nor the job
/// end and settle its holds, before the caller's write commits — what `BEGIN IMMEDIATE` gave.
pub(super) async fn headroom_under_lease(
    conn: &mut PgConnection,
    charging: &Charging<'_>,
) -> Result<Option<(i64, f64)>, DbError> {
    let headroom = headroom("$1", "$2", "$4");
    sqlx::query_as(&format!(
        "SELECT {headroom}, COALESCE((SELECT margin FROM customers WHERE id = $1), $3::DOUBLE PRECISION)
         FROM jobs WHERE id = $2 AND lease_token = $5 FOR SHARE OF jobs"
    ))
    .bind(charging.customer_id)
    .bind(charging.job_id)
    .bind(charging.default_margin)
    .bind(month_start_ms())
    .bind(charging.lease_token)
    .fetch_optional(&mut *conn)
    .await
}

/// Lock the customer row for the rest of the caller's transaction: the first statement of
/// every transaction that checks what a customer may still be charged (or stored) and then
/// writes, so racing hosts decide one after the other. A missing customer locks nothing (its
/// checks then fail or write nothing that counts against a limit).
///
/// `FOR NO KEY UPDATE`, as `jobs::lock_customers`: it excludes every other lock of this kind,
/// `FOR UPDATE`, and the running-totals trigger's UPDATE of the row (a ledger row written
/// elsewhere) just as `FOR UPDATE` would, but lets foreign-key checks (`KEY SHARE`) through. A
/// job ending on another host inserts rows referencing the customer (its outbox) while it
/// holds the job row that [`headroom_under_lease`] waits for: with `FOR UPDATE` the two
/// would deadlock.
pub(super) async fn lock_customer(conn: &mut PgConnection, customer_id: &str) -> Result<(), DbError> {
    sqlx::query("SELECT 1 FROM customers WHERE id = $1 FOR NO KEY UPDATE")
        .bind(customer_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

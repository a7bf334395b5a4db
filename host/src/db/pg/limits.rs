//! Postgres twin of the SQLite `limits`: how much a customer may still be charged, as an SQL
//! expression for the statements that insert a job, a hold or a ledger row. On Postgres the
//! expression alone is not atomic with the write (READ COMMITTED, many hosts): every
//! transaction that checks it and then writes first locks the customer row ([`lock_customer`]),
//! which serialises one customer's money decisions across hosts. Every write that changes the
//! inputs (a ledger row, which the running-totals trigger adds to a stripe; a hold; a
//! reservation) takes that lock, or a batch's share lock that every holder of that lock waits
//! for ([`hold_customers_of_batch`]), or is bounded by a hold already counted. Amounts are
//! integer nano-USD (`crate::money`): comparisons are exact.

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
    let (charged, charged_this_month) = (charged("c"), charged_in_month("c", month));
    format!(
        "(SELECT CASE WHEN c.credit_nusd IS NULL AND c.monthly_cap_nusd IS NULL THEN {UNLIMITED}::BIGINT ELSE
            LEAST(COALESCE(c.credit_nusd - {charged}, {UNLIMITED}::BIGINT),
                  COALESCE(c.monthly_cap_nusd - {charged_this_month}, {UNLIMITED}::BIGINT))
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

/// What the customer `c` (an alias of `customers`) has been charged in all, as a BIGINT SQL
/// expression: the total on their row plus their stripes' (migration 0007: the ledger's
/// trigger adds to a stripe, so transactions charging one customer do not queue on its row).
pub(super) fn charged(c: &str) -> String {
    format!(
        "({c}.charged_nusd + (SELECT COALESCE(SUM(s.charged_nusd), 0)
                              FROM customer_charge_stripes s WHERE s.customer_id = {c}.id))::BIGINT"
    )
}

/// What the customer `c` has been charged in the month starting at `month` (an SQL
/// expression), as [`charged`]: each of the row and the stripes counts this month's charges
/// when this month is the latest it has seen.
pub(super) fn charged_in_month(c: &str, month: &str) -> String {
    format!(
        "(CASE WHEN {c}.month_start_ms = {month} THEN {c}.charged_month_nusd ELSE 0 END
          + (SELECT COALESCE(SUM(s.charged_month_nusd), 0) FROM customer_charge_stripes s
             WHERE s.customer_id = {c}.id AND s.month_start_ms = {month}))::BIGINT"
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
/// `FOR UPDATE`, the `FOR SHARE` of a batch of run ends ([`hold_customers_of_batch`]) and a
/// change of the customer's limits, but lets foreign-key checks (`KEY SHARE`) through. A
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

/// Hold the customers of a group-commit batch (those of its ending runs, and those whose holds
/// its journal entries capture) for the rest of the batch's transaction, in id order.
///
/// `FOR SHARE`, not [`lock_customer`]'s exclusive lock: two hosts' batches of one customer's
/// run ends commit side by side (the ledger's trigger adds to a stripe, migration 0007, not to
/// the row), while every exclusive lock — a hold, a charge checked against the limit, a change
/// of the limits — still waits for them and they for it. The share lock fixes the limits read
/// with it until the commit. A customer with a limit has their run ends' CPU charges capped by
/// a headroom read once per batch, so two batches of theirs must not interleave: they also
/// take a transaction advisory lock per such customer, in key order, after every row lock and
/// before any job's (the global order stays customers, then these keys, then jobs).
pub(super) async fn hold_customers_of_batch(
    conn: &mut PgConnection,
    ending_jobs: &[&str],
    captures: &[String],
) -> Result<(), DbError> {
    let held: Vec<(String, bool)> = sqlx::query_as(
        "SELECT id, credit_nusd IS NULL AND monthly_cap_nusd IS NULL FROM customers WHERE id IN (
            SELECT customer_id FROM jobs WHERE id = ANY($1)
            UNION SELECT customer_id FROM billing_holds WHERE effect_key = ANY($2) AND status = 'open')
         ORDER BY id FOR SHARE",
    )
    .bind(ending_jobs)
    .bind(captures)
    .fetch_all(&mut *conn)
    .await?;
    let limited: Vec<String> = held.into_iter().filter(|(_, unlimited)| !unlimited).map(|(id, _)| id).collect();
    if !limited.is_empty() {
        sqlx::query(
            "SELECT pg_advisory_xact_lock(k) FROM (
                SELECT DISTINCT hashtextextended('vidfarm:customers.run_ends:' || id, 0) AS k
                FROM unnest($1::TEXT[]) AS id ORDER BY k) keys",
        )
        .bind(&limited)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

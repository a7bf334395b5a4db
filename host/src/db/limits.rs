//! Billing limits in SQL: how much a customer may still be charged. The expressions go inside
//! the statements that insert a job, a hold or a ledger row, so checking and writing are one
//! atomic statement and racing jobs can never push a balance below zero. Amounts are integer
//! nano-USD (`crate::money`): comparisons are exact.

use crate::money::UNLIMITED;

/// What the customer `?cust` may still be charged: the smaller of credit left and this
/// month's cap left, minus every open hold of an unfinished job and what unfinished jobs other
/// than `?job` still keep in reservation (their reservation less what they have charged and
/// hold); [`UNLIMITED`] when the customer has no limit. `?month` is the start of the current
/// month (unix ms).
pub(super) fn headroom(cust: &str, job: &str, month: &str) -> String {
    format!(
        "(SELECT CASE WHEN c.credit_nusd IS NULL AND c.monthly_cap_nusd IS NULL THEN {UNLIMITED} ELSE
            MIN(COALESCE(c.credit_nusd - c.charged_nusd, {UNLIMITED}),
                COALESCE(c.monthly_cap_nusd - CASE WHEN c.month_start_ms = {month} THEN c.charged_month_nusd ELSE 0 END,
                         {UNLIMITED}))
            - (SELECT COALESCE(SUM(h.held_nusd), 0) FROM billing_holds h JOIN jobs hj ON hj.id = h.job_id
               WHERE h.customer_id = c.id AND h.status = 'open' AND hj.status NOT IN ('succeeded', 'failed', 'cancelled'))
            - (SELECT COALESCE(SUM(MAX(j.reserved_nusd
                    - (SELECT COALESCE(SUM(b.charge_nusd), 0) FROM billing_events b WHERE b.job_id = j.id)
                    - (SELECT COALESCE(SUM(h.held_nusd), 0) FROM billing_holds h WHERE h.job_id = j.id AND h.status = 'open'),
                  0)), 0)
               FROM jobs j WHERE j.customer_id = c.id AND j.reserved_nusd > 0
                 AND j.status IN ('queued', 'running', 'waiting_for_child', 'waiting_for_human') AND j.id IS NOT {job})
          END FROM customers c WHERE c.id = {cust})"
    )
}

/// Who is charging what, for [`headroom_under_lease`].
pub(super) struct Charging<'a> {
    pub customer_id: &'a str,
    pub job_id: &'a str,
    pub lease_token: &'a str,
    /// The margin of customers without their own.
    pub default_margin: f64,
}

/// What the customer may still be charged beside this job's own reservation, and their margin,
/// read on the caller's (write) transaction; `None` when the run no longer holds the job.
pub(super) fn headroom_under_lease(
    conn: &rusqlite::Connection,
    charging: &Charging<'_>,
) -> rusqlite::Result<Option<(i64, f64)>> {
    use rusqlite::OptionalExtension;
    let headroom = headroom("?1", "?2", "?4");
    conn.prepare_cached(&format!(
        "SELECT {headroom}, COALESCE((SELECT margin FROM customers WHERE id = ?1), ?3)
         FROM jobs WHERE id = ?2 AND lease_token = ?5"
    ))?
    .query_row(
        rusqlite::params![
            charging.customer_id,
            charging.job_id,
            charging.default_margin,
            month_start_ms(),
            charging.lease_token
        ],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// Unix ms of the first instant of the current UTC month, by `now_ms` (the database's clock:
/// every host bills by one month).
pub fn month_start_ms() -> i64 {
    let now = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(super::now_ms()) * 1_000_000)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.replace_day(1)
        .map(|d| d.replace_time(time::Time::MIDNIGHT))
        .map(|d| i64::try_from(d.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
        .unwrap_or(0)
}

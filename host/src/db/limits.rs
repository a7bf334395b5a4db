//! Billing limits in SQL: how much a customer may still be charged. The expressions go inside
//! the statements that insert a job or a ledger row, so checking and writing are one atomic
//! statement and racing jobs can never push a balance below zero. Amounts are USD as REAL and
//! compared with a 1e-9 USD tolerance, so sums like 0.2 × 5 fit a $1 limit exactly.

/// What the customer `?cust` may still be charged, minus what unfinished jobs other than
/// `?job` hold in reserve; `1e300` when the customer has no limit. `?month` is the start of
/// the current month (unix ms).
pub(super) fn headroom(cust: &str, job: &str, month: &str) -> String {
    format!(
        "(SELECT CASE WHEN c.credit_usd IS NULL AND c.monthly_cap_usd IS NULL THEN 1e300 ELSE
            MIN(COALESCE(c.credit_usd - (SELECT COALESCE(SUM(charge_usd), 0) FROM billing_events WHERE customer_id = c.id), 1e300),
                COALESCE(c.monthly_cap_usd - (SELECT COALESCE(SUM(charge_usd), 0) FROM billing_events
                                              WHERE customer_id = c.id AND created_at >= {month}), 1e300))
            - (SELECT COALESCE(SUM(MAX(j.reserved_usd - (SELECT COALESCE(SUM(b.charge_usd), 0) FROM billing_events b WHERE b.job_id = j.id), 0)), 0)
               FROM jobs j WHERE j.customer_id = c.id AND j.status NOT IN ('succeeded', 'failed', 'cancelled')
                 AND j.id IS NOT {job})
          END FROM customers c WHERE c.id = {cust})"
    )
}

/// Unix ms of the first instant of the current UTC month.
pub fn month_start_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    now.replace_day(1)
        .map(|d| d.replace_time(time::Time::MIDNIGHT))
        .map(|d| i64::try_from(d.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
        .unwrap_or(0)
}

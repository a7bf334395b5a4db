//! How a run ends on Postgres (twin of the SQLite `jobs::finish_run_on`): its CPU charge, its
//! end or suspension, and the settlement of a finished job's holds, in the caller's
//! transaction, under the lock order of `jobs` (customers, then jobs, then holds).

use super::jobs::FINISHED;
use crate::db::holds::RunFuelHold;
use crate::db::jobs::{CpuCharge, Finish};
use crate::db::{DbError, month_start_ms, now_ms};
use sqlx::PgConnection;

/// [`Pg::finish_run`](super::Pg) on the caller's transaction: the run's CPU charge (captured
/// from its fuel hold, or charged up to what the customer may still be charged), its end, and
/// the settlement of the holds of a job that ended. `customer_locked`: the caller's
/// transaction holds the job's customer already (a batch locks them all first).
pub(super) async fn finish_run_on(
    conn: &mut PgConnection,
    job_id: &str,
    lease_token: &str,
    fuel: u64,
    finish: &Finish,
    cpu: Option<&CpuCharge>,
    customer_locked: bool,
) -> Result<bool, DbError> {
    let now = now_ms();
    let fuel = i64::try_from(fuel).unwrap_or(i64::MAX);
    let ended = matches!(finish, Finish::Succeeded { .. } | Finish::Failed { .. } | Finish::Cancelled { .. });
    if (cpu.is_some() || ended) && !customer_locked {
        // The CPU charge is checked against what the customer may still be charged, and a
        // capture or settlement writes ledger rows: lock the customer first (customers before
        // jobs) — when there is money to move: a CPU charge, or an open hold to settle (an
        // unlimited customer's job holds nothing: no lock). Holds are placed only by the run
        // that holds the lease, which is this one, so none can appear after this check.
        sqlx::query(
            "SELECT 1 FROM customers c
             WHERE c.id = (SELECT j.customer_id FROM jobs j WHERE j.id = $1 AND j.lease_token = $2)
               AND ($3::BOOLEAN OR EXISTS (SELECT 1 FROM billing_holds h WHERE h.job_id = $1 AND h.status = 'open'))
             FOR NO KEY UPDATE OF c",
        )
        .bind(job_id)
        .bind(lease_token)
        .bind(cpu.is_some())
        .execute(&mut *conn)
        .await?;
    }
    if let Some(cpu) = cpu {
        // A run that held its fuel (a customer with a limit): the fuel burned is charged
        // within the hold and captured; the rest of the hold is released. Rounded up to the
        // nano as SQLite does (`trunc`: a bare cast to BIGINT would round).
        let hold_key = RunFuelHold::effect_key(job_id, lease_token);
        let noted = sqlx::query(
            "UPDATE billing_holds SET cost_nusd = $2,
                charge_nusd = LEAST(held_nusd, trunc($2 * COALESCE((SELECT margin FROM customers c
                                    WHERE c.id = billing_holds.customer_id), $3::DOUBLE PRECISION) + 0.999999)::BIGINT),
                metadata = format('{\"fuel\":%s,\"recorded_by\":\"host\"}', $4::BIGINT)
             WHERE effect_key = $1 AND status = 'open'
               AND EXISTS (SELECT 1 FROM jobs WHERE id = $5 AND lease_token = $6)",
        )
        .bind(&hold_key)
        .bind(cpu.cost_nusd)
        .bind(cpu.default_margin)
        .bind(fuel)
        .bind(job_id)
        .bind(lease_token)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if noted > 0 {
            super::holds::capture_on(&mut *conn, &hold_key).await?;
        }
        // The CPU is spent whatever the limit says: charged up to what the customer may still
        // be charged (the rest is the platform's), so a limit is never crossed. Keyed by the
        // run's lease token: written once per run (a released run's attempt number is reused).
        let headroom = super::limits::headroom("jobs.customer_id", "jobs.id", "$7");
        sqlx::query(&format!(
            "INSERT INTO billing_events (customer_id, job_id, template_id, event_type, cost_nusd, charge_nusd,
                metadata, created_at, effect_key)
             SELECT customer_id, id, template_id, 'cpu_estimate', $1,
                    GREATEST(0, LEAST(trunc($1 * COALESCE((SELECT margin FROM customers c WHERE c.id = jobs.customer_id),
                                                          $2::DOUBLE PRECISION) + 0.999999)::BIGINT,
                                      {headroom}::BIGINT)),
                    format('{{\"fuel\":%s,\"attempt\":%s,\"recorded_by\":\"host\"}}', $3::BIGINT, attempt), $4,
                    id || ':cpu:' || $6
             FROM jobs WHERE id = $5 AND lease_token = $6
             ON CONFLICT DO NOTHING"
        ))
        .bind(cpu.cost_nusd)
        .bind(cpu.default_margin)
        .bind(fuel)
        .bind(now)
        .bind(job_id)
        .bind(lease_token)
        .bind(month_start_ms())
        .execute(&mut *conn)
        .await?;
    }
    if matches!(finish, Finish::WaitForChildren { .. } | Finish::WaitForRender { .. }) {
        // A wait checks its children (or its render) and then sleeps; their ends wake it
        // through a trigger that first locks this job's row (a render's end locks it before it
        // writes). Lock the row here, in a statement of its own: the check below then runs on
        // a snapshot taken after every end that held the row has committed (seen: no wait),
        // and every end still to come waits for this commit and then finds the job waiting.
        sqlx::query("SELECT 1 FROM jobs WHERE id = $1 AND lease_token = $2 FOR NO KEY UPDATE")
            .bind(job_id)
            .bind(lease_token)
            .execute(&mut *conn)
            .await?;
    }
    let (set, value) = finish_set(finish);
    let done = sqlx::query(&format!(
        "UPDATE jobs SET lease_token = NULL, lease_expires_at = NULL, fuel_consumed = fuel_consumed + $2,
            updated_at = $3, {set}
         WHERE id = $1 AND lease_token = $4 AND status = 'running'"
    ))
    .bind(job_id)
    .bind(fuel)
    .bind(now)
    .bind(lease_token)
    .bind(value)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if ended && done == 1 {
        super::holds::settle_job_on(&mut *conn, job_id).await?;
    }
    Ok(done == 1)
}

/// The `SET` of a run's end (`$1` the job, `$3` now, `$5` the value, TEXT) and the value.
fn finish_set(finish: &Finish) -> (String, Option<String>) {
    match finish {
        Finish::Succeeded { result } => (
            "status = 'succeeded', result = $5, progress = 1, waiting_on = NULL, finished_at = $3".into(),
            Some(result.clone()),
        ),
        Finish::Failed { error } => {
            ("status = 'failed', error = $5, waiting_on = NULL, finished_at = $3".into(), Some(error.clone()))
        }
        Finish::Cancelled { error } => {
            ("status = 'cancelled', error = $5, waiting_on = NULL, finished_at = $3".into(), Some(error.clone()))
        }
        Finish::Requeue { run_after, error, counts_as_retry } => (
            format!(
                "status = 'queued', run_after = {run_after}, error = COALESCE($5::TEXT, error), retries = retries + {}",
                i64::from(*counts_as_retry)
            ),
            error.clone(),
        ),
        // `$5` (NULL) keeps the error: every variant binds the same five parameters.
        Finish::Release => (
            "status = 'queued', run_after = $3, attempt = GREATEST(attempt - 1, 0), error = COALESCE($5::TEXT, error)"
                .into(),
            None,
        ),
        Finish::WaitForChildren { ids } => (
            format!(
                "waiting_on = $5, run_after = $3, status = CASE WHEN EXISTS (SELECT 1 FROM jobs c WHERE c.parent_job_id = $1
                   AND c.id IN (SELECT json_array_elements_text($5::JSON)) AND c.status NOT IN {FINISHED})
                 THEN 'waiting_for_child' ELSE 'queued' END"
            ),
            Some(serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())),
        ),
        Finish::WaitForRender { render_id } => (
            "waiting_on = '{\"render\":' || to_json($5::TEXT)::TEXT || '}', run_after = $3, status = CASE WHEN EXISTS
               (SELECT 1 FROM renders r WHERE r.id = $5 AND r.status IN ('queued', 'running'))
             THEN 'waiting_for_child' ELSE 'queued' END"
                .into(),
            Some(render_id.clone()),
        ),
        Finish::WaitForHuman { prompt } => (
            "waiting_on = $5, run_after = $3, status = CASE WHEN human_answer IS NULL THEN 'waiting_for_human' ELSE 'queued' END"
                .into(),
            Some(prompt.clone()),
        ),
    }
}

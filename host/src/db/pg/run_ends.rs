//! How a run ends on Postgres (twin of the SQLite `jobs::finish_run_on`): its CPU charge, its
//! end or suspension, and the settlement of a finished job's holds, in the caller's
//! transaction, under the lock order of `jobs` (customers, then jobs, then holds).

use super::group_commit::RunEnd;
use super::jobs::FINISHED;
use crate::db::holds::RunFuelHold;
use crate::db::jobs::{CpuCharge, Finish};
use crate::db::{DbError, month_start_ms, now_ms};
use sqlx::PgConnection;
use std::collections::HashSet;

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

/// [`finish_run_on`] for many runs in one transaction whose customers it already holds (a
/// group-commit batch): the runs that end their job with no money to move but their CPU
/// charge — no reservation kept, no hold open, which is every job of a customer without limits —
/// end together in three statements for the whole batch (which of them qualify, their CPU
/// charges, their ends); the rest one by one, as always. Outcomes in the order of `ends`.
///
/// The CPU charges of one statement are capped as one after the other would be: the customer's
/// headroom `H` is read once (its holds and other reservations do not move within the batch,
/// and these jobs keep none of their own), and the `i`-th charge of a customer is
/// `min(S_i, H) - min(S_{i-1}, H)` for the running sum `S` of the uncapped charges, so together
/// they never pass `H`. A charge already written (a replay) is left out before the sum.
pub(super) async fn finish_runs_on(conn: &mut PgConnection, ends: &[&RunEnd]) -> Result<Vec<bool>, DbError> {
    let ending: Vec<&str> = ends.iter().filter(|e| ends_job(&e.finish)).map(|e| e.job_id.as_str()).collect();
    let together: HashSet<String> = if ending.is_empty() {
        HashSet::new()
    } else {
        // The ending jobs' rows are locked here, in the order cancels lock jobs (id
        // descending; rows are locked as the sort returns them), so no cycle forms with a
        // cancel or another batch holding some of them.
        let rows: Vec<(String, bool)> = sqlx::query_as(
            "SELECT j.id, j.reserved_nusd = 0
                      AND NOT EXISTS (SELECT 1 FROM billing_holds h WHERE h.job_id = j.id AND h.status = 'open')
             FROM jobs j WHERE j.id = ANY($1) ORDER BY j.id DESC FOR NO KEY UPDATE OF j",
        )
        .bind(&ending)
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter().filter(|(_, moves_no_money)| *moves_no_money).map(|(id, _)| id).collect()
    };
    let batch: Vec<&RunEnd> =
        ends.iter().copied().filter(|e| ends_job(&e.finish) && together.contains(&e.job_id)).collect();
    let ended = end_together(conn, &batch).await?;
    let mut outcomes = Vec::with_capacity(ends.len());
    for end in ends {
        outcomes.push(if together.contains(&end.job_id) && ends_job(&end.finish) {
            // By job and lease: a run that lost its lease to a run ending in the same batch
            // learns that it did.
            ended.contains(&(end.job_id.clone(), end.lease_token.clone()))
        } else {
            finish_run_on(conn, &end.job_id, &end.lease_token, end.fuel, &end.finish, end.cpu.as_ref(), true).await?
        });
    }
    Ok(outcomes)
}

fn ends_job(finish: &Finish) -> bool {
    matches!(finish, Finish::Succeeded { .. } | Finish::Failed { .. } | Finish::Cancelled { .. })
}

/// The CPU charges and ends of `batch` (see [`finish_runs_on`]); the jobs ended, with the
/// lease of the run that ended each (a run that lost its lease ends nothing).
async fn end_together(conn: &mut PgConnection, batch: &[&RunEnd]) -> Result<HashSet<(String, String)>, DbError> {
    if batch.is_empty() {
        return Ok(HashSet::new());
    }
    let fuel = |e: &RunEnd| i64::try_from(e.fuel).unwrap_or(i64::MAX);
    let charged: Vec<&&RunEnd> = batch.iter().filter(|e| e.cpu.is_some()).collect();
    if !charged.is_empty() {
        let headroom = super::limits::headroom("jb.customer_id", "NULL", "$6");
        sqlx::query(&format!(
            "INSERT INTO billing_events (customer_id, job_id, template_id, event_type, cost_nusd, charge_nusd,
                metadata, created_at, effect_key)
             SELECT customer_id, id, template_id, 'cpu_estimate', cost,
                    GREATEST(0, LEAST(upto, room) - LEAST(upto - charge, room))::BIGINT,
                    format('{{\"fuel\":%s,\"attempt\":%s,\"recorded_by\":\"host\"}}', fuel, attempt), $7,
                    id || ':cpu:' || token
             FROM (SELECT jb.customer_id, jb.id, jb.template_id, jb.attempt, u.cost, u.fuel, u.token, u.ord, x.charge,
                          SUM(x.charge) OVER (PARTITION BY jb.customer_id ORDER BY u.ord) AS upto,
                          GREATEST(0, {headroom}) AS room
                   FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::DOUBLE PRECISION[])
                          WITH ORDINALITY AS u(id, token, cost, fuel, default_margin, ord)
                   JOIN jobs jb ON jb.id = u.id AND jb.lease_token = u.token
                   CROSS JOIN LATERAL (SELECT trunc(u.cost * COALESCE((SELECT margin FROM customers c
                                                   WHERE c.id = jb.customer_id), u.default_margin) + 0.999999)::BIGINT
                                       AS charge) x
                   -- A charge written already (a replay) does not count against the others.
                   WHERE NOT EXISTS (SELECT 1 FROM billing_events b WHERE b.effect_key = u.id || ':cpu:' || u.token)) r
             ORDER BY ord
             ON CONFLICT DO NOTHING"
        ))
        .bind(charged.iter().map(|e| e.job_id.as_str()).collect::<Vec<_>>())
        .bind(charged.iter().map(|e| e.lease_token.as_str()).collect::<Vec<_>>())
        .bind(charged.iter().map(|e| e.cpu.as_ref().map_or(0, |c| c.cost_nusd)).collect::<Vec<_>>())
        .bind(charged.iter().map(|e| fuel(e)).collect::<Vec<_>>())
        .bind(charged.iter().map(|e| e.cpu.as_ref().map_or(0.0, |c| c.default_margin)).collect::<Vec<_>>())
        .bind(month_start_ms())
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    }
    let (status, value): (Vec<&str>, Vec<&str>) = batch
        .iter()
        .map(|e| match &e.finish {
            Finish::Succeeded { result } => ("succeeded", result.as_str()),
            Finish::Failed { error } => ("failed", error.as_str()),
            Finish::Cancelled { error } => ("cancelled", error.as_str()),
            _ => unreachable!("only runs that end their job end together"),
        })
        .unzip();
    let ended: Vec<(String, String)> = sqlx::query_as(
        "UPDATE jobs SET lease_token = NULL, lease_expires_at = NULL, fuel_consumed = fuel_consumed + u.fuel,
            updated_at = $6, finished_at = $6, waiting_on = NULL, status = u.status,
            result = CASE WHEN u.status = 'succeeded' THEN u.value ELSE jobs.result END,
            error = CASE WHEN u.status = 'succeeded' THEN jobs.error ELSE u.value END,
            progress = CASE WHEN u.status = 'succeeded' THEN 1 ELSE jobs.progress END
         FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[]) AS u(id, token, fuel, status, value)
         WHERE jobs.id = u.id AND jobs.lease_token = u.token AND jobs.status = 'running'
         RETURNING jobs.id, u.token",
    )
    .bind(batch.iter().map(|e| e.job_id.as_str()).collect::<Vec<_>>())
    .bind(batch.iter().map(|e| e.lease_token.as_str()).collect::<Vec<_>>())
    .bind(batch.iter().map(|e| fuel(e)).collect::<Vec<_>>())
    .bind(status)
    .bind(value)
    .bind(now_ms())
    .fetch_all(&mut *conn)
    .await?;
    Ok(ended.into_iter().collect())
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

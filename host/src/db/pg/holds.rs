//! Postgres twin of the SQLite `holds`: money set aside before an effect that costs it, and
//! settled after it (quote → hold → capture; see the SQLite module for the whole story).
//! Where SQLite's `BEGIN IMMEDIATE` made "check what is left, then hold" atomic, here the
//! transaction first locks the customer row (every money decision of one customer, on any
//! host, waits for the one before it), then the job row `FOR SHARE` (the lease stays this
//! run's until the commit). Lock order everywhere: customers, then jobs, then holds.

use super::limits::{Charging, headroom_under_lease, lock_customer};
use crate::db::holds::{Actual, Hold, HoldOutcome, HoldRequest, HoldRow, RunFuelHold};
use crate::db::{DbError, now_ms};
use crate::money;
use sqlx::PgConnection;

impl super::Pg {
    /// Postgres twin of `Sqlite::place_hold`: place (or find again) the hold of one effect, in
    /// a transaction of its own.
    pub async fn place_hold(&self, request: &HoldRequest<'_>, default_margin: f64) -> Result<HoldOutcome, DbError> {
        let mut tx = self.pool.begin().await?;
        let outcome = place_hold_on(&mut tx, request, default_margin, 1).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Postgres twin of `Sqlite::hold_run_fuel`: hold a run's fuel budget at the CPU price
    /// before the run starts. Its own transaction for now (the body is [`hold_run_fuel_on`],
    /// for a later group commit).
    pub async fn hold_run_fuel(&self, hold: RunFuelHold) -> Result<HoldOutcome, DbError> {
        let mut tx = self.pool.begin().await?;
        let outcome = hold_run_fuel_on(&mut tx, &hold).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Postgres twin of `Sqlite::note_hold_actual`: note what the effect actually cost (its
    /// charge at the margin, never above the hold; the rest is recorded as `uncollected_nusd`).
    /// Returns the charge, or `None` when the effect holds nothing open.
    pub async fn note_hold_actual(
        &self,
        effect_key: &str,
        actual: &Actual<'_>,
        default_margin: f64,
    ) -> Result<Option<i64>, DbError> {
        let mut tx = self.pool.begin().await?;
        // The charge is bounded by the hold itself, not by the customer's headroom: locking the
        // hold row is enough (a concurrent settle either waits for this note, or has already
        // closed the hold and this finds nothing open).
        let found: Option<(i64, f64)> = sqlx::query_as(
            "SELECT h.held_nusd, COALESCE(c.margin, $2::DOUBLE PRECISION)
             FROM billing_holds h JOIN customers c ON c.id = h.customer_id
             WHERE h.effect_key = $1 AND h.status = 'open' FOR UPDATE OF h",
        )
        .bind(effect_key)
        .bind(default_margin)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((held, margin)) = found else { return Ok(None) };
        let wanted = money::charge(actual.cost_nusd, margin);
        let metadata = if wanted > held {
            crate::db::billing::with_uncollected(actual.metadata, wanted - held)
        } else {
            actual.metadata.to_string()
        };
        let charge = wanted.min(held);
        sqlx::query(
            "UPDATE billing_holds SET cost_nusd = $2, charge_nusd = $3, provider = $4, model = $5, metadata = $6
             WHERE effect_key = $1 AND status = 'open'",
        )
        .bind(effect_key)
        .bind(actual.cost_nusd)
        .bind(charge)
        .bind(actual.provider)
        .bind(actual.model)
        .bind(metadata)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(charge))
    }

    /// Postgres twin of `Sqlite::drop_hold`: remove the hold of an effect that cost nothing,
    /// unless an earlier run of it noted a cost. One statement: Postgres re-checks its WHERE
    /// after waiting for the row, so a cost noted meanwhile keeps the hold.
    pub async fn drop_hold(&self, effect_key: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM billing_holds WHERE effect_key = $1 AND status = 'open' AND charge_nusd IS NULL")
            .bind(effect_key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A job's holds, oldest first.
    pub async fn job_holds(&self, job_id: &str) -> Result<Vec<HoldRow>, DbError> {
        sqlx::query_as(
            "SELECT effect_key, kind, status, held_nusd, captured_nusd, created_at, settled_at
             FROM billing_holds WHERE job_id = $1 ORDER BY id",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await
    }
}

/// Postgres twin of the SQLite `hold_run_fuel_on`: a run's fuel hold on the caller's
/// transaction (one hold per run, keyed by its lease token), at most [`RUN_FUEL_SHARE`] of
/// what is left.
pub(super) async fn hold_run_fuel_on(conn: &mut PgConnection, hold: &RunFuelHold) -> Result<HoldOutcome, DbError> {
    let effect_key = RunFuelHold::effect_key(&hold.job_id, &hold.lease_token);
    let request = HoldRequest {
        effect_key: &effect_key,
        customer_id: &hold.customer_id,
        job_id: &hold.job_id,
        template_id: &hold.template_id,
        kind: "cpu_estimate",
        want_cost_nusd: hold.want_cost_nusd,
        min_cost_nusd: hold.min_cost_nusd,
        lease_token: &hold.lease_token,
    };
    place_hold_on(conn, &request, hold.default_margin, RUN_FUEL_SHARE).await
}

/// A run whose whole fuel budget costs more than this share (1/16) of what the customer may
/// still be charged holds only the share (at least its minimal run); the same as SQLite's.
const RUN_FUEL_SHARE: i64 = 16;

/// Place (or find again) a hold on the caller's transaction; it takes at most `1/share` of
/// what is left, unless the minimal effect needs more.
///
/// Relies on: the customer row locked first (the headroom read and the insert are one decision
/// no other host's hold, ledger row or reservation can interleave with), then the job row
/// `FOR SHARE` in [`headroom_under_lease`] (the lease holds until commit). The same effect is
/// always the same customer's, so the existing-hold read is serialised by the same lock.
async fn place_hold_on(
    conn: &mut PgConnection,
    request: &HoldRequest<'_>,
    default_margin: f64,
    share: i64,
) -> Result<HoldOutcome, DbError> {
    lock_customer(conn, request.customer_id).await?;
    let charging = Charging {
        customer_id: request.customer_id,
        job_id: request.job_id,
        lease_token: request.lease_token,
        default_margin,
    };
    let found = headroom_under_lease(conn, &charging).await?;
    let Some((headroom, margin)) = found else { return Ok(HoldOutcome::LeaseLost) };
    let existing: Option<(i64, String)> =
        sqlx::query_as("SELECT held_nusd, status FROM billing_holds WHERE effect_key = $1")
            .bind(request.effect_key)
            .fetch_optional(&mut *conn)
            .await?;
    match existing {
        Some((held, status)) if status == "open" => {
            let cost_budget_nusd = money::cost_within(held, margin);
            // A replay may ask for more than the first run did: the hold must still cover
            // the smallest version of this call.
            if cost_budget_nusd < request.min_cost_nusd {
                let min_charge_nusd = money::charge(request.min_cost_nusd, margin);
                return Ok(HoldOutcome::Insufficient { headroom_nusd: held, min_charge_nusd });
            }
            return Ok(HoldOutcome::Held(Hold { held_nusd: held, cost_budget_nusd, reused: true, margin }));
        }
        Some(_) => return Ok(HoldOutcome::Settled),
        None => {}
    }
    let min_charge_nusd = money::charge(request.min_cost_nusd, margin);
    if headroom < min_charge_nusd || headroom < 0 {
        return Ok(HoldOutcome::Insufficient { headroom_nusd: headroom, min_charge_nusd });
    }
    let held = money::charge(request.want_cost_nusd, margin).min((headroom / share.max(1)).max(min_charge_nusd));
    sqlx::query(
        "INSERT INTO billing_holds (effect_key, customer_id, job_id, template_id, kind, held_nusd, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(request.effect_key)
    .bind(request.customer_id)
    .bind(request.job_id)
    .bind(request.template_id)
    .bind(request.kind)
    .bind(held)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    let cost_budget_nusd = money::cost_within(held, margin).min(request.want_cost_nusd.max(0));
    Ok(HoldOutcome::Held(Hold { held_nusd: held, cost_budget_nusd, reused: false, margin }))
}

/// Postgres twin of the SQLite `capture_on`: capture the open hold of `effect_key` whose
/// actual is known (its ledger row, keyed by the effect so never twice; the hold marked
/// captured), or release it if it noted no cost. Runs inside the transaction that journals
/// the effect (or ends its job).
///
/// Needs no headroom check (a capture never exceeds its hold, which is already counted).
/// Racing captures of one effect are safe: the ledger insert waits on the unique effect key
/// and then does nothing, and each UPDATE re-checks `status = 'open'` after its row wait. The
/// ledger row's trigger updates the customer row: a caller that has locked the job must have
/// locked the customer before it (customers before jobs).
pub(super) async fn capture_on(conn: &mut PgConnection, effect_key: &str) -> Result<(), DbError> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO billing_events (customer_id, job_id, template_id, event_type, cost_nusd, charge_nusd,
             provider, model, metadata, created_at, effect_key)
         SELECT customer_id, job_id, template_id, kind, cost_nusd, charge_nusd, provider, model,
                COALESCE(metadata, '{}'), $2, effect_key
         FROM billing_holds WHERE effect_key = $1 AND status = 'open' AND charge_nusd > 0
         ON CONFLICT DO NOTHING",
    )
    .bind(effect_key)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE billing_holds SET status = 'captured', captured_nusd = charge_nusd, settled_at = $2
         WHERE effect_key = $1 AND status = 'open' AND charge_nusd > 0",
    )
    .bind(effect_key)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    // The effect is journaled, so it is over: a hold of it that noted no cost is released now,
    // not when the job ends.
    sqlx::query(
        "UPDATE billing_holds SET status = 'released', captured_nusd = 0, settled_at = $2
         WHERE effect_key = $1 AND status = 'open'",
    )
    .bind(effect_key)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Postgres twin of the SQLite `render_share_sql`: the `cost_nusd = …, charge_nusd = …` of a
/// render that ended short, for the render with id `render_id` (an SQL expression): the share
/// of its resolved output it reached, at the rate and margin of its hold, never above the
/// hold. Rounded up to the nano exactly as SQLite does: `CAST(x + 0.999999 AS INTEGER)`
/// truncates there, so `trunc(…)::BIGINT` here (a bare cast would round).
pub(super) fn render_share_sql(render_id: &str) -> String {
    let share = format!(
        "(SELECT r.expected_seconds * LEAST(GREATEST(r.progress, 0), 1) * r.cost_nusd_per_second {{}}
          FROM renders r WHERE r.id = {render_id})"
    );
    let cost = share.replace("{}", "");
    let charge = share.replace("{}", "* r.margin");
    format!(
        "cost_nusd = COALESCE(trunc({cost} + 0.999999)::BIGINT, 0),
         charge_nusd = LEAST(held_nusd, COALESCE(trunc({charge} + 0.999999)::BIGINT, 0))"
    )
}

/// Postgres twin of the SQLite `settle_job_on`: settle every hold a job left open as it ends
/// (a hold whose cost is known is captured, a render cut short is charged the share it
/// reached, the others are released). Runs in the transaction that ends the job.
///
/// Relies on: the caller's UPDATE of the job row (it ends the job: no new hold of a run of it
/// can commit now, as [`headroom_under_lease`] locks the job `FOR SHARE`), and on locking the
/// job's open holds here (`FOR UPDATE`, after the job), so a cost noted meanwhile by
/// `note_hold_actual` is either seen and captured, or waits and then finds the hold closed.
/// A capture writes a ledger row whose trigger updates the customer row: the caller locks the
/// job's customer before the job (customers before jobs), or it can deadlock with a hold
/// being placed for the same job.
pub(super) async fn settle_job_on(conn: &mut PgConnection, job_id: &str) -> Result<(), DbError> {
    // Most jobs end with no hold open (customers without limits place none): one indexed
    // read that also locks what it finds, instead of four statements that would find nothing.
    let open: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM billing_holds WHERE job_id = $1 AND status = 'open' ORDER BY id FOR UPDATE")
            .bind(job_id)
            .fetch_all(&mut *conn)
            .await?;
    if open.is_empty() {
        return Ok(());
    }
    // A render cut short with its job (cancelled mid-render) is charged the share of its hold
    // its progress reached: that much of the render ran.
    let render_id =
        "billing_holds.job_id || '_r' || substr(billing_holds.effect_key, length(billing_holds.job_id) + 2)";
    sqlx::query(&format!(
        "UPDATE billing_holds SET metadata = '{{\"recorded_by\":\"host\",\"cut_short\":1}}', {}
         WHERE job_id = $1 AND status = 'open' AND kind = 'render' AND charge_nusd IS NULL",
        render_share_sql(render_id)
    ))
    .bind(job_id)
    .execute(&mut *conn)
    .await?;
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT effect_key FROM billing_holds WHERE job_id = $1 AND status = 'open' AND charge_nusd > 0 ORDER BY id",
    )
    .bind(job_id)
    .fetch_all(&mut *conn)
    .await?;
    for key in keys {
        capture_on(conn, &key).await?;
    }
    sqlx::query(
        "UPDATE billing_holds SET status = 'released', captured_nusd = 0, settled_at = $2
         WHERE job_id = $1 AND status = 'open'",
    )
    .bind(job_id)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

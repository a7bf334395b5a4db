//! Holds: money set aside before an effect that costs it (a provider call, a render) and
//! settled after it. Quote → hold → capture: the hold is written in one `BEGIN IMMEDIATE`
//! transaction that checks it fits what the customer may still be charged; the effect's
//! actual charge is noted on the hold when known, and captured (a ledger row, never more than
//! held) in the transaction that journals the effect (`journal::append_journal`); the rest is
//! released. A crash between the hold and the capture leaves the hold open: the replay of the
//! same effect finds and reuses it, and a job that ends settles it — one charge, never two.

use super::{DbError, Sqlite, now_ms};
use crate::money;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// A hold to place for one effect.
pub struct HoldRequest<'a> {
    /// `<job id>:<effect number>`: one hold per effect, found again by a replay.
    pub effect_key: &'a str,
    pub customer_id: &'a str,
    pub job_id: &'a str,
    pub template_id: &'a str,
    /// The effect's kind (`ai_generation`, `render`): shown with the hold.
    pub kind: &'a str,
    /// The effect's worst-case cost to the platform; the hold is its charge at the customer's
    /// margin, or less when less is left (never below `min_cost_nusd`'s charge).
    pub want_cost_nusd: i64,
    /// The least the effect can be made to cost (a call with the smallest useful output):
    /// below it the hold is refused.
    pub min_cost_nusd: i64,
    /// The run's lease on the job: a stale run places no hold.
    pub lease_token: &'a str,
}

/// A [`HoldRequest`] that can move to the writer's thread.
struct OwnedHoldRequest {
    effect_key: String,
    customer_id: String,
    job_id: String,
    template_id: String,
    kind: String,
    want_cost_nusd: i64,
    min_cost_nusd: i64,
    lease_token: String,
}

impl HoldRequest<'_> {
    fn to_owned_hold(&self) -> OwnedHoldRequest {
        OwnedHoldRequest {
            effect_key: self.effect_key.into(),
            customer_id: self.customer_id.into(),
            job_id: self.job_id.into(),
            template_id: self.template_id.into(),
            kind: self.kind.into(),
            want_cost_nusd: self.want_cost_nusd,
            min_cost_nusd: self.min_cost_nusd,
            lease_token: self.lease_token.into(),
        }
    }
}

impl OwnedHoldRequest {
    fn borrowed(&self) -> HoldRequest<'_> {
        HoldRequest {
            effect_key: &self.effect_key,
            customer_id: &self.customer_id,
            job_id: &self.job_id,
            template_id: &self.template_id,
            kind: &self.kind,
            want_cost_nusd: self.want_cost_nusd,
            min_cost_nusd: self.min_cost_nusd,
            lease_token: &self.lease_token,
        }
    }
}

/// A placed hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hold {
    /// The most the effect may be charged, nano-USD.
    pub held_nusd: i64,
    /// The most the effect may cost the platform for that charge (the hold at the margin).
    pub cost_budget_nusd: i64,
    /// The hold was placed by an earlier run of the same effect (a replay after a crash).
    pub reused: bool,
    /// The customer's margin the hold was computed with.
    pub margin: f64,
}

/// What placing a hold did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HoldOutcome {
    Held(Hold),
    /// Not even the minimal effect fits what the customer may still be charged.
    Insufficient {
        headroom_nusd: i64,
        min_charge_nusd: i64,
    },
    /// The effect was already captured (its journal entry exists: a replay never gets here).
    Settled,
    LeaseLost,
}

/// A hold as the API shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct HoldRow {
    pub effect_key: String,
    pub kind: String,
    pub status: String,
    pub held_nusd: i64,
    pub captured_nusd: Option<i64>,
    pub created_at: i64,
    pub settled_at: Option<i64>,
}

/// What an effect actually cost, noted on its hold before the capture.
pub struct Actual<'a> {
    pub cost_nusd: i64,
    pub provider: Option<&'a str>,
    pub model: Option<&'a str>,
    pub metadata: &'a str,
}

impl Sqlite {
    /// Place (or find again) the hold of one effect.
    pub async fn place_hold(&self, request: &HoldRequest<'_>, default_margin: f64) -> Result<HoldOutcome, DbError> {
        let request = request.to_owned_hold();
        self.write_direct(move |tx| place_hold_on(tx, &request.borrowed(), default_margin, 1)).await
    }

    /// Hold a run's fuel budget at the CPU price before the run starts (queued with the other
    /// hot writes, so under load it shares their commit). The run is then limited to the fuel
    /// the hold pays for; `finish_run` captures the fuel it burned.
    pub async fn hold_run_fuel(&self, hold: RunFuelHold) -> Result<HoldOutcome, DbError> {
        match self.batched(super::batch::Write::HoldRunFuel(Box::new(hold))).await? {
            super::batch::Written::Held(outcome) => Ok(outcome),
            _ => Err(DbError::Protocol("a fuel hold answered with another write's outcome".into())),
        }
    }

    /// Note what the effect actually cost (its charge at the margin, never above the hold:
    /// what the hold cannot cover is recorded as `uncollected_nusd`, the platform's loss, and
    /// the customer's limit is never crossed); the capture follows with the effect's journal
    /// entry. Returns the charge, or `None` when the effect holds nothing open.
    pub async fn note_hold_actual(
        &self,
        effect_key: &str,
        actual: &Actual<'_>,
        default_margin: f64,
    ) -> Result<Option<i64>, DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let found: Option<(i64, f64)> = sqlx::query_as(
            "SELECT h.held_nusd, COALESCE(c.margin, ?2) FROM billing_holds h JOIN customers c ON c.id = h.customer_id
             WHERE h.effect_key = ?1 AND h.status = 'open'",
        )
        .bind(effect_key)
        .bind(default_margin)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((held, margin)) = found else { return Ok(None) };
        let wanted = money::charge(actual.cost_nusd, margin);
        let metadata = if wanted > held {
            super::billing::with_uncollected(actual.metadata, wanted - held)
        } else {
            actual.metadata.to_string()
        };
        let charge = wanted.min(held);
        sqlx::query(
            "UPDATE billing_holds SET cost_nusd = ?2, charge_nusd = ?3, provider = ?4, model = ?5, metadata = ?6
             WHERE effect_key = ?1 AND status = 'open'",
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

    /// Remove the hold of an effect that cost nothing (refused, no key, a provider error),
    /// unless an earlier run of it noted a cost (that one is settled with the job).
    pub async fn drop_hold(&self, effect_key: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM billing_holds WHERE effect_key = ? AND status = 'open' AND charge_nusd IS NULL")
            .bind(effect_key)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// A job's holds, oldest first.
    pub async fn job_holds(&self, job_id: &str) -> Result<Vec<HoldRow>, DbError> {
        sqlx::query_as(
            "SELECT effect_key, kind, status, held_nusd, captured_nusd, created_at, settled_at
             FROM billing_holds WHERE job_id = ? ORDER BY id",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await
    }
}

/// A run's fuel hold, owned (it waits in the write queue).
pub struct RunFuelHold {
    pub customer_id: String,
    pub job_id: String,
    pub template_id: String,
    pub lease_token: String,
    /// The price of the run's whole fuel budget, nano-USD.
    pub want_cost_nusd: i64,
    /// The price of the least fuel worth starting a run with.
    pub min_cost_nusd: i64,
    pub default_margin: f64,
}

impl RunFuelHold {
    /// One hold per run: a run is named by its lease token.
    pub fn effect_key(job_id: &str, lease_token: &str) -> String {
        format!("{job_id}:cpu:{lease_token}")
    }
}

pub(super) fn hold_run_fuel_on(conn: &Connection, hold: &RunFuelHold) -> rusqlite::Result<HoldOutcome> {
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
    place_hold_on(conn, &request, hold.default_margin, RUN_FUEL_SHARE)
}

/// A run whose whole fuel budget costs more than this share (1/16) of what the customer may still
/// be charged holds only the share (at least its minimal run): one run never locks up the
/// credit that the customer's other jobs, and its own children, need to start.
const RUN_FUEL_SHARE: i64 = 16;

/// [`Db::place_hold`] on the caller's write transaction; the hold takes at most
/// `1/share` of what is left, unless the minimal effect needs more.
fn place_hold_on(
    conn: &Connection,
    request: &HoldRequest<'_>,
    default_margin: f64,
    share: i64,
) -> rusqlite::Result<HoldOutcome> {
    let charging = super::limits::Charging {
        customer_id: request.customer_id,
        job_id: request.job_id,
        lease_token: request.lease_token,
        default_margin,
    };
    let found = super::limits::headroom_under_lease(conn, &charging)?;
    let Some((headroom, margin)) = found else { return Ok(HoldOutcome::LeaseLost) };
    let existing: Option<(i64, String)> = conn
        .prepare_cached("SELECT held_nusd, status FROM billing_holds WHERE effect_key = ?")?
        .query_row([request.effect_key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
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
    conn.prepare_cached(
        "INSERT INTO billing_holds (effect_key, customer_id, job_id, template_id, kind, held_nusd, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        request.effect_key,
        request.customer_id,
        request.job_id,
        request.template_id,
        request.kind,
        held,
        now_ms()
    ])?;
    let cost_budget_nusd = money::cost_within(held, margin).min(request.want_cost_nusd.max(0));
    Ok(HoldOutcome::Held(Hold { held_nusd: held, cost_budget_nusd, reused: false, margin }))
}

/// Capture the open hold of `effect_key` whose actual is known: its ledger row (keyed by the
/// effect, so never twice) and the hold marked captured, the rest released. Runs inside the
/// transaction that journals the effect.
pub(super) fn capture_on(conn: &Connection, effect_key: &str) -> rusqlite::Result<()> {
    let now = now_ms();
    conn.prepare_cached(
        "INSERT OR IGNORE INTO billing_events (customer_id, job_id, template_id, event_type, cost_nusd, charge_nusd,
             provider, model, metadata, created_at, effect_key)
         SELECT customer_id, job_id, template_id, kind, cost_nusd, charge_nusd, provider, model,
                COALESCE(metadata, '{}'), ?2, effect_key
         FROM billing_holds WHERE effect_key = ?1 AND status = 'open' AND charge_nusd > 0",
    )?
    .execute(params![effect_key, now])?;
    conn.prepare_cached(
        "UPDATE billing_holds SET status = 'captured', captured_nusd = charge_nusd, settled_at = ?2
         WHERE effect_key = ?1 AND status = 'open' AND charge_nusd > 0",
    )?
    .execute(params![effect_key, now])?;
    // The effect is journaled, so it is over: a hold of it that noted no cost (a render that
    // failed before it resolved its length: no ledger row of $0) is released now, not when
    // the job ends.
    conn.prepare_cached(
        "UPDATE billing_holds SET status = 'released', captured_nusd = 0, settled_at = ?2
         WHERE effect_key = ?1 AND status = 'open'",
    )?
    .execute(params![effect_key, now])?;
    Ok(())
}

/// The `cost_nusd = …, charge_nusd = …` of a render that ended short (failed, timed out, cut
/// off with its job), for the render with id `render_id` (an SQL expression): the share of
/// its resolved output it reached, at the rate and margin of its hold, never above the hold.
pub(super) fn render_share_sql(render_id: &str) -> String {
    let share = format!(
        "(SELECT r.expected_seconds * MIN(MAX(r.progress, 0), 1) * r.cost_nusd_per_second {{}} FROM renders r WHERE r.id = {render_id})"
    );
    let cost = share.replace("{}", "");
    let charge = share.replace("{}", "* r.margin");
    format!(
        "cost_nusd = COALESCE(CAST({cost} + 0.999999 AS INTEGER), 0),
         charge_nusd = MIN(held_nusd, COALESCE(CAST({charge} + 0.999999 AS INTEGER), 0))"
    )
}

/// Settle every hold a job left open as it ends: one whose effect's cost is known (the money
/// was spent, the journal entry lost to a crash or a cancel) is captured; the others are
/// released. Runs in the transaction that ends the job.
pub(super) fn settle_job_on(conn: &Connection, job_id: &str) -> rusqlite::Result<()> {
    // Most jobs end with no hold open (customers without limits place none): one indexed
    // read instead of four statements that would find nothing.
    let open = conn
        .prepare_cached("SELECT 1 FROM billing_holds WHERE job_id = ? AND status = 'open' LIMIT 1")?
        .exists([job_id])?;
    if !open {
        return Ok(());
    }
    // A render cut short with its job (cancelled mid-render) is charged the share of its hold
    // its progress reached: that much of the render ran.
    let render_id =
        "billing_holds.job_id || '_r' || substr(billing_holds.effect_key, length(billing_holds.job_id) + 2)";
    conn.prepare_cached(&format!(
        "UPDATE billing_holds SET metadata = json_object('recorded_by', 'host', 'cut_short', 1), {}
         WHERE job_id = ? AND status = 'open' AND kind = 'render' AND charge_nusd IS NULL",
        render_share_sql(render_id)
    ))?
    .execute([job_id])?;
    let keys = conn
        .prepare_cached(
            "SELECT effect_key FROM billing_holds WHERE job_id = ? AND status = 'open' AND charge_nusd > 0",
        )?
        .query_map([job_id], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    for key in keys {
        capture_on(conn, &key)?;
    }
    conn.prepare_cached(
        "UPDATE billing_holds SET status = 'released', captured_nusd = 0, settled_at = ?2
         WHERE job_id = ?1 AND status = 'open'",
    )?
    .execute(params![job_id, now_ms()])?;
    Ok(())
}

//! The `remotion` capability's backends: [`RenderService`] (the engine: queue the render,
//! suspend the job, hand back the result on replay) and [`InlineRenderer`] (the dev runner:
//! render right away, in the same process).

use super::{Failure, Pipeline, Progress, RenderScope, RenderTask};
use crate::capabilities::{BackendResult, HostTrap, JobScope, Renderer};
use crate::db::Db;
use crate::db::holds::{HoldOutcome, HoldRequest};
use crate::db::renders::NewRender;
use crate::money;
use crate::runtime::bindings::remotion::{RenderError, RenderResult};
use crate::runtime::{RunError, Suspension};
use crate::storage::keys;
use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::{Notify, watch};

/// The WIT error for a failure.
pub fn wit_error(failure: Failure) -> RenderError {
    match failure {
        Failure::Invalid(m) => RenderError::InvalidRequest(m),
        Failure::Unavailable(m) => RenderError::Unavailable(m),
        Failure::Failed(m) => RenderError::Failed(m),
        Failure::Cancelled => RenderError::Failed("the render was cancelled".into()),
        Failure::NoKey(m) => RenderError::Unavailable(m),
    }
}

/// The render's id (derived from the job's effect number: stable across replays) and its
/// output's full and job-relative keys.
fn identify(job: &JobScope, seq: u32, requested: Option<&str>) -> Result<(String, String, String), RenderError> {
    let render_id = format!("{}_r{seq}", job.job_id());
    let relative = requested.map_or_else(|| format!("renders/{render_id}.mp4"), str::to_string);
    let full = keys::resolve(&job.artifact_prefix, &relative)
        .map_err(|r| RenderError::InvalidRequest(format!("output-key: {r}")))?;
    Ok((render_id, full, relative))
}

fn fault_msg(message: &str) -> HostTrap {
    HostTrap::Fail(RunError::HostFault { message: message.into() })
}

fn fault(e: crate::db::DbError) -> HostTrap {
    HostTrap::Fail(RunError::HostFault { message: format!("database: {e}") })
}

/// Renders queued in SQLite and run by the render worker while the job waits.
pub struct RenderService {
    pub db: Db,
    pub pipeline: Arc<Pipeline>,
    /// Wakes the render worker.
    pub render_due: Arc<Notify>,
    /// The margin of customers without their own (for the render's hold).
    pub default_margin: f64,
    /// Bytes a customer may store, unless the operator set their own quota: a customer at it
    /// starts no render (its output would be stored past the quota).
    pub storage_quota_bytes: u64,
}

#[async_trait]
impl Renderer for RenderService {
    async fn render(
        &self,
        job: &JobScope,
        seq: u32,
        task: &RenderTask,
        output_key: Option<&str>,
    ) -> BackendResult<Result<RenderResult, RenderError>> {
        let (render_id, full, relative) = match identify(job, seq, output_key) {
            Ok(identified) => identified,
            Err(error) => return Ok(Err(error)),
        };
        let existing = self.db.render(&render_id).await.map_err(fault)?;
        let mut margin = 1.0;
        if existing.is_none() {
            if let Err(failure) = self.pipeline.check(task) {
                return Ok(Err(wit_error(failure)));
            }
            let customer = &job.context.customer.id;
            let usage = self.db.storage_usage(customer, self.storage_quota_bytes).await.map_err(fault)?;
            if let Some(usage) = usage.filter(|u| u.stored_bytes >= u.quota_bytes) {
                return Err(HostTrap::Fail(RunError::StorageQuotaExceeded {
                    message: format!(
                        "a render's output would pass the storage quota: {} of {} bytes are in use",
                        usage.stored_bytes, usage.quota_bytes
                    ),
                }));
            }
            margin = self.hold(job, seq, task).await?;
        }
        let backend = self.pipeline.backend_for(task).unwrap_or("none");
        let request = serde_json::to_string(&(task, &relative)).unwrap_or_default();
        let row = match existing {
            Some(row) => row,
            None => self
                .db
                .create_render(&NewRender {
                    job_id: job.job_id(),
                    seq,
                    customer_id: &job.context.customer.id,
                    template_id: &job.context.template_id,
                    kind: task.kind(),
                    backend,
                    request: &request,
                    output_key: &full,
                    cost_nusd_per_second: match task {
                        RenderTask::Generation(video) => video.cost_nusd() as f64 / f64::from(video.seconds.max(1)),
                        // Charged by the parts spoken (noted on the hold), not by the second.
                        RenderTask::Narration(_) => 0.0,
                        _ => self.pipeline.settings.usd_per_minute / 60.0 * 1e9,
                    },
                    margin,
                })
                .await
                .map_err(fault)?,
        };
        match row.status.as_str() {
            "succeeded" => match serde_json::from_str(row.result.as_deref().unwrap_or_default()) {
                Ok(result) => Ok(Ok(result)),
                Err(e) => {
                    Err(HostTrap::Fail(RunError::HostFault { message: format!("render result unreadable: {e}") }))
                }
            },
            "failed" | "cancelled" => Ok(Err(wit_error(Failure::from_json(row.error.as_deref().unwrap_or_default())))),
            _ => {
                // Renders and generations are claimed by two loops: wake both (a permit is kept
                // for one that is not waiting yet).
                self.render_due.notify_waiters();
                self.render_due.notify_one();
                Err(HostTrap::Suspend(Suspension::Render { render_id }))
            }
        }
    }
}

impl RenderService {
    /// Hold the render's whole worst case before it is queued: a spec's stated duration, or
    /// the longest output it could produce when the length is known only once rendered (a
    /// render cannot be cut to fit a smaller hold, so all of it must fit). The capture charges
    /// the output actually rendered; a customer at their limit stops here, before any work.
    /// Returns the customer's margin (the render row keeps it for a render cut short).
    async fn hold(&self, job: &JobScope, seq: u32, task: &RenderTask) -> BackendResult<f64> {
        if let RenderTask::Generation(video) = task {
            // A clip's price is known before it is submitted: its seconds at the model's rate.
            let cost = video.cost_nusd();
            return self
                .place(job, seq, "ai_generation", cost, "a video generation needs {held} held (its price)")
                .await;
        }
        if let RenderTask::Narration(narration) = task {
            // ElevenLabs bills the characters it speaks: the whole text's price, known now.
            let cost = narration.cost_nusd();
            return self.place(job, seq, "ai_generation", cost, "a narration needs {held} held (its price)").await;
        }
        let settings = &self.pipeline.settings;
        let stated = match task {
            RenderTask::Spec { spec } => spec["duration"].as_f64().filter(|d| d.is_finite() && *d > 0.0),
            _ => None,
        };
        let price = |seconds: f64| money::cost_from_usd(seconds / 60.0 * settings.usd_per_minute);
        // The longest output a render could produce: a Remotion render on this machine kind
        // renders well below real time (0.3–0.44× measured), so within the timeout it cannot
        // produce more than the timeout's length of video; FFmpeg is faster than real time, so
        // only the host's output cap bounds an unstated spec.
        let longest = match task {
            RenderTask::Spec { .. } => settings.max_seconds,
            _ => settings.max_seconds.min(settings.timeout.as_secs_f64()),
        };
        let want = price(stated.unwrap_or(longest));
        self.place(job, seq, "render", want, "a render needs {held} held (its longest possible output)").await
    }

    /// Hold `want` for the effect; `need` says what for (`{held}` is replaced by the sum).
    async fn place(&self, job: &JobScope, seq: u32, kind: &str, want: i64, need: &str) -> BackendResult<f64> {
        let effect_key = format!("{}:{seq}", job.job_id());
        let request = HoldRequest {
            effect_key: &effect_key,
            customer_id: &job.context.customer.id,
            job_id: job.job_id(),
            template_id: &job.context.template_id,
            kind,
            want_cost_nusd: want,
            min_cost_nusd: want,
            lease_token: &job.lease_token,
        };
        match self.db.place_hold(&request, self.default_margin).await.map_err(fault)? {
            HoldOutcome::Held(hold) => Ok(hold.margin),
            // Captured already: the render is journaled, so a replay never asks again.
            HoldOutcome::Settled => Err(fault_msg("the effect's hold is settled but the effect is not journaled")),
            HoldOutcome::LeaseLost => {
                Err(HostTrap::Fail(RunError::HostFault { message: "the run lost its lease on the job".into() }))
            }
            HoldOutcome::Insufficient { headroom_nusd, min_charge_nusd } => {
                Err(HostTrap::Fail(RunError::BillingLimitReached {
                    message: format!(
                        "{}; the customer may be charged {} more",
                        need.replace("{held}", &money::dollars(min_charge_nusd)),
                        money::dollars(headroom_nusd.max(0))
                    ),
                }))
            }
        }
    }
}

/// The dev runner's renderer: renders at once, in process (no queue, no suspension, no bill).
pub struct InlineRenderer {
    pub pipeline: Arc<Pipeline>,
}

#[async_trait]
impl Renderer for InlineRenderer {
    async fn render(
        &self,
        job: &JobScope,
        seq: u32,
        task: &RenderTask,
        output_key: Option<&str>,
    ) -> BackendResult<Result<RenderResult, RenderError>> {
        let (render_id, full, relative) = match identify(job, seq, output_key) {
            Ok(identified) => identified,
            Err(error) => return Ok(Err(error)),
        };
        if let Err(failure) = self.pipeline.check(task) {
            return Ok(Err(wit_error(failure)));
        }
        let ctx = &job.context;
        let scope = RenderScope::new(&render_id, &ctx.job_id, &ctx.template_id, &ctx.customer.id);
        let (progress, _) = watch::channel(Progress::default());
        Ok(self
            .pipeline
            .run(&scope, task, &full, &relative, &progress, &job.cancel)
            .await
            .map(|r| r.result)
            .map_err(wit_error))
    }
}

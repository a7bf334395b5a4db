//! The `remotion` capability's backends: [`RenderService`] (the engine: queue the render,
//! suspend the job, hand back the result on replay) and [`InlineRenderer`] (the dev runner:
//! render right away, in the same process).

use super::{Failure, Pipeline, Progress, RenderScope, RenderTask};
use crate::capabilities::{BackendResult, HostTrap, JobScope, Renderer};
use crate::db::Db;
use crate::db::renders::NewRender;
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

fn fault(e: crate::db::DbError) -> HostTrap {
    HostTrap::Fail(RunError::HostFault { message: format!("database: {e}") })
}

/// Renders queued in SQLite and run by the render worker while the job waits.
pub struct RenderService {
    pub db: Db,
    pub pipeline: Arc<Pipeline>,
    /// Wakes the render worker.
    pub render_due: Arc<Notify>,
    /// The margin of customers without their own (for the pre-render limit check).
    pub default_margin: f64,
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
        if existing.is_none() {
            if let Err(failure) = self.pipeline.check(task) {
                return Ok(Err(wit_error(failure)));
            }
            self.check_limit(job, task).await?;
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
                self.render_due.notify_one();
                Err(HostTrap::Suspend(Suspension::Render { render_id }))
            }
        }
    }
}

impl RenderService {
    /// A customer already at their limit stops before the render (its length is known up
    /// front only for specs with a `duration`; the charge itself comes after the render).
    async fn check_limit(&self, job: &JobScope, task: &RenderTask) -> BackendResult<()> {
        let seconds = match task {
            RenderTask::Spec { spec } => spec["duration"].as_f64().unwrap_or(0.0),
            RenderTask::Remotion { .. } => 0.0,
        };
        let estimate = seconds / 60.0 * self.pipeline.settings.usd_per_minute;
        let (headroom, margin) = self
            .db
            .charge_headroom(&job.context.customer.id, job.job_id(), self.default_margin)
            .await
            .map_err(fault)?;
        if headroom <= 1e-9 || estimate * margin > headroom + 1e-9 {
            return Err(HostTrap::Fail(RunError::BillingLimitReached {
                message: format!(
                    "a render (estimated ${:.4}) would exceed the customer's remaining limit",
                    estimate * margin
                ),
            }));
        }
        Ok(())
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

//! The render worker: claims due renders (one SQLite `UPDATE … RETURNING` under a lease),
//! runs each through the [`Pipeline`](super::Pipeline), heartbeats its lease while reporting
//! progress as job events, and records the outcome with its `render` charge. A render whose
//! row is no longer its own (the job was cancelled) is killed at the next heartbeat.

use super::{Failure, Pipeline, Progress, RenderScope, RenderTask};
use crate::capabilities::{EventKey, JobEvent, JobScope};
use crate::db::Db;
use crate::db::renders::{RenderEnd, RenderRow};
use crate::engine::Bus;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Event ordinals of a render's progress events start here, after any the job's run emitted
/// at the same journal position (see [`EventKey`]).
const EVENT_ORDINAL_BASE: u32 = 1_000_000;

/// The first of an attempt's event ordinals (after [`EVENT_ORDINAL_BASE`]): each attempt has a
/// range of its own, so a resumed render's start and progress lines are not taken for the
/// previous attempt's (event keys are written once). At most one progress line a second,
/// within the render timeout: far fewer than a range holds.
fn attempt_ordinals(render: &RenderRow) -> u32 {
    u32::try_from(render.attempts).unwrap_or(0).saturating_sub(1).saturating_mul(1_000_000).min(4_000_000_000)
}

pub struct RenderWorker {
    pub db: Db,
    pub bus: Arc<Bus>,
    pub pipeline: Arc<Pipeline>,
    pub events: Arc<dyn crate::capabilities::EventSink>,
    pub render_due: Arc<Notify>,
    pub default_margin: f64,
    /// How often it looks for due renders when nothing wakes it.
    pub poll: Duration,
}

impl RenderWorker {
    /// Claim and run renders and generations until `shutdown`; those still running then are
    /// left to their lease (another worker, or this host after a restart, runs them again).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        tokio::join!(self.clone().run_class(false, shutdown.clone()), self.run_class(true, shutdown));
    }

    /// One class of work into its own slots: renders (each a whole FFmpeg or Chromium) or
    /// generations (each waiting on a provider), so minutes of polling hold no render slot.
    async fn run_class(self: Arc<Self>, generations: bool, shutdown: CancellationToken) {
        let settings = &self.pipeline.settings;
        let slots = if generations { settings.generation_slots } else { settings.slots };
        let slots = Arc::new(Semaphore::new(slots.max(1) as usize));
        let tasks = TaskTracker::new();
        while !shutdown.is_cancelled() {
            let claimed = if slots.available_permits() > 0 { self.claim(generations).await } else { None };
            match claimed {
                Some(render) => {
                    let Ok(permit) = slots.clone().acquire_owned().await else { break };
                    let worker = self.clone();
                    let stop = shutdown.child_token();
                    tasks.spawn(async move {
                        worker.execute(render, stop).await;
                        drop(permit);
                    });
                }
                None => {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = self.render_due.notified() => {}
                        _ = tokio::time::sleep(self.poll) => {}
                    }
                }
            }
        }
        tasks.close();
        tasks.wait().await;
    }

    async fn claim(&self, generations: bool) -> Option<RenderRow> {
        let settings = &self.pipeline.settings;
        let token = uuid::Uuid::new_v4().simple().to_string();
        let lease_ms = i64::try_from(settings.lease.as_millis()).unwrap_or(i64::MAX);
        let cap = if generations { settings.generation_per_customer } else { settings.per_customer };
        match self.db.claim_render(&token, lease_ms, settings.max_attempts, i64::from(cap), generations).await {
            Ok(render) => render,
            Err(e) => {
                tracing::error!(error = %e, "claiming renders failed");
                None
            }
        }
    }

    async fn execute(&self, render: RenderRow, shutdown: CancellationToken) {
        let span =
            tracing::info_span!("render", render_id = %render.id, job_id = %render.job_id, backend = %render.backend);
        // The render is a step of its job's trace.
        let traceparent = self.db.job(&render.job_id).await.ok().flatten().and_then(|job| job.traceparent);
        crate::telemetry::continue_trace(&span, traceparent.as_deref(), None);
        self.execute_in_span(render, shutdown).instrument(span).await
    }

    async fn execute_in_span(&self, render: RenderRow, shutdown: CancellationToken) {
        let token = render.lease_token.clone().unwrap_or_default();
        let cancel = shutdown.child_token();
        let (progress, watcher) = watch::channel(Progress::default());
        let (started, started_watcher) = watch::channel(None);
        let last_started = started_watcher.clone();
        // Cancelled with `shutdown`, or when another attempt took the render over: the render
        // running elsewhere is then left to run (it is that attempt's now), not cancelled.
        let detach = shutdown.child_token();
        let row = super::RowLease {
            render_id: render.id.clone(),
            token: token.clone(),
            effect_key: format!("{}:{}", render.job_id, render.seq),
        };
        let remote = super::Remote {
            resume: render.external_id.clone(),
            started: Some(started),
            detach: detach.clone(),
            row: Some(row),
        };
        // The heartbeat runs until the work has returned, a shutdown included: a provider request
        // the work lets finish (a narration's part) must keep the row, or another host would
        // take it over and find that part in flight.
        let heartbeat_stop = CancellationToken::new();
        let tokens = Tokens { stop: heartbeat_stop.clone(), cancel: cancel.clone(), detach };
        let heartbeat = self.heartbeat(&render, &token, watcher, started_watcher, tokens);
        let work = self.render(&render, remote, &progress, &cancel);
        let (outcome, ()) = tokio::join!(
            async {
                let outcome = work.await;
                heartbeat_stop.cancel();
                outcome
            },
            heartbeat
        );
        // An id reported just as the heartbeat stopped (a shutdown) is stored all the same: the
        // next attempt resumes that render instead of paying for another. Storing it twice
        // writes the same value.
        let reported = last_started.borrow().clone();
        if let Some(id) = reported
            && render.external_id.as_deref() != Some(id.as_str())
        {
            self.store_external_id(&render, &token, &id).await;
        }
        if shutdown.is_cancelled() && outcome.is_err() {
            // Our own shutdown: the render goes back to the queue for the next attempt (after a
            // restart, or on another host) rather than wait for its lease to run out.
            if let Err(e) = self.db.release_render(&render.id, &token).await {
                tracing::warn!(error = %e, "could not give the render back; it runs again once its lease runs out");
            }
            return;
        }
        let written = match &outcome {
            Ok(rendered) => {
                // The output is stored already: it counts against the quota even past it (the
                // customer's next writes are refused).
                let object = crate::db::storage_quota::StoredObject {
                    key: render.output_key.clone(),
                    customer_id: render.customer_id.clone(),
                    bytes: rendered.bytes,
                    default_quota: 0,
                    force: true,
                    keep_larger: false,
                };
                if let Err(e) = self.db.record_stored_object(object).await {
                    tracing::warn!(error = %e, "could not count the render's output against the storage quota");
                }
                let result = serde_json::to_string(&rendered.result).unwrap_or_default();
                let metadata = serde_json::json!({
                    "render_id": render.id, "backend": render.backend, "seconds": rendered.seconds, "recorded_by": "host",
                })
                .to_string();
                let end = RenderEnd::Succeeded {
                    result: &result,
                    cost_nusd: rendered.cost_nusd,
                    metadata: &metadata,
                    default_margin: self.default_margin,
                    provider_model: rendered.provider_model.as_ref().map(|(p, m)| (p.as_str(), m.as_str())),
                };
                self.db.finish_render(&render, &token, end).await
            }
            Err(Failure::Cancelled) => {
                // The row was already ended with the job: nothing will resume a narration's parts.
                if let Ok((RenderTask::Narration(narration), _)) =
                    serde_json::from_str::<(RenderTask, String)>(&render.request)
                {
                    let store = self.pipeline.store.as_ref();
                    crate::providers::delete_narration_parts(store, &render.id, narration.parts().len()).await;
                }
                Ok(false)
            }
            Err(failure) => {
                let error = failure.to_json().to_string();
                let metadata = serde_json::json!({
                    "render_id": render.id, "backend": render.backend, "failed": true, "recorded_by": "host",
                })
                .to_string();
                let end = RenderEnd::Failed {
                    error: &error,
                    metadata: &metadata,
                    keep_noted_cost: render.kind == "generation",
                };
                self.db.finish_render(&render, &token, end).await
            }
        };
        match written {
            Ok(true) => {
                let noun = noun(&render);
                let message = match &outcome {
                    Ok(r) => {
                        format!("{noun} {} finished: {:.1} s of {}", render.id, r.seconds, medium(content_type(r)))
                    }
                    Err(f) => format!("{noun} {} failed: {f}", render.id),
                };
                let level = if outcome.is_ok() { "info" } else { "error" };
                // The output is an artifact of the job like any it stores itself: the timeline
                // and the dashboard show it where it happened.
                let artifact = outcome.as_ref().ok().map(|r| {
                    serde_json::json!({
                        "key": r.result.output_key, "url": r.result.output_url, "size": r.bytes,
                        "content_type": content_type(r), "kind": noun,
                    })
                });
                self.emit_with(&render, u32::MAX - 1, level, message, None, artifact).await;
            }
            Ok(false) => tracing::info!("the render ended elsewhere (cancelled with its job?); outcome dropped"),
            Err(e) => tracing::error!(error = %e, "could not record the render's outcome; it will run again"),
        }
        self.bus.changed(&render.job_id);
        self.bus.job_is_due();
    }

    async fn render(
        &self,
        render: &RenderRow,
        remote: super::Remote,
        progress: &watch::Sender<Progress>,
        cancel: &CancellationToken,
    ) -> Result<super::Rendered, Failure> {
        let (task, relative): (RenderTask, String) = serde_json::from_str(&render.request)
            .map_err(|e| Failure::Failed(format!("the stored render request is unreadable: {e}")))?;
        let mut scope = RenderScope::new(&render.id, &render.job_id, &render.template_id, &render.customer_id);
        let noun = noun(render);
        let message = match &remote.resume {
            Some(_) => format!("{noun} {} resumed ({}, attempt {})", render.id, render.backend, render.attempts),
            None => format!("{noun} {} started ({})", render.id, render.backend),
        };
        scope.remote = remote;
        self.emit(render, attempt_ordinals(render), "info", message, None).await;
        self.pipeline.run(&scope, &task, &render.output_key, &relative, progress, cancel).await
    }

    /// Keep the lease while the render runs, store the id of a render started elsewhere as
    /// soon as it is known, report progress (at most one event a second, and only when it
    /// moved), and cancel the render when the row stops being ours.
    async fn heartbeat(
        &self,
        render: &RenderRow,
        token: &str,
        mut watcher: watch::Receiver<Progress>,
        mut external_id: watch::Receiver<Option<String>>,
        tokens: Tokens,
    ) {
        let Tokens { stop, cancel, detach } = tokens;
        let settings = &self.pipeline.settings;
        let lease_ms = i64::try_from(settings.lease.as_millis()).unwrap_or(i64::MAX);
        let every = (settings.lease / 3).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut reported = Progress::default();
        let mut ordinal = attempt_ordinals(render) + 1;
        let started = std::time::Instant::now();
        let mut watching_start = true;
        loop {
            tokio::select! {
                // The id first: it is what keeps a restart from paying for the render again.
                biased;
                changed = external_id.changed(), if watching_start => {
                    let id = external_id.borrow_and_update().clone();
                    match (changed, id) {
                        (Ok(()), Some(id)) => self.store_external_id(render, token, &id).await,
                        (Ok(()), None) => {}
                        (Err(_), _) => watching_start = false,
                    }
                    continue;
                }
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let now = *watcher.borrow_and_update();
            match self.db.heartbeat_render(&render.id, token, lease_ms, now.fraction, now.output_seconds).await {
                Ok(true) => {}
                Ok(false) => {
                    // Cancelled with its job: stop it everywhere. Taken over by another attempt
                    // (this host's heartbeats failed past the lease): that attempt resumes the
                    // same render elsewhere, so this one only lets go of it.
                    let row = self.db.render(&render.id).await.ok().flatten();
                    let taken_over =
                        row.is_some_and(|r| r.status == "running" && r.lease_token.as_deref() != Some(token));
                    if taken_over {
                        tracing::info!("another attempt took the render over: letting go of it");
                        detach.cancel();
                    } else {
                        tracing::info!("the render is no longer ours (its job was cancelled): stopping it");
                    }
                    cancel.cancel();
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "render heartbeat failed"),
            }
            if now.stage != reported.stage || now.fraction - reported.fraction >= 0.01 {
                // Time left, from the pace so far (once there is a pace to go by).
                let left = (now.fraction >= 0.02 && now.fraction < 1.0)
                    .then(|| started.elapsed().as_secs_f64() * (1.0 - now.fraction) / now.fraction);
                let doing = if render.kind == "generation" { "generating" } else { "rendering" };
                let message = match left {
                    Some(s) => {
                        format!("{doing}: {} {:.0}%, about {:.0} s left", now.stage, now.fraction * 100.0, s.ceil())
                    }
                    None => format!("{doing}: {} {:.0}%", now.stage, now.fraction * 100.0),
                };
                let _ = self.db.set_render_progress(&render.job_id, now.fraction, &message).await;
                self.emit(render, ordinal, "info", message, Some(now.fraction)).await;
                ordinal += 1;
                reported = now;
                self.bus.changed(&render.job_id);
            }
        }
    }

    /// Store the id a render was started under elsewhere, before anything else, so that an
    /// attempt after this one resumes it. Retried: until it is stored, a crash would start and
    /// pay for the render again. A row that is no longer this attempt's is left alone.
    async fn store_external_id(&self, render: &RenderRow, token: &str, id: &str) {
        for wait in [0, 100, 500, 2_000, 5_000] {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            match self.db.set_render_external_id(&render.id, token, id).await {
                Ok(true) => return tracing::info!(external_id = %id, "the render's external id is stored"),
                Ok(false) => return tracing::warn!(external_id = %id, "the render is no longer this attempt's"),
                Err(e) => tracing::warn!(error = %e, "could not store the render's external id"),
            }
        }
        tracing::error!(external_id = %id, "the render's external id could not be stored: a crash now would run it again");
    }

    /// A job event about the render, placed at the render's journal position.
    async fn emit(&self, render: &RenderRow, ordinal: u32, level: &str, message: String, progress: Option<f64>) {
        self.emit_with(render, ordinal, level, message, progress, None).await;
    }

    async fn emit_with(
        &self,
        render: &RenderRow,
        ordinal: u32,
        level: &str,
        message: String,
        progress: Option<f64>,
        artifact: Option<serde_json::Value>,
    ) {
        let scope = render_scope(render);
        let key = EventKey {
            position: u32::try_from(render.seq - 1).unwrap_or(0),
            ordinal: EVENT_ORDINAL_BASE.saturating_add(ordinal),
        };
        let event = JobEvent {
            level: level.into(),
            message,
            metadata: serde_json::json!({ "render_id": render.id, "backend": render.backend, "attempt": render.attempts }),
            progress,
            artifact,
        };
        if let Err(e) = self.events.emit(&scope, key, event).await {
            tracing::warn!(error = %e, "could not record a render event");
        }
    }
}

/// What a render's heartbeat answers to.
struct Tokens {
    /// The work has returned: stop heartbeating.
    stop: CancellationToken,
    /// Cancelled by the heartbeat when the row stops being ours: stops the work.
    cancel: CancellationToken,
    /// Cancelled by the heartbeat when another attempt took the row over: a remote render is
    /// left running for it.
    detach: CancellationToken,
}

/// The output's media type: a narration's metadata names it; every other output is an MP4.
fn content_type(rendered: &super::Rendered) -> String {
    let metadata: serde_json::Value = serde_json::from_str(&rendered.result.metadata).unwrap_or_default();
    metadata["content_type"].as_str().unwrap_or("video/mp4").to_string()
}

fn medium(content_type: String) -> &'static str {
    if content_type.starts_with("audio/") { "audio" } else { "video" }
}

/// What the row is called in the job's log: `render`, or `generation` for a provider's clip.
fn noun(render: &RenderRow) -> &'static str {
    if render.kind == "generation" { "generation" } else { "render" }
}

/// A scope for the event sink: no lease (the job is waiting, not running).
fn render_scope(render: &RenderRow) -> JobScope {
    use crate::runtime::bindings::types::{Customer, Environment, JobContext};
    let context = JobContext {
        job_id: render.job_id.clone(),
        template_id: render.template_id.clone(),
        template_version: String::new(),
        operation: String::new(),
        workflow: String::new(),
        parent_job_id: None,
        customer: Customer { id: render.customer_id.clone(), name: String::new() },
        attempt: 0,
        env: Environment::Production,
        config: "{}".into(),
    };
    JobScope::new(context, CancellationToken::new(), String::new())
}

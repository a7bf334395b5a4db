//! The per-run store state: WASI (empty), the memory limiter, the job's scope, its backends
//! and its journal. One is built per run and dropped with the store.

use super::bindings::types::JobContext;
use super::error::{HostTrap, RunError, fail};
use super::limits::{Limits, MemoryLimiter};
use crate::capabilities::{Capabilities, EventKey, JobEvent, JournalEntry};
use crate::db::jobs::NewJob;
use serde::{Serialize, de::DeserializeOwned};
use std::future::Future;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Who and where a run is: passed to every backend call.
#[derive(Debug, Clone)]
pub struct JobScope {
    /// The context the guest also receives.
    pub context: JobContext,
    /// Artifacts go under `templates/:templateId/users/:customerId/jobs/:jobId/`.
    pub artifact_prefix: String,
    /// The customer's files, readable by templates: `customers/:customerId/workspace/`.
    pub workspace_prefix: String,
    /// Fires when the job is cancelled; checked at every host call and every epoch tick.
    pub cancel: CancellationToken,
    /// The worker's lease on the job: every write a backend makes checks it (empty when no
    /// engine runs the job, as in the dev runner).
    pub lease_token: String,
    /// The template version's own Remotion bundle: its renders resolve compositions there.
    pub bundle: Option<crate::render::bundles::TemplateBundle>,
}

impl JobScope {
    pub fn new(context: JobContext, cancel: CancellationToken, lease_token: String) -> Self {
        let artifact_prefix =
            format!("templates/{}/users/{}/jobs/{}", context.template_id, context.customer.id, context.job_id);
        let workspace_prefix = format!("customers/{}/workspace", context.customer.id);
        Self { context, artifact_prefix, workspace_prefix, cancel, lease_token, bundle: None }
    }

    pub fn job_id(&self) -> &str {
        &self.context.job_id
    }
}

/// The `T` of `Store<T>` for template runs.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) limits: Limits,
    pub(crate) job: Arc<JobScope>,
    pub(crate) caps: Arc<Capabilities>,
    pub(crate) journal: Journal,
    /// Events of the job, earlier runs' included (checked against `limits.max_log_events`:
    /// the cap is per job, so a guest that logs differently on each retry cannot multiply it).
    pub(crate) log_events: u64,
    /// Keys of the events earlier runs stored: re-emitting one (a replay) is not counted again.
    pub(crate) stored_events: std::collections::HashSet<EventKey>,
    /// Key of the last event emitted (see [`EventKey`]).
    pub(crate) last_event: Option<EventKey>,
    /// Children enqueued by this run, replayed ones included (checked against the cap).
    pub(crate) children: u32,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl HostState {
    /// Trap with `cancelled` if the job was cancelled: every host call checks first.
    pub(crate) fn check_cancelled(&self) -> wasmtime::Result<()> {
        if self.job.cancel.is_cancelled() { Err(fail(RunError::Cancelled)) } else { Ok(()) }
    }

    /// A job event, keyed by its place in the job's history so that what a replay emits
    /// again is recognised and dropped by the sink.
    pub(crate) async fn emit(&mut self, event: JobEvent) -> wasmtime::Result<()> {
        self.check_cancelled()?;
        let position = u32::try_from(self.journal.position()).unwrap_or(u32::MAX);
        let ordinal = match self.last_event {
            Some(last) if last.position == position => last.ordinal + 1,
            _ => 0,
        };
        let key = EventKey { position, ordinal };
        self.last_event = Some(key);
        if !self.stored_events.contains(&key) {
            self.log_events += 1;
            if self.log_events > self.limits.max_log_events {
                return Err(fail(RunError::LogLimitExceeded { limit: self.limits.max_log_events }));
            }
        }
        self.caps.events.emit(&self.job, key, event).await.map_err(wasmtime::Error::new)
    }

    /// The one choke point for effects (DESIGN.md §4): a replay returns the journaled
    /// result; otherwise `perform` runs once and its result is journaled before the guest
    /// sees it.
    pub(crate) async fn effect<R, T, F>(
        &mut self,
        kind: &str,
        request: R,
        perform: impl FnOnce(Arc<Capabilities>, Arc<JobScope>, R) -> F,
    ) -> wasmtime::Result<T>
    where
        R: Serialize,
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<T, HostTrap>>,
    {
        self.effect_creating(kind, request, |caps, job, request| async move {
            perform(caps, job, request).await.map(|result| (result, None))
        })
        .await
    }

    /// [`effect`](Self::effect) for an effect whose row (a child job) `perform` makes but does
    /// not write: it is written with the journal entry, in one transaction.
    pub(crate) async fn effect_creating<R, T, F>(
        &mut self,
        kind: &str,
        request: R,
        perform: impl FnOnce(Arc<Capabilities>, Arc<JobScope>, R) -> F,
    ) -> wasmtime::Result<T>
    where
        R: Serialize,
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<(T, Option<Box<NewJob>>), HostTrap>>,
    {
        self.check_cancelled()?;
        let digest = request_digest(kind, &request);
        if let Some(recorded) = self.journal.replay(kind, &digest)? {
            return Ok(recorded);
        }
        // One span per performed effect (a replayed one costs nothing and has none): the
        // provider call, storage write, render or child job in the job's trace.
        let span = tracing::info_span!("effect", otel.name = %kind, effect = %kind, job_id = %self.job.job_id());
        let performed = perform(self.caps.clone(), self.job.clone(), request).instrument(span.clone()).await;
        let (result, row) = performed.map_err(wasmtime::Error::new)?;
        self.journal.record(&self.caps, &self.job, kind, digest, &result, row.as_deref()).instrument(span).await?;
        Ok(result)
    }
}

fn request_digest(kind: &str, request: &impl Serialize) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(kind.as_bytes());
    hasher.update(&[0]);
    hasher.update(serde_json::to_string(request).unwrap_or_default().as_bytes());
    hasher.finalize().to_hex()[..32].to_string()
}

/// A job's journal during one run: the entries recorded so far and the replay position.
pub struct Journal {
    recorded: Vec<JournalEntry>,
    next: usize,
}

impl Journal {
    pub fn new(recorded: Vec<JournalEntry>) -> Self {
        Self { recorded, next: 0 }
    }

    /// The sequence number the next newly performed effect will be journaled under (stable
    /// across replays: backends use it to make their writes idempotent).
    pub fn next_seq(&self) -> u32 {
        u32::try_from(self.recorded.len() + 1).unwrap_or(u32::MAX)
    }

    /// Entries performed so far (recorded or replayed), for reports.
    pub fn position(&self) -> usize {
        self.next
    }

    fn replay<T: DeserializeOwned>(&mut self, kind: &str, digest: &str) -> wasmtime::Result<Option<T>> {
        let Some(entry) = self.recorded.get(self.next) else { return Ok(None) };
        if entry.kind != kind || entry.request_digest != digest {
            return Err(fail(RunError::NonDeterministic {
                message: format!(
                    "effect #{} was `{}` when first run, `{kind}` (or other arguments) now",
                    entry.seq, entry.kind
                ),
            }));
        }
        let value = serde_json::from_str(&entry.result).map_err(|e| {
            fail(RunError::HostFault { message: format!("journal entry {} is unreadable: {e}", entry.seq) })
        })?;
        self.next += 1;
        Ok(Some(value))
    }

    async fn record<T: Serialize>(
        &mut self,
        caps: &Capabilities,
        job: &JobScope,
        kind: &str,
        request_digest: String,
        result: &T,
        child: Option<&NewJob>,
    ) -> wasmtime::Result<()> {
        let entry = JournalEntry {
            seq: u32::try_from(self.recorded.len() + 1).unwrap_or(u32::MAX),
            kind: kind.to_string(),
            request_digest,
            result: serde_json::to_string(result).map_err(|e| fail(RunError::HostFault { message: e.to_string() }))?,
        };
        caps.journal.append(job, &entry, child).await.map_err(wasmtime::Error::new)?;
        self.recorded.push(entry);
        self.next = self.recorded.len();
        Ok(())
    }
}

//! One run: a fresh `Store` with its limits, instantiate from the `InstancePre`, call
//! `describe` or `run`, and turn whatever happened into a precise outcome.

use super::bindings::TemplatePre;
use super::bindings::types::{Customer, Environment, JobContext, Manifest};
use super::error::{HostTrap, RunError, Suspension, fail};
use super::limits::MemoryLimiter;
use super::state::{HostState, JobScope, Journal};
use super::{Limits, LoadedTemplate, Runtime, wasi};
use crate::capabilities::logging::cut_to as truncated;
use crate::capabilities::{Capabilities, EventKey, JobEvent};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use wasmtime::{Store, Trap, UpdateDeadline};

/// Fuel between cooperative yields: a CPU-bound guest lets other tasks on its thread run.
const FUEL_YIELD_INTERVAL: u64 = 100_000;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub workflow: String,
    pub context: JobContext,
    /// The validated payload, as JSON text.
    pub input: String,
    pub limits: Limits,
    /// The job's logical start (unix ms): what the guest's clock starts from on every replay.
    pub start_ms: i64,
    pub cancel: CancellationToken,
    /// The worker's lease (see [`JobScope::lease_token`]).
    pub lease_token: String,
    /// Whether the job has journal entries, if the caller knows (a claim says:
    /// `JobRow::journaled`). `Some(false)` skips reading the journal: nothing to replay.
    pub journaled: Option<bool>,
}

impl RunRequest {
    pub(crate) fn describe(limits: Limits) -> Self {
        let context = JobContext {
            job_id: "describe".into(),
            template_id: "describe".into(),
            template_version: "0.0.0".into(),
            operation: String::new(),
            workflow: String::new(),
            parent_job_id: None,
            customer: Customer { id: "host".into(), name: "host".into() },
            attempt: 1,
            env: Environment::Development,
            config: "{}".into(),
        };
        Self {
            workflow: String::new(),
            context,
            input: "null".into(),
            limits,
            start_ms: 0,
            cancel: CancellationToken::new(),
            lease_token: String::new(),
            journaled: Some(false),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    Succeeded(serde_json::Value),
    Failed(RunError),
    Suspended(Suspension),
    /// `describe` answered (only for loads).
    Described(Box<Manifest>),
}

/// A run's outcome and what it cost.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub outcome: RunOutcome,
    /// Fuel units the run burned (reported for every run, billed as `cpu_estimate`).
    pub fuel_consumed: u64,
    pub duration: Duration,
    /// Journaled effects performed or replayed by this run.
    pub effects: usize,
}

/// Which export to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Describe,
    Run,
}

impl Runtime {
    /// Run one workflow of a loaded template in a fresh store.
    pub async fn run(&self, template: &LoadedTemplate, request: RunRequest, caps: Arc<Capabilities>) -> RunReport {
        self.execute(&template.pre, request, caps, Call::Run, template.bundle.clone()).await
    }

    pub(crate) async fn execute(
        &self,
        pre: &TemplatePre<HostState>,
        request: RunRequest,
        caps: Arc<Capabilities>,
        call: Call,
        bundle: Option<crate::render::bundles::TemplateBundle>,
    ) -> RunReport {
        let started = Instant::now();
        let limits = request.limits;
        let report = |outcome, fuel_consumed, effects| RunReport {
            outcome,
            fuel_consumed,
            duration: started.elapsed(),
            effects,
        };
        let mut job = JobScope::new(request.context.clone(), request.cancel.clone(), request.lease_token.clone());
        job.bundle = bundle;
        let job = Arc::new(job);
        let recorded = match (call, request.journaled) {
            (Call::Run, None | Some(true)) => match caps.journal.load(job.job_id()).await {
                Ok(entries) => entries,
                Err(trap) => return report(outcome_of_trap(trap), 0, 0),
            },
            (Call::Describe, _) | (Call::Run, Some(false)) => Vec::new(),
        };
        // With an empty journal every event of an earlier run sits at position 0 and a new run
        // reuses those keys; past an effect, earlier runs' events count against this one's cap.
        let stored_events: std::collections::HashSet<_> = if recorded.is_empty() {
            Default::default()
        } else {
            match caps.events.stored_keys(job.job_id()).await {
                Ok(keys) => keys.into_iter().collect(),
                Err(trap) => return report(outcome_of_trap(trap), 0, 0),
            }
        };
        let seed = *blake3::hash(request.context.job_id.as_bytes()).as_bytes();
        let (wasi, output) = wasi::context(request.start_ms, seed, limits.max_output_bytes);
        let limiter = MemoryLimiter::new(limits.memory_bytes);
        let memory_refused = limiter.refused();
        let state = HostState {
            wasi,
            table: Default::default(),
            limiter,
            limits,
            job: job.clone(),
            caps: caps.clone(),
            journal: Journal::new(recorded),
            log_events: stored_events.len() as u64,
            stored_events,
            last_event: None,
            children: 0,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        let deadline = started + Duration::from_millis(limits.timeout_ms);
        if let Err(e) = configure(&mut store, &limits, deadline, request.cancel.clone()) {
            return report(RunOutcome::Failed(RunError::HostFault { message: format!("{e:#}") }), 0, 0);
        }

        let result = tokio::select! {
            result = call_export(pre, &mut store, call, &request) => result,
            // Host calls (a provider, a render) do not tick the epoch: stop those here too.
            _ = tokio::time::sleep_until(deadline.into()) => Err(fail(RunError::DeadlineExceeded { timeout_ms: limits.timeout_ms })),
            _ = request.cancel.cancelled() => Err(fail(RunError::Cancelled)),
        };

        let fuel_consumed = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let effects = store.data().journal.position();
        let (stderr, _) = output.stderr.contents();
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(error) => classify(&error, &limits, memory_refused.load(Ordering::Relaxed), &stderr),
        };
        if call == Call::Run {
            forward_output(&caps, &job, u32::try_from(effects).unwrap_or(u32::MAX), &output).await;
        }
        report(outcome, fuel_consumed, effects)
    }
}

fn configure(
    store: &mut Store<HostState>,
    limits: &Limits,
    deadline: Instant,
    cancel: CancellationToken,
) -> wasmtime::Result<()> {
    store.set_fuel(limits.fuel)?;
    store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))?;
    store.set_epoch_deadline(1);
    let timeout_ms = limits.timeout_ms;
    store.epoch_deadline_callback(move |_| {
        if cancel.is_cancelled() {
            return Err(fail(RunError::Cancelled));
        }
        if Instant::now() >= deadline {
            return Err(fail(RunError::DeadlineExceeded { timeout_ms }));
        }
        Ok(UpdateDeadline::Continue(1))
    });
    Ok(())
}

async fn call_export(
    pre: &TemplatePre<HostState>,
    store: &mut Store<HostState>,
    call: Call,
    request: &RunRequest,
) -> wasmtime::Result<RunOutcome> {
    let instance = pre.instantiate_async(&mut *store).await?;
    if call == Call::Describe {
        return Ok(RunOutcome::Described(Box::new(instance.call_describe(&mut *store).await?)));
    }
    let returned = instance.call_run(&mut *store, &request.workflow, &request.context, &request.input).await?;
    Ok(match returned {
        Ok(output) => match serde_json::from_str(&output) {
            Ok(value) => RunOutcome::Succeeded(value),
            Err(e) => {
                RunOutcome::Failed(RunError::ContractViolation { message: format!("`run` returned invalid JSON: {e}") })
            }
        },
        // A template's error is copied into the job row, every read and every webhook of it:
        // its code, message and details are capped like a result is.
        Err(e) => RunOutcome::Failed(RunError::Template {
            code: if e.code.is_empty() { "template_error".into() } else { truncated(e.code, 128) },
            message: truncated(e.message, MAX_ERROR_MESSAGE_BYTES),
            details: e
                .details
                .filter(|d| d.len() <= MAX_ERROR_DETAILS_BYTES)
                .and_then(|d| serde_json::from_str(&d).ok()),
        }),
    })
}

/// Name what ended the run: a host decision carried in the trap, a wasm trap, or a fault.
fn classify(error: &wasmtime::Error, limits: &Limits, memory_refused: bool, stderr: &str) -> RunOutcome {
    if let Some(trap) = error.downcast_ref::<HostTrap>() {
        return match trap {
            HostTrap::Fail(e) => RunOutcome::Failed(e.clone()),
            HostTrap::Suspend(s) => RunOutcome::Suspended(s.clone()),
        };
    }
    let failed = |e| RunOutcome::Failed(e);
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => failed(RunError::OutOfFuel { budget: limits.fuel }),
        Some(Trap::Interrupt) => failed(RunError::DeadlineExceeded { timeout_ms: limits.timeout_ms }),
        Some(_) if memory_refused => failed(RunError::MemoryLimit { limit_bytes: limits.memory_bytes }),
        Some(Trap::UnreachableCodeReached) if wasi::panic_message(stderr).is_some() => {
            failed(RunError::GuestPanic { message: wasi::panic_message(stderr).unwrap_or_default() })
        }
        Some(trap) => failed(RunError::GuestTrap { message: trap.to_string() }),
        None if memory_refused => failed(RunError::MemoryLimit { limit_bytes: limits.memory_bytes }),
        None => failed(RunError::HostFault { message: format!("{error:#}") }),
    }
}

fn outcome_of_trap(trap: HostTrap) -> RunOutcome {
    match trap {
        HostTrap::Fail(e) => RunOutcome::Failed(e),
        HostTrap::Suspend(s) => RunOutcome::Suspended(s),
    }
}

/// The guest's stdout/stderr become job events (bounded; what was dropped is said).
async fn forward_output(caps: &Capabilities, job: &JobScope, position: u32, output: &wasi::GuestOutput) {
    for (ordinal, stream, buffer, level) in
        [(u32::MAX - 1, "stdout", &output.stdout, "info"), (u32::MAX, "stderr", &output.stderr, "warn")]
    {
        let (text, dropped) = buffer.contents();
        if text.is_empty() {
            continue;
        }
        let event = JobEvent {
            level: level.into(),
            message: format!("guest {stream}"),
            metadata: serde_json::json!({ "stream": stream, "text": text, "dropped_bytes": dropped }),
            progress: None,
            artifact: None,
        };
        if let Err(e) = caps.events.emit(job, EventKey { position, ordinal }, event).await {
            tracing::warn!(job_id = job.job_id(), error = %e, "could not store guest output");
        }
    }
}

/// The most bytes of a template error's message kept (the rest is cut, and said so).
const MAX_ERROR_MESSAGE_BYTES: usize = 4 << 10;
/// Template error details larger than this are dropped.
const MAX_ERROR_DETAILS_BYTES: usize = 16 << 10;

#[cfg(test)]
mod error_caps {
    use super::truncated;

    #[test]
    fn a_long_error_message_is_cut_on_a_character_boundary_and_marked() {
        let cut = truncated("é".repeat(3_000), 4_096);
        assert!(cut.len() <= 4_096 + " …[truncated]".len(), "{}", cut.len());
        assert!(cut.ends_with(" …[truncated]"));
        assert_eq!(truncated("short".into(), 4_096), "short");
    }
}

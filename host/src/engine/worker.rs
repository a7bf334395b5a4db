//! A worker: claims due jobs (one `UPDATE … RETURNING`), runs each in a fresh store under its
//! limits, keeps its lease alive with heartbeats, and writes how the run ended — only if the
//! lease is still its own. On shutdown it stops claiming, lets runs finish within the grace
//! period, and releases the rest for another worker.

use super::Platform;
use crate::db::holds::HoldOutcome;
use crate::db::jobs::{Finish, JobRow};
use crate::runtime::bindings::types::{Customer, Environment, JobContext};
use crate::runtime::{RunError, RunOutcome, RunRequest, Suspension};
use rand::RngExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// The largest result a job may store: results are read with every poll of the job and copied
/// into its webhooks, so large output belongs in storage (its key in the result).
pub const MAX_RESULT_BYTES: usize = 256 << 10;

/// The most jobs one claim takes (fewer when fewer slots are free). A claim waits its turn on
/// the writing connection behind a group commit; with 32, workers fell behind the creates under
/// load (`hello greet`, 5,000 jobs: 2,814 → 2,912 jobs/s with 64, medians of four alternating
/// runs, BENCHMARKS.md "Session 25").
const CLAIM_BATCH: u32 = 64;

/// The least fuel a run is started with when the customer's limit is nearly reached (a
/// small guest's whole run); less than this and the job fails with `billing_limit_reached`.
const MIN_RUN_FUEL: u64 = 10_000_000;

/// What a run needs to know of its customer.
#[derive(Clone)]
struct CustomerFacts {
    name: String,
    /// A prepaid credit or a monthly cap is set: runs hold their fuel.
    limited: bool,
}

pub struct Worker {
    platform: Platform,
    /// One permit per job this process may run at once.
    slots: Arc<Semaphore>,
    /// Fired at the end of the grace period: runs still going are interrupted and released.
    release: CancellationToken,
    tasks: TaskTracker,
    /// Customers by id, read at most once a second: names are cosmetic, and whether a
    /// customer has a limit decides if runs hold their fuel (a limit set within that second
    /// still holds: the CPU charge is then capped at what the customer may still be charged).
    customers: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, CustomerFacts)>>,
    /// How long this process's claims took, logged when it stops (operators and
    /// `scripts/bench-pg.sh` read the line).
    claim_times: std::sync::Mutex<ClaimTimes>,
}

/// Claim durations: counts, and the most recent samples for percentiles (bounded).
#[derive(Default)]
struct ClaimTimes {
    claims: u64,
    empty: u64,
    jobs: u64,
    micros: std::collections::VecDeque<u64>,
}

impl ClaimTimes {
    const SAMPLES: usize = 65_536;

    fn record(&mut self, took: Duration, jobs: usize) {
        self.claims += 1;
        self.jobs += jobs as u64;
        self.empty += u64::from(jobs == 0);
        if self.micros.len() == Self::SAMPLES {
            self.micros.pop_front();
        }
        self.micros.push_back(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    }

    fn log(&self) {
        let mut sorted: Vec<u64> = self.micros.iter().copied().collect();
        sorted.sort_unstable();
        let at = |q: f64| sorted.get(((sorted.len().saturating_sub(1)) as f64 * q) as usize).copied().unwrap_or(0);
        tracing::info!(
            claims = self.claims,
            empty = self.empty,
            jobs = self.jobs,
            p50_ms = at(0.5) as f64 / 1000.0,
            p99_ms = at(0.99) as f64 / 1000.0,
            "claims made by this worker"
        );
    }
}

impl Worker {
    pub fn new(platform: Platform) -> Arc<Self> {
        let slots = Arc::new(Semaphore::new(platform.config.worker_slots as usize));
        Arc::new(Self {
            platform,
            slots,
            release: CancellationToken::new(),
            tasks: TaskTracker::new(),
            customers: Default::default(),
            claim_times: Default::default(),
        })
    }

    /// Claim and run jobs until `shutdown`, then drain (see the module docs).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        // Heartbeats outlive `shutdown`: runs finishing in the grace period keep their leases,
        // so no other worker re-claims (and re-runs) them meanwhile.
        let heartbeats_stop = CancellationToken::new();
        let heartbeats = tokio::spawn(self.clone().heartbeat_loop(heartbeats_stop.clone()));
        let sweeps = tokio::spawn(super::sweeper::run(self.platform.clone(), shutdown.child_token()));
        while !shutdown.is_cancelled() {
            let free = self.slots.available_permits() as u32;
            if free == 0 {
                // Every slot is busy: wait for one to free up (not a busy loop, which would
                // starve everything else on this thread).
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    permit = self.slots.acquire() => drop(permit),
                }
                continue;
            }
            let started = std::time::Instant::now();
            let claimed = self.claim(free.min(CLAIM_BATCH)).await;
            self.claim_times.lock().unwrap_or_else(|p| p.into_inner()).record(started.elapsed(), claimed.len());
            let drained = (claimed.len() as u32) < free.min(CLAIM_BATCH);
            for job in claimed {
                let Ok(permit) = self.slots.clone().acquire_owned().await else { break };
                let worker = self.clone();
                self.tasks.spawn(async move {
                    worker.execute(job).await;
                    drop(permit);
                });
            }
            if drained {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = self.platform.bus.job_due.notified() => {}
                    _ = tokio::time::sleep(self.platform.config.poll_interval) => {}
                }
            }
        }
        self.claim_times.lock().unwrap_or_else(|p| p.into_inner()).log();
        self.tasks.close();
        if tokio::time::timeout(self.platform.config.shutdown_grace, self.tasks.wait()).await.is_err() {
            tracing::warn!("grace period over: releasing the jobs still running");
            self.release.cancel();
            self.tasks.wait().await;
        }
        heartbeats_stop.cancel();
        let _ = heartbeats.await;
        let _ = sweeps.await;
    }

    async fn claim(&self, max: u32) -> Vec<JobRow> {
        let config = &self.platform.config;
        let token = uuid::Uuid::new_v4().simple().to_string();
        let lease_ms = i64::try_from(config.lease.as_millis()).unwrap_or(i64::MAX);
        match self.platform.db.claim_jobs(max, &token, lease_ms, config.max_concurrent_jobs).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::error!(error = %e, "claiming jobs failed");
                tokio::time::sleep(config.poll_interval).await;
                Vec::new()
            }
        }
    }

    /// Extend every lease this process holds; stop runs whose lease is gone or whose job was
    /// cancelled (possibly through another process's API).
    async fn heartbeat_loop(self: Arc<Self>, stop: CancellationToken) {
        let lease_ms = i64::try_from(self.platform.config.lease.as_millis()).unwrap_or(i64::MAX);
        let every = (self.platform.config.lease / 3).max(Duration::from_millis(50));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            for (job_id, lease, cancel) in self.platform.bus.running_jobs() {
                match self.platform.db.heartbeat(&job_id, &lease, lease_ms).await {
                    Ok(Some(false)) => {}
                    Ok(Some(true)) | Ok(None) => cancel.cancel(),
                    Err(e) => tracing::warn!(job_id, error = %e, "heartbeat failed"),
                }
            }
        }
    }

    /// Run a claimed job and record how it ended; logs carry the job id, template and version.
    async fn execute(&self, job: JobRow) {
        let span = tracing::info_span!("job", job_id = %job.id, template = %job.template_id, version = %job.template_version,
                request_id = job.request_id.as_deref().unwrap_or(""),
                otel.name = %format!("job {}.{}", job.template_id, job.operation), attempt = job.attempt,
                queued_ms = job.started_at.map_or(0, |s| s - job.created_at));
        // The job's spans continue the trace of the request (or parent job) that created it.
        crate::telemetry::continue_trace(&span, job.traceparent.as_deref(), None);
        self.execute_in_span(job).instrument(span).await
    }

    async fn execute_in_span(&self, job: JobRow) {
        let platform = &self.platform;
        let lease = job.lease_token.clone().unwrap_or_default();
        let cancel = self.release.child_token();
        platform.bus.track(&job.id, &lease, cancel.clone());
        let (finish, fuel) = if job.cancel_requested != 0 {
            (Finish::Cancelled { error: RunError::Cancelled.to_json().to_string() }, 0)
        } else {
            self.run_once(&job, &lease, cancel.clone()).await
        };
        platform.bus.untrack(&job.id);
        platform.metrics.job_run(&finish, fuel);
        let written = platform.db.finish_run(&job.id, &lease, fuel, &finish, self.cpu_charge(fuel)).await;
        match &written {
            Ok(true) => {}
            Ok(false) => tracing::warn!("the run's lease was lost: its outcome is discarded"),
            Err(e) => {
                tracing::error!(error = %e, "could not record the run's outcome; the lease will expire and the job re-run")
            }
        }
        platform.bus.changed(&job.id);
        if let Some(parent) = &job.parent_job_id {
            platform.bus.changed(parent);
        }
        // A slot came free here, and the end may have made jobs due anywhere (a parent woken, a
        // re-queue, a customer's cap freed): every host's idle workers look. Waking only this
        // host was tried: with three workers, one of them then starved for a minute
        // (multi_host.rs) while the others kept the queue to themselves. An end that reached the
        // database has told them (its batch carried or owed the notice, written or not).
        match written {
            Ok(_) => platform.bus.job_is_due_here(),
            Err(_) => platform.bus.job_is_due(),
        }
    }

    async fn run_once(&self, job: &JobRow, lease: &str, cancel: CancellationToken) -> (Finish, u64) {
        let platform = &self.platform;
        let failed = |e: RunError| (Finish::Failed { error: e.to_json().to_string() }, 0);
        let Ok(template) = platform.catalog.load_version(&job.template_id, &job.template_version).await else {
            return failed(RunError::Template {
                code: "template_version_unavailable".into(),
                message: format!("{}@{} is not loaded on this host", job.template_id, job.template_version),
                details: None,
            });
        };
        let Some(operation) = template.operation(&job.operation) else {
            return failed(RunError::ContractViolation { message: format!("no operation `{}`", job.operation) });
        };
        let runtime = platform.catalog.runtime();
        let mut limits = runtime.config().defaults.for_operation(&operation.limits, &runtime.config().maxima);
        let customer = self.customer(&job.customer_id).await;
        let fuel_held = match self.hold_fuel(job, lease, &customer, limits.fuel).await {
            Ok(held) => held,
            Err(finish) => return (finish, 0),
        };
        if let Some(fuel) = fuel_held {
            limits.fuel = limits.fuel.min(fuel);
        }
        let customer_name = customer.name;
        let request = RunRequest {
            workflow: job.workflow.clone(),
            context: JobContext {
                job_id: job.id.clone(),
                template_id: job.template_id.clone(),
                template_version: job.template_version.clone(),
                operation: job.operation.clone(),
                workflow: job.workflow.clone(),
                parent_job_id: job.parent_job_id.clone(),
                customer: Customer { id: job.customer_id.clone(), name: customer_name },
                attempt: u32::try_from(job.attempt).unwrap_or(u32::MAX),
                env: match platform.config.env {
                    crate::config::Environment::Development => Environment::Development,
                    crate::config::Environment::Production => Environment::Production,
                },
                config: job.config.clone(),
            },
            input: job.payload.clone(),
            limits,
            start_ms: job.start_ms,
            cancel: cancel.clone(),
            lease_token: lease.to_string(),
            journaled: job.journaled,
        };
        let run_span = tracing::info_span!("run", otel.name = "guest run", fuel_limit = limits.fuel);
        let report = runtime.run(&template, request, platform.caps.clone()).instrument(run_span).await;
        tracing::debug!(outcome = ?report.outcome, fuel = report.fuel_consumed, took = ?report.duration, "run ended");
        let finish = match report.outcome {
            RunOutcome::Succeeded(value) => {
                let result = value.to_string();
                if result.len() > MAX_RESULT_BYTES {
                    let too_large = RunError::ResultTooLarge { bytes: result.len(), limit: MAX_RESULT_BYTES };
                    Finish::Failed { error: too_large.to_json().to_string() }
                } else {
                    Finish::Succeeded { result }
                }
            }
            // Our own release (shutdown) is not the customer's cancel: the job goes back.
            RunOutcome::Failed(RunError::Cancelled) if self.release.is_cancelled() => Finish::Release,
            RunOutcome::Failed(RunError::Cancelled) => {
                Finish::Cancelled { error: RunError::Cancelled.to_json().to_string() }
            }
            // The hold cut the fuel budget: the customer's limit stopped the run, not the budget.
            RunOutcome::Failed(RunError::OutOfFuel { budget }) if fuel_held.is_some_and(|held| held == budget) => {
                let message = format!("the run used the {budget} fuel units the customer's remaining limit pays for");
                Finish::Failed { error: RunError::BillingLimitReached { message }.to_json().to_string() }
            }
            RunOutcome::Failed(e) if e.is_retryable() && job.retries < job.max_retries => Finish::Requeue {
                run_after: crate::db::now_ms() + self.backoff_ms(job.retries),
                error: Some(e.to_json().to_string()),
                counts_as_retry: true,
            },
            RunOutcome::Failed(e) => Finish::Failed { error: e.to_json().to_string() },
            RunOutcome::Suspended(Suspension::Children { ids }) => Finish::WaitForChildren { ids },
            RunOutcome::Suspended(Suspension::Human { prompt }) => Finish::WaitForHuman { prompt: prompt.to_string() },
            RunOutcome::Suspended(Suspension::Render { render_id }) => Finish::WaitForRender { render_id },
            RunOutcome::Suspended(Suspension::Deferred { until_ms, .. }) => {
                Finish::Requeue { run_after: until_ms, error: None, counts_as_retry: false }
            }
            RunOutcome::Described(_) => Finish::Failed {
                error: RunError::HostFault { message: "describe ran as a job".into() }.to_json().to_string(),
            },
        };
        (finish, report.fuel_consumed)
    }

    /// The host's `cpu_estimate` charge for the fuel this run burned (whatever the outcome:
    /// the CPU was spent), written with the outcome.
    fn cpu_charge(&self, fuel: u64) -> Option<crate::db::jobs::CpuCharge> {
        let config = &self.platform.config;
        (fuel > 0 && config.cpu_usd_per_billion_fuel > 0.0).then(|| crate::db::jobs::CpuCharge {
            cost_nusd: crate::money::cost_from_usd(fuel as f64 / 1e9 * config.cpu_usd_per_billion_fuel),
            default_margin: config.default_margin,
        })
    }

    /// The customer's name and whether they have a limit, from a cache at most a second old.
    async fn customer(&self, id: &str) -> CustomerFacts {
        let fresh = |at: &std::time::Instant| at.elapsed() < Duration::from_secs(1);
        if let Some((at, facts)) = self.customers.lock().unwrap_or_else(|p| p.into_inner()).get(id)
            && fresh(at)
        {
            return facts.clone();
        }
        let facts = match self.platform.db.customer(id).await {
            Ok(Some(c)) => {
                CustomerFacts { limited: c.credit_nusd.is_some() || c.monthly_cap_nusd.is_some(), name: c.name }
            }
            // Unknown (or unreadable): treat as limited, so the run holds its fuel.
            _ => CustomerFacts { name: String::new(), limited: true },
        };
        self.customers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), (std::time::Instant::now(), facts.clone()));
        facts
    }

    /// Hold the price of the run's fuel budget when the CPU is priced and the customer has a
    /// limit. `Ok(Some(fuel))`: the run may burn at most that much (what the hold pays for);
    /// `Ok(None)`: no hold needed; `Err`: the run must not start (how the job ends instead).
    async fn hold_fuel(
        &self,
        job: &JobRow,
        lease: &str,
        customer: &CustomerFacts,
        fuel: u64,
    ) -> Result<Option<u64>, Finish> {
        let config = &self.platform.config;
        if !customer.limited || config.cpu_usd_per_billion_fuel <= 0.0 {
            return Ok(None);
        }
        let price = |fuel: u64| crate::money::cost_from_usd(fuel as f64 / 1e9 * config.cpu_usd_per_billion_fuel);
        let hold = crate::db::holds::RunFuelHold {
            customer_id: job.customer_id.clone(),
            job_id: job.id.clone(),
            template_id: job.template_id.clone(),
            lease_token: lease.to_string(),
            want_cost_nusd: price(fuel),
            min_cost_nusd: price(MIN_RUN_FUEL.min(fuel)),
            default_margin: config.default_margin,
        };
        match self.platform.db.hold_run_fuel(hold).await {
            Ok(HoldOutcome::Held(hold)) => {
                let per_fuel = config.cpu_usd_per_billion_fuel / 1e9;
                let affordable = (hold.cost_budget_nusd as f64 / 1e9 / per_fuel).floor() as u64;
                Ok(Some(affordable.min(fuel)))
            }
            Ok(HoldOutcome::Insufficient { headroom_nusd, min_charge_nusd }) => {
                let message = format!(
                    "starting a run needs {} of the customer's limit for its CPU; {} is left",
                    crate::money::dollars(min_charge_nusd),
                    crate::money::dollars(headroom_nusd.max(0))
                );
                Err(Finish::Failed { error: RunError::BillingLimitReached { message }.to_json().to_string() })
            }
            // Another worker holds the job now, or this run's hold was settled: do not run.
            Ok(HoldOutcome::LeaseLost | HoldOutcome::Settled) => Err(Finish::Release),
            Err(e) => {
                tracing::warn!(error = %e, "could not hold the run's fuel; the job goes back to the queue");
                Err(Finish::Release)
            }
        }
    }

    /// Exponential backoff with full jitter: a random delay in [base·2ⁿ/2, base·2ⁿ], capped.
    fn backoff_ms(&self, retries: i64) -> i64 {
        let config = &self.platform.config;
        let exp =
            config.retry_base.as_millis().saturating_mul(1 << retries.clamp(0, 20)).min(config.retry_max.as_millis());
        let exp = i64::try_from(exp).unwrap_or(i64::MAX);
        rand::rng().random_range(exp / 2..=exp.max(1))
    }
}

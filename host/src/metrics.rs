//! Process counters exposed on `/metrics` in the Prometheus text format.

use crate::db::jobs::Finish;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

#[derive(Default)]
pub struct Metrics {
    pub http_requests: AtomicU64,
    pub http_client_errors: AtomicU64,
    pub http_server_errors: AtomicU64,
    pub jobs_created: AtomicU64,
    pub jobs_rate_limited: AtomicU64,
    runs_succeeded: AtomicU64,
    runs_failed: AtomicU64,
    runs_cancelled: AtomicU64,
    runs_requeued: AtomicU64,
    runs_suspended: AtomicU64,
    fuel_consumed: AtomicU64,
    /// Labelled series (provider metrics): name → rendered labels → value.
    labelled: Mutex<BTreeMap<&'static str, BTreeMap<String, f64>>>,
}

/// HELP text and type of each labelled series.
const LABELLED: &[(&str, &str, &str)] = &[
    (
        "vidfarm_provider_lease_attempts_total",
        "counter",
        "Provider key lease attempts by result (granted, none_available, no_usable_key).",
    ),
    ("vidfarm_provider_lease_wait_seconds", "summary", "Time from a provider call's first lease attempt to its lease."),
    ("vidfarm_provider_cooldowns_total", "counter", "Keys put into cooldown after a rate limit, by provider."),
    ("vidfarm_provider_key_invalidations_total", "counter", "Keys marked invalid after an auth failure, by provider."),
    (
        "vidfarm_provider_platform_key_auth_errors_total",
        "counter",
        "Auth errors of the platform's own keys (cooled down, never disabled automatically), by provider.",
    ),
    ("vidfarm_provider_job_deferrals_total", "counter", "Jobs deferred for want of a free key, by provider."),
    ("vidfarm_provider_request_seconds", "summary", "Provider request latency, by provider."),
    ("vidfarm_provider_responses_total", "counter", "Provider responses by provider and status (or network)."),
];

impl Metrics {
    pub fn job_run(&self, finish: &Finish, fuel: u64) {
        let counter = match finish {
            Finish::Succeeded { .. } => &self.runs_succeeded,
            Finish::Failed { .. } => &self.runs_failed,
            Finish::Cancelled { .. } => &self.runs_cancelled,
            Finish::Requeue { .. } | Finish::Release => &self.runs_requeued,
            Finish::WaitForChildren { .. } | Finish::WaitForHuman { .. } | Finish::WaitForRender { .. } => {
                &self.runs_suspended
            }
        };
        counter.fetch_add(1, Relaxed);
        self.fuel_consumed.fetch_add(fuel, Relaxed);
    }

    /// Count one event of the labelled counter `name`.
    pub fn provider(&self, name: &'static str, labels: &[(&str, &str)]) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", v.replace('"', "'"))).collect();
        self.add(name, labels.join(","), 1.0);
    }

    /// Observe a duration of the labelled summary `name` (as `_sum` and `_count`).
    pub fn observe(&self, name: &'static str, provider: &str, took: Duration) {
        let labels = format!("provider=\"{provider}\"");
        self.add(name, format!("{labels}|sum"), took.as_secs_f64());
        self.add(name, format!("{labels}|count"), 1.0);
    }

    fn add(&self, name: &'static str, labels: String, value: f64) {
        let mut series = self.labelled.lock().unwrap_or_else(|p| p.into_inner());
        *series.entry(name).or_default().entry(labels).or_default() += value;
    }

    fn render_labelled(&self, out: &mut String) {
        let series = self.labelled.lock().unwrap_or_else(|p| p.into_inner());
        for (name, kind, help) in LABELLED {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in series.get(name).into_iter().flatten() {
                match labels.split_once('|') {
                    Some((labels, part)) => {
                        let _ = writeln!(out, "{name}_{part}{{{labels}}} {value}");
                    }
                    None => {
                        let _ = writeln!(out, "{name}{{{labels}}} {value}");
                    }
                }
            }
        }
    }

    /// The text exposition, with job counts by status and (on SQLite) the commits and WAL checkpoints from
    /// the database.
    pub(crate) fn render(&self, jobs_by_status: &[(String, i64)], wal: Option<&crate::db::WalStats>) -> String {
        let mut out = String::new();
        // One unlabelled metric: its help, its type (`counter` or `gauge`) and its value.
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        metric("vidfarm_http_requests_total", "counter", "HTTP requests answered.", self.http_requests.load(Relaxed));
        metric(
            "vidfarm_http_client_errors_total",
            "counter",
            "HTTP requests answered with a 4xx.",
            self.http_client_errors.load(Relaxed),
        );
        metric(
            "vidfarm_http_server_errors_total",
            "counter",
            "HTTP requests answered with a 5xx.",
            self.http_server_errors.load(Relaxed),
        );
        metric(
            "vidfarm_jobs_created_total",
            "counter",
            "Jobs created through the API.",
            self.jobs_created.load(Relaxed),
        );
        metric(
            "vidfarm_jobs_rate_limited_total",
            "counter",
            "Job creations refused with 429.",
            self.jobs_rate_limited.load(Relaxed),
        );
        metric(
            "vidfarm_fuel_consumed_total",
            "counter",
            "Fuel burned by template runs.",
            self.fuel_consumed.load(Relaxed),
        );
        if let Some(wal) = wal {
            let (runs, busy) = (wal.runs.load(Relaxed), wal.busy.load(Relaxed));
            let (frames, copied) = (wal.last_wal_frames.load(Relaxed), wal.last_copied_frames.load(Relaxed));
            metric(
                "vidfarm_sqlite_wal_checkpoints_total",
                "counter",
                "WAL checkpoints run off the writer's thread.",
                runs,
            );
            metric(
                "vidfarm_sqlite_wal_checkpoints_busy_total",
                "counter",
                "Checkpoints skipped: another one was running.",
                busy,
            );
            metric("vidfarm_sqlite_wal_frames", "gauge", "Frames in the WAL at the last checkpoint.", frames);
            metric(
                "vidfarm_sqlite_wal_frames_copied",
                "gauge",
                "Of those, frames in the database file after it.",
                copied,
            );
            let commits = wal.commits.load(Relaxed);
            metric("vidfarm_sqlite_commits_total", "counter", "Write transactions this process committed.", commits);
        }
        let _ = writeln!(
            out,
            "# HELP vidfarm_job_runs_total Template runs by how they ended.\n# TYPE vidfarm_job_runs_total counter"
        );
        for (outcome, c) in [
            ("succeeded", &self.runs_succeeded),
            ("failed", &self.runs_failed),
            ("cancelled", &self.runs_cancelled),
            ("requeued", &self.runs_requeued),
            ("suspended", &self.runs_suspended),
        ] {
            let _ = writeln!(out, "vidfarm_job_runs_total{{outcome=\"{outcome}\"}} {}", c.load(Relaxed));
        }
        let _ = writeln!(out, "# HELP vidfarm_jobs Jobs in the database by status.\n# TYPE vidfarm_jobs gauge");
        for (status, n) in jobs_by_status {
            let _ = writeln!(out, "vidfarm_jobs{{status=\"{status}\"}} {n}");
        }
        self.render_labelled(&mut out);
        out
    }
}

//! Process counters exposed on `/metrics` in the Prometheus text format.

use crate::db::jobs::Finish;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
}

impl Metrics {
    pub fn job_run(&self, finish: &Finish, fuel: u64) {
        let counter = match finish {
            Finish::Succeeded { .. } => &self.runs_succeeded,
            Finish::Failed { .. } => &self.runs_failed,
            Finish::Cancelled { .. } => &self.runs_cancelled,
            Finish::Requeue { .. } | Finish::Release => &self.runs_requeued,
            Finish::WaitForChildren { .. } | Finish::WaitForHuman { .. } => &self.runs_suspended,
        };
        counter.fetch_add(1, Relaxed);
        self.fuel_consumed.fetch_add(fuel, Relaxed);
    }

    /// The text exposition, with job counts by status from the database.
    pub fn render(&self, jobs_by_status: &[(String, i64)]) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        counter("vidfarm_http_requests_total", "HTTP requests answered.", self.http_requests.load(Relaxed));
        counter(
            "vidfarm_http_client_errors_total",
            "HTTP requests answered with a 4xx.",
            self.http_client_errors.load(Relaxed),
        );
        counter(
            "vidfarm_http_server_errors_total",
            "HTTP requests answered with a 5xx.",
            self.http_server_errors.load(Relaxed),
        );
        counter("vidfarm_jobs_created_total", "Jobs created through the API.", self.jobs_created.load(Relaxed));
        counter(
            "vidfarm_jobs_rate_limited_total",
            "Job creations refused with 429.",
            self.jobs_rate_limited.load(Relaxed),
        );
        counter("vidfarm_fuel_consumed_total", "Fuel burned by template runs.", self.fuel_consumed.load(Relaxed));
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
        out
    }
}

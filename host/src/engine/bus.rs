//! In-process signals between the API and the workers: "a job is due" wakes idle workers,
//! "job X changed" wakes live event streams, and cancellation reaches a running job at once.
//! Hosts that share a PostgreSQL database hear "a job is due" and cancellations from each
//! other through it (`db::signals`); processes on one SQLite file fall back to polling.

use crate::db::Db;
use crate::db::signals::Signal;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

pub struct Bus {
    /// A job became due (created, re-queued, woken): wakes this process's idle workers.
    pub job_due: Notify,
    /// Where the other hosts hear what this one says.
    db: Db,
    /// The id of a job whose state or events changed.
    changed: broadcast::Sender<String>,
    /// Fired when the process shuts down: live event streams end so the server can stop.
    pub shutdown: CancellationToken,
    /// The runs this process executes, by job id: their lease token and cancellation token.
    running: Mutex<HashMap<String, (String, CancellationToken)>>,
}

impl Bus {
    pub fn new(db: Db) -> Self {
        Self {
            job_due: Notify::new(),
            db,
            changed: broadcast::channel(1024).0,
            shutdown: CancellationToken::new(),
            running: Mutex::default(),
        }
    }
}

impl Bus {
    /// A job became due: wake the idle workers of this process and of every other host.
    pub fn job_is_due(&self) {
        self.job_due.notify_one();
        self.db.announce(Signal::JobDue);
    }

    /// A job became due through a write that tells the other hosts itself (`Db::insert_job`
    /// and `Db::finish_run`: on PostgreSQL their commits carry or owe the notification): wake
    /// the idle workers of this process only.
    pub fn job_is_due_here(&self) {
        self.job_due.notify_one();
    }

    /// These jobs were cancelled: stop their runs here and on every other host.
    pub fn cancelled(&self, job_ids: &[String]) {
        self.cancel_running(job_ids);
        self.db.announce(Signal::Cancelled(job_ids.to_vec()));
    }

    pub fn changed(&self, job_id: &str) {
        let _ = self.changed.send(job_id.to_string());
    }

    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.changed.subscribe()
    }

    pub(crate) fn track(&self, job_id: &str, lease: &str, token: CancellationToken) {
        self.lock().insert(job_id.to_string(), (lease.to_string(), token));
    }

    pub(crate) fn untrack(&self, job_id: &str) {
        self.lock().remove(job_id);
    }

    /// Cancel these jobs' runs if this process runs them.
    pub fn cancel_running(&self, job_ids: &[String]) {
        let running = self.lock();
        for id in job_ids {
            if let Some((_, token)) = running.get(id) {
                token.cancel();
            }
        }
    }

    pub(crate) fn running_jobs(&self) -> Vec<(String, String, CancellationToken)> {
        self.lock().iter().map(|(id, (lease, token))| (id.clone(), lease.clone(), token.clone())).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, CancellationToken)>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

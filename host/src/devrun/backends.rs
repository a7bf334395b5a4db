//! In-memory backends of the dev runner: events, journal, billing and child jobs live in the
//! process; storage is a real directory; providers are the dev-echo provider.

use crate::capabilities::*;
use crate::runtime::bindings::{billing::BillingEvent, jobs as wit_jobs};
use crate::runtime::{Suspension, bindings::jobs::ChildResult};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every event of every job of the session, in order, tagged with its job id.
#[derive(Default)]
pub struct MemoryEvents(pub Mutex<Vec<(String, JobEvent)>>, Mutex<std::collections::HashSet<(String, EventKey)>>);

#[async_trait]
impl EventSink for MemoryEvents {
    async fn emit(&self, job: &JobScope, key: EventKey, event: JobEvent) -> BackendResult<()> {
        if lock(&self.1).insert((job.job_id().to_string(), key)) {
            lock(&self.0).push((job.job_id().to_string(), event));
        }
        Ok(())
    }
    async fn stored_keys(&self, job_id: &str) -> BackendResult<Vec<EventKey>> {
        Ok(lock(&self.1).iter().filter(|(id, _)| id == job_id).map(|(_, key)| *key).collect())
    }
}

#[derive(Default)]
pub struct MemoryJournal(Mutex<HashMap<String, Vec<JournalEntry>>>);

#[async_trait]
impl JournalStore for MemoryJournal {
    async fn load(&self, job_id: &str) -> BackendResult<Vec<JournalEntry>> {
        Ok(lock(&self.0).get(job_id).cloned().unwrap_or_default())
    }
    async fn append(
        &self,
        job: &JobScope,
        entry: &JournalEntry,
        _: Option<&crate::db::jobs::NewJob>,
    ) -> BackendResult<()> {
        lock(&self.0).entry(job.job_id().to_string()).or_default().push(entry.clone());
        Ok(())
    }
}

/// Billing events as recorded (the dev runner charges nobody; it shows what would be billed).
#[derive(Default)]
pub struct MemoryBilling(pub Mutex<Vec<(String, BillingEvent)>>);

#[async_trait]
impl BillingLedger for MemoryBilling {
    async fn record(&self, job: &JobScope, _seq: u32, event: &BillingEvent) -> BackendResult<()> {
        lock(&self.0).push((job.job_id().to_string(), event.clone()));
        Ok(())
    }
}

pub use crate::capabilities::NoRenderer;

/// A child job of the session.
#[derive(Debug, Clone)]
pub struct ChildJob {
    pub id: String,
    pub parent: String,
    pub request: wit_jobs::ChildRequest,
    pub result: Option<ChildResult>,
}

/// Child jobs and human answers. Waits suspend the job, exactly as in the engine; the runner
/// runs what is pending and replays the parent.
#[derive(Default)]
pub struct LocalJobs {
    pub children: Mutex<Vec<ChildJob>>,
    /// Answers to `await-human`, by job id.
    pub answers: Mutex<HashMap<String, String>>,
}

#[async_trait]
impl JobControl for LocalJobs {
    async fn prepare_child(
        &self,
        job: &JobScope,
        ordinal: u32,
        request: &wit_jobs::ChildRequest,
    ) -> BackendResult<Result<PreparedChild, wit_jobs::JobsError>> {
        let mut children = lock(&self.children);
        let id = format!("{}_c{ordinal}", job.job_id());
        children.push(ChildJob { id: id.clone(), parent: job.job_id().into(), request: request.clone(), result: None });
        Ok(Ok(PreparedChild { id, row: None }))
    }

    async fn await_children(
        &self,
        job: &JobScope,
        ids: &[String],
    ) -> BackendResult<Result<Vec<ChildResult>, wit_jobs::JobsError>> {
        let children = lock(&self.children);
        let mut results = Vec::with_capacity(ids.len());
        let mut pending = Vec::new();
        for id in ids {
            match children.iter().find(|c| &c.id == id && c.parent == job.job_id()) {
                None => return Ok(Err(wit_jobs::JobsError::NotAChild(id.clone()))),
                Some(ChildJob { result: Some(result), .. }) => results.push(result.clone()),
                Some(_) => pending.push(id.clone()),
            }
        }
        if pending.is_empty() { Ok(Ok(results)) } else { Err(HostTrap::Suspend(Suspension::Children { ids: pending })) }
    }

    async fn await_human(&self, job: &JobScope, prompt: &str) -> BackendResult<Result<String, wit_jobs::JobsError>> {
        match lock(&self.answers).get(job.job_id()) {
            Some(answer) => Ok(Ok(answer.clone())),
            None => Err(HostTrap::Suspend(Suspension::Human {
                prompt: serde_json::from_str(prompt).unwrap_or(serde_json::Value::String(prompt.into())),
            })),
        }
    }
}

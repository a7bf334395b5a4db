//! `jobs`: child jobs (capped per job) and waits for children or humans, which suspend the
//! job instead of holding a worker.

use super::HostState;
use crate::runtime::bindings::jobs::{ChildRequest, ChildResult, Host, JobsError};

impl Host for HostState {
    async fn enqueue_child(&mut self, request: ChildRequest) -> wasmtime::Result<Result<String, JobsError>> {
        self.check_cancelled()?;
        if self.children >= self.limits.max_children {
            return Ok(Err(JobsError::LimitReached(format!(
                "a job may enqueue at most {} children",
                self.limits.max_children
            ))));
        }
        self.children += 1;
        let ordinal = self.children;
        // The child's row is written with the effect's journal entry, not before it.
        self.effect_creating("jobs.enqueue-child", request, |caps, job, request| async move {
            Ok(match caps.jobs.prepare_child(&job, ordinal, &request).await? {
                Ok(child) => (Ok(child.id), child.row),
                Err(refused) => (Err(refused), None),
            })
        })
        .await
    }

    async fn await_children(&mut self, ids: Vec<String>) -> wasmtime::Result<Result<Vec<ChildResult>, JobsError>> {
        self.check_cancelled()?;
        // Not journaled: results live on the child jobs themselves, and a wait that is not
        // ready suspends the run (a trap the runner turns into `waiting_for_child`).
        self.caps.jobs.await_children(&self.job, &ids).await.map_err(wasmtime::Error::new)
    }

    async fn await_human(&mut self, prompt: String) -> wasmtime::Result<Result<String, JobsError>> {
        self.check_cancelled()?;
        self.caps.jobs.await_human(&self.job, &prompt).await.map_err(wasmtime::Error::new)
    }
}

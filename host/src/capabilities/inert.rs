//! Backends for a run that must have no effects (`describe`): every call fails the run.

use super::*;
use crate::runtime::{RunError, bindings::jobs::ChildResult};

/// Refuses everything: `describe` must be pure.
pub struct Inert;

fn refuse<T>() -> BackendResult<T> {
    Err(HostTrap::Fail(RunError::ContractViolation { message: "`describe` may not use capabilities".into() }))
}

impl Capabilities {
    /// Capabilities that refuse every call.
    pub fn inert() -> Self {
        let inert = Arc::new(Inert);
        Self {
            events: inert.clone(),
            storage: inert.clone(),
            billing: inert.clone(),
            providers: inert.clone(),
            renderer: inert.clone(),
            jobs: inert.clone(),
            journal: inert,
        }
    }
}

#[async_trait]
impl EventSink for Inert {
    async fn emit(&self, _: &JobScope, _: EventKey, _: JobEvent) -> BackendResult<()> {
        refuse()
    }
    async fn stored_keys(&self, _: &str) -> BackendResult<Vec<EventKey>> {
        Ok(Vec::new())
    }
}

#[async_trait]
impl ObjectStore for Inert {
    async fn put(&self, _: &str, _: Vec<u8>, _: &str) -> Result<u64, StoreError> {
        Err(StoreError::Unavailable("no storage during describe".into()))
    }
    async fn open(&self, key: &str) -> Result<super::ObjectReader, StoreError> {
        Err(StoreError::NotFound(key.into()))
    }
    async fn public_url(&self, _: &str) -> Option<String> {
        None
    }
}

#[async_trait]
impl BillingLedger for Inert {
    async fn record(&self, _: &JobScope, _: u32, _: &wit_billing::BillingEvent) -> BackendResult<()> {
        refuse()
    }
}

#[async_trait]
impl ProviderGateway for Inert {
    async fn call(
        &self,
        _: &JobScope,
        _: u32,
        _: &ProviderCall,
    ) -> BackendResult<Result<ProviderAnswer, wit_providers::ProviderError>> {
        refuse()
    }
}

#[async_trait]
impl Renderer for Inert {
    async fn render(
        &self,
        _: &JobScope,
        _: u32,
        _: &crate::render::RenderTask,
        _: Option<&str>,
    ) -> BackendResult<Result<wit_remotion::RenderResult, wit_remotion::RenderError>> {
        refuse()
    }
}

#[async_trait]
impl JobControl for Inert {
    async fn prepare_child(
        &self,
        _: &JobScope,
        _: u32,
        _: &wit_jobs::ChildRequest,
    ) -> BackendResult<Result<PreparedChild, wit_jobs::JobsError>> {
        refuse()
    }
    async fn await_children(
        &self,
        _: &JobScope,
        _: &[String],
    ) -> BackendResult<Result<Vec<ChildResult>, wit_jobs::JobsError>> {
        refuse()
    }
    async fn await_human(&self, _: &JobScope, _: &str) -> BackendResult<Result<String, wit_jobs::JobsError>> {
        refuse()
    }
}

#[async_trait]
impl JournalStore for Inert {
    async fn load(&self, _: &str) -> BackendResult<Vec<JournalEntry>> {
        Ok(Vec::new())
    }
    async fn append(&self, _: &JobScope, _: &JournalEntry, _: Option<&crate::db::jobs::NewJob>) -> BackendResult<()> {
        refuse()
    }
}

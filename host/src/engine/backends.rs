//! The engine's capability backends: events, journal, ledger and child jobs in SQLite. Every
//! write carries the run's lease token; a write refused for a lost lease stops the run.

use super::{Bus, Catalog};
use crate::capabilities::*;
use crate::db::billing::{LedgerWrite, NewLedgerEntry, OverLimit};
use crate::db::events::NewEvent;
use crate::db::jobs::NewJob;
use crate::db::journal::Journaled;
use crate::db::storage_quota::{Recorded, StoredObject};
use crate::db::{Db, DbError};
use crate::money;
use crate::providers::provider_name;
use crate::runtime::bindings::billing::{BillingEvent, EventType};
use crate::runtime::bindings::jobs::{ChildOutcome, ChildRequest, ChildResult, JobsError};
use crate::runtime::bindings::types::TemplateError;
use crate::runtime::{RunError, Suspension};
use async_trait::async_trait;
use std::sync::Arc;

fn fault(e: DbError) -> HostTrap {
    HostTrap::Fail(RunError::HostFault { message: format!("database: {e}") })
}

fn lease_lost() -> HostTrap {
    HostTrap::Fail(RunError::HostFault { message: "the run lost its lease on the job".into() })
}

/// Job events in `job_events`; progress also lands on the job row.
pub struct DbEvents {
    pub db: Db,
    pub bus: Arc<Bus>,
}

#[async_trait]
impl EventSink for DbEvents {
    async fn emit(&self, job: &JobScope, key: EventKey, event: JobEvent) -> BackendResult<()> {
        let metadata = event.metadata.to_string();
        let artifact = event.artifact.as_ref().map(|a| a.to_string());
        let row = NewEvent {
            level: &event.level,
            message: &event.message,
            metadata: &metadata,
            progress: event.progress,
            artifact: artifact.as_deref(),
        };
        let lease = Some(job.lease_token.as_str()).filter(|t| !t.is_empty());
        // The event and (for a progress event) the job's progress, in one queued write that the
        // run does not wait for: the queue keeps it ahead of the run's later writes (its end
        // included), and a run cut short replays it under the same key.
        let (bus, job_id) = (self.bus.clone(), job.job_id().to_string());
        self.db.queue_event(job.job_id(), lease, (key.position, key.ordinal), &row, move |written| match written {
            Ok(true) => bus.changed(&job_id),
            Ok(false) => {} // already recorded by an earlier run, or the lease is gone
            Err(e) => tracing::warn!(job_id, error = %e, "a job event could not be stored"),
        });
        Ok(())
    }

    async fn stored_keys(&self, job_id: &str) -> BackendResult<Vec<EventKey>> {
        let keys = self.db.event_keys(job_id).await.map_err(fault)?;
        Ok(keys.into_iter().map(|(position, ordinal)| EventKey { position, ordinal }).collect())
    }
}

pub struct DbJournal {
    pub db: Db,
    /// Wakes the workers when an entry creates a child job.
    pub bus: Arc<Bus>,
}

#[async_trait]
impl JournalStore for DbJournal {
    async fn load(&self, job_id: &str) -> BackendResult<Vec<JournalEntry>> {
        self.db.journal(job_id).await.map_err(fault)
    }

    async fn append(&self, job: &JobScope, entry: &JournalEntry, child: Option<&NewJob>) -> BackendResult<()> {
        match self.db.append_journal_creating(job.job_id(), &job.lease_token, entry, child).await.map_err(fault)? {
            Journaled::Appended => {
                if child.is_some() {
                    self.bus.job_is_due();
                }
                Ok(())
            }
            Journaled::LeaseLost => Err(lease_lost()),
            Journaled::ChildOverLimit { headroom_nusd } => {
                let child = child.map(|c| (c.operation.as_str(), c.reserve_nusd)).unwrap_or_default();
                Err(HostTrap::Fail(RunError::BillingLimitReached {
                    message: format!(
                        "a `{}` child is estimated at {}; the customer may be charged {} more",
                        child.0,
                        money::dollars(child.1),
                        money::dollars(headroom_nusd)
                    ),
                }))
            }
        }
    }
}

/// The ledger: charge = cost × margin unless the template asks for more, never less; a
/// charge past the customer's limit fails the run with `billing_limit_reached`.
pub struct DbLedger {
    pub db: Db,
    /// The margin of customers without their own.
    pub margin: f64,
    /// Storage's cost per GB written.
    pub storage_usd_per_gb: f64,
    /// Bytes a customer may store, unless the operator set their own quota.
    pub storage_quota_bytes: u64,
}

#[async_trait]
impl BillingLedger for DbLedger {
    async fn record(&self, job: &JobScope, seq: u32, event: &BillingEvent) -> BackendResult<()> {
        let metadata = if event.metadata.trim().is_empty() { "{}" } else { &event.metadata };
        // The capability validated both amounts: finite and >= 0.
        let cost = money::cost_from_usd(event.cost_usd);
        let charge = event.charge_usd.map(money::cost_from_usd);
        let target = (event.provider.map(|p| provider_name(p.into())), event.model.as_deref());
        let effect_key = format!("{}:{seq}", job.job_id());
        let event_type = event_type(event.event_type);
        self.write(job, &effect_key, event_type, cost, charge, target, metadata, OverLimit::Refuse).await
    }

    async fn check_storage_room(&self, job: &JobScope) -> BackendResult<()> {
        let usage = self.db.storage_usage(&job.context.customer.id, self.storage_quota_bytes).await.map_err(fault)?;
        match usage.filter(|u| u.stored_bytes >= u.quota_bytes) {
            Some(usage) => Err(HostTrap::Fail(RunError::StorageQuotaExceeded {
                message: format!(
                    "the storage quota is used up: {} of {} bytes are in use",
                    usage.stored_bytes, usage.quota_bytes
                ),
            })),
            None => Ok(()),
        }
    }

    async fn record_storage_write(
        &self,
        job: &JobScope,
        effect_key: &str,
        key: &str,
        bytes: u64,
        paid_for: bool,
    ) -> BackendResult<()> {
        let object = StoredObject {
            key: key.to_string(),
            customer_id: job.context.customer.id.clone(),
            bytes,
            default_quota: self.storage_quota_bytes,
            force: paid_for,
            keep_larger: false,
        };
        if let Recorded::OverQuota { stored, quota } = self.db.record_stored_object(object).await.map_err(fault)? {
            return Err(HostTrap::Fail(RunError::StorageQuotaExceeded {
                message: format!(
                    "storing {bytes} bytes at `{key}` would pass the quota: {stored} of {quota} bytes are in use"
                ),
            }));
        }
        if self.storage_usd_per_gb <= 0.0 {
            return Ok(());
        }
        let metadata = serde_json::json!({ "bytes": bytes, "recorded_by": "host" }).to_string();
        let cost = money::cost_from_usd(bytes as f64 / 1e9 * self.storage_usd_per_gb);
        // Bytes already paid for (speech) are stored whatever the limit; the charge takes what fits.
        let over = if paid_for { OverLimit::ChargeWhatFits } else { OverLimit::Refuse };
        self.write(job, effect_key, "storage_write", cost, None, (None, None), &metadata, over).await
    }
}

impl DbLedger {
    /// A charge known before its effect (a template's own, a storage write): written only
    /// if it fits what the customer may still be charged — a hold captured at once.
    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        job: &JobScope,
        effect_key: &str,
        event_type: &str,
        cost_nusd: i64,
        charge_nusd: Option<i64>,
        (provider, model): (Option<&str>, Option<&str>),
        metadata: &str,
        over: OverLimit,
    ) -> BackendResult<()> {
        let entry = NewLedgerEntry {
            effect_key: Some(effect_key),
            customer_id: &job.context.customer.id,
            job_id: job.job_id(),
            template_id: &job.context.template_id,
            event_type,
            cost_nusd,
            charge_nusd,
            provider,
            model,
            metadata,
        };
        match self.db.insert_ledger(&entry, &job.lease_token, self.margin, over).await.map_err(fault)? {
            LedgerWrite::Written { .. } => Ok(()),
            LedgerWrite::LeaseLost => Err(lease_lost()),
            LedgerWrite::OverLimit { headroom_nusd } => Err(HostTrap::Fail(RunError::BillingLimitReached {
                message: format!(
                    "a {event_type} charge costing {} would exceed the customer's remaining limit ({} left)",
                    money::dollars(cost_nusd),
                    money::dollars(headroom_nusd.max(0))
                ),
            })),
        }
    }
}

pub fn event_type(t: EventType) -> &'static str {
    match t {
        EventType::AiGeneration => "ai_generation",
        EventType::Render => "render",
        EventType::StorageWrite => "storage_write",
        EventType::CpuEstimate => "cpu_estimate",
        EventType::Egress => "egress",
    }
}

/// Child jobs are rows of `jobs` with `parent_job_id`; waits suspend the parent.
pub struct DbJobs {
    pub db: Db,
    /// The process's job-creation rate limiter: children count like jobs created over HTTP.
    pub limiter: Arc<crate::rate_limit::RateLimiter>,
    /// Job creations per customer per minute unless the customer has its own limit.
    pub default_jobs_per_minute: u32,
    /// The margin of customers without their own (a child reserves its estimate's charge).
    pub default_margin: f64,
    /// The reservation of an operation that declares no estimate, nano-USD.
    pub default_estimate_nusd: i64,
    pub catalog: Arc<Catalog>,
    pub bus: Arc<Bus>,
}

#[async_trait]
impl JobControl for DbJobs {
    async fn prepare_child(
        &self,
        job: &JobScope,
        ordinal: u32,
        request: &ChildRequest,
    ) -> BackendResult<Result<PreparedChild, JobsError>> {
        let ctx = &job.context;
        let Ok(template) = self.catalog.load_version(&ctx.template_id, &ctx.template_version).await else {
            return Err(HostTrap::Fail(RunError::HostFault {
                message: "the job's template version is not loaded".into(),
            }));
        };
        let Some(operation) = template.operation(&request.operation) else {
            return Ok(Err(JobsError::InvalidRequest(format!(
                "this template has no operation `{}`",
                request.operation
            ))));
        };
        let Ok(payload) = serde_json::from_str::<serde_json::Value>(&request.payload) else {
            return Ok(Err(JobsError::InvalidRequest("the child payload is not JSON".into())));
        };
        let problems = template.validate_input(&request.operation, &payload).unwrap_or_default();
        if let Some(first) = problems.first() {
            return Ok(Err(JobsError::InvalidRequest(format!("payload {}: {}", first.field, first.problem))));
        }
        // The id derives from the parent and the child's ordinal, so a replay that repeats
        // this call after a crash finds the same row instead of creating a second child.
        let id = format!("{}_c{ordinal}", ctx.job_id);
        let margin = self.take_rate_token(&ctx.customer.id).await?;
        let new = NewJob {
            id: id.clone(),
            customer_id: ctx.customer.id.clone(),
            template_id: ctx.template_id.clone(),
            template_version: ctx.template_version.clone(),
            template_digest: template.digest.clone(),
            operation: request.operation.clone(),
            workflow: request.workflow.clone().unwrap_or_else(|| operation.workflow.clone()),
            tracer: format!("child-of:{}", ctx.job_id),
            payload: payload.to_string(),
            config: Some(ctx.config.clone()),
            webhook_url: None,
            parent_job_id: Some(ctx.job_id.clone()),
            idempotency_key: None,
            retry_of: None,
            max_retries: self.catalog.runtime().max_retries(operation.limits.max_retries),
            // A child reserves like a job created through the API: its operation's estimate
            // (or the host default) must fit what the customer may still be charged.
            reserve_nusd: money::charge(self.estimate_nusd(operation.estimated_cost_usd), margin),
            request_id: None,
            // The parent's capability span: the child's spans join the parent's trace.
            traceparent: crate::telemetry::current_traceparent(),
        };
        // Not inserted here: the effect's journal entry writes it (see `PreparedChild::row`).
        Ok(Ok(PreparedChild { id, row: Some(Box::new(new)) }))
    }

    async fn await_children(
        &self,
        job: &JobScope,
        ids: &[String],
    ) -> BackendResult<Result<Vec<ChildResult>, JobsError>> {
        let mut results = Vec::with_capacity(ids.len());
        let mut pending = Vec::new();
        for id in ids {
            let child = self.db.job(id).await.map_err(fault)?;
            let Some(child) = child.filter(|c| c.parent_job_id.as_deref() == Some(job.job_id())) else {
                return Ok(Err(JobsError::NotAChild(id.clone())));
            };
            let outcome = match child.status.as_str() {
                "succeeded" => ChildOutcome::Succeeded(child.result.unwrap_or_else(|| "null".into())),
                "failed" => ChildOutcome::Failed(template_error(child.error.as_deref())),
                "cancelled" => ChildOutcome::Cancelled,
                _ => {
                    pending.push(id.clone());
                    continue;
                }
            };
            results.push(ChildResult { job_id: id.clone(), outcome });
        }
        if pending.is_empty() {
            Ok(Ok(results))
        } else {
            Err(HostTrap::Suspend(Suspension::Children { ids: ids.to_vec() }))
        }
    }

    async fn await_human(&self, job: &JobScope, prompt: &str) -> BackendResult<Result<String, JobsError>> {
        let row = self.db.job(job.job_id()).await.map_err(fault)?;
        match row.and_then(|r| r.human_answer) {
            Some(answer) => Ok(Ok(answer)),
            None => Err(HostTrap::Suspend(Suspension::Human {
                prompt: serde_json::from_str(prompt).unwrap_or(serde_json::Value::String(prompt.into())),
            })),
        }
    }
}

impl DbJobs {
    /// Children count against the customer's job-creation rate like jobs created over HTTP;
    /// over it, the parent waits (deferred, its slot freed) and its replay asks again.
    /// Returns the customer's margin (a child's reservation is its estimate's charge).
    async fn take_rate_token(&self, customer_id: &str) -> BackendResult<f64> {
        let customer = self.db.customer(customer_id).await.map_err(fault)?;
        let margin = customer.as_ref().and_then(|c| c.margin).unwrap_or(self.default_margin);
        let per_minute = customer
            .and_then(|c| c.jobs_per_minute)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(self.default_jobs_per_minute);
        match self.limiter.take(customer_id, per_minute).await {
            Ok(()) => Ok(margin),
            Err(wait_seconds) => Err(HostTrap::Suspend(Suspension::Deferred {
                until_ms: crate::db::now_ms() + i64::try_from(wait_seconds).unwrap_or(60).saturating_mul(1000),
                reason: format!("the customer's job-creation rate ({per_minute}/minute) is used up; children wait"),
            })),
        }
    }

    fn estimate_nusd(&self, estimate_usd: Option<f64>) -> i64 {
        estimate_usd.and_then(money::from_usd).unwrap_or(self.default_estimate_nusd)
    }
}

/// A stored job error (`{code, message, details?}`) as the WIT error a parent receives.
fn template_error(stored: Option<&str>) -> TemplateError {
    let value: serde_json::Value = stored.and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
    TemplateError {
        code: value["code"].as_str().unwrap_or("failed").to_string(),
        message: value["message"].as_str().unwrap_or("the child job failed").to_string(),
        details: value.get("details").map(|d| d.to_string()),
    }
}

//! The provider gateway of the engine: every call leases one of the customer's keys from the
//! SQLite key queue, calls the provider's real API with it (heartbeating the lease while the
//! call runs), records the outcome on the key, and bills the call. A rate-limited or invalid
//! key gives way to the next one; with none free the job is deferred, not spun.

use super::secrets::MasterKey;
use super::wire::{CallError, Usage};
use super::{dev_echo, layout, pricing, provider_name};
use crate::capabilities::{BackendResult, HostTrap, JobScope, ProviderAnswer, ProviderCall, ProviderGateway};
use crate::config::ProviderSettings;
use crate::db::Db;
use crate::db::billing::{LedgerWrite, NewLedgerEntry};
use crate::db::key_leases::{KeyLease, KeyOutcome, LeaseOutcome, LeaseRequest};
use crate::metrics::Metrics;
use crate::runtime::bindings::providers::ProviderError;
use crate::runtime::bindings::types::Provider;
use crate::runtime::{RunError, Suspension};
use async_trait::async_trait;
use rand::RngExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct ProviderRouter {
    pub(super) db: Db,
    pub(super) http: reqwest::Client,
    pub(super) master: MasterKey,
    pub(super) settings: ProviderSettings,
    pub(super) metrics: Arc<Metrics>,
    /// Names this process on its leases (for operators reading `provider_key_leases`).
    pub(super) worker_id: String,
    /// The margin of customers without their own (for the pre-call limit check and charges).
    pub(super) margin: f64,
    /// Platform keys (environment or operator) exist for these providers.
    pub(super) platform_providers: Vec<Provider>,
}

fn fault(e: impl std::fmt::Display) -> HostTrap {
    HostTrap::Fail(RunError::HostFault { message: format!("provider gateway: {e}") })
}

/// Why a leased call ended without an answer.
enum Interrupted {
    Call(CallError),
    Cancelled,
}

#[async_trait]
impl ProviderGateway for ProviderRouter {
    async fn call(
        &self,
        job: &JobScope,
        seq: u32,
        call: &ProviderCall,
    ) -> BackendResult<Result<ProviderAnswer, ProviderError>> {
        let (provider, model) = target(call);
        if let Some(refusal) = refuse(call) {
            return Ok(Err(refusal));
        }
        self.check_limit(job, call).await?;
        let inline = match self.inline_image(call).await {
            Ok(inline) => inline,
            Err(CallError::Rejected { detail, .. }) => return Ok(Err(ProviderError::InvalidRequest(detail))),
            Err(other) => return Ok(Err(ProviderError::Upstream(format!("{other:?}")))),
        };
        let name = provider_name(provider);
        let (mut tried, mut failures) = (Vec::<String>::new(), 0u32);
        let waiting = Instant::now();
        loop {
            if job.cancel.is_cancelled() {
                return Err(HostTrap::Fail(RunError::Cancelled));
            }
            let request = LeaseRequest {
                customer_id: &job.context.customer.id,
                provider: name,
                model,
                job_id: job.job_id(),
                worker_id: &self.worker_id,
                lease_ms: millis(self.settings.lease),
                exclude: &tried,
                platform_fallback: self.platform_providers.contains(&provider),
            };
            let lease = match self.db.lease_provider_key(&request).await.map_err(fault)? {
                LeaseOutcome::Granted(lease) => lease,
                LeaseOutcome::Unavailable { retry_at_ms, cooling } => {
                    self.metrics.provider(
                        "vidfarm_provider_lease_attempts_total",
                        &[("provider", name), ("result", "none_available")],
                    );
                    self.metrics.provider("vidfarm_provider_job_deferrals_total", &[("provider", name)]);
                    return Err(self.defer(name, retry_at_ms, cooling));
                }
                LeaseOutcome::Exhausted => {
                    // Every key failed with a 5xx in this call: try them again after a pause.
                    tried.clear();
                    tokio::time::sleep(self.backoff(failures)).await;
                    continue;
                }
                LeaseOutcome::NoUsableKey { invalid: 0, paused: 0, other_models: 0 }
                    if self.settings.dev_echo && !self.platform_providers.contains(&provider) =>
                {
                    return Ok(Ok(dev_echo::answer(call)));
                }
                LeaseOutcome::NoUsableKey { invalid, paused, other_models } => {
                    self.metrics.provider(
                        "vidfarm_provider_lease_attempts_total",
                        &[("provider", name), ("result", "no_usable_key")],
                    );
                    return Ok(Err(ProviderError::NoValidKey(format!(
                        "no usable {name} key for model `{model}`: {invalid} invalid, {paused} paused, \
                         {other_models} limited to other models (add or fix keys at /customers/me/provider-keys)"
                    ))));
                }
            };
            self.metrics
                .provider("vidfarm_provider_lease_attempts_total", &[("provider", name), ("result", "granted")]);
            self.metrics.observe("vidfarm_provider_lease_wait_seconds", name, waiting.elapsed());
            let started = Instant::now();
            let result = self.call_with_lease(job, &lease, call, inline.as_ref()).await;
            self.metrics.observe("vidfarm_provider_request_seconds", name, started.elapsed());
            let outcome = match result {
                Ok((answer, usage)) => {
                    self.metrics.provider("vidfarm_provider_responses_total", &[("provider", name), ("status", "200")]);
                    let cost = pricing::cost_usd(provider, model, &usage);
                    let success = KeyOutcome::Success {
                        input_tokens: i64::from(usage.input_tokens),
                        output_tokens: i64::from(usage.output_tokens),
                        cost_usd: cost,
                    };
                    self.db.finish_key_lease(&lease, job.job_id(), name, model, &success).await.map_err(fault)?;
                    self.charge(job, seq, provider, model, &usage, cost, &lease.source).await?;
                    return Ok(Ok(answer));
                }
                Err(Interrupted::Cancelled) => {
                    self.db.release_key_lease(&lease.key_id, &lease.lease_token).await.map_err(fault)?;
                    return Err(HostTrap::Fail(RunError::Cancelled));
                }
                Err(Interrupted::Call(error)) => error,
            };
            let status = match &outcome {
                CallError::RateLimited { .. } => "429".to_string(),
                CallError::Auth { status, .. } | CallError::Rejected { status, .. } => status.to_string(),
                CallError::Transient { status, .. } => status.map_or("network".into(), |s| s.to_string()),
                CallError::BadAnswer(_) => "bad_answer".into(),
            };
            self.metrics.provider("vidfarm_provider_responses_total", &[("provider", name), ("status", &status)]);
            let (record, answer) = self.judge(name, outcome, &mut failures);
            self.db.finish_key_lease(&lease, job.job_id(), name, model, &record).await.map_err(fault)?;
            if let Some(answer) = answer {
                return Ok(Err(answer));
            }
            if let KeyOutcome::Failed { .. } = record {
                tried.push(lease.key_id.clone());
                tokio::time::sleep(self.backoff(failures)).await;
            }
        }
    }
}

impl ProviderRouter {
    /// What a failed call means for the key, and whether the template gets an answer now
    /// (otherwise the loop tries the next key).
    fn judge(&self, name: &str, error: CallError, failures: &mut u32) -> (KeyOutcome, Option<ProviderError>) {
        match error {
            CallError::RateLimited { signal, detail } => {
                self.metrics.provider("vidfarm_provider_cooldowns_total", &[("provider", name)]);
                let wait = signal.retry_after.unwrap_or(self.settings.default_cooldown);
                let wait = if signal.quota_exhausted { wait.max(self.settings.quota_cooldown) } else { wait };
                let until_ms = crate::db::now_ms().saturating_add(millis(wait));
                (KeyOutcome::RateLimited { until_ms, quota: signal.quota_exhausted, detail }, None)
            }
            CallError::Auth { status, detail } => {
                self.metrics.provider("vidfarm_provider_key_invalidations_total", &[("provider", name)]);
                (KeyOutcome::Invalid { status, detail }, None)
            }
            CallError::Rejected { status, detail } => {
                (KeyOutcome::Rejected { status, detail: detail.clone() }, Some(ProviderError::InvalidRequest(detail)))
            }
            CallError::Transient { status, detail } => {
                *failures += 1;
                let answer = (*failures >= self.settings.max_attempts).then(|| {
                    ProviderError::Upstream(format!("{name} failed {failures} times; the last time: {detail}"))
                });
                (KeyOutcome::Failed { status, detail }, answer)
            }
            CallError::BadAnswer(detail) => (
                KeyOutcome::Failed { status: Some(200), detail: detail.clone() },
                Some(ProviderError::Upstream(format!("{name}: {detail}"))),
            ),
        }
    }

    /// Decrypt the key, make the call, extend the lease while it runs, stop on cancel.
    async fn call_with_lease(
        &self,
        job: &JobScope,
        lease: &KeyLease,
        call: &ProviderCall,
        inline: Option<&super::InlineImage>,
    ) -> Result<(ProviderAnswer, Usage), Interrupted> {
        let secret = self.master.decrypt(&lease.key_id, &lease.encrypted_secret).map_err(|e| {
            Interrupted::Call(CallError::Auth { status: 0, detail: format!("the stored key is unusable: {e}") })
        })?;
        let perform = self.perform(&secret, call, inline);
        tokio::pin!(perform);
        let every = (self.settings.lease / 3).max(Duration::from_millis(20));
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                result = &mut perform => return result.map_err(Interrupted::Call),
                _ = job.cancel.cancelled() => return Err(Interrupted::Cancelled),
                _ = heartbeat.tick() => {
                    let extended = self.db.extend_key_lease(&lease.key_id, &lease.lease_token, millis(self.settings.lease)).await;
                    if let Err(e) = extended {
                        tracing::warn!(key = %lease.key_id, error = %e, "could not extend a provider key lease");
                    }
                }
            }
        }
    }

    fn defer(&self, name: &str, retry_at_ms: i64, cooling: bool) -> HostTrap {
        let now = crate::db::now_ms();
        let (until_ms, reason) = if cooling {
            (retry_at_ms, format!("every {name} key is cooling down after rate limits; the job waits until then"))
        } else {
            // Other jobs hold every key: come back soon (jittered), not at their lease expiry.
            let soon =
                now + rand::rng().random_range(millis(self.settings.busy_retry) / 2..=millis(self.settings.busy_retry));
            (soon.min(retry_at_ms), format!("every {name} key is in use by other jobs; the job waits for one"))
        };
        HostTrap::Suspend(Suspension::Deferred { until_ms: until_ms.max(now), reason })
    }

    fn backoff(&self, failures: u32) -> Duration {
        self.settings.retry_base.saturating_mul(1 << failures.min(6))
    }

    /// Refuse a call the customer could not pay for: its upper-bound cost, at their margin,
    /// must fit what they may still be charged (checked before any money is spent).
    async fn check_limit(&self, job: &JobScope, call: &ProviderCall) -> BackendResult<()> {
        let (provider, model) = target(call);
        let estimate = match call {
            ProviderCall::Text(r) => pricing::estimate_usd(
                provider,
                model,
                r.prompt.len() + r.system.as_ref().map_or(0, String::len),
                r.max_output_tokens,
                0,
            ),
            ProviderCall::Image(r) => pricing::estimate_usd(provider, model, r.prompt.len(), Some(0), 1),
            ProviderCall::Layout(r) => {
                pricing::estimate_usd(provider, model, r.overlay_text.len() + 2000, Some(512), 0)
            }
        };
        let (headroom, margin) =
            self.db.charge_headroom(&job.context.customer.id, job.job_id(), self.margin).await.map_err(fault)?;
        if estimate * margin > headroom + 1e-9 {
            return Err(HostTrap::Fail(RunError::BillingLimitReached {
                message: format!(
                    "a {} call to `{model}` may cost up to ${:.4}; the customer may be charged ${:.4} more",
                    provider_name(provider),
                    estimate * margin,
                    headroom.max(0.0)
                ),
            }));
        }
        Ok(())
    }

    /// Bill the call: an `ai_generation` event keyed by the effect, so a replay never
    /// charges it twice. The money is already spent, so the limit was checked before.
    #[allow(clippy::too_many_arguments)]
    async fn charge(
        &self,
        job: &JobScope,
        seq: u32,
        provider: Provider,
        model: &str,
        usage: &Usage,
        cost: f64,
        source: &str,
    ) -> BackendResult<()> {
        let effect_key = format!("{}:{seq}", job.job_id());
        let metadata = serde_json::json!({
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "images": usage.images,
            "key_source": source,
            "recorded_by": "host",
        })
        .to_string();
        let entry = NewLedgerEntry {
            effect_key: Some(&effect_key),
            customer_id: &job.context.customer.id,
            job_id: job.job_id(),
            template_id: &job.context.template_id,
            event_type: "ai_generation",
            cost_usd: cost,
            charge_usd: None,
            provider: Some(provider_name(provider)),
            model: Some(model),
            metadata: &metadata,
        };
        match self.db.insert_ledger(&entry, &job.lease_token, self.margin, false).await.map_err(fault)? {
            LedgerWrite::Written | LedgerWrite::OverLimit => Ok(()),
            LedgerWrite::LeaseLost => {
                Err(HostTrap::Fail(RunError::HostFault { message: "the run lost its lease on the job".into() }))
            }
        }
    }

    /// The adapter call for `call` with the plaintext key.
    async fn perform(
        &self,
        secret: &str,
        call: &ProviderCall,
        inline: Option<&super::InlineImage>,
    ) -> Result<(ProviderAnswer, Usage), CallError> {
        match call {
            ProviderCall::Text(request) => {
                let answer = match request.provider {
                    Provider::Gemini => self.gemini().text(secret, request).await?,
                    other => self.openai(other).chat(secret, request).await?,
                };
                let response = crate::runtime::bindings::providers::TextResponse {
                    text: answer.text,
                    provider: request.provider,
                    model: request.model.clone(),
                    input_tokens: answer.usage.input_tokens,
                    output_tokens: answer.usage.output_tokens,
                };
                Ok((ProviderAnswer::Text(response), answer.usage))
            }
            ProviderCall::Image(request) => {
                let (image, usage) = match request.provider {
                    Provider::Gemini => self.gemini().image(secret, request).await?,
                    other => self.openai(other).image(secret, request).await?,
                };
                Ok((ProviderAnswer::Image(image), usage))
            }
            ProviderCall::Layout(request) => {
                let answer = self.vision(secret, request, inline).await?;
                let layout = layout::parse(&answer.text)
                    .map_err(|e| CallError::BadAnswer(format!("the model's layout answer is unusable: {e}")))?;
                Ok((ProviderAnswer::Layout(layout), answer.usage))
            }
        }
    }
}

/// The provider and model a call names.
fn target(call: &ProviderCall) -> (Provider, &str) {
    match call {
        ProviderCall::Text(r) => (r.provider, &r.model),
        ProviderCall::Image(r) => (r.provider, &r.model),
        ProviderCall::Layout(r) => (r.provider, &r.model),
    }
}

/// Calls refused before any key is leased: no model, or a provider that cannot do this.
fn refuse(call: &ProviderCall) -> Option<ProviderError> {
    let (provider, model) = target(call);
    if model.trim().is_empty() {
        return Some(ProviderError::InvalidRequest("model must not be empty".into()));
    }
    match call {
        ProviderCall::Image(_) if provider == Provider::Perplexity => {
            Some(ProviderError::Unsupported("perplexity does not generate images".into()))
        }
        ProviderCall::Text(r) if r.prompt.trim().is_empty() => {
            Some(ProviderError::InvalidRequest("prompt must not be empty".into()))
        }
        _ => None,
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

//! The provider gateway of the engine: every call leases one of the customer's keys from the
//! SQLite key queue, calls the provider's real API with it (heartbeating the lease while the
//! call runs), records the outcome on the key, and bills the call. A rate-limited or invalid
//! key gives way to the next one; with none free the job is deferred, not spun.

use super::Provider;
use super::quote::{self, Quote};
use super::secrets::MasterKey;
use super::wire::{CallError, Usage};
use super::{dev_echo, layout, pricing, provider_name};
use crate::capabilities::{BackendResult, HostTrap, JobScope, ProviderAnswer, ProviderCall, ProviderGateway};
use crate::config::ProviderSettings;
use crate::db::Db;
use crate::db::holds::{Actual, Hold, HoldOutcome, HoldRequest};
use crate::db::key_leases::{KeyLease, KeyOutcome, LeaseOutcome, LeaseRequest};
use crate::metrics::Metrics;
use crate::money;
use crate::runtime::bindings::providers::ProviderError;
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

fn lease_lost() -> HostTrap {
    HostTrap::Fail(RunError::HostFault { message: "the run lost its lease on the job".into() })
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
        let effect_key = format!("{}:{seq}", job.job_id());
        let quote = Quote::of(call);
        let hold = self.hold(job, &effect_key, call, &quote).await?;
        let max_output = quote.max_output_tokens(hold.cost_budget_nusd);
        let bounded = quote::with_output_bound(call, max_output);
        let call = &bounded;
        let inline = match self.inline_image(call).await {
            Ok(inline) => inline,
            Err(CallError::Rejected { detail, .. }) => {
                self.drop_hold(&effect_key).await?;
                return Ok(Err(ProviderError::InvalidRequest(detail)));
            }
            Err(other) => {
                self.drop_hold(&effect_key).await?;
                return Ok(Err(ProviderError::Upstream(format!("{other:?}"))));
            }
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
                    self.drop_hold(&effect_key).await?;
                    return Ok(Ok(dev_echo::answer(call)));
                }
                LeaseOutcome::NoUsableKey { invalid, paused, other_models } => {
                    self.metrics.provider(
                        "vidfarm_provider_lease_attempts_total",
                        &[("provider", name), ("result", "no_usable_key")],
                    );
                    self.drop_hold(&effect_key).await?;
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
            let result = self.call_with_lease(job, &lease, call, inline.as_ref(), max_output).await;
            self.metrics.observe("vidfarm_provider_request_seconds", name, started.elapsed());
            let outcome = match result {
                Ok((answer, usage)) => {
                    self.metrics.provider("vidfarm_provider_responses_total", &[("provider", name), ("status", "200")]);
                    let success = KeyOutcome::Success {
                        input_tokens: i64::from(usage.input_tokens),
                        output_tokens: i64::from(usage.output_tokens),
                        cost_usd: pricing::cost_usd(provider, model, &usage),
                    };
                    self.db.finish_key_lease(&lease, job.job_id(), name, model, &success).await.map_err(fault)?;
                    self.note_cost(&effect_key, provider, model, &usage, max_output, &lease.source).await?;
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
            let (record, answer) = self.judge(name, &lease.source, outcome, &mut failures);
            self.db.finish_key_lease(&lease, job.job_id(), name, model, &record).await.map_err(fault)?;
            if let Some(answer) = answer {
                self.drop_hold(&effect_key).await?;
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
    pub(super) fn judge(
        &self,
        name: &str,
        source: &str,
        error: CallError,
        failures: &mut u32,
    ) -> (KeyOutcome, Option<ProviderError>) {
        match error {
            // The platform's own keys serve every tenant: an auth error never disables them
            // automatically (the operator decides); they cool down, and the operator is told.
            CallError::Auth { status, detail } if source != "customer" => {
                self.metrics.provider("vidfarm_provider_platform_key_auth_errors_total", &[("provider", name)]);
                tracing::warn!(provider = name, status, %detail, "a platform key was refused as invalid; it cools down");
                let until_ms = crate::db::now_ms().saturating_add(millis(self.settings.quota_cooldown));
                (KeyOutcome::RateLimited { until_ms, quota: true, detail }, None)
            }
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
        max_output: Option<u32>,
    ) -> Result<(ProviderAnswer, Usage), Interrupted> {
        let secret = self.master.decrypt(&lease.key_id, &lease.encrypted_secret).map_err(|e| {
            Interrupted::Call(CallError::Auth { status: 0, detail: format!("the stored key is unusable: {e}") })
        })?;
        let perform = self.perform(&secret, call, inline, max_output);
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

    pub(super) fn backoff(&self, failures: u32) -> Duration {
        self.settings.retry_base.saturating_mul(1 << failures.min(6))
    }

    /// Hold the call's worst case before any key is leased: what the template asked for, or
    /// less when less is left (the output bound then shrinks to fit); refused with
    /// `billing_limit_reached` when not even the smallest useful call fits. A replay after a
    /// crash finds the hold its first run placed.
    async fn hold(&self, job: &JobScope, effect_key: &str, call: &ProviderCall, quote: &Quote) -> BackendResult<Hold> {
        let (provider, model) = target(call);
        let request = HoldRequest {
            effect_key,
            customer_id: &job.context.customer.id,
            job_id: job.job_id(),
            template_id: &job.context.template_id,
            kind: "ai_generation",
            want_cost_nusd: quote.want_cost_nusd,
            min_cost_nusd: quote.min_cost_nusd,
            lease_token: &job.lease_token,
        };
        match self.db.place_hold(&request, self.margin).await.map_err(fault)? {
            HoldOutcome::Held(hold) => Ok(hold),
            // Captured already: the effect is journaled, so a replay never asks again.
            HoldOutcome::Settled => Err(fault("the call's hold is settled but the call is not journaled")),
            HoldOutcome::LeaseLost => Err(lease_lost()),
            HoldOutcome::Insufficient { headroom_nusd, min_charge_nusd } => {
                Err(HostTrap::Fail(RunError::BillingLimitReached {
                    message: format!(
                        "a {} call to `{model}` needs at least {} held; the customer may be charged {} more",
                        provider_name(provider),
                        money::dollars(min_charge_nusd),
                        money::dollars(headroom_nusd.max(0))
                    ),
                }))
            }
        }
    }

    /// Note the call's actual cost on its hold; the capture (an `ai_generation` ledger row,
    /// never above the hold) commits with the call's journal entry, so a replay never charges
    /// it twice and a crash before the journal leaves the hold for the replay to reuse.
    async fn note_cost(
        &self,
        effect_key: &str,
        provider: Provider,
        model: &str,
        usage: &Usage,
        max_output: Option<u32>,
        source: &str,
    ) -> BackendResult<()> {
        let metadata = serde_json::json!({
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "max_output_tokens": max_output,
            "images": usage.images,
            "characters": usage.characters,
            "key_source": source,
            "recorded_by": "host",
        })
        .to_string();
        let actual = Actual {
            cost_nusd: pricing::cost_nusd(provider, model, usage),
            provider: Some(provider_name(provider)),
            model: Some(model),
            metadata: &metadata,
        };
        self.db.note_hold_actual(effect_key, &actual, self.margin).await.map_err(fault)?;
        Ok(())
    }

    /// A call that ended without costing anything (refused, no key, a provider error) frees
    /// its hold at once instead of at the job's end.
    async fn drop_hold(&self, effect_key: &str) -> BackendResult<()> {
        self.db.drop_hold(effect_key).await.map_err(fault)
    }

    /// The adapter call for `call` with the plaintext key.
    async fn perform(
        &self,
        secret: &str,
        call: &ProviderCall,
        inline: Option<&super::InlineImage>,
        max_output: Option<u32>,
    ) -> Result<(ProviderAnswer, Usage), CallError> {
        match call {
            ProviderCall::Text(request) => {
                let answer = match Provider::from(request.provider) {
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
                let (image, usage) = match Provider::from(request.provider) {
                    Provider::Gemini => self.gemini().image(secret, request).await?,
                    other => self.openai(other).image(secret, request).await?,
                };
                Ok((ProviderAnswer::Image(image), usage))
            }
            ProviderCall::Speech(request) => {
                let (audio, usage) = match request.provider {
                    Provider::Gemini => self.gemini().speech(secret, request).await?,
                    Provider::Elevenlabs => self.elevenlabs().speech(secret, request).await?,
                    other => self.openai(other).speech(secret, request).await?,
                };
                Ok((ProviderAnswer::Speech(audio), usage))
            }
            ProviderCall::Layout(request) => {
                let answer = self.vision(secret, request, inline, max_output).await?;
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
        ProviderCall::Text(r) => (r.provider.into(), &r.model),
        ProviderCall::Image(r) => (r.provider.into(), &r.model),
        ProviderCall::Layout(r) => (r.provider.into(), &r.model),
        ProviderCall::Speech(r) => (r.provider, &r.model),
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
        ProviderCall::Speech(r) => super::speech::refusal(r).map(|why| match r.provider {
            Provider::Openai | Provider::Gemini | Provider::Elevenlabs => ProviderError::InvalidRequest(why),
            _ => ProviderError::Unsupported(why),
        }),
        _ => None,
    }
}

pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

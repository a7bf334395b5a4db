//! A video generation from submit to downloaded clip, run by the render worker while its job
//! waits (suspended, no instance). The submit leases one of the customer's keys like any
//! call; the operation's name and the key's id are reported at once (the worker stores them
//! on the generation's row before anything else), so an attempt after a crash polls the same
//! operation with the same key instead of submitting, and paying for, another.

use super::router::{Interrupted, millis};
use super::video::{Poll, Veo, VideoTask};
use super::wire::CallError;
use super::{ProviderRouter, provider_name};
use crate::db::key_leases::{KeyOutcome, LeaseOutcome, LeaseRequest};
use crate::render::{Failure, Progress, Remote};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the row's `external_id` holds for a generation: the operation and the key that
/// submitted it (an operation is visible only to its own key's project).
#[derive(Debug, Serialize, Deserialize)]
struct Submitted {
    key: String,
    operation: String,
}

/// Polls that fail in a row (network, 5xx) before the generation fails.
const MAX_POLL_FAILURES: u32 = 10;

/// The slowest poll: Veo takes 1–6 minutes, Google suggests polling every 10 s.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// Whose generation it is.
pub struct VideoScope<'a> {
    pub customer_id: &'a str,
    pub job_id: &'a str,
    pub remote: &'a Remote,
}

impl ProviderRouter {
    /// Generate `task` into `output` (at most `max_bytes`): submit or resume, poll with
    /// backoff, download. Progress stages: `submitting`, `generating`, `downloading`.
    pub async fn generate_video(
        &self,
        scope: &VideoScope<'_>,
        task: &VideoTask,
        output: &Path,
        max_bytes: u64,
        progress: &watch::Sender<Progress>,
        cancel: &CancellationToken,
    ) -> Result<(), Failure> {
        if let Some(refusal) = task.refusal() {
            return Err(Failure::Invalid(refusal));
        }
        let veo = Veo { http: &self.http, base_url: &self.settings.endpoints.gemini };
        let (secret, operation) = match &scope.remote.resume {
            Some(stored) => self.resume(stored).await?,
            None => {
                progress.send_modify(|p| p.stage = "submitting");
                self.submit(scope, task, &veo, cancel).await?
            }
        };
        progress.send_modify(|p| p.stage = "generating");
        let url = self.wait_for(&veo, &secret, &operation, cancel).await?;
        progress.send_modify(|p| {
            p.stage = "downloading";
            p.fraction = p.fraction.max(0.9);
        });
        let max = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        let mut failures = 0;
        loop {
            let download = Veo::download(&self.downloads, &secret, &url, output, max);
            let result = tokio::select! {
                result = download => result,
                _ = cancel.cancelled() => return Err(Failure::Cancelled),
            };
            match result {
                Ok(_) => return Ok(()),
                Err(CallError::Transient { detail, .. }) if failures < 3 => {
                    failures += 1;
                    tracing::warn!(%detail, "downloading the generated clip failed; trying again");
                    tokio::time::sleep(self.backoff(failures)).await;
                }
                Err(e) => return Err(Failure::Failed(format!("downloading the clip: {}", describe(&e)))),
            }
        }
    }

    /// Lease a key and submit, trying the customer's other keys on rate limits and bad keys
    /// as any call does. The operation is reported (to be stored) before anything else.
    async fn submit(
        &self,
        scope: &VideoScope<'_>,
        task: &VideoTask,
        veo: &Veo<'_>,
        cancel: &CancellationToken,
    ) -> Result<(String, String), Failure> {
        let name = provider_name(super::Provider::Gemini);
        let (mut tried, mut failures) = (Vec::<String>::new(), 0u32);
        loop {
            let request = LeaseRequest {
                customer_id: scope.customer_id,
                provider: name,
                model: &task.model,
                job_id: scope.job_id,
                worker_id: &self.worker_id,
                lease_ms: millis(self.settings.lease),
                exclude: &tried,
                platform_fallback: self.platform_providers.contains(&super::Provider::Gemini),
            };
            let outcome = self.db.lease_provider_key(&request).await.map_err(database)?;
            let lease = match outcome {
                LeaseOutcome::Granted(lease) => lease,
                LeaseOutcome::Unavailable { retry_at_ms, .. } => {
                    // Another job holds every key for a moment (or they cool down): the
                    // generation waits in its slot, not in a job.
                    let wait = (retry_at_ms - crate::db::now_ms()).clamp(50, millis(self.settings.busy_retry).max(50));
                    sleep_or_cancel(Duration::from_millis(wait as u64), cancel).await?;
                    continue;
                }
                LeaseOutcome::Exhausted => {
                    tried.clear();
                    sleep_or_cancel(self.backoff(failures), cancel).await?;
                    continue;
                }
                LeaseOutcome::NoUsableKey { invalid, paused, other_models } => {
                    return Err(Failure::NoKey(format!(
                        "no usable {name} key for model `{}`: {invalid} invalid, {paused} paused, {other_models} \
                         limited to other models (add or fix keys at /customers/me/provider-keys)",
                        task.model
                    )));
                }
            };
            let secret = self
                .master
                .decrypt(&lease.key_id, &lease.encrypted_secret)
                .map_err(|e| Failure::Failed(format!("the stored {name} key {} is unusable: {e}", lease.key_id)))?;
            let submitted = tokio::select! {
                result = veo.submit(&secret, task) => result.map_err(Interrupted::Call),
                _ = cancel.cancelled() => Err(Interrupted::Cancelled),
            };
            let error = match submitted {
                Ok(operation) => {
                    let stored = Submitted { key: lease.key_id.clone(), operation: operation.clone() };
                    if let Some(started) = &scope.remote.started {
                        let _ = started.send(Some(serde_json::to_string(&stored).unwrap_or_default()));
                    }
                    let success = KeyOutcome::Success {
                        input_tokens: 0,
                        output_tokens: 0,
                        cost_usd: task.cost_nusd() as f64 / 1e9,
                    };
                    if let Err(e) = self.db.finish_key_lease(&lease, scope.job_id, name, &task.model, &success).await {
                        tracing::warn!(error = %e, "could not record the key's use for a video submit");
                    }
                    return Ok((secret, operation));
                }
                Err(Interrupted::Cancelled) => {
                    let _ = self.db.release_key_lease(&lease.key_id, &lease.lease_token).await;
                    return Err(Failure::Cancelled);
                }
                Err(Interrupted::Call(error)) => error,
            };
            let (record, answer) = self.judge(name, &lease.source, error, &mut failures);
            self.db.finish_key_lease(&lease, scope.job_id, name, &task.model, &record).await.map_err(database)?;
            if let Some(answer) = answer {
                return Err(match answer {
                    crate::runtime::bindings::providers::ProviderError::InvalidRequest(m) => Failure::Invalid(m),
                    other => Failure::Failed(format!("{other:?}")),
                });
            }
            if let KeyOutcome::Failed { .. } = record {
                tried.push(lease.key_id.clone());
                sleep_or_cancel(self.backoff(failures), cancel).await?;
            }
        }
    }

    /// The key and operation an earlier attempt submitted: polled again, never resubmitted.
    async fn resume(&self, stored: &str) -> Result<(String, String), Failure> {
        let Submitted { key, operation } = serde_json::from_str(stored)
            .map_err(|e| Failure::Failed(format!("the stored generation `{stored}` is unreadable: {e}")))?;
        let row = self.db.provider_key_secret(&key).await.map_err(database)?;
        let Some(encrypted) = row else {
            return Err(Failure::Failed(format!(
                "the key {key} that submitted operation {operation} was deleted; the clip cannot be collected"
            )));
        };
        let secret = self
            .master
            .decrypt(&key, &encrypted)
            .map_err(|e| Failure::Failed(format!("the stored key {key} is unusable: {e}")))?;
        Ok((secret, operation))
    }

    /// Poll the operation with growing pauses until it is done; the clip's URL.
    async fn wait_for(
        &self,
        veo: &Veo<'_>,
        secret: &str,
        operation: &str,
        cancel: &CancellationToken,
    ) -> Result<String, Failure> {
        let mut every = self.settings.video_poll.max(Duration::from_millis(10));
        let mut failures = 0;
        loop {
            sleep_or_cancel(every, cancel).await?;
            every = every.mul_f64(1.5).min(MAX_POLL_INTERVAL.max(self.settings.video_poll));
            let polled = tokio::select! {
                result = veo.poll(secret, operation) => result,
                _ = cancel.cancelled() => return Err(Failure::Cancelled),
            };
            match polled {
                Ok(Poll::Pending) => failures = 0,
                Ok(Poll::Ready { download_url }) => return Ok(download_url),
                Ok(Poll::Failed(reason)) => return Err(Failure::Failed(reason)),
                Err(CallError::RateLimited { signal, .. }) => {
                    let wait = signal.retry_after.unwrap_or(self.settings.default_cooldown);
                    sleep_or_cancel(wait.min(MAX_POLL_INTERVAL), cancel).await?;
                }
                Err(CallError::Transient { detail, .. }) if failures < MAX_POLL_FAILURES => {
                    failures += 1;
                    tracing::warn!(%detail, failures, "polling the video operation failed; polling on");
                }
                Err(e) => return Err(Failure::Failed(format!("polling operation {operation}: {}", describe(&e)))),
            }
        }
    }
}

async fn sleep_or_cancel(wait: Duration, cancel: &CancellationToken) -> Result<(), Failure> {
    tokio::select! {
        _ = tokio::time::sleep(wait) => Ok(()),
        _ = cancel.cancelled() => Err(Failure::Cancelled),
    }
}

fn describe(error: &CallError) -> String {
    match error {
        CallError::RateLimited { detail, .. }
        | CallError::Auth { detail, .. }
        | CallError::Rejected { detail, .. }
        | CallError::Transient { detail, .. }
        | CallError::BadAnswer(detail) => detail.clone(),
    }
}

fn database(e: crate::db::DbError) -> Failure {
    Failure::Failed(format!("database: {e}"))
}

//! A video generation from submit to downloaded clip, run by the render worker while its job
//! waits (suspended, no instance). Never submitted twice:
//!
//! 1. Before the submit, the key chosen for it is written on the generation's row (its
//!    `external_id`, `{key, operation: null}`), under this attempt's lease.
//! 2. The submit is never interrupted (a shutdown waits for it) and never retried after an
//!    answer that may mean Google accepted it (a timeout, a 5xx other than 503).
//! 3. The operation's name is written on the row at once, and the clip's price is noted on
//!    its hold: from then on the clip is paid for, whatever happens to the job.
//!
//! An attempt that finds an operation polls it with the same key; one that finds only the
//! key with a submit in flight (the host stopped mid-submit) fails rather than risk paying for
//! a second clip; one whose earlier submit Google refused submits afresh.

use super::router::millis;
use super::video::{Poll, Veo, VideoTask};
use super::wire::CallError;
use super::{ProviderRouter, provider_name};
use crate::db::holds::Actual;
use crate::db::key_leases::{KeyLease, KeyOutcome, LeaseOutcome, LeaseRequest};
use crate::render::{Failure, Progress, Remote, RowLease};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the row's `external_id` holds for a generation: the key that submits it (an operation
/// is visible only to its own key's project) and, once Google answered, the operation.
#[derive(Debug, Serialize, Deserialize)]
struct Submitted {
    key: String,
    operation: Option<String>,
    /// A submit is (or may be) in flight: set before it is sent, cleared when Google refused it.
    #[serde(default = "in_flight")]
    submitting: bool,
}

fn in_flight() -> bool {
    true
}

/// Polls that fail in a row (network, 5xx) before the generation fails.
const MAX_POLL_FAILURES: u32 = 10;

/// The slowest poll: Veo takes 1–6 minutes, Google suggests polling every 10 s.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// The longest a generation waits for one of the customer's keys to be free: it waits in a
/// generation slot, so it may not wait for ever.
const MAX_KEY_WAIT: Duration = Duration::from_secs(600);

/// The largest clip downloaded (an 8 s 1080p clip is tens of MB).
const MAX_CLIP_BYTES: u64 = 512 << 20;

/// Which key a generation's call needs.
pub(super) struct KeyWanted<'a> {
    pub provider: super::Provider,
    pub model: &'a str,
    /// Keys that failed this call (5xx): tried again only once all have.
    pub tried: &'a [String],
    /// When the call began waiting for a key.
    pub since: Instant,
}

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
        let row = scope.remote.row.as_ref().ok_or(Failure::Failed("a generation runs only on a queued row".into()))?;
        let veo = Veo { http: &self.http, base_url: &self.settings.endpoints.gemini };
        // An operation already submitted (and paid for) is collected even if the price table
        // changed since; a new submit is checked first.
        let resumed = match &scope.remote.resume {
            Some(stored) => self.resume(scope.customer_id, stored).await?,
            None => None,
        };
        let (secret, operation) = match resumed {
            Some(found) => {
                self.note_price(row, task, "resumed").await;
                found
            }
            None => {
                if let Some(refusal) = task.refusal() {
                    return Err(Failure::Invalid(refusal));
                }
                progress.send_modify(|p| p.stage = "submitting");
                self.submit(scope, row, task, &veo, cancel).await?
            }
        };
        progress.send_modify(|p| p.stage = "generating");
        let url = match self.wait_for(&veo, &secret, &operation, cancel).await? {
            Ok(url) => url,
            Err(reason) => {
                // Google failed or withheld the clip and bills nothing for it: neither do we
                // (the price noted at the submit becomes nothing; the hold is then released).
                let metadata = serde_json::json!({ "failed": reason, "recorded_by": "host" }).to_string();
                let free =
                    Actual { cost_nusd: 0, provider: Some("gemini"), model: Some(&task.model), metadata: &metadata };
                self.db.note_hold_actual(&row.effect_key, &free, self.margin).await.map_err(database)?;
                return Err(Failure::Failed(reason));
            }
        };
        progress.send_modify(|p| {
            p.stage = "downloading";
            p.fraction = p.fraction.max(0.9);
        });
        let max = max_bytes.min(MAX_CLIP_BYTES);
        let allow_private = self.settings.allow_private_urls;
        let mut failures = 0;
        loop {
            let download = veo.download(&secret, &url, output, max, allow_private);
            let result = tokio::select! {
                result = download => result,
                _ = cancel.cancelled() => return Err(Failure::Cancelled),
            };
            match result {
                Ok(_) => return Ok(()),
                Err(CallError::Transient { detail, .. }) if failures < 3 => {
                    failures += 1;
                    tracing::warn!(%detail, "downloading the generated clip failed; trying again");
                    sleep_or_cancel(self.backoff(failures), cancel).await?;
                }
                Err(e) => return Err(Failure::Failed(format!("downloading the clip: {}", describe(&e)))),
            }
        }
    }

    /// Lease a key and submit, trying the customer's other keys on rate limits and bad keys
    /// as any call does, but never again once Google may have accepted it.
    async fn submit(
        &self,
        scope: &VideoScope<'_>,
        row: &RowLease,
        task: &VideoTask,
        veo: &Veo<'_>,
        cancel: &CancellationToken,
    ) -> Result<(String, String), Failure> {
        let name = provider_name(super::Provider::Gemini);
        let (mut tried, mut failures) = (Vec::<String>::new(), 0u32);
        let waiting = Instant::now();
        loop {
            let of = KeyWanted { provider: super::Provider::Gemini, model: &task.model, tried: &tried, since: waiting };
            let lease = match self.lease_for_generation(scope, &of, cancel).await? {
                Some(lease) => lease,
                None => {
                    tried.clear();
                    sleep_or_cancel(self.backoff(failures), cancel).await?;
                    continue;
                }
            };
            let release = || self.db.release_key_lease(&lease.key_id, &lease.lease_token);
            let secret = self.leased_secret(&lease, name).await?;
            // The key goes on the row before the submit: an attempt after a crash mid-submit
            // finds it without an operation and does not submit again.
            let marker = Submitted { key: lease.key_id.clone(), operation: None, submitting: true };
            if cancel.is_cancelled() || !self.store(row, &marker).await? {
                let _ = release().await;
                return Err(Failure::Cancelled);
            }
            // Not raced against cancel or shutdown: an answer dropped here is a clip paid for
            // and never collected.
            let error = match veo.submit(&secret, task).await {
                Ok(operation) => {
                    let stored =
                        Submitted { key: lease.key_id.clone(), operation: Some(operation.clone()), submitting: false };
                    let written = self.store(row, &stored).await;
                    self.note_price(row, task, &lease.source).await;
                    let success = KeyOutcome::Success {
                        input_tokens: 0,
                        output_tokens: 0,
                        cost_usd: task.cost_nusd() as f64 / 1e9,
                    };
                    if let Err(e) = self.db.finish_key_lease(&lease, scope.job_id, name, &task.model, &success).await {
                        tracing::warn!(error = %e, "could not record the key's use for a video submit");
                    }
                    if !written? {
                        return Err(Failure::Cancelled); // the job was cancelled meanwhile
                    }
                    return Ok((secret, operation));
                }
                Err(error) => error,
            };
            if let CallError::BadAnswer(_) = &error {
                // A 2xx: Google took it (and bills it), whatever its answer looked like.
                self.note_price(row, task, &lease.source).await;
            }
            // Only answers that say Google did not take it are tried again (a 429, a 503, a
            // refused key); a timeout or another 5xx may hide an accepted, paid operation.
            let retryable = match &error {
                CallError::RateLimited { .. } | CallError::Auth { .. } | CallError::Rejected { .. } => true,
                CallError::Transient { status, .. } => *status == Some(503),
                CallError::BadAnswer(_) => false,
            };
            let detail = describe(&error);
            let (record, answer) = self.judge(name, &lease.source, error, &mut failures);
            self.db.finish_key_lease(&lease, scope.job_id, name, &task.model, &record).await.map_err(database)?;
            if !retryable {
                return Err(Failure::Failed(format!(
                    "the submit to Veo failed and may have been accepted ({detail}); it is not sent again so that \
                     the clip is never paid for twice"
                )));
            }
            // Refused for sure: a later attempt may submit afresh.
            self.store(row, &Submitted { key: lease.key_id.clone(), operation: None, submitting: false }).await?;
            if let Some(answer) = answer {
                return Err(match answer {
                    crate::runtime::bindings::providers::ProviderError::InvalidRequest(m) => Failure::Invalid(m),
                    _ => Failure::Failed(detail),
                });
            }
            if let KeyOutcome::Failed { .. } = record {
                tried.push(lease.key_id.clone());
                sleep_or_cancel(self.backoff(failures), cancel).await?;
            }
        }
    }

    /// A key of the customer's for a generation's next call, waiting (at most
    /// `MAX_KEY_WAIT`) while all are busy or cooling; `None` when every key not yet `tried`
    /// failed (the caller pauses and tries them all again).
    /// The leased key's secret. A stored key that cannot be decrypted gives its lease back
    /// and fails the generation: no other key of the customer's would be any better.
    pub(super) async fn leased_secret(&self, lease: &KeyLease, name: &str) -> Result<String, Failure> {
        match self.master.decrypt(&lease.key_id, &lease.encrypted_secret) {
            Ok(secret) => Ok(secret),
            Err(e) => {
                let _ = self.db.release_key_lease(&lease.key_id, &lease.lease_token).await;
                Err(Failure::Failed(format!("the stored {name} key {} is unusable: {e}", lease.key_id)))
            }
        }
    }

    pub(super) async fn lease_for_generation(
        &self,
        scope: &VideoScope<'_>,
        wanted: &KeyWanted<'_>,
        cancel: &CancellationToken,
    ) -> Result<Option<KeyLease>, Failure> {
        let name = provider_name(wanted.provider);
        loop {
            let request = LeaseRequest {
                customer_id: scope.customer_id,
                provider: name,
                model: wanted.model,
                job_id: scope.job_id,
                worker_id: &self.worker_id,
                lease_ms: millis(self.settings.lease),
                exclude: wanted.tried,
                platform_fallback: self.platform_providers.contains(&wanted.provider),
            };
            match self.db.lease_provider_key(&request).await.map_err(database)? {
                LeaseOutcome::Granted(lease) => return Ok(Some(lease)),
                LeaseOutcome::Unavailable { retry_at_ms, .. } => {
                    if wanted.since.elapsed() > MAX_KEY_WAIT {
                        return Err(Failure::Failed(format!(
                            "no {name} key of the customer's was free for {} s (all busy or cooling down)",
                            MAX_KEY_WAIT.as_secs()
                        )));
                    }
                    let wait = (retry_at_ms - crate::db::now_ms()).clamp(50, millis(self.settings.busy_retry).max(50));
                    sleep_or_cancel(Duration::from_millis(wait as u64), cancel).await?;
                }
                LeaseOutcome::Exhausted => return Ok(None),
                LeaseOutcome::NoUsableKey { invalid, paused, other_models } => {
                    return Err(Failure::NoKey(format!(
                        "no usable {name} key for model `{}`: {invalid} invalid, {paused} paused, {other_models} \
                         limited to other models (add or fix keys at /customers/me/provider-keys)",
                        wanted.model
                    )));
                }
            }
        }
    }

    /// Write `submitted` on the row under this attempt's lease; false when the row is no
    /// longer this attempt's (its job was cancelled, or the lease was taken over).
    async fn store(&self, row: &RowLease, submitted: &Submitted) -> Result<bool, Failure> {
        self.write_row_state(row, &serde_json::to_string(submitted).unwrap_or_default(), "the generation's submit")
            .await
    }

    /// Write a generation's `state` (its `external_id`) on the row under this attempt's lease,
    /// retried; false when the row is no longer this attempt's. `what` names it in the error.
    pub(super) async fn write_row_state(&self, row: &RowLease, state: &str, what: &str) -> Result<bool, Failure> {
        let mut last = None;
        for wait in [0, 100, 500, 2_000] {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            match self.db.set_render_external_id(&row.render_id, &row.token, state).await {
                Ok(written) => return Ok(written),
                Err(e) => last = Some(e),
            }
        }
        Err(Failure::Failed(format!("could not record {what}: {}", last.map(|e| e.to_string()).unwrap_or_default())))
    }

    /// The clip is paid for from the moment Google accepted it: its price is noted on the
    /// hold, so the job's end captures it even if the job is cancelled or the clip is lost.
    /// Noting it again (a resumed attempt) writes the same values. Retried; a failure is logged,
    /// never a reason to abandon a clip that is already paid for.
    async fn note_price(&self, row: &RowLease, task: &VideoTask, source: &str) {
        let metadata = serde_json::json!({ "seconds": task.seconds, "key_source": source, "recorded_by": "host" });
        let metadata = metadata.to_string();
        let actual = Actual {
            cost_nusd: task.cost_nusd(),
            provider: Some("gemini"),
            model: Some(&task.model),
            metadata: &metadata,
        };
        for wait in [0, 100, 500, 2_000] {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            match self.db.note_hold_actual(&row.effect_key, &actual, self.margin).await {
                Ok(Some(_)) => return,
                Ok(None) => {
                    return tracing::warn!(
                        effect = %row.effect_key,
                        "the clip was accepted after its job had ended (cancelled mid-submit): its hold is gone, it is not charged"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "could not note the clip's price on its hold"),
            }
        }
        tracing::error!(effect = %row.effect_key, "the clip's price could not be noted: it is charged only if it is collected");
    }

    /// The key and operation an earlier attempt submitted: polled again, never resubmitted.
    /// `None`: that attempt's submit was refused, so nothing is in flight (submit afresh).
    async fn resume(&self, customer_id: &str, stored: &str) -> Result<Option<(String, String)>, Failure> {
        let Submitted { key, operation, submitting } = serde_json::from_str(stored)
            .map_err(|e| Failure::Failed(format!("the stored generation `{stored}` is unreadable: {e}")))?;
        if operation.is_none() && !submitting {
            return Ok(None);
        }
        let Some(operation) = operation else {
            return Err(Failure::Failed(
                "an earlier attempt stopped while submitting this clip to Veo, so Google may have accepted it; \
                 it is not submitted again so that it is never paid for twice"
                    .into(),
            ));
        };
        let Some(encrypted) = self.db.provider_key_secret(customer_id, &key).await.map_err(database)? else {
            return Err(Failure::Failed(format!(
                "the key {key} that submitted operation {operation} was deleted; the clip cannot be collected"
            )));
        };
        let secret = self
            .master
            .decrypt(&key, &encrypted)
            .map_err(|e| Failure::Failed(format!("the stored key {key} is unusable: {e}")))?;
        Ok(Some((secret, operation)))
    }

    /// Poll the operation with growing pauses until it is done: the clip's URL, or why Google
    /// failed it (`Ok(Err(reason))`, nothing billed).
    async fn wait_for(
        &self,
        veo: &Veo<'_>,
        secret: &str,
        operation: &str,
        cancel: &CancellationToken,
    ) -> Result<Result<String, String>, Failure> {
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
                Ok(Poll::Ready { download_url }) => return Ok(Ok(download_url)),
                Ok(Poll::Failed(reason)) => return Ok(Err(reason)),
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

pub(super) async fn sleep_or_cancel(wait: Duration, cancel: &CancellationToken) -> Result<(), Failure> {
    tokio::select! {
        _ = tokio::time::sleep(wait) => Ok(()),
        _ = cancel.cancelled() => Err(Failure::Cancelled),
    }
}

pub(super) fn describe(error: &CallError) -> String {
    match error {
        CallError::RateLimited { detail, .. }
        | CallError::Auth { detail, .. }
        | CallError::Rejected { detail, .. }
        | CallError::Transient { detail, .. }
        | CallError::BadAnswer(detail) => detail.clone(),
    }
}

pub(super) fn database(e: crate::db::DbError) -> Failure {
    Failure::Failed(format!("database: {e}"))
}

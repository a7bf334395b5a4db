//! Webhook delivery from the persisted outbox (`webhook_deliveries`, filled by triggers in
//! the statements that change jobs): sign each message (Standard Webhooks), POST it, record
//! the attempt, retry on the configured schedule (honouring `Retry-After`), disable a
//! destination that answers 410 Gone. Deliveries survive restarts: they are rows. Events of
//! one job reach one URL in order: a delivery waits while an earlier one to the same URL is
//! pending.

pub mod signing;

use crate::db::webhooks::{AttemptOutcome, DeliveryRow};
use crate::engine::Platform;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The longest `Retry-After` honoured.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(86_400);

/// Send due deliveries until `shutdown` (attempts under way finish first). Deliveries run
/// side by side, up to `max_in_flight`; a finished one frees its place at once, so a slow
/// endpoint holds only its own places (and its customer's share), never the whole sender.
pub async fn run(platform: Platform, shutdown: CancellationToken) {
    let settings = platform.config.webhooks.clone();
    let http = match reqwest::Client::builder()
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("vidfarm-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "webhooks are not delivered: no HTTP client");
            return;
        }
    };
    let hold_ms = i64::try_from(settings.timeout.as_millis()).unwrap_or(i64::MAX / 4) * 2 + 5_000;
    let poll = platform.config.poll_interval;
    let sender = std::sync::Arc::new(Sender { platform: platform.clone(), http });
    let mut in_flight = tokio::task::JoinSet::new();
    while !shutdown.is_cancelled() {
        let free = settings.max_in_flight.saturating_sub(u32::try_from(in_flight.len()).unwrap_or(u32::MAX));
        let due = if free == 0 {
            Vec::new()
        } else {
            match platform.db.claim_deliveries(free, hold_ms, settings.per_customer).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming webhook deliveries failed");
                    Vec::new()
                }
            }
        };
        let claimed = !due.is_empty();
        for delivery in due {
            let sender = sender.clone();
            in_flight.spawn(async move { sender.deliver(delivery).await });
        }
        if claimed && in_flight.len() < settings.max_in_flight as usize {
            continue; // more may be due
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
    // Attempts under way may finish within the grace period; after it they are dropped
    // (their lock runs out and the next sender sends them again: receivers dedupe by id).
    let grace = platform.config.shutdown_grace;
    let _ = tokio::time::timeout(grace, async { while in_flight.join_next().await.is_some() {} }).await;
    in_flight.abort_all();
}

struct Sender {
    platform: Platform,
    http: reqwest::Client,
}

/// What one attempt came to, before it is turned into the next step.
struct Attempt {
    status: Option<u16>,
    error: Option<String>,
    retry_after: Option<Duration>,
    /// Retrying cannot help (refused address, no secret, destination gone).
    permanent: bool,
}

impl Sender {
    async fn deliver(&self, delivery: DeliveryRow) {
        let span = tracing::info_span!("webhook.deliver", otel.kind = "client", delivery = %delivery.id,
            job_id = delivery.job_id.as_deref().unwrap_or(""), event_type = %delivery.event_type,
            attempt = delivery.attempts + 1, http.response.status_code = tracing::field::Empty);
        crate::telemetry::continue_trace(&span, delivery.traceparent.as_deref(), None);
        self.deliver_in_span(delivery).instrument(span).await
    }

    async fn deliver_in_span(&self, delivery: DeliveryRow) {
        let started = Instant::now();
        let attempt = self.attempt(&delivery).await;
        if let Some(status) = attempt.status {
            tracing::Span::current().record("http.response.status_code", status);
        }
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let now = crate::db::now_ms();
        let delivered = attempt.status.is_some_and(|s| (200..300).contains(&s));
        let gone = attempt.status == Some(410);
        let schedule = &self.platform.config.webhooks.retry_schedule;
        let next_delay = usize::try_from(delivery.attempts + 1).ok().and_then(|n| schedule.get(n)).copied();
        let (next_status, next_attempt_at) = match next_delay {
            _ if delivered => ("delivered", now),
            _ if gone || attempt.permanent => ("failed", now),
            None => ("failed", now),
            Some(delay) => {
                // Never sooner than the receiver asked (up to a day).
                let wait = attempt.retry_after.map_or(delay, |asked| delay.max(asked.min(RETRY_AFTER_CAP)));
                ("pending", now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 4))
            }
        };
        let outcome = AttemptOutcome {
            status_code: attempt.status,
            latency_ms,
            error: attempt.error.as_deref(),
            next_status,
            next_attempt_at,
            disable_destination: gone && delivery.target == "destination",
        };
        if let Err(e) = self.platform.db.record_attempt(&delivery, &outcome).await {
            tracing::warn!(delivery = %delivery.id, error = %e, "recording a webhook attempt failed; it will be retried");
        }
    }

    async fn attempt(&self, delivery: &DeliveryRow) -> Attempt {
        let permanent =
            |error: String| Attempt { status: None, error: Some(error), retry_after: None, permanent: true };
        let secret = match self.secret(delivery).await {
            Ok(secret) => secret,
            Err(error) => return permanent(error),
        };
        let allow_private = self.platform.config.webhooks.allow_private;
        let (url, addrs) = match crate::outbound::check_destination(&delivery.url, allow_private).await {
            Ok(checked) => checked,
            Err(error) => return permanent(format!("refused: {error}")),
        };
        let client = if addrs.is_empty() {
            self.http.clone()
        } else {
            match crate::outbound::pinned_client(&url, &addrs, self.platform.config.webhooks.timeout) {
                Ok(client) => client,
                Err(e) => return permanent(e.to_string()),
            }
        };
        let timestamp = crate::db::now_ms() / 1000;
        let signature = match signing::sign(&secret, &delivery.id, timestamp, &delivery.payload) {
            Ok(signature) => signature,
            Err(error) => return permanent(error),
        };
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.payload.clone())
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = crate::providers::retry_after_header(response.headers());
                let error = (!response.status().is_success()).then(|| format!("the receiver answered HTTP {status}"));
                Attempt { status: Some(status), error, retry_after, permanent: false }
            }
            Err(e) => {
                let error =
                    if e.is_timeout() { "the receiver did not answer in time".to_string() } else { e.to_string() };
                Attempt { status: None, error: Some(error), retry_after: None, permanent: false }
            }
        }
    }

    /// The plaintext `whsec_` secret that signs this delivery.
    async fn secret(&self, delivery: &DeliveryRow) -> Result<String, String> {
        let db = &self.platform.db;
        let (key_id, encrypted) = if delivery.target == "destination" {
            let id = delivery.destination_id.as_deref().ok_or("the destination was deleted")?;
            let destination =
                db.destination(id).await.map_err(|e| e.to_string())?.ok_or("the destination was deleted")?;
            if destination.status != "active" {
                return Err("the destination is disabled".into());
            }
            (destination.id, destination.encrypted_secret)
        } else {
            let encrypted = db.customer_webhook_secret(&delivery.customer_id).await.map_err(|e| e.to_string())?;
            (customer_secret_id(&delivery.customer_id), encrypted.ok_or("the customer has no webhook secret")?)
        };
        self.platform.master_key.decrypt(&key_id, &encrypted).map_err(|e| e.to_string())
    }
}

/// The associated data a customer's per-job webhook secret is encrypted under.
pub fn customer_secret_id(customer_id: &str) -> String {
    format!("webhook-secret:{customer_id}")
}

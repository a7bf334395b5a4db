//! A job's structured events: paged (`/logs`) and live as Server-Sent Events (`/events`).

use super::extract::Authenticated;
use super::jobs::owned_job;
use super::{ApiError, AppState, views};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::time::Duration;
use utoipa_axum::{router::OpenApiRouter, routes};

/// How often a live stream re-reads the database when nothing in this process wakes it.
const POLL: Duration = Duration::from_millis(500);

/// Live streams one customer may hold open at once (each costs a task and database reads).
pub const MAX_STREAMS_PER_CUSTOMER: u32 = 16;

/// How often a live stream checks that the key it was opened with is still valid.
const KEY_CHECK: Duration = Duration::from_secs(5);

/// Open live streams per customer.
#[derive(Default)]
pub struct StreamSlots(std::sync::Mutex<std::collections::HashMap<String, u32>>);

/// One open stream; dropping it (the stream ended, the client left) frees its slot.
struct StreamSlot {
    slots: std::sync::Arc<StreamSlots>,
    customer: String,
}

impl StreamSlots {
    fn take(self: &std::sync::Arc<Self>, customer: &str) -> Option<StreamSlot> {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(customer.to_string()).or_default();
        if *count >= MAX_STREAMS_PER_CUSTOMER {
            return None;
        }
        *count += 1;
        Some(StreamSlot { slots: self.clone(), customer: customer.to_string() })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.customer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.customer);
            }
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(logs)).routes(routes!(events))
}

#[derive(Deserialize)]
struct Page {
    after: Option<i64>,
    limit: Option<u32>,
}

/// A page of a job's events.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct EventPage {
    events: Vec<views::Event>,
    /// The `after` of the next page; null on the last.
    next_after: Option<i64>,
}

/// A job's structured events, oldest first.
#[utoipa::path(get, path = "/templates/{template_id}/jobs/{job_id}/logs", tag = "jobs",
    params(
        ("template_id" = String, Path), ("job_id" = String, Path),
        ("after" = Option<i64>, Query, description = "An event id: later events than it"),
        ("limit" = Option<u32>, Query, description = "1 to 1000 (default 100)"),
    ),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 404, description = "No such job", body = super::error::ErrorBody),
    ))]
async fn logs(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    Path((template_id, job_id)): Path<(String, String)>,
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    let Query(page) = query?;
    let job = owned_job(&state, &customer, &template_id, &job_id).await?;
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let rows = state.db.events_after(&job.id, page.after.unwrap_or(0), limit).await?;
    let next = rows.last().map(|r| r.id).filter(|_| rows.len() == limit as usize);
    Ok(Json(EventPage { events: rows.iter().map(views::Event::from).collect(), next_after: next }))
}

/// `log` events as they are written, `status` events when the job's status changes, and a
/// final `end` event when the job has ended (or the key it was opened with is revoked:
/// `{"reason": "key_revoked"}`). Resumable with `Last-Event-ID`. The stream's task ends as
/// soon as the client leaves; a customer holds at most [`MAX_STREAMS_PER_CUSTOMER`] at once.
#[utoipa::path(get, path = "/templates/{template_id}/jobs/{job_id}/events", tag = "jobs",
    params(
        ("template_id" = String, Path), ("job_id" = String, Path),
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `log` (an Event), `status` ({status, progress, result, error}), `end`", content_type = "text/event-stream"),
        (status = 404, description = "No such job", body = super::error::ErrorBody),
        (status = 429, description = "This customer has 5 live streams open", body = super::error::ErrorBody),
    ))]
async fn events(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    Path((template_id, job_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let job = owned_job(&state, &customer, &template_id, &job_id).await?;
    let after = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
    // The credential the stream was opened with, checked again while it lasts.
    let credential = match headers.get("vidfarm-api-key").and_then(|v| v.to_str().ok()) {
        Some(key) => Credential::Key(super::hash_key(key)),
        None => Credential::Session(
            crate::dashboard::session::read(&state, &headers, crate::dashboard::session::COOKIE)
                .map(crate::dashboard::session::token_hash)
                .unwrap_or_default(),
        ),
    };
    let Some(slot) = state.streams.take(&customer.id) else {
        return Err(ApiError::TooManyRequests(5));
    };
    let stream = async_stream(state, job.id, after, (customer.id, credential, slot));
    // A ping every few seconds: a client that left is noticed at the next write at the latest.
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(3))))
}

/// What opened a stream: an API key (its hash) or a dashboard session (its token's hash).
enum Credential {
    Key(String),
    Session(String),
}

impl Credential {
    async fn still_valid(&self, state: &AppState, customer_id: &str) -> bool {
        match self {
            Self::Key(hash) => matches!(state.db.authenticate(customer_id, hash).await, Ok(Some(_))),
            Self::Session(hash) => matches!(
                state.db.session(hash).await,
                Ok(Some(s)) if s.customer_id.as_deref() == Some(customer_id)
            ),
        }
    }
}

fn async_stream(
    state: AppState,
    job_id: String,
    mut after: i64,
    (customer_id, credential, slot): (String, Credential, StreamSlot),
) -> impl Stream<Item = Result<Event, Infallible>> {
    let mut changes = state.bus.subscribe();
    let mut last_status = String::new();
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let _slot = slot;
        let mut key_checked = tokio::time::Instant::now();
        loop {
            if key_checked.elapsed() >= KEY_CHECK {
                key_checked = tokio::time::Instant::now();
                if !credential.still_valid(&state, &customer_id).await {
                    let end = json!({ "reason": "key_revoked" }).to_string();
                    let _ = tx.send(Event::default().event("end").data(end)).await;
                    return;
                }
            }
            // The job first, then its events: a run's events are stored before its end, so a
            // job read as ended has all its events visible to the read after it. The other
            // order could read no events, then the end committed meanwhile, and close the
            // stream without the run's last logs (seen in CI for a fast `greet`).
            let job = state.db.job(&job_id).await;
            let (rows, job) = match (state.db.events_after(&job_id, after, 500).await, job) {
                (Ok(rows), Ok(Some(job))) => (rows, job),
                _ => return,
            };
            for row in &rows {
                after = row.id;
                let data = serde_json::to_string(&views::Event::from(row)).unwrap_or_default();
                let event = Event::default().id(row.id.to_string()).event("log").data(data);
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            if job.status != last_status {
                last_status = job.status.clone();
                let view = views::Job::from(&job);
                let status = json!({ "status": view.status, "progress": view.progress, "result": view.result, "error": view.error });
                if tx.send(Event::default().event("status").data(status.to_string())).await.is_err() {
                    return;
                }
            }
            if job.is_finished() && rows.is_empty() {
                let _ = tx.send(Event::default().event("end").data(json!({ "status": job.status }).to_string())).await;
                return;
            }
            if !rows.is_empty() {
                continue;
            }
            let wait = async {
                loop {
                    match changes.recv().await {
                        Ok(id) if id == job_id => return,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                        Err(_) => std::future::pending::<()>().await,
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::timeout(POLL, wait) => {}
                _ = state.bus.shutdown.cancelled() => return,
                // The client left: stop reading the database for it.
                _ = tx.closed() => return,
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) })
}

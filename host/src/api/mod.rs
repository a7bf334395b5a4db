//! The REST API: one router per resource, merged here; one error type mapped to HTTP.

mod admin;
mod billing;
mod customer_files;
mod customers;
mod error;
mod extract;
mod files;
mod job_events;
mod jobs;
pub mod openapi;
mod provider_keys;
mod system;
mod templates;
pub mod views;
mod webhooks;

pub use error::ApiError;
pub use extract::{hash_key, issue_api_key};

use crate::engine::Platform;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tracing::Instrument;

/// What every handler gets: the platform, plus the API's cache of verified keys.
#[derive(Clone)]
pub struct AppState {
    /// Behind one `Arc`: axum clones the state for every extractor of every request, and a
    /// `Platform` by value is a dozen reference counts that all the runtime's threads bump.
    pub platform: Arc<Platform>,
    pub auth_cache: Arc<extract::AuthCache>,
    /// Open live event streams per customer.
    pub streams: Arc<job_events::StreamSlots>,
}

impl std::ops::Deref for AppState {
    type Target = Platform;
    fn deref(&self) -> &Platform {
        &self.platform
    }
}

/// The REST API's routes, each registered with its OpenAPI entry (see `openapi`).
fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    openapi::base()
        .merge(system::router())
        .merge(templates::router())
        .merge(jobs::router())
        .merge(job_events::router())
        .merge(admin::router())
        .merge(billing::router())
        .merge(provider_keys::router())
        .merge(webhooks::router())
        .merge(files::router())
        .merge(customers::router())
        .merge(customer_files::router())
}

pub fn router(platform: Platform) -> Router {
    let state = AppState { platform: Arc::new(platform), auth_cache: Arc::default(), streams: Arc::default() };
    let (api, _) = routes().split_for_parts();
    let router = Router::new()
        .merge(api)
        .merge(crate::dashboard::router())
        .fallback(|| async { ApiError::not_found("not_found", "no such route") })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        // No request may hold a handler forever (a live event stream's body is not counted:
        // its handler answers at once), and the process serves a bounded number at once; the
        // rest wait their turn instead of piling up tasks.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout,
        ))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(state.config.max_concurrent_requests))
        // Text the dashboard downloads (its script, pages and JSON) is gzipped for clients that
        // ask; media, uploads, downloads and event streams go as they are.
        .layer(tower_http::compression::CompressionLayer::new().gzip(true).compress_when(compressible))
        .layer(middleware::from_fn_with_state(state.clone(), observe));
    // Browser apps of the customers' own, on the origins the operator lists, may call the API
    // with keys; preflights are answered before anything else runs. No credentials: a
    // dashboard session's cookie is never sent cross-origin.
    let router = match cors(&state.config.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.with_state(state)
}

/// Whether a response is text worth compressing: JSON, HTML, script, CSS, SVG or plain text of
/// 1 KiB to 4 MiB (a body of unknown length included). A larger stored file (a download) goes
/// as it is: compressing it would cost the host a core per download and drop its length.
fn compressible(
    _: axum::http::StatusCode,
    _: axum::http::Version,
    headers: &axum::http::HeaderMap,
    _: &axum::http::Extensions,
) -> bool {
    let kind = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let text = ["application/json", "text/html", "text/javascript", "text/css", "image/svg+xml", "text/plain"]
        .iter()
        .any(|t| kind.starts_with(t));
    let length = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    text && length.is_none_or(|n| n > 1024 && n <= 4 << 20)
}

fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    if origins.is_empty() {
        return None;
    }
    let allowed: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    let headers = ["vidfarm-user-id", "vidfarm-api-key", "x-request-id", "traceparent", "last-event-id"]
        .map(HeaderName::from_static);
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(tower_http::cors::AllowOrigin::list(allowed))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([&[header::CONTENT_TYPE][..], &headers[..]].concat())
            .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// The id of one request: the client's own `x-request-id` when it is a sane token, else a
/// new one. Handlers read it (a job keeps the id of the request that created it).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    fn of(request: &Request) -> Self {
        let given = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).filter(|id| {
            (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        });
        Self(given.map_or_else(|| format!("req_{}", uuid::Uuid::now_v7().simple()), str::to_string))
    }
}

/// Every request: an id (echoed as `x-request-id`, carried by every log line of the request),
/// one access-log line (method, route template, status, latency), and the HTTP counters.
async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let id = RequestId::of(&request);
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "(unmatched)".to_string(), |p| p.as_str().to_string());
    request.extensions_mut().insert(id.clone());
    let span = tracing::info_span!("request", request_id = %id.0, method = %method, route = %route,
        otel.name = %format!("{method} {route}"), otel.kind = "server", http.request.method = %method,
        http.route = %route, http.response.status_code = tracing::field::Empty);
    // A client's `traceparent` makes this request a step of its trace (and so the job it creates).
    if let Some(parent) = crate::telemetry::context_from_headers(request.headers()) {
        crate::telemetry::set_parent(&span, parent);
    }
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Ok(value) = axum::http::HeaderValue::from_str(&id.0) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(target: "vidfarm::access", status, latency_ms, "request"));
    let metrics = &state.metrics;
    metrics.http_requests.fetch_add(1, Relaxed);
    if response.status().is_client_error() {
        metrics.http_client_errors.fetch_add(1, Relaxed);
    } else if response.status().is_server_error() {
        metrics.http_server_errors.fetch_add(1, Relaxed);
    }
    response
}

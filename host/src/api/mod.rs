//! The REST API: one router per resource, merged here; one error type mapped to HTTP.

mod admin;
mod billing;
mod error;
mod extract;
mod files;
mod job_events;
mod jobs;
mod openapi;
mod provider_keys;
mod rate_limit;
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

/// What every handler gets: the platform, plus the API's own rate limiter.
#[derive(Clone)]
pub struct AppState {
    pub platform: Platform,
    pub limiter: Arc<rate_limit::RateLimiter>,
    pub auth_cache: Arc<extract::AuthCache>,
}

impl std::ops::Deref for AppState {
    type Target = Platform;
    fn deref(&self) -> &Platform {
        &self.platform
    }
}

pub fn router(platform: Platform) -> Router {
    let state = AppState { platform, limiter: Arc::default(), auth_cache: Arc::default() };
    Router::new()
        .merge(system::router())
        .merge(templates::router())
        .merge(jobs::router())
        .merge(job_events::router())
        .merge(admin::router())
        .merge(billing::router())
        .merge(provider_keys::router())
        .merge(webhooks::router())
        .merge(files::router())
        .fallback(|| async { ApiError::not_found("not_found", "no such route") })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics.http_requests.fetch_add(1, Relaxed);
    if response.status().is_client_error() {
        metrics.http_client_errors.fetch_add(1, Relaxed);
    } else if response.status().is_server_error() {
        metrics.http_server_errors.fetch_add(1, Relaxed);
    }
    response
}

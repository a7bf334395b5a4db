//! `/health`, `/metrics` (Prometheus text) and `/openapi.json`.

use super::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(health)).routes(routes!(metrics)).routes(routes!(openapi))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "system", security(()),
    responses((status = 200, description = "OpenAPI 3.1", body = Value)))]
async fn openapi() -> Json<Value> {
    Json(super::openapi::document())
}

/// Liveness and database reachability.
#[utoipa::path(get, path = "/health", tag = "system", security(()),
    responses((status = 200, description = "`{status, env, templates}`", body = Value)))]
async fn health(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.db.ping().await?;
    Ok(Json(json!({ "status": "ok", "env": state.config.env.as_str(), "templates": state.catalog.list().len() })))
}

/// Prometheus text; behind `authorization: Bearer $VIDFARM_METRICS_TOKEN` when one is set
/// (production refuses to start with `/metrics` public unless the operator opts in).
#[utoipa::path(get, path = "/metrics", tag = "system", security((), ("metricsToken" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format", content_type = "text/plain"),
        (status = 401, description = "A metrics token is set and this request lacks it", body = super::error::ErrorBody),
    ))]
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = &state.config.metrics_token
        && !super::extract::bearer_matches(&headers, token)
    {
        return Err(ApiError::Unauthorized("/metrics needs `authorization: Bearer <VIDFARM_METRICS_TOKEN>`".into()));
    }
    let counts = state.db.job_counts().await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render(&counts, state.db.wal_stats())))
}

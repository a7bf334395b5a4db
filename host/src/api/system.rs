//! `/health`, `/metrics` (Prometheus text) and `/openapi.json`.

use super::{ApiError, AppState};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(|| async { Json(super::openapi::document()) }))
}

async fn health(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.db.ping().await?;
    Ok(Json(json!({ "status": "ok", "env": state.config.env.as_str(), "templates": state.catalog.list().len() })))
}

/// Prometheus text; behind `authorization: Bearer $VIDFARM_METRICS_TOKEN` when one is set
/// (production refuses to start with `/metrics` public unless the operator opts in).
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = &state.config.metrics_token
        && !super::extract::bearer_matches(&headers, token)
    {
        return Err(ApiError::Unauthorized("/metrics needs `authorization: Bearer <VIDFARM_METRICS_TOKEN>`".into()));
    }
    let counts = state.db.job_counts().await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render(&counts)))
}

//! `/admin/*`: operator routes, behind `authorization: Bearer $VIDFARM_ADMIN_TOKEN` (distinct
//! from customer keys; the routes answer 404 when no token is configured).

use super::extract::JsonBody;
use super::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/templates/{template_id}/activate", post(activate))
        .route("/admin/templates/{template_id}/rollback", post(rollback))
}

/// The caller is the operator: compares digests, so timing says nothing about the token.
fn operator(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.config.admin_token else {
        return Err(ApiError::not_found("not_found", "no such route"));
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if Sha256::digest(given.as_bytes()) == Sha256::digest(token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("the operator token is missing or wrong".into()))
    }
}

fn registry_error(e: vidfarm_registry::RegistryError) -> ApiError {
    use vidfarm_registry::RegistryError::*;
    match e {
        NotFound(what) => ApiError::not_found("version_not_found", format!("no {what}")),
        Invalid { .. } => ApiError::invalid("version", e.to_string()),
        other => ApiError::Internal(other.to_string()),
    }
}

/// Switch, then follow the registry at once so this host serves the new version before the
/// response; a version that fails verification is switched back and refused with 422.
async fn switched(
    state: &AppState,
    template_id: &str,
    record: vidfarm_registry::ActivationRecord,
) -> Result<Json<Value>, ApiError> {
    let refused = state.catalog.sync().await;
    if let Some((_, error)) = refused.into_iter().find(|(id, _)| id == template_id) {
        if let Some(previous) = &record.from {
            let _ = state.catalog.registry().activate(template_id, previous, "admin-api:revert");
        }
        return Err(ApiError::Unprocessable {
            message: format!("{template_id}@{} was refused: {error}", record.to),
            details: json!([{ "field": "version", "problem": error.to_string() }]),
        });
    }
    Ok(Json(
        json!({ "template_id": template_id, "active_version": record.to, "previous_version": record.from, "at": super::views::timestamp(record.at) }),
    ))
}

async fn activate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(template_id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    operator(&state, &headers)?;
    let version =
        body.get("version").and_then(Value::as_str).ok_or_else(|| ApiError::invalid("version", "is required"))?;
    let record = state.catalog.registry().activate(&template_id, version, "admin-api").map_err(registry_error)?;
    switched(&state, &template_id, record).await
}

async fn rollback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(template_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    operator(&state, &headers)?;
    let record = state.catalog.registry().rollback(&template_id, "admin-api").map_err(registry_error)?;
    switched(&state, &template_id, record).await
}

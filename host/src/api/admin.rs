//! `/admin/*`: operator routes, behind `authorization: Bearer $VIDFARM_ADMIN_TOKEN` (distinct
//! from customer keys; the routes answer 404 when no token is configured).

use super::extract::JsonBody;
use super::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{patch, post};
use axum::{Json, Router};
use serde_json::{Value, json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/templates/{template_id}/activate", post(activate))
        .route("/admin/templates/{template_id}/rollback", post(rollback))
        .route("/admin/customers/{customer_id}/limits", patch(set_limits))
}

/// The caller is the operator: compares digests, so timing says nothing about the token.
fn operator(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.config.admin_token else {
        return Err(ApiError::not_found("not_found", "no such route"));
    };
    if super::extract::bearer_matches(headers, token) {
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

/// `PATCH /admin/customers/:id/limits` with any of `max_concurrent_jobs`, `jobs_per_minute`,
/// `max_concurrent_renders`, `max_concurrent_deliveries`: a whole number from 1, or `null`
/// for the host default; `storage_quota_bytes` likewise (bytes); absent fields stay as they are.
async fn set_limits(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(customer_id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    operator(&state, &headers)?;
    let Some(fields) = body.as_object() else { return Err(ApiError::invalid("body", "must be a JSON object")) };
    const CAPS: [&str; 5] = [
        "max_concurrent_jobs",
        "jobs_per_minute",
        "max_concurrent_renders",
        "max_concurrent_deliveries",
        "storage_quota_bytes",
    ];
    if let Some(unknown) = fields.keys().find(|k| !CAPS.contains(&k.as_str())) {
        return Err(ApiError::invalid(unknown, format!("is not a cap; the caps are {}", CAPS.join(", "))));
    }
    let cap = |name: &str| -> Result<Option<Option<i64>>, ApiError> {
        match fields.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => {
                let most = if name == "storage_quota_bytes" { 1 << 50 } else { 1_000_000_000 };
                match v.as_i64() {
                    Some(n) if (1..=most).contains(&n) => Ok(Some(Some(n))),
                    _ => Err(ApiError::invalid(name, format!("must be a whole number from 1 to {most}, or null"))),
                }
            }
        }
    };
    let changes = crate::db::customers::ShareChanges {
        max_concurrent_jobs: cap(CAPS[0])?,
        jobs_per_minute: cap(CAPS[1])?,
        max_concurrent_renders: cap(CAPS[2])?,
        max_concurrent_deliveries: cap(CAPS[3])?,
        storage_quota_bytes: cap(CAPS[4])?,
    };
    match state.db.set_customer_shares(&customer_id, &changes).await? {
        Some(customer) => Ok(Json(super::views::customer_limits(&customer))),
        None => Err(ApiError::not_found("customer_not_found", format!("no customer `{customer_id}`"))),
    }
}

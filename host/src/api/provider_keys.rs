//! `/customers/me/provider-keys`: a customer's own AI provider keys. Secrets go in once and
//! never come back out (lists show the last four characters).

use super::error::ErrorBody;
use super::extract::{Authenticated, JsonBody};
use super::{ApiError, AppState};
use crate::providers::keys::{self, Invalid, KeyInput};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(list, add)).routes(routes!(show, change, remove))
}

fn invalid((field, problem): Invalid) -> ApiError {
    ApiError::invalid(field, problem)
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found("provider_key_not_found", format!("no provider key `{id}`"))
}

/// This customer's AI provider keys (never the secret: `secret_hint` shows its last four
/// characters), with their state (`active`, `paused`, `rate_limited` until when, `invalid`).
#[utoipa::path(get, path = "/customers/me/provider-keys", tag = "provider keys",
    responses((status = 200, description = "`{data: [key]}`", body = Value)))]
async fn list(State(state): State<AppState>, Authenticated(customer): Authenticated) -> Result<Json<Value>, ApiError> {
    let rows = state.db.provider_keys(Some(&customer.id)).await?;
    Ok(Json(json!({ "data": rows.iter().map(keys::view).collect::<Vec<_>>() })))
}

/// Add an AI provider key (encrypted at rest, never returned).
#[utoipa::path(post, path = "/customers/me/provider-keys", tag = "provider keys",
    request_body = super::openapi::ProviderKeyInput,
    responses(
        (status = 201, description = "The key", body = Value),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
async fn add(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let object = body.as_object().ok_or_else(|| ApiError::invalid("body", "must be a JSON object"))?;
    if let Some(unknown) =
        object.keys().find(|k| !["provider", "secret", "label", "weight", "models"].contains(&k.as_str()))
    {
        return Err(ApiError::invalid("body", format!("has an unknown field `{unknown}`")));
    }
    let text = |field: &'static str| match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid(field, "must be a string")),
    };
    let provider = text("provider")?.ok_or_else(|| ApiError::invalid("provider", "is required"))?;
    let secret = text("secret")?.ok_or_else(|| ApiError::invalid("secret", "is required"))?;
    let weight = match object.get("weight") {
        None | Some(Value::Null) => None,
        Some(w) => Some(w.as_i64().ok_or_else(|| ApiError::invalid("weight", "must be an integer"))?),
    };
    let models = match object.get("models") {
        None | Some(Value::Null) => Vec::new(),
        Some(m) => keys::strings("models", m).map_err(invalid)?,
    };
    let input = KeyInput::new(&provider, &secret, text("label")?, weight, models).map_err(invalid)?;
    let id = input.store(&state.db, &state.master_key, &customer.id).await?;
    let row = state.db.provider_key(Some(&customer.id), &id).await?.ok_or_else(|| not_found(&id))?;
    Ok((StatusCode::CREATED, Json(keys::view(&row))))
}

/// One provider key.
#[utoipa::path(get, path = "/customers/me/provider-keys/{key_id}", tag = "provider keys",
    params(("key_id" = String, Path)),
    responses(
        (status = 200, description = "The key", body = Value),
        (status = 404, description = "No such key", body = ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    Path(key_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = state.db.provider_key(Some(&customer.id), &key_id).await?.ok_or_else(|| not_found(&key_id))?;
    Ok(Json(keys::view(&row)))
}

/// Change a key: label, weight, models, status (`active`/`paused`), secret (rotation).
#[utoipa::path(patch, path = "/customers/me/provider-keys/{key_id}", tag = "provider keys",
    params(("key_id" = String, Path)),
    request_body = super::openapi::ProviderKeyChange,
    responses(
        (status = 200, description = "The key", body = Value),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
async fn change(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    Path(key_id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    if state.db.provider_key(Some(&customer.id), &key_id).await?.is_none() {
        return Err(not_found(&key_id));
    }
    let patch = keys::patch_from_json(&body, &state.master_key, &key_id).map_err(invalid)?;
    if !state.db.update_provider_key(Some(&customer.id), &key_id, patch).await? {
        return Err(not_found(&key_id));
    }
    let row = state.db.provider_key(Some(&customer.id), &key_id).await?.ok_or_else(|| not_found(&key_id))?;
    Ok(Json(keys::view(&row)))
}

/// Delete a key.
#[utoipa::path(delete, path = "/customers/me/provider-keys/{key_id}", tag = "provider keys",
    params(("key_id" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such key", body = ErrorBody),
    ))]
async fn remove(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    Path(key_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.db.delete_provider_key(Some(&customer.id), &key_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&key_id))
    }
}

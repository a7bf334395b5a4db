//! `/customers/me/*`: the signed-in customer's own API keys — list (last four characters and
//! last use, never the key), create (the key is shown once), revoke.

use super::error::ErrorBody;
use super::extract::{Authenticated, JsonBody};
use super::{ApiError, AppState, views};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The most live keys a customer holds (each is a credential to watch).
const MAX_LIVE_KEYS: usize = 50;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(me)).routes(routes!(list, create)).routes(routes!(revoke))
}

/// Who the credentials belong to.
#[utoipa::path(get, path = "/customers/me", tag = "account",
    responses((status = 200, description = "`{customer_id, name, email}`", body = Value)))]
async fn me(State(state): State<AppState>, Authenticated(customer): Authenticated) -> Result<Json<Value>, ApiError> {
    let email = state.db.account_of(&customer.id).await?.map(|a| a.email);
    Ok(Json(json!({ "customer_id": customer.id, "name": customer.name, "email": email })))
}

fn key_view(key: &crate::db::customers::ApiKey) -> Value {
    json!({
        "id": key.id,
        "label": key.label,
        "prefix": key.prefix,
        "last_four": key.last_four,
        "created_at": views::timestamp(key.created_at),
        "last_used_at": key.last_used_at.map_or(Value::Null, views::timestamp),
        "revoked_at": key.revoked_at.map_or(Value::Null, views::timestamp),
    })
}

/// This customer's API keys: label, prefix, last four characters, created, last used,
/// revoked (never the key).
#[utoipa::path(get, path = "/customers/me/api-keys", tag = "account",
    responses((status = 200, description = "`{keys: [...]}`", body = Value)))]
async fn list(State(state): State<AppState>, Authenticated(customer): Authenticated) -> Result<Json<Value>, ApiError> {
    let keys = state.db.api_keys(&customer.id).await?;
    Ok(Json(json!({ "keys": keys.iter().map(key_view).collect::<Vec<_>>() })))
}

/// A new API key, shown in this response only. Made with a dashboard session, it needs the
/// account's password too.
#[utoipa::path(post, path = "/customers/me/api-keys", tag = "account",
    request_body = super::openapi::ApiKeyRequest,
    responses(
        (status = 201, description = "The key's record with `key` and `customer_id`", body = Value),
        (status = 403, description = "A session's `password` is wrong", body = ErrorBody),
        (status = 409, description = "50 live keys already", body = ErrorBody),
        (status = 422, description = "`label` is invalid, or a session gave no `password`", body = ErrorBody),
        (status = 429, description = "10 passwords tried this minute", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if let Some(unknown) =
        body.as_object().and_then(|o| o.keys().find(|k| !["label", "password"].contains(&k.as_str())))
    {
        return Err(ApiError::invalid(unknown, "is not a field of a key request"));
    }
    super::extract::confirm_session_password(&state, &headers, &customer.id, &body).await?;
    let label = match body.get("label") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 100 => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Some(Value::String(_)) => return Err(ApiError::invalid("label", "must be at most 100 characters")),
        Some(_) => return Err(ApiError::invalid("label", "must be a string")),
    };
    let live = state.db.api_keys(&customer.id).await?.iter().filter(|k| k.revoked_at.is_none()).count();
    if live >= MAX_LIVE_KEYS {
        return Err(ApiError::Conflict {
            code: "too_many_keys",
            message: format!("a customer holds at most {MAX_LIVE_KEYS} live keys: revoke one first"),
        });
    }
    let (key, record) = super::extract::issue_api_key_record(&state.db, &customer.id, label).await?;
    let mut view = key_view(&record);
    view["key"] = json!(key);
    view["customer_id"] = json!(customer.id);
    Ok((StatusCode::CREATED, Json(view)))
}

/// Revoke a key (requests with it fail at once).
#[utoipa::path(delete, path = "/customers/me/api-keys/{key_id}", tag = "account",
    params(("key_id" = String, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such live key", body = ErrorBody),
    ))]
async fn revoke(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    Path(key_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.db.revoke_customer_api_key(&customer.id, &key_id).await? {
        state.auth_cache.forget_customer(&customer.id);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("key_not_found", format!("no live key `{key_id}`")))
    }
}

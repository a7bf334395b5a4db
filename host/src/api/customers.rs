//! `/customers/me/*`: the signed-in customer's own API keys — list (last four characters and
//! last use, never the key), create (the key is shown once), revoke.

use super::extract::{Authenticated, JsonBody};
use super::{ApiError, AppState, views};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{Value, json};

/// The most live keys a customer holds (each is a credential to watch).
const MAX_LIVE_KEYS: usize = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/customers/me", get(me))
        .route("/customers/me/api-keys", get(list).post(create))
        .route("/customers/me/api-keys/{key_id}", delete(revoke))
}

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

async fn list(State(state): State<AppState>, Authenticated(customer): Authenticated) -> Result<Json<Value>, ApiError> {
    let keys = state.db.api_keys(&customer.id).await?;
    Ok(Json(json!({ "keys": keys.iter().map(key_view).collect::<Vec<_>>() })))
}

async fn create(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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

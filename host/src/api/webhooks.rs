//! `/customers/me/webhooks`, `/customers/me/webhook-deliveries` and
//! `/customers/me/webhook-secret`: where a customer's job events go, and what happened to
//! each delivery. Secrets are shown once, when created.

use super::error::ErrorBody;
use super::extract::{Authenticated, JsonBody};
use super::views::timestamp;
use super::{ApiError, AppState};
use crate::db::webhooks::{DeliveryRow, DestinationRow};
use crate::webhooks::{customer_secret_id, signing};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list, add))
        .routes(routes!(remove))
        .routes(routes!(send_test))
        .routes(routes!(rotate_secret))
        .routes(routes!(deliveries))
        .routes(routes!(delivery))
        .routes(routes!(redeliver))
}

/// An http(s) URL the host may send to: in production, public addresses only (SSRF).
pub async fn check_url(state: &AppState, field: &str, url: &str) -> Result<String, ApiError> {
    if url.len() > 2048 || url.contains(char::is_whitespace) {
        return Err(ApiError::invalid(field, "must be an absolute http:// or https:// URL of at most 2048 characters"));
    }
    let (parsed, _) = crate::outbound::check_destination(url, state.config.webhooks.allow_private)
        .await
        .map_err(|problem| ApiError::invalid(field, problem))?;
    // Normalising percent-encodes non-ASCII text (up to 9 bytes per character): the limit is
    // on what is stored and sent.
    let normalised = parsed.to_string();
    if normalised.len() > 2048 {
        return Err(ApiError::invalid(field, "must be at most 2048 characters once percent-encoded"));
    }
    Ok(normalised)
}

/// The customer's per-job webhook secret, created if there is none; returned only if this
/// call created it.
pub async fn ensure_customer_secret(state: &AppState, customer_id: &str) -> Result<Option<String>, ApiError> {
    if state.db.customer_webhook_secret(customer_id).await?.is_some() {
        return Ok(None);
    }
    let secret = signing::new_secret();
    let encrypted = state.master_key.encrypt(&customer_secret_id(customer_id), &secret);
    Ok(state.db.set_customer_webhook_secret(customer_id, &encrypted, false).await?.then_some(secret))
}

fn destination_view(row: &DestinationRow) -> Value {
    json!({
        "id": row.id, "url": row.url, "description": row.description, "status": row.status,
        "disabled_reason": row.disabled_reason, "created_at": timestamp(row.created_at),
    })
}

/// Webhook destinations: every event of all this customer's jobs goes to each.
#[utoipa::path(get, path = "/customers/me/webhooks", tag = "webhooks",
    responses((status = 200, description = "`{data: [destination]}`", body = Value)))]
async fn list(State(state): State<AppState>, Authenticated(customer): Authenticated) -> Result<Json<Value>, ApiError> {
    let rows = state.db.destinations(&customer.id).await?;
    Ok(Json(json!({ "data": rows.iter().map(destination_view).collect::<Vec<_>>() })))
}

/// Add a destination; its `whsec_` secret is in this response only.
#[utoipa::path(post, path = "/customers/me/webhooks", tag = "webhooks",
    request_body = super::openapi::WebhookInput,
    responses(
        (status = 201, description = "The destination with `secret`", body = Value),
        (status = 403, description = "A session's `password` is wrong", body = ErrorBody),
        (status = 422, description = "The URL is invalid or (in production) not public, or a session gave no `password`", body = ErrorBody),
        (status = 429, description = "10 passwords tried this minute", body = ErrorBody),
    ))]
async fn add(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let object = body.as_object().ok_or_else(|| ApiError::invalid("body", "must be a JSON object"))?;
    if let Some(unknown) = object.keys().find(|k| !["url", "description", "password"].contains(&k.as_str())) {
        return Err(ApiError::invalid("body", format!("has an unknown field `{unknown}`")));
    }
    super::extract::confirm_session_password(&state, &headers, &customer.id, &body).await?;
    let url = object.get("url").and_then(Value::as_str).ok_or_else(|| ApiError::invalid("url", "is required"))?;
    let url = check_url(&state, "url", url).await?;
    let description = match object.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 200 => Some(s.as_str()),
        Some(_) => return Err(ApiError::invalid("description", "must be a string of at most 200 characters")),
    };
    let id = format!("whd_{}", uuid::Uuid::now_v7().simple());
    let secret = signing::new_secret();
    let encrypted = state.master_key.encrypt(&id, &secret);
    state.db.insert_destination(&id, &customer.id, &url, description, &encrypted).await?;
    let row = state.db.destination(&id).await?.ok_or_else(|| ApiError::Internal("the destination vanished".into()))?;
    let mut view = destination_view(&row);
    view["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(view)))
}

/// Remove a destination.
#[utoipa::path(delete, path = "/customers/me/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such destination", body = ErrorBody),
    ))]
async fn remove(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.db.delete_destination(&customer.id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("webhook_not_found", format!("no webhook destination `{id}`")))
    }
}

/// Test events one customer may send per minute: each is an outbound request from the host, so
/// a loop of clicks or a script cannot grow the outbox or hammer a URL without end.
const TEST_EVENTS_PER_MINUTE: u32 = 10;

/// Queue a `webhook.test` event to one destination (it shows in the delivery log).
#[utoipa::path(post, path = "/customers/me/webhooks/{id}/test", tag = "webhooks",
    params(("id" = String, Path)),
    responses(
        (status = 202, description = "`{id, status}`", body = Value),
        (status = 404, description = "No such active destination", body = ErrorBody),
        (status = 429, description = "10 test events this minute; see Retry-After", body = ErrorBody),
    ))]
async fn send_test(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let bucket = format!("webhook-test:{}", customer.id);
    state.limiter.take(&bucket, TEST_EVENTS_PER_MINUTE).await.map_err(ApiError::TooManyRequests)?;
    match state.db.insert_test_delivery(&customer.id, &id).await? {
        Some(delivery) => Ok((StatusCode::ACCEPTED, Json(json!({ "id": delivery, "status": "pending" })))),
        None => Err(ApiError::not_found("webhook_not_found", format!("no active webhook destination `{id}`"))),
    }
}

/// A new secret for deliveries to jobs' own `webhook_url`s (the old one stops at once). The
/// body may be empty; a dashboard session sends `{"password"}`.
#[utoipa::path(post, path = "/customers/me/webhook-secret", tag = "webhooks",
    request_body(content = Option<super::openapi::PasswordConfirmation>, description = "Only with a dashboard session"),
    responses(
        (status = 200, description = "`{secret}`, shown once", body = Value),
        (status = 403, description = "A session's `password` is wrong", body = ErrorBody),
        (status = 422, description = "A session gave no `password`", body = ErrorBody),
        (status = 429, description = "10 passwords tried this minute", body = ErrorBody),
    ))]
async fn rotate_secret(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    super::extract::confirm_session_password(&state, &headers, &customer.id, &body).await?;
    let secret = signing::new_secret();
    let encrypted = state.master_key.encrypt(&customer_secret_id(&customer.id), &secret);
    state.db.set_customer_webhook_secret(&customer.id, &encrypted, true).await?;
    Ok(Json(json!({ "secret": secret })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DeliveryQuery {
    /// Only one job's deliveries.
    job_id: Option<String>,
    /// `pending`, `delivered` or `failed`.
    status: Option<String>,
    /// 1 to 500 (default 100).
    limit: Option<u32>,
}

async fn delivery_view(state: &AppState, row: &DeliveryRow) -> Result<Value, ApiError> {
    let attempts = state.db.attempts(&row.id).await?;
    Ok(json!({
        "id": row.id, "job_id": row.job_id, "event_type": row.event_type, "target": row.target,
        "destination_id": row.destination_id, "url": row.url, "status": row.status,
        "attempt_count": row.attempts, "last_status": row.last_status, "last_error": row.last_error,
        "next_attempt_at": (row.status == "pending").then(|| timestamp(row.next_attempt_at)),
        "created_at": timestamp(row.created_at), "delivered_at": row.delivered_at.map(timestamp),
        "payload": serde_json::from_str::<Value>(&row.payload).unwrap_or(Value::Null),
        "attempts": attempts.iter().map(|a| json!({
            "attempt": a.attempt, "at": timestamp(a.at), "status_code": a.status_code,
            "latency_ms": a.latency_ms, "error": a.error,
        })).collect::<Vec<_>>(),
    }))
}

/// Webhook deliveries, newest first, with every attempt.
#[utoipa::path(get, path = "/customers/me/webhook-deliveries", tag = "webhooks",
    params(DeliveryQuery),
    responses(
        (status = 200, description = "`{data: [delivery]}`", body = Value),
        (status = 400, description = "Bad query", body = ErrorBody),
    ))]
async fn deliveries(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    query: Result<Query<DeliveryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    if let Some(status) = &query.status
        && !["pending", "delivered", "failed"].contains(&status.as_str())
    {
        return Err(ApiError::BadRequest {
            code: "invalid_query",
            message: format!("`status` must be pending, delivered or failed, not `{status}`"),
        });
    }
    let limit = query.limit.unwrap_or(100).clamp(1, 500);
    let rows = state.db.deliveries(&customer.id, query.job_id.as_deref(), query.status.as_deref(), limit).await?;
    let mut data = Vec::with_capacity(rows.len());
    for row in &rows {
        data.push(delivery_view(&state, row).await?);
    }
    Ok(Json(json!({ "data": data })))
}

/// One delivery with its attempts.
#[utoipa::path(get, path = "/customers/me/webhook-deliveries/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The delivery", body = Value),
        (status = 404, description = "No such delivery", body = ErrorBody),
    ))]
async fn delivery(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = state.db.delivery(&customer.id, &id).await?.ok_or_else(|| not_found(&id))?;
    Ok(Json(delivery_view(&state, &row).await?))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found("delivery_not_found", format!("no webhook delivery `{id}`"))
}

/// Send a delivery again now (same `webhook-id`).
#[utoipa::path(post, path = "/customers/me/webhook-deliveries/{id}/redeliver", tag = "webhooks",
    params(("id" = String, Path)),
    responses(
        (status = 202, description = "Queued", body = Value),
        (status = 404, description = "No such delivery", body = ErrorBody),
    ))]
async fn redeliver(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !state.db.redeliver(&customer.id, &id).await? {
        return Err(not_found(&id));
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id, "status": "pending" }))))
}

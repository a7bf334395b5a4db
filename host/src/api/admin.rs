//! `/admin/*`: operator routes, behind `authorization: Bearer $VIDFARM_ADMIN_TOKEN` (distinct
//! from customer keys; the routes answer 404 when no token is configured), or an operator's
//! dashboard session (signed in with that token) with its CSRF token.

use super::error::ErrorBody;
use super::extract::JsonBody;
use super::{ApiError, AppState};
use crate::engine::switch::{self, Switch, SwitchError};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(activate))
        .routes(routes!(rollback))
        .routes(routes!(set_limits))
        .routes(routes!(templates))
        .routes(routes!(invite))
        .routes(routes!(overview))
        .routes(routes!(metrics))
}

/// The caller is the operator: the token (compared as digests, so timing says nothing about
/// it) or an operator's session; returns who it was, for the registry's history.
async fn operator(state: &AppState, method: &Method, headers: &HeaderMap) -> Result<&'static str, ApiError> {
    let Some(token) = &state.config.admin_token else {
        return Err(ApiError::not_found("not_found", "no such route"));
    };
    if super::extract::bearer_matches(headers, token) {
        return Ok("admin-api");
    }
    if !headers.contains_key("authorization")
        && let Some((_, session)) = crate::dashboard::session::current(state, headers).await?
        && crate::dashboard::session::is_operator(state, &session)
    {
        crate::dashboard::session::check_csrf(method, headers, &session)?;
        return Ok("dashboard");
    }
    Err(ApiError::Unauthorized("the operator token is missing or wrong".into()))
}

/// Every template with its active version, its versions and its last 10 publishes,
/// activations and rollbacks.
#[utoipa::path(get, path = "/admin/templates", tag = "admin", security(("operatorToken" = [])),
    responses((status = 200, description = "`{templates: [{id, active_version, versions, history}]}`", body = Value)))]
async fn templates(State(state): State<AppState>, method: Method, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    operator(&state, &method, &headers).await?;
    let mut templates = Vec::new();
    for t in state.catalog.list() {
        let id = &t.manifest.id;
        let owned = id.clone();
        let history = state.catalog.blocking(move |registry| registry.history(&owned)).await.unwrap_or_default();
        let recent: Vec<Value> = history
            .iter()
            .rev()
            .take(10)
            .map(|r| json!({ "action": r.action, "from": r.from, "to": r.to, "actor": r.actor, "at": super::views::timestamp(r.at) }))
            .collect();
        templates.push(json!({
            "id": id,
            "active_version": t.manifest.version,
            "versions": state.catalog.versions(id).await,
            "history": recent,
        }));
    }
    Ok(Json(json!({ "templates": templates })))
}

/// Customers (newest 500) with their money, caps, keys and work, and the queue's totals.
#[utoipa::path(get, path = "/admin/overview", tag = "admin", security(("operatorToken" = [])),
    responses((status = 200, description = "`{customers, queue}`", body = Value)))]
async fn overview(State(state): State<AppState>, method: Method, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    operator(&state, &method, &headers).await?;
    let rows = state.db.customers_overview(500).await?;
    let money = |n: Option<i64>| n.map(crate::money::usd);
    let customers: Vec<Value> = rows
        .iter()
        .map(|c| {
            json!({
                "id": c.id, "name": c.name, "created_at": super::views::timestamp(c.created_at),
                "credit_usd": money(c.credit_nusd), "monthly_cap_usd": money(c.monthly_cap_nusd),
                "max_concurrent_jobs": c.max_concurrent_jobs, "jobs_per_minute": c.jobs_per_minute,
                "max_concurrent_renders": c.max_concurrent_renders,
                "storage_quota_bytes": c.storage_quota_bytes, "stored_bytes": c.stored_bytes,
                "live_keys": c.live_keys, "queued": c.queued, "running": c.running, "waiting": c.waiting,
                "renders": c.renders,
            })
        })
        .collect();
    let sum = |f: fn(&crate::db::admin_views::CustomerOverview) -> i64| rows.iter().map(f).sum::<i64>();
    Ok(Json(json!({
        "customers": customers,
        "queue": { "queued": sum(|c| c.queued), "running": sum(|c| c.running), "waiting": sum(|c| c.waiting), "renders": sum(|c| c.renders) },
    })))
}

/// The Prometheus counters, for the operator's dashboard (whatever `/metrics` requires).
#[utoipa::path(get, path = "/admin/metrics", tag = "admin", security(("operatorToken" = [])),
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>, method: Method, headers: HeaderMap) -> Result<String, ApiError> {
    operator(&state, &method, &headers).await?;
    let counts = state.db.job_counts().await?;
    Ok(state.metrics.render(&counts, state.db.wal_stats()))
}

/// `POST /admin/invites {"email"}`: the email may sign up while `VIDFARM_SIGNUP=invite`.
#[utoipa::path(post, path = "/admin/invites", tag = "admin", security(("operatorToken" = [])),
    request_body = super::openapi::Invite,
    responses(
        (status = 200, description = "`{email, invited}`", body = Value),
        (status = 422, description = "`email` is invalid", body = ErrorBody),
    ))]
async fn invite(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    operator(&state, &method, &headers).await?;
    let raw = body.get("email").and_then(Value::as_str).unwrap_or_default();
    let email = crate::dashboard::session::normalized_email(raw)
        .map_err(|_| ApiError::invalid("email", "must be an email address"))?;
    state.db.invite(&email).await?;
    Ok(Json(json!({ "email": email, "invited": true })))
}

fn registry_error(e: vidfarm_registry::RegistryError) -> ApiError {
    use vidfarm_registry::RegistryError::*;
    match e {
        NotFound(what) => ApiError::not_found("version_not_found", format!("no {what}")),
        Invalid { .. } => ApiError::invalid("version", e.to_string()),
        other => ApiError::Internal(other.to_string()),
    }
}

/// Make the switch (see `engine::switch`) and answer with where the template stands.
async fn switched(
    state: &AppState,
    template_id: String,
    change: Switch,
    actor: &'static str,
) -> Result<Json<Value>, ApiError> {
    let (db, catalog, id) = (state.db.clone(), state.catalog.clone(), template_id.clone());
    // Spawned: a request dropped half-way (its client gone, its deadline passed) must not stop
    // the switch between the registry's write and the switch back.
    let switching = tokio::spawn(async move { switch::switch(&db, &catalog, &id, change, actor).await });
    let outcome = switching.await.map_err(|e| ApiError::Internal(format!("the switch failed: {e}")))?;
    match outcome {
        Ok(record) => Ok(Json(json!({
            "template_id": template_id,
            "active_version": record.to,
            "previous_version": record.from,
            "at": super::views::timestamp(record.at),
        }))),
        Err(SwitchError::Busy) => {
            Err(ApiError::Conflict { code: "registry_busy", message: SwitchError::Busy.to_string() })
        }
        Err(SwitchError::Registry(e)) => Err(registry_error(e)),
        Err(SwitchError::Database(e)) => Err(e.into()),
        Err(SwitchError::Refused { template_id, record, error, switched_back }) => {
            let back = switched_back.unwrap_or_else(|problem| format!("not switched back: {problem}"));
            Err(ApiError::Unprocessable {
                message: format!("{template_id}@{} was refused: {error}; {back}", record.to),
                details: json!([{ "field": "version", "problem": error.to_string() }]),
            })
        }
    }
}

/// Make a published version active (forward only): the hot swap, on every host at once.
#[utoipa::path(post, path = "/admin/templates/{template_id}/activate", tag = "admin", security(("operatorToken" = [])),
    params(("template_id" = String, Path)),
    request_body = super::openapi::Activation,
    responses(
        (status = 200, description = "`{template_id, active_version, previous_version, at}`", body = Value),
        (status = 404, description = "No such template or version", body = ErrorBody),
        (status = 409, description = "`registry_busy`: another switch held the registry for 10 s", body = ErrorBody),
        (status = 422, description = "`version` missing, not newer than the active one (use rollback), or failing verification", body = ErrorBody),
    ))]
async fn activate(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(template_id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let actor = operator(&state, &method, &headers).await?;
    let version =
        body.get("version").and_then(Value::as_str).ok_or_else(|| ApiError::invalid("version", "is required"))?;
    switched(&state, template_id, Switch::Activate(version.to_string()), actor).await
}

/// Make the previous version active.
#[utoipa::path(post, path = "/admin/templates/{template_id}/rollback", tag = "admin", security(("operatorToken" = [])),
    params(("template_id" = String, Path)),
    responses(
        (status = 200, description = "`{template_id, active_version, previous_version, at}`", body = Value),
        (status = 404, description = "Nothing to roll back to", body = ErrorBody),
        (status = 409, description = "`registry_busy`: another switch held the registry for 10 s", body = ErrorBody),
        (status = 422, description = "The version rolled back to fails verification (switched back)", body = ErrorBody),
    ))]
async fn rollback(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(template_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let actor = operator(&state, &method, &headers).await?;
    switched(&state, template_id, Switch::Rollback, actor).await
}

/// `PATCH /admin/customers/:id/limits` with any of `max_concurrent_jobs`, `jobs_per_minute`,
/// `max_concurrent_renders`, `max_concurrent_deliveries`: a whole number from 1, or `null`
/// for the host default; `storage_quota_bytes` likewise (bytes); absent fields stay as they are.
#[utoipa::path(patch, path = "/admin/customers/{customer_id}/limits", tag = "admin", security(("operatorToken" = [])),
    params(("customer_id" = String, Path)),
    request_body = super::openapi::Limits,
    responses(
        (status = 200, description = "The caps in force", body = Value),
        (status = 404, description = "No such customer", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
async fn set_limits(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(customer_id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    operator(&state, &method, &headers).await?;
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

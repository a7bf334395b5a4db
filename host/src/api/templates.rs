//! `/templates`: what the host sells, and each customer's template config.

use super::extract::{Authenticated, JsonBody};
use super::{ApiError, AppState};
use crate::runtime::LoadedTemplate;
use crate::runtime::bindings::types::Provider;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use std::sync::Arc;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(list)).routes(routes!(show)).routes(routes!(show_config, set_config))
}

pub(super) fn find(state: &AppState, template_id: &str) -> Result<Arc<LoadedTemplate>, ApiError> {
    state
        .catalog
        .active(template_id)
        .ok_or_else(|| ApiError::not_found("template_not_found", format!("no template `{template_id}`")))
}

fn schema(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn provider(p: Provider) -> &'static str {
    crate::providers::provider_name(p.into())
}

async fn manifest(state: &AppState, t: &LoadedTemplate) -> Value {
    let m = &t.manifest;
    let operations: Vec<Value> = m
        .operations
        .iter()
        .map(|op| {
            json!({
                "name": op.name,
                "description": op.description,
                "input_schema": schema(&op.input_schema),
                "workflow": op.workflow,
                "provider_hint": op.provider_hint.map(provider),
                "webhook_support": op.webhook_support,
                "estimated_cost_usd": op.estimated_cost_usd,
            })
        })
        .collect();
    let versions = state.catalog.versions(&m.id).await;
    json!({
        "id": m.id,
        "version": m.version,
        "active_version": m.version,
        "versions": versions,
        "digest": t.digest,
        "description": m.description,
        "config_schema": schema(&m.config_schema),
        "operations": operations,
    })
}

/// The templates (active versions).
#[utoipa::path(get, path = "/templates", tag = "templates",
    responses((status = 200, description = "`{templates: [{id, version, description, operations}]}`", body = Value)))]
async fn list(State(state): State<AppState>, _: Authenticated) -> Json<Value> {
    let templates: Vec<Value> = state
        .catalog
        .list()
        .iter()
        .map(|t| {
            json!({
                "id": t.manifest.id,
                "version": t.manifest.version,
                "description": t.manifest.description,
                "operations": t.manifest.operations.iter().map(|o| o.name.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({ "templates": templates }))
}

/// A template's manifest: operations with their input schemas, the config schema, versions.
#[utoipa::path(get, path = "/templates/{template_id}", tag = "templates",
    params(("template_id" = String, Path)),
    responses(
        (status = 200, description = "The manifest", body = Value),
        (status = 404, description = "No such template", body = super::error::ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    _: Authenticated,
    Path(template_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let template = find(&state, &template_id)?;
    Ok(Json(manifest(&state, &template).await))
}

/// This customer's config of a template.
#[utoipa::path(get, path = "/templates/{template_id}/config", tag = "templates",
    params(("template_id" = String, Path)),
    responses(
        (status = 200, description = "`{template_id, config}`", body = Value),
        (status = 404, description = "No such template", body = super::error::ErrorBody),
    ))]
async fn show_config(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    Path(template_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    find(&state, &template_id)?;
    let config = state.db.template_config(&customer.id, &template_id).await?;
    let config: Value = config.and_then(|c| serde_json::from_str(&c).ok()).unwrap_or_else(|| json!({}));
    Ok(Json(json!({ "template_id": template_id, "config": config })))
}

/// Set this customer's config of a template (checked against its config schema).
#[utoipa::path(post, path = "/templates/{template_id}/config", tag = "templates",
    params(("template_id" = String, Path)),
    request_body(content = Value, description = "The config: a JSON object"),
    responses(
        (status = 200, description = "Stored: `{template_id, config}`", body = Value),
        (status = 404, description = "No such template", body = super::error::ErrorBody),
        (status = 422, description = "The config fails the config schema", body = super::error::ErrorBody),
    ))]
async fn set_config(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    Path(template_id): Path<String>,
    JsonBody(config): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let template = find(&state, &template_id)?;
    if !config.is_object() {
        return Err(ApiError::invalid("(body)", "must be a JSON object (the template config)"));
    }
    let problems = template.validate_config(&config);
    if !problems.is_empty() {
        return Err(ApiError::Unprocessable {
            message: format!("the config does not match the config schema of `{template_id}`"),
            details: json!(problems),
        });
    }
    state.db.set_template_config(&customer.id, &template_id, &config.to_string()).await?;
    Ok(Json(json!({ "template_id": template_id, "config": config })))
}

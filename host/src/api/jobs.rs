//! Jobs: create (validated, idempotent, rate-limited), read, list, cancel, resume.

use super::error::ErrorBody;
use super::extract::{Authenticated, JsonBody};
use super::openapi::{JobCreated, JobRequest};
use super::templates::find;
use super::{ApiError, AppState, views};
use crate::db::customers::Customer;
use crate::db::jobs::{Inserted, JobRow, NewJob};
use crate::money;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(create))
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(cancel))
        .routes(routes!(resume))
        .routes(routes!(retry))
        .routes(routes!(list_all))
}

/// The customer's job of this template, or 404 (also for another customer's job).
pub(super) async fn owned_job(
    state: &AppState,
    customer: &Customer,
    template_id: &str,
    job_id: &str,
) -> Result<JobRow, ApiError> {
    state
        .db
        .customer_job(&customer.id, template_id, job_id)
        .await?
        .ok_or_else(|| ApiError::not_found("job_not_found", format!("no job `{job_id}` of template `{template_id}`")))
}

/// An optional string field of at most `max` chars.
fn optional_string<'a>(body: &'a Value, field: &str, max: usize) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.contains('\0') => Err(ApiError::invalid(field, "must not contain NUL characters")),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= max => Ok(Some(s)),
        Some(Value::String(_)) => Err(ApiError::invalid(field, format!("must be 1 to {max} characters"))),
        Some(_) => Err(ApiError::invalid(field, "must be a string")),
    }
}

/// A client's well-formed `traceparent` header, kept as sent.
fn client_traceparent(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    crate::telemetry::context_from_traceparent(value, None).map(|_| value.to_string())
}

async fn webhook_url(state: &AppState, body: &Value) -> Result<Option<String>, ApiError> {
    let Some(url) = optional_string(body, "webhook_url", 2048)? else { return Ok(None) };
    super::webhooks::check_url(state, "webhook_url", url).await.map(Some)
}

/// Create a job running an operation: validated, then queued; answers at once.
#[utoipa::path(post, path = "/templates/{template_id}/operations/{operation}", tag = "jobs",
    params(("template_id" = String, Path), ("operation" = String, Path)),
    request_body = JobRequest,
    responses(
        (status = 202, description = "The job was created", body = JobCreated),
        (status = 200, description = "The idempotency key was used before: the original job", body = JobCreated),
        (status = 400, description = "Malformed JSON or wrong content type", body = ErrorBody),
        (status = 402, description = "The job's estimate does not fit the customer's limit", body = ErrorBody),
        (status = 404, description = "No such template or operation", body = ErrorBody),
        (status = 409, description = "The idempotency key was used for another request", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 422, description = "The request or payload fails validation; details name each field", body = ErrorBody),
        (status = 429, description = "Job-creation rate limit; see Retry-After", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    Extension(request_id): Extension<super::RequestId>,
    Authenticated(customer): Authenticated,
    Path((template_id, operation)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request = Submission { request_id, headers: &headers, retry_of: None };
    submit(&state, &customer, &template_id, &operation, &body, request).await
}

/// What a job request carries besides its body.
struct Submission<'a> {
    request_id: super::RequestId,
    headers: &'a axum::http::HeaderMap,
    /// The job a retry repeats.
    retry_of: Option<String>,
}

/// Validate a job request and create its job (or find the one its idempotency key names).
async fn submit(
    state: &AppState,
    customer: &Customer,
    template_id: &str,
    operation: &str,
    body: &Value,
    Submission { request_id, headers, retry_of }: Submission<'_>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (template_id, operation) = (template_id.to_string(), operation.to_string());
    let template = find(state, &template_id)?;
    let Some(op) = template.operation(&operation) else {
        return Err(ApiError::not_found(
            "operation_not_found",
            format!("template `{template_id}` has no operation `{operation}`"),
        ));
    };
    if !body.is_object() {
        return Err(ApiError::invalid("(body)", "must be a JSON object with `tracer` and `payload`"));
    }
    let tracer = optional_string(body, "tracer", 256)?.ok_or_else(|| ApiError::invalid("tracer", "is required"))?;
    let payload = body
        .get("payload")
        .filter(|p| p.is_object())
        .ok_or_else(|| ApiError::invalid("payload", "is required and must be a JSON object"))?;
    // The rate limit comes before anything slow (the webhook URL's DNS lookup): a customer
    // over their rate costs the host no lookups.
    let per_minute =
        customer.jobs_per_minute.and_then(|n| u32::try_from(n).ok()).unwrap_or(state.config.jobs_per_minute);
    if let Err(retry_after) = state.limiter.take(&customer.id, per_minute).await {
        state.metrics.jobs_rate_limited.fetch_add(1, Relaxed);
        return Err(ApiError::TooManyRequests(retry_after));
    }
    let webhook_url = webhook_url(state, body).await?;
    if webhook_url.is_some() && !op.webhook_support {
        return Err(ApiError::invalid(
            "webhook_url",
            format!("operation `{operation}` does not send webhooks (its manifest has no webhook support)"),
        ));
    }
    let idempotency_key = optional_string(body, "idempotency_key", 200)?;
    if let Some(unknown) = body
        .as_object()
        .and_then(|o| o.keys().find(|k| !["tracer", "payload", "webhook_url", "idempotency_key"].contains(&k.as_str())))
    {
        return Err(ApiError::invalid(unknown, "is not a field of a job request"));
    }
    let problems = template.validate_input(&operation, payload).unwrap_or_default();
    if !problems.is_empty() {
        let details: Vec<Value> =
            problems.iter().map(|p| json!({ "field": format!("payload{}", p.field), "problem": p.problem })).collect();
        return Err(ApiError::Unprocessable {
            message: format!("the payload does not match the input schema of `{operation}`"),
            details: json!(details),
        });
    }
    preflight_render_specs(state, &op.input_schema, payload)?;
    let new = NewJob {
        id: format!("job_{}", uuid::Uuid::now_v7().simple()),
        customer_id: customer.id.clone(),
        template_id: template_id.clone(),
        template_version: template.manifest.version.clone(),
        template_digest: template.digest.clone(),
        operation: operation.clone(),
        workflow: op.workflow.clone(),
        tracer: tracer.to_string(),
        payload: payload.to_string(),
        config: None,
        webhook_url,
        parent_job_id: None,
        idempotency_key: idempotency_key.map(str::to_string),
        max_retries: state.catalog.runtime().max_retries(op.limits.max_retries),
        reserve_nusd: money::charge(
            money::from_usd(op.estimated_cost_usd.unwrap_or(state.config.default_estimate_usd)).unwrap_or(0),
            customer.margin.unwrap_or(state.config.default_margin),
        ),
        request_id: Some(request_id.0),
        // The request's span (whose parent is the client's `traceparent`, if it sent one);
        // without trace export, the client's own header, so a later worker still joins it.
        traceparent: crate::telemetry::current_traceparent().or_else(|| client_traceparent(headers)),
        retry_of,
    };
    // Deliveries to the job's own URL are signed with the customer's webhook secret: the
    // first job that needs one creates it and shows it, once.
    let new_secret = match &new.webhook_url {
        Some(_) => super::webhooks::ensure_customer_secret(state, &customer.id).await?,
        None => None,
    };
    let (row, created) = match state.db.insert_job(&new).await? {
        Inserted::Created(row) => (row, true),
        Inserted::Existing(row) => (row, false),
        Inserted::OverLimit { headroom_nusd } => {
            return Err(ApiError::PaymentRequired(format!(
                "`{operation}` is estimated at {}; this customer may be charged {} more",
                money::dollars(new.reserve_nusd),
                money::dollars(headroom_nusd)
            )));
        }
    };
    if !created && (row.operation != new.operation || row.payload != new.payload) {
        return Err(ApiError::Conflict {
            code: "idempotency_key_reused",
            message: format!(
                "idempotency key {:?} was used for another request (job {})",
                idempotency_key.unwrap_or_default(),
                row.id
            ),
        });
    }
    if created {
        state.metrics.jobs_created.fetch_add(1, Relaxed);
        // The insert has told any other hosts (its commit carried or owed the notice).
        state.bus.job_is_due_here();
    }
    let status = if created { StatusCode::ACCEPTED } else { StatusCode::OK };
    let mut answer = json!({ "job_id": row.id, "tracer": row.tracer, "status": row.status });
    if let Some(secret) = new_secret {
        answer["webhook_secret"] = json!(secret);
    }
    Ok((status, Json(answer)))
}

/// A job, with every field and its money.
#[utoipa::path(get, path = "/templates/{template_id}/jobs/{job_id}", tag = "jobs",
    params(("template_id" = String, Path), ("job_id" = String, Path)),
    responses(
        (status = 200, description = "The job", body = views::JobWithBilling),
        (status = 404, description = "No such job (or another customer's)", body = ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    Path((template_id, job_id)): Path<(String, String)>,
) -> Result<Json<views::JobWithBilling>, ApiError> {
    let found = state.db.customer_job_with_billing(&customer.id, &template_id, &job_id).await?;
    let (job, charges, holds) = found.ok_or_else(|| {
        ApiError::not_found("job_not_found", format!("no job `{job_id}` of template `{template_id}`"))
    })?;
    let billing = views::job_billing(&job, &charges, &holds);
    Ok(Json(views::JobWithBilling { job: views::Job::from(&job), billing }))
}

/// The most jobs one page lists.
const MAX_PAGE_JOBS: u32 = 100;
/// The most payload and result bytes one page carries (one job is always shown).
const MAX_PAGE_BYTES: usize = 4 << 20;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only jobs in this status.
    #[param(value_type = Option<views::JobStatus>)]
    status: Option<String>,
    /// A job id: older jobs than it (the previous page's `next_before`).
    before: Option<String>,
    /// 1 to 100 (default 50).
    limit: Option<u32>,
    /// Only `GET /jobs`: one template's jobs.
    template_id: Option<String>,
    /// Only `GET /jobs`: the jobs created with this tracer.
    tracer: Option<String>,
    /// Only `GET /jobs`: the children of this job.
    parent_job_id: Option<String>,
}

fn check_status(status: Option<&str>) -> Result<(), ApiError> {
    match status.filter(|s| !STATUSES.contains(s)) {
        Some(status) => Err(ApiError::BadRequest {
            code: "invalid_query",
            message: format!("status `{status}` is not one of {}", STATUSES.join(", ")),
        }),
        None => Ok(()),
    }
}

/// One page of rows: at most `limit` jobs or [`MAX_PAGE_BYTES`] of payloads and results,
/// whichever comes first; `next_before` continues from the last job shown.
fn page(rows: &[JobRow], limit: u32) -> Json<JobPage> {
    let (mut jobs, mut bytes) = (Vec::with_capacity(rows.len()), 0usize);
    for row in rows {
        bytes += row.payload.len() + row.result.as_ref().map_or(0, String::len);
        if !jobs.is_empty() && bytes > MAX_PAGE_BYTES {
            break;
        }
        jobs.push(row);
    }
    let cut = jobs.len() < rows.len() || rows.len() == limit as usize;
    let next = cut.then(|| jobs.last().map(|r| r.id.clone())).flatten();
    Json(JobPage { jobs: jobs.into_iter().map(views::Job::from).collect(), next_before: next })
}

/// A page of jobs, newest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct JobPage {
    jobs: Vec<views::Job>,
    /// The `before` of the next page; null on the last.
    next_before: Option<String>,
}

/// `GET /jobs`: the customer's jobs across templates, newest first, filtered by status,
/// template and tracer.
#[utoipa::path(get, path = "/jobs", tag = "jobs",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of jobs", body = JobPage),
        (status = 400, description = "Bad query", body = ErrorBody),
    ))]
async fn list_all(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobPage>, ApiError> {
    let Query(query) = query?;
    check_status(query.status.as_deref())?;
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE_JOBS);
    let filter = crate::db::job_list::JobFilter {
        status: query.status.as_deref(),
        template_id: query.template_id.as_deref().filter(|t| !t.is_empty()),
        tracer: query.tracer.as_deref().filter(|t| !t.is_empty()),
        before: query.before.as_deref(),
        parent_job_id: query.parent_job_id.as_deref().filter(|p| !p.is_empty()),
    };
    let rows = state.db.customer_jobs(&customer.id, &filter, limit).await?;
    Ok(page(&rows, limit))
}

/// A new job with the failed (or cancelled) job's tracer, payload and webhook URL, run by the
/// template's active version; `retry_of` links it to the old one.
#[utoipa::path(post, path = "/templates/{template_id}/jobs/{job_id}/retry", tag = "jobs",
    params(("template_id" = String, Path), ("job_id" = String, Path)),
    responses(
        (status = 202, description = "`{job_id, tracer, status, retry_of}`", body = Value),
        (status = 402, description = "The estimate does not fit the customer's limit", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job is not failed or cancelled", body = ErrorBody),
    ))]
async fn retry(
    State(state): State<AppState>,
    Extension(request_id): Extension<super::RequestId>,
    Authenticated(customer): Authenticated,
    Path((template_id, job_id)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let job = owned_job(&state, &customer, &template_id, &job_id).await?;
    if !matches!(job.status.as_str(), "failed" | "cancelled") {
        return Err(ApiError::Conflict {
            code: "job_not_retryable",
            message: format!("only a failed or cancelled job can be retried; this one is {}", job.status),
        });
    }
    let payload: Value = serde_json::from_str(&job.payload).unwrap_or_else(|_| json!({}));
    // One retry per job: a second click (or a client's retry of the request) finds the first.
    let mut body = json!({ "tracer": job.tracer, "payload": payload, "idempotency_key": format!("retry:{}", job.id) });
    if let Some(url) = &job.webhook_url {
        body["webhook_url"] = json!(url);
    }
    let request = Submission { request_id, headers: &headers, retry_of: Some(job.id.clone()) };
    let (status, Json(mut answer)) = submit(&state, &customer, &template_id, &job.operation, &body, request).await?;
    answer["retry_of"] = json!(job.id);
    Ok((status, Json(answer)))
}

const STATUSES: [&str; 7] =
    ["queued", "running", "waiting_for_child", "waiting_for_human", "succeeded", "failed", "cancelled"];

/// This customer's jobs of a template, newest first.
#[utoipa::path(get, path = "/templates/{template_id}/jobs", tag = "jobs",
    params(
        ("template_id" = String, Path),
        ("status" = Option<views::JobStatus>, Query, description = "Only jobs in this status"),
        ("before" = Option<String>, Query, description = "A job id: older jobs than it"),
        ("limit" = Option<u32>, Query, description = "1 to 100 (default 50)"),
    ),
    responses(
        (status = 200, description = "A page of jobs", body = JobPage),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 404, description = "No such template", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    Path(template_id): Path<String>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobPage>, ApiError> {
    let Query(query) = query?;
    find(&state, &template_id)?;
    check_status(query.status.as_deref())?;
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE_JOBS);
    let rows =
        state.db.list_jobs(&customer.id, &template_id, query.status.as_deref(), query.before.as_deref(), limit).await?;
    Ok(page(&rows, limit))
}

/// Cancel a job and its children (running jobs stop at their next yield).
#[utoipa::path(post, path = "/templates/{template_id}/jobs/{job_id}/cancel", tag = "jobs",
    params(("template_id" = String, Path), ("job_id" = String, Path)),
    responses(
        (status = 200, description = "The job after cancellation", body = views::Job),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job already ended", body = ErrorBody),
    ))]
async fn cancel(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    Path((template_id, job_id)): Path<(String, String)>,
) -> Result<Json<views::Job>, ApiError> {
    let job = owned_job(&state, &customer, &template_id, &job_id).await?;
    let Some(row) = state.db.cancel_job(&job.id).await? else {
        return Err(ApiError::Conflict {
            code: "job_finished",
            message: format!("the job already ended as {}", job.status),
        });
    };
    // Runs in this process stop now, runs on hosts sharing a PostgreSQL database when they
    // hear of it, and any run at its worker's next heartbeat.
    let tree = state.db.job_tree(&job.id).await?;
    state.bus.cancelled(&tree);
    for id in &tree {
        state.bus.changed(id);
    }
    Ok(Json(views::Job::from(&row)))
}

/// Answer a job waiting for a human: the answer is any JSON, and the job is queued again.
#[utoipa::path(post, path = "/templates/{template_id}/jobs/{job_id}/resume", tag = "jobs",
    params(("template_id" = String, Path), ("job_id" = String, Path)),
    request_body(content = Value, description = "The answer to the job's prompt"),
    responses(
        (status = 200, description = "The job, queued again", body = views::Job),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job is not waiting for a human", body = ErrorBody),
    ))]
async fn resume(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    Path((template_id, job_id)): Path<(String, String)>,
    JsonBody(answer): JsonBody,
) -> Result<Json<views::Job>, ApiError> {
    let job = owned_job(&state, &customer, &template_id, &job_id).await?;
    let Some(row) = state.db.resume_job(&job.id, &answer.to_string()).await? else {
        return Err(ApiError::Conflict {
            code: "job_not_waiting_for_human",
            message: format!("the job is {}, not waiting_for_human", job.status),
        });
    };
    state.bus.job_is_due();
    state.bus.changed(&job.id);
    Ok(Json(views::Job::from(&row)))
}

/// The input-schema keyword that marks a payload (or one of its top-level fields) as a render
/// spec the host's renderer will be given: checked here, so a spec that could never render is
/// refused with a 422 before any job exists, not an hour into a render slot.
const RENDER_SPEC_KEYWORD: &str = "x-vidfarm-render-spec";

fn preflight_render_specs(state: &AppState, input_schema: &str, payload: &Value) -> Result<(), ApiError> {
    if !input_schema.contains(RENDER_SPEC_KEYWORD) {
        return Ok(());
    }
    let Ok(schema) = serde_json::from_str::<Value>(input_schema) else { return Ok(()) };
    let marked = |s: &Value| s.get(RENDER_SPEC_KEYWORD).and_then(Value::as_bool) == Some(true);
    let mut specs = Vec::new();
    if marked(&schema) {
        specs.push((String::from("payload"), payload));
    }
    for (name, property) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
        if let (true, Some(value)) = (marked(property), payload.get(name)) {
            specs.push((format!("payload.{name}"), value));
        }
    }
    for (at, spec) in specs {
        if let Err((field, problem)) = state.renders.pipeline.preflight_spec(spec) {
            let field = format!("{at}.{field}");
            return Err(ApiError::Unprocessable {
                message: format!("the render spec cannot be rendered: {field} {problem}"),
                details: json!([{ "field": field, "problem": problem }]),
            });
        }
    }
    Ok(())
}

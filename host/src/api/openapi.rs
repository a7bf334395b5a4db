//! The OpenAPI 3.1 document of the whole API, served at `/openapi.json`, generated from the
//! code: every handler carries its `#[utoipa::path]` and every router registers its handlers
//! through `utoipa_axum::routes!`, which takes the path and method from that attribute. A route
//! therefore cannot be served without its entry, nor documented without being served. The
//! shapes of jobs, events and errors are the types the handlers serialise; request bodies,
//! which handlers check field by field (to name each bad field), are described here.

use super::AppState;
use serde_json::{Value, json};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vidfarm",
        description = "Video-production templates as async jobs. Every operation creates a job and answers at once."
    ),
    components(schemas(super::error::ErrorBody))
)]
struct ApiDoc;

/// The routers' starting point: the document's info and shared schemas.
pub(super) fn base() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
}

/// The document, built once from the routes.
pub fn document() -> Value {
    static DOCUMENT: std::sync::LazyLock<Value> = std::sync::LazyLock::new(generate);
    DOCUMENT.clone()
}

fn generate() -> Value {
    let (_, api) = super::routes().split_for_parts();
    let mut doc = serde_json::to_value(&api).unwrap_or_else(|_| json!({}));
    // A wildcard segment is `{*key}` to the router and `{key}` to OpenAPI.
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        *paths = std::mem::take(paths).into_iter().map(|(path, item)| (path.replace("{*", "{"), item)).collect();
    }
    doc["components"]["securitySchemes"] = json!({
        "userId": { "type": "apiKey", "in": "header", "name": "vidfarm-user-id" },
        "apiKey": { "type": "apiKey", "in": "header", "name": "vidfarm-api-key" },
        "session": { "type": "apiKey", "in": "cookie", "name": "vf_session", "description":
            "The dashboard's session (sign in at /signin; `__Host-vf_session` over https); every request that is not GET must carry the session's CSRF token in `x-csrf-token`" },
        "operatorToken": { "type": "http", "scheme": "bearer", "description": "VIDFARM_ADMIN_TOKEN (or an operator's dashboard session)" },
        "metricsToken": { "type": "http", "scheme": "bearer", "description": "VIDFARM_METRICS_TOKEN, when the operator set one" },
    });
    // Customer credentials unless an operation says otherwise (public and operator routes do).
    doc["security"] = json!([{ "userId": [], "apiKey": [] }, { "session": [] }]);
    let unauthorized = |description: &str| json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    for item in doc["paths"].as_object_mut().into_iter().flat_map(|paths| paths.values_mut()) {
        for operation in item.as_object_mut().into_iter().flat_map(|ops| ops.values_mut()) {
            // Nearly every route reads the database (credentials at least).
            operation["responses"]["503"] = json!({
                "description": "The database did not answer this time (`database_unavailable`): retry after `Retry-After`",
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
            });
            let answer = match operation.get("security") {
                None => unauthorized("Missing or invalid credentials"),
                Some(s) if s.to_string().contains("operatorToken") => unauthorized("Missing or wrong operator token"),
                Some(_) => continue,
            };
            operation["responses"]["401"] = answer;
        }
    }
    doc
}

/// `POST /templates/{template_id}/operations/{operation}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JobRequest {
    /// The client's correlation id (1 to 256 characters), echoed in the job and its webhooks.
    tracer: String,
    /// Validated against the operation's input schema (`GET /templates/{template_id}`).
    payload: Value,
    /// Where the job's events are POSTed (Standard Webhooks signatures).
    webhook_url: Option<String>,
    /// The same key again (1 to 200 characters) answers the original job instead of a new one.
    idempotency_key: Option<String>,
}

/// A created job.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JobCreated {
    job_id: String,
    tracer: String,
    status: String,
    /// Only on the customer's first job with a `webhook_url`: the secret that signs its deliveries.
    webhook_secret: Option<String>,
}

/// `POST /files/sign-upload`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadRequest {
    /// A path inside the customer's workspace.
    key: String,
    content_type: Option<String>,
    /// Bytes; required on S3 (the URL is signed for exactly this length).
    size: Option<u64>,
}

/// `PATCH /admin/customers/{customer_id}/limits`: a cap, or null for the host default.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Limits {
    max_concurrent_jobs: Option<u32>,
    jobs_per_minute: Option<u32>,
    max_concurrent_renders: Option<u32>,
    max_concurrent_deliveries: Option<u32>,
    storage_quota_bytes: Option<u64>,
}

/// `POST /customers/me/provider-keys`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProviderKeyInput {
    /// `openai`, `gemini`, `openrouter`, `perplexity` or `elevenlabs`.
    provider: String,
    /// The provider's API key (at least 8 characters): encrypted at rest, never returned.
    secret: String,
    label: Option<String>,
    /// 1 to 1000: a larger weight takes more of the calls.
    weight: Option<u32>,
    /// The models this key may serve (all when absent).
    models: Option<Vec<String>>,
}

/// `PATCH /customers/me/provider-keys/{key_id}`: any of the fields.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProviderKeyChange {
    label: Option<String>,
    weight: Option<u32>,
    models: Option<Vec<String>>,
    /// `active` or `paused`.
    status: Option<String>,
    /// A new secret (rotation).
    secret: Option<String>,
}

/// `POST /customers/me/webhooks`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WebhookInput {
    url: String,
    description: Option<String>,
    /// The account's password: required when the request is made with a dashboard session.
    password: Option<String>,
}

/// `POST /customers/me/api-keys`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ApiKeyRequest {
    /// At most 100 characters.
    label: Option<String>,
    /// The account's password: required when the request is made with a dashboard session.
    password: Option<String>,
}

/// `POST /admin/invites`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Invite {
    email: String,
}

/// `POST /admin/templates/{template_id}/activate`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Activation {
    /// A published version newer than the active one (use rollback to go back).
    version: String,
}

/// `{"password"}`: the account's password, confirming a dashboard session's request.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PasswordConfirmation {
    password: String,
}

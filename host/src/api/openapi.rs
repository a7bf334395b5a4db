//! The OpenAPI 3.1 description of the whole API, served at `/openapi.json`.

use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn path_params(names: &[&str]) -> Value {
    Value::Array(
        names
            .iter()
            .map(|n| json!({ "name": n, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect(),
    )
}

fn customer_op(summary: &str, params: &[&str], responses: Value) -> Value {
    let mut all = responses;
    all["401"] = error_response("Missing or invalid credentials");
    json!({ "summary": summary, "security": [{ "userId": [], "apiKey": [] }, { "session": [] }], "parameters": path_params(params), "responses": all })
}

pub fn document() -> Value {
    let job = json!({ "$ref": "#/components/schemas/Job" });
    let t = ["template_id"];
    let tj = ["template_id", "job_id"];
    let mut create = customer_op(
        "Create a job running an operation",
        &["template_id", "operation"],
        json!({
            "202": ok("The job was created", json!({ "$ref": "#/components/schemas/JobCreated" })),
            "200": ok("The idempotency key was used before: the original job", json!({ "$ref": "#/components/schemas/JobCreated" })),
            "400": error_response("Malformed JSON or wrong content type"),
            "404": error_response("No such template or operation"),
            "409": error_response("The idempotency key was used for another request"),
            "413": error_response("Body over the limit"),
            "422": error_response("The request or payload fails validation; details name each field"),
            "429": error_response("Job-creation rate limit; see Retry-After"),
        }),
    );
    create["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/JobRequest" } } } });
    let mut set_config = customer_op(
        "Set this customer's config of a template",
        &t,
        json!({ "200": ok("Stored", json!({ "type": "object" })), "404": error_response("No such template"), "422": error_response("Config fails the config schema") }),
    );
    set_config["requestBody"] =
        json!({ "required": true, "content": { "application/json": { "schema": { "type": "object" } } } });
    let mut resume = customer_op(
        "Answer a job waiting for a human",
        &tj,
        json!({ "200": ok("The job is queued again", job.clone()), "404": error_response("No such job"), "409": error_response("The job is not waiting for a human") }),
    );
    resume["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": {} } } });
    let mut list = customer_op(
        "List this customer's jobs of a template, newest first",
        &t,
        json!({ "200": ok("A page of jobs", json!({ "type": "object", "properties": { "jobs": { "type": "array", "items": job.clone() }, "next_before": { "type": ["string", "null"] } } })), "400": error_response("Bad query") }),
    );
    if let Some(p) = list["parameters"].as_array_mut() {
        p.push(json!({ "name": "status", "in": "query", "schema": { "type": "string", "enum": ["queued", "running", "waiting_for_child", "waiting_for_human", "succeeded", "failed", "cancelled"] } }));
        p.push(json!({ "name": "before", "in": "query", "schema": { "type": "string" }, "description": "A job id: return older jobs" }));
        p.push(
            json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 500 } }),
        );
    }
    let mut logs = customer_op(
        "A job's structured events, oldest first",
        &tj,
        json!({ "200": ok("A page of events", json!({ "type": "object", "properties": { "events": { "type": "array", "items": { "$ref": "#/components/schemas/Event" } }, "next_after": { "type": ["integer", "null"] } } })), "404": error_response("No such job") }),
    );
    if let Some(p) = logs["parameters"].as_array_mut() {
        p.push(json!({ "name": "after", "in": "query", "schema": { "type": "integer" } }));
        p.push(
            json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } }),
        );
    }
    let mut document = json!({
        "openapi": "3.1.0",
        "info": { "title": "Vidfarm", "version": env!("CARGO_PKG_VERSION"), "description": "Video-production templates as async jobs. Every operation creates a job and answers at once." },
        "paths": {
            "/health": { "get": { "summary": "Liveness and database reachability", "responses": { "200": ok("Healthy", json!({ "type": "object" })) } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "Text exposition format", "content": { "text/plain": {} } } } } },
            "/openapi.json": { "get": { "summary": "This document", "responses": { "200": ok("OpenAPI 3.1", json!({ "type": "object" })) } } },
            "/templates": { "get": customer_op("List templates (active versions)", &[], json!({ "200": ok("Templates", json!({ "type": "object" })) })) },
            "/templates/{template_id}": { "get": customer_op("A template's manifest: operations with input schemas, config schema, versions", &t, json!({ "200": ok("Manifest", json!({ "type": "object" })), "404": error_response("No such template") })) },
            "/templates/{template_id}/config": {
                "get": customer_op("This customer's config of a template", &t, json!({ "200": ok("Config", json!({ "type": "object" })), "404": error_response("No such template") })),
                "post": set_config,
            },
            "/templates/{template_id}/operations/{operation}": { "post": create },
            "/templates/{template_id}/jobs": { "get": list },
            "/templates/{template_id}/jobs/{job_id}": { "get": customer_op("A job, with every field", &tj, json!({ "200": ok("The job", job.clone()), "404": error_response("No such job (or another customer's)") })) },
            "/templates/{template_id}/jobs/{job_id}/logs": { "get": logs },
            "/templates/{template_id}/jobs/{job_id}/events": { "get": customer_op("The job's events live (Server-Sent Events: `log`, `status`, `end`); resumable with Last-Event-ID", &tj, json!({ "200": { "description": "text/event-stream", "content": { "text/event-stream": {} } }, "404": error_response("No such job") })) },
            "/templates/{template_id}/jobs/{job_id}/cancel": { "post": customer_op("Cancel a job and its children", &tj, json!({ "200": ok("The job after cancellation (running jobs stop at their next yield)", job.clone()), "404": error_response("No such job"), "409": error_response("The job already ended") })) },
            "/templates/{template_id}/jobs/{job_id}/resume": { "post": resume },
        },
        "components": {
            "securitySchemes": {
                "userId": { "type": "apiKey", "in": "header", "name": "vidfarm-user-id" },
                "apiKey": { "type": "apiKey", "in": "header", "name": "vidfarm-api-key" },
                "session": { "type": "apiKey", "in": "cookie", "name": "vf_session", "description": "The dashboard's session (sign in at /signin); every request that is not GET must carry the session's CSRF token in `x-csrf-token`" },
            },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": { "code": { "type": "string" }, "message": { "type": "string" }, "details": {} } } } },
                "JobRequest": { "type": "object", "required": ["tracer", "payload"], "additionalProperties": false, "properties": {
                    "tracer": { "type": "string", "minLength": 1, "maxLength": 256 },
                    "payload": { "type": "object", "description": "Validated against the operation's input schema" },
                    "webhook_url": { "type": "string", "format": "uri" },
                    "idempotency_key": { "type": "string", "minLength": 1, "maxLength": 200 } } },
                "JobCreated": { "type": "object", "properties": { "job_id": { "type": "string" }, "tracer": { "type": "string" }, "status": { "type": "string" } } },
                "Job": { "type": "object", "properties": {
                    "job_id": { "type": "string" }, "template_id": { "type": "string" }, "template_version": { "type": "string" },
                    "operation_name": { "type": "string" }, "tracer": { "type": "string" },
                    "status": { "type": "string", "enum": ["queued", "running", "waiting_for_child", "waiting_for_human", "succeeded", "failed", "cancelled"] },
                    "payload": { "type": "object" }, "result": {}, "error": {}, "progress": { "type": "number" },
                    "progress_message": { "type": ["string", "null"] }, "webhook_url": { "type": ["string", "null"] },
                    "parent_job_id": { "type": ["string", "null"] }, "customer_id": { "type": "string" },
                    "reservation_id": { "type": ["string", "null"] }, "attempt": { "type": "integer" }, "retries": { "type": "integer" },
                    "waiting_for": {}, "fuel_consumed": { "type": "integer" },
                    "created_at": { "type": "string", "format": "date-time" }, "updated_at": { "type": "string", "format": "date-time" },
                    "started_at": { "type": ["string", "null"] }, "finished_at": { "type": ["string", "null"] } } },
                "Event": { "type": "object", "properties": {
                    "id": { "type": "integer" }, "timestamp": { "type": "string", "format": "date-time" },
                    "level": { "type": "string", "enum": ["debug", "info", "warn", "error"] }, "message": { "type": "string" },
                    "metadata": { "type": "object" }, "progress": { "type": ["number", "null"] }, "artifact": {} } },
            },
        },
    });
    for more in [account_paths(), file_and_admin_paths()] {
        if let (Some(paths), Value::Object(more)) = (document["paths"].as_object_mut(), more) {
            paths.extend(more);
        }
    }
    document["components"]["securitySchemes"]["operatorToken"] = json!({ "type": "http", "scheme": "bearer" });
    document
}

/// Signed file URLs, uploads, and the operator's admin routes (`VIDFARM_ADMIN_TOKEN`).
fn file_and_admin_paths() -> Value {
    let object = json!({ "type": "object" });
    let signed = json!([
        { "name": "key", "in": "path", "required": true, "schema": { "type": "string" } },
        { "name": "expires", "in": "query", "required": true, "schema": { "type": "integer" } },
        { "name": "sig", "in": "query", "required": true, "schema": { "type": "string" } },
    ]);
    let operator = |summary: &str, params: &[&str], responses: Value| {
        let mut all = responses;
        all["401"] = error_response("Missing or wrong operator token");
        json!({ "summary": summary, "security": [{ "operatorToken": [] }], "parameters": path_params(params), "responses": all })
    };
    let upload = json!({ "type": "object", "required": ["key"], "additionalProperties": false, "properties": {
        "key": { "type": "string" }, "content_type": { "type": "string" },
        "size": { "type": "integer", "minimum": 0, "description": "Bytes; required on S3 (the URL is signed for exactly this length)" } } });
    let limits = json!({ "type": "object", "additionalProperties": false, "properties": {
        "max_concurrent_jobs": { "type": ["integer", "null"], "minimum": 1 }, "jobs_per_minute": { "type": ["integer", "null"], "minimum": 1 },
        "max_concurrent_renders": { "type": ["integer", "null"], "minimum": 1 },
        "max_concurrent_deliveries": { "type": ["integer", "null"], "minimum": 1 },
        "storage_quota_bytes": { "type": ["integer", "null"], "minimum": 1 } } });
    json!({
        "/files/sign-upload": { "post": with_body(customer_op("An upload URL into the customer's workspace (counted against the storage quota)", &[], json!({
            "200": ok("{key, workspace_key, method, url, headers, expires_at}", object.clone()),
            "422": error_response("A field is invalid (`key` escapes the workspace, `size` missing on S3 or past the quota)") })), upload) },
        "/files/{key}": {
            "get": { "summary": "A stored object through a signed URL (streamed)", "parameters": signed.clone(), "responses": {
                "200": { "description": "The object" }, "403": error_response("Bad or expired signature"), "404": error_response("No such object") } },
            "put": { "summary": "Upload through the host's own signed URL (local store; streamed, at most 512 MiB)", "parameters": signed, "responses": {
                "201": ok("{key, size}", object.clone()), "403": error_response("Bad or expired signature"),
                "413": error_response("Larger than 512 MiB (`payload_too_large`) or past the storage quota (`storage_quota_exceeded`)") } },
        },
        "/admin/templates/{template_id}/activate": { "post": operator("Make a published version active (forward only)", &["template_id"], json!({
            "200": ok("The active version", object.clone()), "409": error_response("Older than the active version: use rollback"), "404": error_response("No such version") })) },
        "/admin/templates/{template_id}/rollback": { "post": operator("Make the previous version active", &["template_id"], json!({
            "200": ok("The active version", object.clone()), "404": error_response("Nothing to roll back to") })) },
        "/admin/templates": { "get": operator("Every template: active version, versions, last 10 publishes/activations/rollbacks", &[], json!({ "200": ok("{templates: [...]}", object.clone()) })) },
        "/admin/overview": { "get": operator("Customers (newest 500) with credit, caps, storage, live keys, queued/running/waiting jobs and renders; the queue's totals", &[], json!({ "200": ok("{customers, queue}", object.clone()) })) },
        "/admin/metrics": { "get": operator("The Prometheus counters (the same text as /metrics), for the operator's dashboard", &[], json!({ "200": { "description": "Text exposition format", "content": { "text/plain": {} } } })) },
        "/admin/invites": { "post": with_body(operator("Invite an email to sign up (VIDFARM_SIGNUP=invite)", &[], json!({ "200": ok("{email, invited}", object.clone()), "422": error_response("`email` is invalid") })),
            json!({ "type": "object", "required": ["email"], "properties": { "email": { "type": "string", "format": "email" } } })) },
        "/admin/customers/{customer_id}/limits": { "patch": with_body(operator("Set a customer's fair-share caps and storage quota (null: host default)", &["customer_id"], json!({
            "200": ok("The caps in force", object), "404": error_response("No such customer"), "422": error_response("A field is invalid") })), limits) },
    })
}

fn with_body(mut op: Value, schema: Value) -> Value {
    op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    op
}

/// The customer's account: AI provider keys, webhook destinations, deliveries, billing.
fn account_paths() -> Value {
    let id = ["id"];
    let key_input = json!({ "type": "object", "required": ["provider", "secret"], "properties": {
        "provider": { "enum": ["openai", "gemini", "openrouter", "perplexity"] }, "secret": { "type": "string", "minLength": 8 },
        "label": { "type": "string" }, "weight": { "type": "integer", "minimum": 1, "maximum": 1000 },
        "models": { "type": "array", "items": { "type": "string" } } } });
    let key_patch = json!({ "type": "object", "properties": { "label": { "type": ["string", "null"] },
        "weight": { "type": "integer" }, "models": { "type": "array", "items": { "type": "string" } },
        "status": { "enum": ["active", "paused"] }, "secret": { "type": "string" } } });
    let key = json!({ "type": "object", "description": "A provider key: never the secret, `secret_hint` shows its last four characters" });
    let object = json!({ "type": "object" });
    json!({
        "/customers/me/provider-keys": {
            "get": customer_op("This customer's AI provider keys", &[], json!({ "200": ok("Keys", json!({ "type": "object", "properties": { "data": { "type": "array", "items": key } } })) })),
            "post": with_body(customer_op("Add an AI provider key (encrypted at rest, never returned)", &[], json!({ "201": ok("The key", key.clone()), "422": error_response("A field is invalid") })), key_input),
        },
        "/customers/me/provider-keys/{id}": {
            "get": customer_op("One provider key", &id, json!({ "200": ok("The key", key.clone()), "404": error_response("No such key") })),
            "patch": with_body(customer_op("Change a key: label, weight, models, status (active|paused), secret (rotate)", &id, json!({ "200": ok("The key", key.clone()), "404": error_response("No such key"), "422": error_response("A field is invalid") })), key_patch),
            "delete": customer_op("Delete a key", &id, json!({ "204": { "description": "Deleted" }, "404": error_response("No such key") })),
        },
        "/customers/me/webhooks": {
            "get": customer_op("Webhook destinations (all of this customer's jobs' events)", &[], json!({ "200": ok("Destinations", object.clone()) })),
            "post": with_body(customer_op("Add a destination; its `whsec_` secret is in this response only", &[], json!({ "201": ok("The destination with `secret`", object.clone()), "422": error_response("The URL is invalid or (in production) not public") })),
                json!({ "type": "object", "required": ["url"], "properties": { "url": { "type": "string", "format": "uri" }, "description": { "type": "string" } } })),
        },
        "/customers/me/webhooks/{id}": { "delete": customer_op("Remove a destination", &id, json!({ "204": { "description": "Removed" }, "404": error_response("No such destination") })) },
        "/customers/me/webhook-secret": { "post": customer_op("A new secret signing deliveries to jobs' own webhook_url (shown once)", &[], json!({ "200": ok("{secret}", object.clone()) })) },
        "/customers/me/webhook-deliveries": { "get": customer_op("Webhook deliveries, newest first, with every attempt (?job_id, ?status, ?limit)", &[], json!({ "200": ok("Deliveries", object.clone()), "400": error_response("Bad query") })) },
        "/customers/me/webhook-deliveries/{id}": { "get": customer_op("One delivery with its attempts", &id, json!({ "200": ok("The delivery", object.clone()), "404": error_response("No such delivery") })) },
        "/customers/me/webhook-deliveries/{id}/redeliver": { "post": customer_op("Send a delivery again now (same webhook-id)", &id, json!({ "202": ok("Queued", object.clone()), "404": error_response("No such delivery") })) },
        "/customers/me/files": { "get": customer_op("The workspace's files, in key order (?after, ?limit ≤ 500): key, size, changed, a signed download URL; and the storage in use and the quota", &[], json!({ "200": ok("{files, next_after, stored_bytes, quota_bytes}", object.clone()), "400": error_response("Bad query") })) },
        "/customers/me/files/{key}": { "delete": customer_op("Delete a workspace file (its bytes leave the quota)", &["key"], json!({ "204": { "description": "Deleted" }, "404": error_response("No such file"), "422": error_response("The key leaves the workspace") })) },
        "/customers/me/webhooks/{id}/test": { "post": customer_op("Send a `webhook.test` event to a destination (it shows in the delivery log)", &id, json!({ "202": ok("{id, status}", object.clone()), "404": error_response("No such active destination") })) },
        "/customers/me": { "get": customer_op("Who the credentials belong to: customer id, name, dashboard email", &[], json!({ "200": ok("{customer_id, name, email}", object.clone()) })) },
        "/customers/me/api-keys": {
            "get": customer_op("This customer's API keys: label, prefix, last four characters, created, last used, revoked (never the key)", &[], json!({ "200": ok("{keys: [...]}", object.clone()) })),
            "post": with_body(customer_op("A new API key, shown in this response only", &[], json!({ "201": ok("The key's record with `key` and `customer_id`", object.clone()), "409": error_response("50 live keys already"), "422": error_response("`label` is invalid") })),
                json!({ "type": "object", "properties": { "label": { "type": ["string", "null"], "maxLength": 100 } } })),
        },
        "/customers/me/api-keys/{id}": { "delete": customer_op("Revoke a key (requests with it fail at once)", &id, json!({ "204": { "description": "Revoked" }, "404": error_response("No such live key") })) },
        "/jobs": { "get": customer_op("This customer's jobs across templates, newest first (?status, ?template_id, ?tracer, ?parent_job_id, ?before, ?limit ≤ 100); a page stops at 4 MiB of payloads", &[], json!({ "200": ok("{jobs, next_before}", object.clone()), "400": error_response("Bad query") })) },
        "/templates/{template_id}/jobs/{job_id}/retry": { "post": customer_op("A new job with a failed or cancelled job's tracer, payload and webhook URL (`retry_of` links them)", &["template_id", "job_id"], json!({ "202": ok("{job_id, tracer, status, retry_of}", object.clone()), "404": error_response("No such job"), "409": error_response("The job is not failed or cancelled"), "402": error_response("The estimate does not fit the customer's limit") })) },
        "/billing/usage": { "get": customer_op("Charges per day and template (?from, ?to: YYYY-MM-DD) and the customer's limits", &[], json!({ "200": ok("Usage", object), "400": error_response("Bad query") })) },
    })
}

//! Every error status of the API, each with a case; nothing a client sends causes a 500 or
//! leaves a row behind; another customer never sees a job.

use serde_json::{Value, json};
use vidfarm_tests::server::TestServer;

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.expect("an error body is JSON"))
}

#[tokio::test]
async fn each_bad_request_gets_its_own_status_and_a_json_error() {
    let server = TestServer::start().await;
    let greet = "/templates/hello/operations/greet";
    let ok = json!({ "tracer": "t", "payload": { "name": "Ada" } });

    let (status, body) = error_of(server.http.post(server.url(greet)).json(&ok).send().await.expect("sent")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "no credentials");
    let wrong_key = server
        .http
        .post(server.url(greet))
        .json(&ok)
        .header("vidfarm-user-id", &server.customer.id)
        .header("vidfarm-api-key", "vf_nope");
    assert_eq!(error_of(wrong_key.send().await.expect("sent")).await.0, 401, "a wrong key");

    let (status, body) =
        error_of(server.post("/templates/nope/operations/greet", &ok).send().await.expect("sent")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("template_not_found")));
    let (status, body) =
        error_of(server.post("/templates/hello/operations/shout", &ok).send().await.expect("sent")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("operation_not_found")));
    let (status, body) = error_of(server.get("/templates/hello/jobs/job_nope").send().await.expect("sent")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("job_not_found")));

    let malformed = server.as_customer(
        &server.customer,
        server.http.post(server.url(greet)).header("content-type", "application/json").body("{\"tracer\":"),
    );
    let (status, body) = error_of(malformed.send().await.expect("sent")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_json")));
    let text = server.as_customer(
        &server.customer,
        server.http.post(server.url(greet)).header("content-type", "text/plain").body(ok.to_string()),
    );
    let (status, body) = error_of(text.send().await.expect("sent")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("unsupported_content_type")));

    let (status, body) =
        error_of(server.post(greet, &json!({ "tracer": "t", "payload": { "name": 42 } })).send().await.expect("sent"))
            .await;
    assert_eq!((status, body["error"]["details"][0]["field"].as_str()), (422, Some("payload/name")), "{body}");
    let (status, body) =
        error_of(server.post(greet, &json!({ "payload": { "name": "Ada" } })).send().await.expect("sent")).await;
    assert_eq!((status, body["error"]["details"][0]["field"].as_str()), (422, Some("tracer")), "{body}");
    // A NUL character (which PostgreSQL refuses in text) is the client's error on both backends.
    let (status, body) = error_of(
        server.post(greet, &json!({ "tracer": "t\u{0}t", "payload": { "name": "Ada" } })).send().await.expect("sent"),
    )
    .await;
    assert_eq!((status, body["error"]["details"][0]["field"].as_str()), (422, Some("tracer")), "{body}");
    let (status, body) = error_of(
        server
            .post(greet, &json!({ "tracer": "t", "payload": {}, "webhook_url": "ftp://x" }))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, body["error"]["details"][0]["field"].as_str()), (422, Some("webhook_url")), "{body}");
    // An operation whose manifest has no webhook support refuses a webhook URL.
    let spin = "/templates/sandbox-probe/operations/spin";
    let with_hook = json!({ "tracer": "t", "payload": {}, "webhook_url": "https://example.com/hook" });
    let (status, body) = error_of(server.post(spin, &with_hook).send().await.expect("sent")).await;
    assert_eq!((status, body["error"]["details"][0]["field"].as_str()), (422, Some("webhook_url")), "{body}");
    assert!(body["error"]["details"][0]["problem"].as_str().is_some_and(|p| p.contains("webhook")), "{body}");

    let huge = json!({ "tracer": "t", "payload": { "name": "x".repeat(2 << 20) } });
    let (status, body) = error_of(server.post(greet, &huge).send().await.expect("sent")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")));

    let listed: Value = server.get_json("/templates/hello/jobs").await;
    assert_eq!(listed["jobs"], json!([]), "no refused request left a job behind");
    let metrics = server.http.get(server.url("/metrics")).send().await.expect("sent").text().await.expect("text");
    assert!(metrics.contains("vidfarm_http_server_errors_total 0"), "no 500 at all:\n{metrics}");
    server.stop().await;
}

#[tokio::test]
async fn another_customer_can_never_see_or_touch_a_job() {
    let server = TestServer::start().await;
    let job_id = server.create_job("hello", "greet", json!({ "name": "Ada" })).await;
    let mallory = server.new_customer("Mallory").await;
    for (method, path) in [
        ("GET", format!("/templates/hello/jobs/{job_id}")),
        ("GET", format!("/templates/hello/jobs/{job_id}/logs")),
        ("GET", format!("/templates/hello/jobs/{job_id}/events")),
        ("POST", format!("/templates/hello/jobs/{job_id}/cancel")),
        ("POST", format!("/templates/hello/jobs/{job_id}/resume")),
    ] {
        let request = match method {
            "GET" => server.http.get(server.url(&path)),
            _ => server.http.post(server.url(&path)).json(&json!({})),
        };
        let (status, body) = error_of(server.as_customer(&mallory, request).send().await.expect("sent")).await;
        assert_eq!(status, 404, "{method} {path}");
        assert!(!body.to_string().contains("Ada"), "nothing of the job leaks: {body}");
    }
    let listed: Value = server.get_json_as(&mallory, "/templates/hello/jobs").await;
    assert_eq!(listed["jobs"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn a_customer_over_its_creation_rate_gets_429_with_retry_after() {
    let server = TestServer::start_with(|c| c.jobs_per_minute = 3, true).await;
    let body = json!({ "tracer": "t", "payload": { "name": "Ada" } });
    for _ in 0..3 {
        assert_eq!(server.post("/templates/hello/operations/greet", &body).send().await.expect("sent").status(), 202);
    }
    let refused = server.post("/templates/hello/operations/greet", &body).send().await.expect("sent");
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=20).contains(&retry_after), "retry after {retry_after}s");
    server.stop().await;
}

#[tokio::test]
async fn health_metrics_and_openapi_describe_the_service() {
    let server = TestServer::start().await;
    let health: Value = server.http.get(server.url("/health")).send().await.expect("sent").json().await.expect("json");
    assert_eq!(health["status"], "ok");
    let metrics = server.http.get(server.url("/metrics")).send().await.expect("sent").text().await.expect("text");
    assert!(metrics.contains("# TYPE vidfarm_jobs_created_total counter"), "{metrics}");
    let doc: Value =
        server.http.get(server.url("/openapi.json")).send().await.expect("sent").json().await.expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/templates/{template_id}/operations/{operation}",
        "/templates/{template_id}/jobs/{job_id}/events",
        "/templates/{template_id}/jobs/{job_id}/resume",
        "/customers/me/provider-keys/{key_id}",
        "/customers/me/webhooks",
        "/customers/me/webhook-deliveries/{id}/redeliver",
        "/billing/usage",
        "/files/{key}",
        "/admin/templates/{template_id}/activate",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    // The shapes are the types the handlers serialise.
    let job = &doc["components"]["schemas"]["Job"]["properties"];
    for field in ["job_id", "status", "payload", "result", "progress", "retry_of", "created_at"] {
        assert!(job.get(field).is_some(), "Job has `{field}`: {job}");
    }
    assert!(doc["components"]["schemas"]["Error"].is_object());
    // Any route may answer 503 when the database does not answer (docs/api.md, "Errors").
    let create = &doc["paths"]["/templates/{template_id}/operations/{operation}"]["post"]["responses"];
    assert!(create["503"]["description"].as_str().is_some_and(|d| d.contains("database_unavailable")), "{create}");
    server.stop().await;
}

/// The document is generated from the routes: every documented operation is served (a
/// request to it never reaches the "no such route" fallback nor gets 405), and no API router
/// registers a route around the generator (`.route(` instead of `routes!`).
#[tokio::test]
async fn every_documented_operation_is_served_and_every_api_route_is_documented() {
    let server = TestServer::start_with(|c| c.admin_token = Some("op-token".into()), false).await;
    let doc = vidfarm::api::openapi::document();
    let mut served = 0;
    for (path, operations) in doc["paths"].as_object().expect("paths") {
        let concrete: String =
            path.split('/').map(|part| if part.starts_with('{') { "x" } else { part }).collect::<Vec<_>>().join("/");
        for method in operations.as_object().expect("operations").keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            let answer = server.http.request(method.clone(), server.url(&concrete)).send().await.expect("sent");
            let status = answer.status().as_u16();
            let body = answer.text().await.unwrap_or_default();
            assert_ne!(status, 405, "{method} {path} is documented but not served");
            assert!(!body.contains("no such route"), "{method} {path} is documented but not served: {body}");
            served += 1;
        }
    }
    assert!(served >= 42, "only {served} operations documented");
    let api_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src/api");
    for entry in std::fs::read_dir(&api_dir).expect("the api sources") {
        let path = entry.expect("an entry").path();
        let source = std::fs::read_to_string(&path).expect("readable");
        assert!(!source.contains(".route("), "{} registers a route without its OpenAPI entry", path.display());
    }
    server.stop().await;
}

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
        "/customers/me/provider-keys/{id}",
        "/customers/me/webhooks",
        "/customers/me/webhook-deliveries/{id}/redeliver",
        "/billing/usage",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    server.stop().await;
}

/// Every route the API's routers declare (read from their source) has its methods in the
/// OpenAPI document, so the document cannot fall behind the code.
#[test]
fn every_route_and_method_the_routers_declare_is_in_the_openapi_document() {
    let doc = vidfarm::api::openapi::document();
    // Parameter names may differ (`{key_id}` in the router, `{id}` in the document).
    let shape = |path: &str| {
        path.split('/').map(|part| if part.starts_with('{') { "{}" } else { part }).collect::<Vec<_>>().join("/")
    };
    let documented: std::collections::HashMap<String, &serde_json::Value> =
        doc["paths"].as_object().expect("paths").iter().map(|(path, ops)| (shape(path), ops)).collect();
    let api_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src/api");
    let mut checked = 0;
    for entry in std::fs::read_dir(&api_dir).expect("the api sources") {
        let source = std::fs::read_to_string(entry.expect("an entry").path()).expect("readable");
        for declared in source.split(".route(\"").skip(1) {
            let (path, rest) = declared.split_once('"').expect("a quoted path");
            let path = shape(path);
            // `get(list).post(add))` — the rest of the route's line.
            let handlers = rest.lines().next().unwrap_or_default();
            for method in ["get", "post", "put", "patch", "delete"] {
                if handlers.contains(&format!("{method}(")) {
                    let ops = documented.get(&path).unwrap_or_else(|| panic!("{path} is not in /openapi.json"));
                    assert!(ops.get(method).is_some(), "{method} {path} is not in /openapi.json");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 33, "only {checked} routes found: is the pattern still right?");
}

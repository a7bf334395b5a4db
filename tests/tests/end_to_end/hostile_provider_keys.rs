//! The key wall, tried as a hostile customer: nothing a request can make a provider say
//! disables a key — only the provider's own structured "invalid key" error does, and never
//! for the platform's keys, which serve every tenant.

use serde_json::{Value, json};
use std::time::Duration;
use vidfarm_tests::fake_providers::{FakeProviders, Reply, answer_from};
use vidfarm_tests::server::TestServer;

const WITHIN: Duration = Duration::from_secs(30);

async fn server_with(fakes: &FakeProviders, platform_openai: Option<&str>) -> TestServer {
    let endpoints = fakes.endpoints();
    let platform = platform_openai.map(|secret| vidfarm::config::PlatformKey {
        provider: vidfarm::providers::Provider::Openai,
        secret: secret.into(),
        source: "platform",
    });
    TestServer::start_with(
        move |c| {
            c.providers.endpoints = endpoints;
            c.providers.retry_base = Duration::from_millis(20);
            c.providers.platform_keys = platform.into_iter().collect();
        },
        true,
    )
    .await
}

async fn ask(server: &TestServer, provider: &str, model: &str) -> Value {
    let payload = json!({ "provider": provider, "model": model, "prompt": "hi" });
    let job_id = server.create_job("hello", "ask", payload).await;
    server.wait_for("hello", &job_id, &["succeeded", "failed"], WITHIN).await
}

async fn key_status(server: &TestServer, id: &str) -> String {
    let key = server.get_json(&format!("/customers/me/provider-keys/{id}")).await;
    key["status"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_moderation_403_or_a_quoted_error_code_leaves_the_key_active() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes, None).await;
    let body = json!({ "provider": "openrouter", "secret": "sk-or-victim-0001" });
    let added: Value =
        server.post("/customers/me/provider-keys", &body).send().await.expect("sent").json().await.expect("json");
    let id = added["id"].as_str().expect("an id").to_string();

    fakes.script(
        "sk-or-victim-0001",
        [Reply::status(403).body(json!({"error": {"code": 403,
        "message": "Your input was flagged by moderation", "metadata": {"reasons": ["violence"]}}}))],
    );
    let job = ask(&server, "openrouter", "x/y").await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(key_status(&server, &id).await, "active", "a refusal of the request is not a bad key");

    let gemini = json!({ "provider": "gemini", "secret": "AIza-victim-0002" });
    let added: Value =
        server.post("/customers/me/provider-keys", &gemini).send().await.expect("sent").json().await.expect("json");
    let gemini_id = added["id"].as_str().expect("an id").to_string();
    fakes.script(
        "AIza-victim-0002",
        [Reply::status(400).body(json!({"error": {"code": 400,
        "message": "echoing your prompt: API_KEY_INVALID", "status": "INVALID_ARGUMENT"}}))],
    );
    ask(&server, "gemini", "gemini-2.5-flash").await;
    assert_eq!(key_status(&server, &gemini_id).await, "active", "words in a message are not the structured error");
    let job = ask(&server, "gemini", "gemini-2.5-flash").await;
    assert_eq!(job["result"]["text"], answer_from("AIza-victim-0002", "hi"), "the key still works: {job}");
    server.stop().await;
}

#[tokio::test]
async fn a_platform_key_refused_as_invalid_cools_down_and_is_never_disabled() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes, Some("sk-platform-shared-1")).await;
    fakes.script(
        "sk-platform-shared-1",
        [Reply::status(401).body(json!({"error": {"message": "Incorrect API key provided",
            "type": "invalid_request_error", "code": "invalid_api_key"}}))],
    );
    let job_id = server
        .create_job("hello", "ask", json!({ "provider": "openai", "model": "gpt-4o-mini", "prompt": "hi" }))
        .await;
    // The key cools down instead of dying; the job waits for it rather than failing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = server
        .platform
        .db
        .inspect("SELECT status FROM customer_provider_keys WHERE source != 'customer'", &[])
        .await
        .expect("the platform key")
        .remove(0)
        .expect("a status");
    assert_ne!(status, "invalid", "a platform key is never disabled automatically");
    let job = server.job("hello", &job_id).await;
    assert_ne!(job["error"]["code"], "no_valid_provider_key", "{job}");
    let metrics = server.http.get(server.url("/metrics")).send().await.expect("sent").text().await.expect("text");
    assert!(
        metrics.contains(r#"vidfarm_provider_platform_key_auth_errors_total{provider="openai"} 1"#),
        "the operator is told: {metrics}"
    );
    server.stop().await;
}

//! AI providers end to end: customer keys added through the API, leased from SQLite, used
//! against fake providers on loopback that speak the real wire formats, rate-limited, cooled
//! down, invalidated, shared by concurrent jobs, and billed.

use serde_json::{Value, json};
use std::time::Duration;
use vidfarm_tests::fake_providers::{FakeProviders, Reply, answer_from};
use vidfarm_tests::server::{Credentials, TestServer};

const WITHIN: Duration = Duration::from_secs(30);

async fn server_with(fakes: &FakeProviders) -> TestServer {
    let endpoints = fakes.endpoints();
    TestServer::start_with(
        move |c| {
            c.providers.endpoints = endpoints;
            c.providers.retry_base = Duration::from_millis(20);
            c.providers.busy_retry = Duration::from_millis(60);
            c.max_concurrent_jobs = 64;
        },
        true,
    )
    .await
}

async fn add_key_as(server: &TestServer, who: &Credentials, body: Value) -> Value {
    let response = server
        .as_customer(who, server.http.post(server.url("/customers/me/provider-keys")).json(&body))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201, "adding {body}");
    response.json().await.expect("json")
}

async fn add_key(server: &TestServer, provider: &str, secret: &str, weight: i64) -> String {
    let who = server.customer.clone();
    let key = add_key_as(server, &who, json!({ "provider": provider, "secret": secret, "weight": weight })).await;
    key["id"].as_str().expect("an id").to_string()
}

async fn key_view(server: &TestServer, id: &str) -> Value {
    server.get_json(&format!("/customers/me/provider-keys/{id}")).await
}

fn ask(provider: &str, model: &str, prompt: &str) -> Value {
    json!({ "provider": provider, "model": model, "prompt": prompt })
}

async fn run(server: &TestServer, operation: &str, payload: Value) -> Value {
    let job_id = server.create_job("hello", operation, payload).await;
    server.wait_for("hello", &job_id, &["succeeded", "failed"], WITHIN).await
}

#[tokio::test]
async fn each_provider_answers_through_its_own_wire_format_and_is_billed() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    for provider in ["openai", "gemini", "openrouter", "perplexity"] {
        add_key(&server, provider, &format!("sk-{provider}-0001"), 1).await;
    }
    for (provider, model) in
        [("openai", "gpt-4o-mini"), ("gemini", "gemini-2.5-flash"), ("openrouter", "x/y"), ("perplexity", "sonar")]
    {
        let job = run(&server, "ask", ask(provider, model, "three words here")).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["result"]["text"], answer_from(&format!("sk-{provider}-0001"), "three words here"));
        assert_eq!(job["result"]["input_tokens"], 3);
        let job = server.job("hello", job["job_id"].as_str().expect("an id")).await;
        let charge = &job["billing"]["charges"][0];
        assert_eq!((charge["type"].as_str(), charge["provider"].as_str()), (Some("ai_generation"), Some(provider)));
        let cost = charge["cost_nusd"].as_i64().expect("a cost");
        assert!(cost > 0, "{job}");
        assert_eq!(charge["charge_nusd"].as_i64(), Some(2 * cost), "{job}");
    }
    let seen = fakes.seen();
    let paths: Vec<_> = seen.iter().map(|s| (s.provider, s.path.as_str())).collect();
    assert_eq!(paths, [("openai", "chat"), ("gemini", "generate"), ("openrouter", "chat"), ("perplexity", "chat")]);
    assert_eq!(seen[0].body["messages"][0]["content"], "three words here");
    assert_eq!(seen[1].body["contents"][0]["parts"][0]["text"], "three words here");

    for provider in ["openai", "gemini", "openrouter"] {
        let job = run(&server, "draw", json!({ "provider": provider, "model": "img-1", "prompt": "a red fox" })).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(
            (job["result"]["content_type"].as_str(), job["result"]["size"].as_u64()),
            (Some("image/png"), Some(70))
        );
    }
    let refused = run(&server, "draw", json!({ "provider": "perplexity", "model": "sonar", "prompt": "a fox" })).await;
    assert_eq!(refused["error"]["code"], "provider_unsupported", "{refused}");

    let frame = format!("data:image/png;base64,{}", base64_png());
    for provider in ["openai", "gemini"] {
        let payload = json!({ "provider": provider, "model": "vision-1", "image_url": frame, "text": "Hello" });
        let job = run(&server, "place-text", payload).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(
            job["result"],
            json!({ "zone": "top", "align": "center", "max_width_percent": 70.0,
            "justification": "the sky above the subject is empty" })
        );
    }
    let metrics = server.http.get(server.url("/metrics")).send().await.expect("sent").text().await.expect("text");
    assert!(
        metrics.contains(r#"vidfarm_provider_lease_attempts_total{provider="openai",result="granted"} "#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"vidfarm_provider_request_seconds_count{provider="gemini"}"#));
}

#[tokio::test]
async fn speech_goes_out_in_each_providers_wire_format_is_stored_as_a_wav_and_billed_at_its_price() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    add_key(&server, "openai", "sk-openai-0001", 1).await;
    add_key(&server, "gemini", "sk-gemini-0001", 1).await;
    // 48 characters: 3.2 s at the fakes' 15 characters a second.
    let text = "Tide pools hide whole worlds under every rock...";
    assert_eq!(text.len(), 48);
    // tts-1 costs $15 per 1M characters; Gemini's flash TTS $0.50 per 1M text tokens (8 words
    // here) and $10 per 1M audio tokens (32 a second: 103 for 3.2 s).
    for (provider, model, voice, cost_nusd) in [
        ("openai", "tts-1", "alloy", 48 * 15_000),
        ("gemini", "gemini-2.5-flash-preview-tts", "Kore", 8 * 500 + 103 * 10_000),
    ] {
        let payload = json!({ "provider": provider, "model": model, "text": text, "voice": voice });
        let job = run(&server, "speak", payload).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        let result = &job["result"];
        assert_eq!(result["content_type"], "audio/wav", "{job}");
        assert_eq!(result["duration_seconds"].as_f64(), Some(3.2), "{job}");
        assert_eq!(result["size"].as_u64(), Some(44 + 76_800 * 2), "{job}");
        let url = result["url"].as_str().expect("a signed URL");
        let url = server.url(&url[url.find("/files/").expect("a host file URL")..]);
        let wav = server.http.get(&url).send().await.expect("sent").bytes().await.expect("the WAV");
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(
            u32::from_le_bytes(wav[4..8].try_into().expect("four bytes")) as usize,
            wav.len() - 8,
            "exact RIFF size"
        );
        let probed = vidfarm_tests::media::probe(&wav);
        assert!((probed.duration - 3.2).abs() < 0.01, "{probed:?}");
        assert_eq!(probed.codecs, ["pcm_s16le"], "{probed:?}");

        let job = server.job("hello", job["job_id"].as_str().expect("an id")).await;
        let charges = job["billing"]["charges"].as_array().expect("charges");
        assert_eq!(charges.len(), 1, "one call, one charge: {job}");
        assert_eq!(charges[0]["provider"], provider);
        assert_eq!(charges[0]["cost_nusd"].as_i64(), Some(cost_nusd), "{job}");
    }
    let seen = fakes.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        (seen[0].path.as_str(), &seen[0].body["input"], &seen[0].body["voice"]),
        ("speech", &json!(text), &json!("alloy"))
    );
    assert_eq!(seen[0].body["response_format"], "wav");
    let gemini = &seen[1].body;
    assert_eq!(gemini["generationConfig"]["responseModalities"], json!(["AUDIO"]));
    assert_eq!(gemini["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"], "Kore");
    // Held for the text spoken at the slowest, 4 characters a second (12 s), at 32 audio tokens
    // a second, and told to stop there.
    assert_eq!(gemini["generationConfig"]["maxOutputTokens"], 12 * 32, "{gemini}");

    let refused =
        run(&server, "speak", json!({ "provider": "perplexity", "model": "sonar", "text": "hi", "voice": "x" })).await;
    assert_eq!(refused["error"]["code"], "provider_unsupported", "{refused}");
    assert_eq!(fakes.seen().len(), 2, "a refused call reaches no provider");

    // Audio is paid for before its size is known: a customer whose storage is full pays for none.
    let full = vidfarm::db::customers::ShareChanges { storage_quota_bytes: Some(Some(1)), ..Default::default() };
    server.platform.db.set_customer_shares(&server.customer.id, &full).await.expect("quota set");
    let payload = json!({ "provider": "openai", "model": "tts-1", "text": text, "voice": "alloy" });
    let refused = run(&server, "speak", payload).await;
    assert_eq!(refused["error"]["code"], "storage_quota_exceeded", "{refused}");
    assert_eq!(fakes.seen().len(), 2, "no call was made, so none was paid for");
}

#[tokio::test]
async fn a_run_resumed_after_speaking_replays_the_speech_from_the_journal_and_pays_once() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    add_key(&server, "openai", "sk-openai-0001", 1).await;
    let payload = json!({ "provider": "openai", "model": "tts-1", "text": "Keep it?", "voice": "alloy",
                          "then_wait_for_approval": true });
    let job_id = server.create_job("hello", "speak", payload).await;
    server.wait_for("hello", &job_id, &["waiting_for_human"], WITHIN).await;
    let resumed = server.post(&format!("/templates/hello/jobs/{job_id}/resume"), &json!({ "keep": true }));
    assert_eq!(resumed.send().await.expect("sent").status(), 200);
    let job = server.wait_for("hello", &job_id, &["succeeded", "failed"], WITHIN).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["key"], "speech/spoken.wav");
    let calls = fakes.seen().iter().filter(|s| s.path == "speech").count();
    assert_eq!(calls, 1, "the second run replayed the speech instead of calling again");
    let job = server.job("hello", &job_id).await;
    assert_eq!(job["billing"]["charges"].as_array().map(Vec::len), Some(1), "charged once: {job}");
}

fn base64_png() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(vidfarm_tests::fake_providers::PNG)
}

#[tokio::test]
async fn a_rate_limited_key_gives_way_to_the_next_and_cools_down_for_as_long_as_the_provider_said() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    let in_two_minutes = httpdate_in(120);
    let styles: Vec<(&str, Reply)> = vec![
        ("openai", Reply::status(429).header("retry-after", "120")),
        ("openai", Reply::status(429).header("retry-after-ms", "120000")),
        ("openai", Reply::status(429).header("retry-after", &in_two_minutes)),
        (
            "openai",
            Reply::status(429).header("x-ratelimit-reset-requests", "2m0s").header("x-ratelimit-reset-tokens", "12ms"),
        ),
        ("gemini", Reply::gemini_rate_limit("120s")),
    ];
    for (n, (provider, reply)) in styles.into_iter().enumerate() {
        let who = server.new_customer(&format!("style {n}")).await;
        let busy = add_key_as(
            &server,
            &who,
            json!({ "provider": provider, "secret": format!("sk-busy-{n:04}"), "weight": 10 }),
        )
        .await;
        add_key_as(&server, &who, json!({ "provider": provider, "secret": format!("sk-free-{n:04}") })).await;
        fakes.script(&format!("sk-busy-{n:04}"), [reply]);
        let body = json!({ "tracer": "t", "payload": ask(provider, "m", "hello") });
        let created = server
            .as_customer(&who, server.http.post(server.url("/templates/hello/operations/ask")).json(&body))
            .send()
            .await
            .expect("sent");
        let job_id = created.json::<Value>().await.expect("json")["job_id"].as_str().expect("an id").to_string();
        let job = wait_as(&server, &who, &job_id).await;
        assert_eq!(job["result"]["text"], answer_from(&format!("sk-free-{n:04}"), "hello"), "style {n}: {job}");
        let busy_now = server
            .get_json_as(&who, &format!("/customers/me/provider-keys/{}", busy["id"].as_str().expect("id")))
            .await;
        let cooling = seconds_until(&busy_now["cooldown_until"]);
        assert!((100.0..=125.0).contains(&cooling), "style {n}: cooling for {cooling} s: {busy_now}");
        assert_eq!(busy_now["status"], "rate_limited", "a cooling key reads rate_limited");
        let events = server.platform.db.key_usage_events(busy["id"].as_str().expect("id")).await.expect("events");
        assert_eq!(events.iter().map(|(t, s, _)| (t.as_str(), *s)).collect::<Vec<_>>(), [("rate_limit", Some(429))]);
    }
    let metrics = server.http.get(server.url("/metrics")).send().await.expect("sent").text().await.expect("text");
    assert!(metrics.contains(r#"vidfarm_provider_cooldowns_total{provider="openai"} 4"#), "{metrics}");
}

async fn wait_as(server: &TestServer, who: &Credentials, job_id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let job = server.get_json_as(who, &format!("/templates/hello/jobs/{job_id}")).await;
        if job["status"] == "succeeded" || job["status"] == "failed" {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn httpdate_in(seconds: u64) -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(seconds))
}

fn seconds_until(timestamp: &Value) -> f64 {
    let at = time::OffsetDateTime::parse(
        timestamp.as_str().expect("a timestamp"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    (at - time::OffsetDateTime::now_utc()).as_seconds_f64()
}

#[tokio::test]
async fn when_every_key_is_cooling_the_job_waits_without_spinning_then_succeeds() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    add_key(&server, "openai", "sk-only-key-1", 1).await;
    fakes.script("sk-only-key-1", [Reply::status(429).header("retry-after", "1")]);
    let started = std::time::Instant::now();
    let job_id = server.create_job("hello", "ask", ask("openai", "gpt-4o-mini", "wait for me")).await;
    let job = server.wait_for("hello", &job_id, &["succeeded", "failed"], WITHIN).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(started.elapsed() >= Duration::from_millis(900), "the job did not wait for the cooldown");
    assert_eq!(fakes.calls_with("sk-only-key-1"), 2, "one 429, one success: no spinning in between");
    let logs = server.get_json(&format!("/templates/hello/jobs/{job_id}/logs")).await;
    let warned = logs["events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["level"] == "warn" && e["message"].as_str().is_some_and(|m| m.contains("cooling down")));
    assert!(warned, "the job's log says why it waited: {logs}");
    let metrics = server.http.get(server.url("/metrics")).send().await.expect("sent").text().await.expect("text");
    assert!(metrics.contains(r#"vidfarm_provider_job_deferrals_total{provider="openai"} 1"#), "{metrics}");
}

#[tokio::test]
async fn an_invalid_key_is_never_leased_again_and_with_none_left_the_job_fails_clearly() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    let bad = add_key(&server, "gemini", "AIza-bad-0001", 10).await;
    add_key(&server, "gemini", "AIza-good-0002", 1).await;
    let invalid = Reply::status(400).body(json!({"error": {"code": 400,
        "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}));
    fakes.always("AIza-bad-0001", invalid.clone());
    for _ in 0..3 {
        let job = run(&server, "ask", ask("gemini", "gemini-2.5-flash", "hi")).await;
        assert_eq!(job["result"]["text"], answer_from("AIza-good-0002", "hi"), "{job}");
    }
    assert_eq!(fakes.calls_with("AIza-bad-0001"), 1, "the invalid key was used once, then never again");
    let events = server.platform.db.key_usage_events(&bad).await.expect("usage events");
    assert_eq!(events.iter().map(|(t, s, _)| (t.as_str(), *s)).collect::<Vec<_>>(), [("auth_error", Some(400))]);
    let bad_now = key_view(&server, &bad).await;
    assert_eq!(bad_now["status"], "invalid");
    assert!(bad_now["disabled_reason"].as_str().is_some_and(|r| r.contains("API key not valid")), "{bad_now}");

    fakes.always("AIza-good-0002", invalid);
    let job = run(&server, "ask", ask("gemini", "gemini-2.5-flash", "hi")).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error"]["code"], "no_valid_provider_key", "{job}");
    assert!(job["error"]["message"].as_str().is_some_and(|m| m.contains("2 invalid")), "{job}");
}

#[tokio::test]
async fn provider_failures_are_retried_on_another_key_and_bad_requests_are_not() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    let flaky = add_key(&server, "openrouter", "sk-or-flaky-1", 10).await;
    add_key(&server, "openrouter", "sk-or-steady-2", 1).await;
    fakes.script("sk-or-flaky-1", [Reply::status(503)]);
    let job = run(&server, "ask", ask("openrouter", "x/y", "hi")).await;
    assert_eq!(job["result"]["text"], answer_from("sk-or-steady-2", "hi"), "{job}");
    assert_eq!(key_view(&server, &flaky).await["status"], "active", "a 5xx is the provider's fault, not the key's");

    fakes.always("sk-or-flaky-1", Reply::status(500));
    fakes.always("sk-or-steady-2", Reply::status(502));
    let job = run(&server, "ask", ask("openrouter", "x/y", "hi")).await;
    assert_eq!(job["error"]["code"], "provider_failed", "{job}");
    assert_eq!(fakes.calls_with("sk-or-flaky-1") + fakes.calls_with("sk-or-steady-2"), 2 + 3, "three tries in all");

    add_key(&server, "perplexity", "pplx-strict-01", 1).await;
    fakes.script("pplx-strict-01", [Reply::status(400).body(json!({"error": {"message": "Invalid model 'sonar-x'"}}))]);
    let rejected = run(&server, "ask", ask("perplexity", "sonar-x", "hi")).await;
    assert_eq!(rejected["error"]["code"], "provider_invalid_request", "{rejected}");
    assert!(rejected["error"]["message"].as_str().is_some_and(|m| m.contains("Invalid model 'sonar-x'")), "{rejected}");
    assert_eq!(fakes.calls_with("pplx-strict-01"), 1, "a bad request is not retried");
}

#[tokio::test]
async fn twenty_concurrent_jobs_over_three_keys_never_hold_two_live_leases_on_one_key() {
    let fakes = FakeProviders::start().await;
    fakes.set_delay(Duration::from_millis(60));
    let server = server_with(&fakes).await;
    for n in 0..3 {
        add_key(&server, "openai", &format!("sk-shared-{n:04}"), 1).await;
    }
    let mut jobs = Vec::new();
    for n in 0..20 {
        jobs.push(server.create_job("hello", "ask", ask("openai", "gpt-4o-mini", &format!("job {n}"))).await);
    }
    for job_id in &jobs {
        let job = server.wait_for("hello", job_id, &["succeeded", "failed"], Duration::from_secs(60)).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let max = fakes.max_in_flight();
    assert_eq!(max.len(), 3, "every key was used: {max:?}");
    assert!(max.values().all(|n| *n == 1), "a key served two requests at once: {max:?}");
    assert_eq!(fakes.seen().len(), 20, "one request per job");
}

#[tokio::test]
async fn a_key_leased_by_a_worker_that_died_comes_back_when_the_lease_expires() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    let key = add_key(&server, "openai", "sk-orphaned-1", 1).await;
    let orphan = vidfarm::db::key_leases::LeaseRequest {
        customer_id: &server.customer.id,
        provider: "openai",
        model: "gpt-4o-mini",
        job_id: "job_of_a_dead_worker",
        worker_id: "dead-worker",
        lease_ms: 1500,
        exclude: &[],
        platform_fallback: false,
    };
    let granted = server.platform.db.lease_provider_key(&orphan).await.expect("leased");
    assert!(matches!(granted, vidfarm::db::key_leases::LeaseOutcome::Granted(_)), "{granted:?}");
    assert_eq!(key_view(&server, &key).await["leased"], true);
    let started = std::time::Instant::now();
    let job = run(&server, "ask", ask("openai", "gpt-4o-mini", "after you")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(started.elapsed() >= Duration::from_millis(1200), "the key was used while still leased");
    assert_eq!(key_view(&server, &key).await["leased"], false, "the lease was released after the call");
}

#[tokio::test]
async fn no_plaintext_key_is_anywhere_in_the_sqlite_file() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    let secret = "sk-proj-PLAINTEXT-CANARY-8f3a9c";
    add_key(&server, "openai", secret, 1).await;
    let job = run(&server, "ask", ask("openai", "gpt-4o-mini", "hi")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let listed = server.get_json("/customers/me/provider-keys").await;
    assert_eq!(listed["data"][0]["secret_hint"], "…3a9c", "{listed}");
    assert!(!listed.to_string().contains("CANARY"), "the API never returns the secret");
    let bytes = vidfarm_tests::database::stored_bytes(server.dir.path());
    assert!(bytes.len() > 10_000, "the database was read");
    assert!(!bytes.windows(b"CANARY".len()).any(|w| w == b"CANARY"), "plaintext key bytes found in the database");
}

#[tokio::test]
async fn provider_key_requests_are_validated_field_by_field_and_scoped_to_their_owner() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    for (body, field) in [
        (json!({ "secret": "sk-12345678" }), "provider"),
        (json!({ "provider": "anthropic", "secret": "sk-12345678" }), "provider"),
        (json!({ "provider": "openai" }), "secret"),
        (json!({ "provider": "openai", "secret": "short" }), "secret"),
        (json!({ "provider": "openai", "secret": "sk-12345678", "weight": 0 }), "weight"),
        (json!({ "provider": "openai", "secret": "sk-12345678", "models": "gpt-4o" }), "models"),
        (json!({ "provider": "openai", "secret": "sk-12345678", "colour": "red" }), "body"),
    ] {
        let response = server.post("/customers/me/provider-keys", &body).send().await.expect("sent");
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"]["details"][0]["field"], field, "{body}: {error}");
    }
    let who = server.customer.clone();
    let key = add_key_as(
        &server,
        &who,
        json!({ "provider": "openai", "secret": "sk-limited-0001", "label": "team A",
        "models": ["gpt-4o"] }),
    )
    .await;
    let id = key["id"].as_str().expect("an id");
    assert_eq!((key["label"].as_str(), key["models"].clone()), (Some("team A"), json!(["gpt-4o"])));
    let other_model = run(&server, "ask", ask("openai", "gpt-4o-mini", "hi")).await;
    assert!(
        other_model["error"]["message"].as_str().is_some_and(|m| m.contains("1 limited to other models")),
        "{other_model}"
    );

    let paused = server
        .as_customer(
            &who,
            server
                .http
                .patch(server.url(&format!("/customers/me/provider-keys/{id}")))
                .json(&json!({ "status": "paused" })),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(paused.json::<Value>().await.expect("json")["status"], "paused");
    let job = run(&server, "ask", ask("openai", "gpt-4o", "hi")).await;
    assert!(job["error"]["message"].as_str().is_some_and(|m| m.contains("1 paused")), "{job}");
    assert_eq!(fakes.seen().len(), 0, "no call was made with a paused key");

    let stranger = server.new_customer("Stranger").await;
    let theirs = server.get_json_as(&stranger, &format!("/customers/me/provider-keys/{id}")).await;
    assert_eq!(theirs["error"]["code"], "provider_key_not_found");
    let delete = |who: &Credentials| {
        server.as_customer(who, server.http.delete(server.url(&format!("/customers/me/provider-keys/{id}")))).send()
    };
    assert_eq!(delete(&stranger).await.expect("sent").status(), 404);
    assert_eq!(delete(&who).await.expect("sent").status(), 204);
    assert_eq!(delete(&who).await.expect("sent").status(), 404);
}

#[tokio::test]
async fn production_refuses_to_start_without_a_master_key() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut config = vidfarm_tests::server::test_config(dir.path());
    config.env = vidfarm::config::Environment::Production;
    config.providers.master_key = None;
    let refused = vidfarm::engine::Platform::start(config).await.err().expect("refused");
    assert!(refused.to_string().contains("VIDFARM_MASTER_KEY"), "{refused}");
}

#[tokio::test]
async fn platform_keys_serve_only_customers_without_their_own_and_are_recorded_as_such() {
    let fakes = FakeProviders::start().await;
    let endpoints = fakes.endpoints();
    let server = TestServer::start_with(
        move |c| {
            c.providers.endpoints = endpoints;
            c.providers.platform_keys = vec![vidfarm::config::PlatformKey {
                provider: vidfarm::providers::Provider::Openai,
                secret: "sk-platform-env-1".into(),
                source: "environment",
            }];
        },
        true,
    )
    .await;
    let job = run(&server, "ask", ask("openai", "gpt-4o-mini", "hi")).await;
    assert_eq!(job["result"]["text"], answer_from("sk-platform-env-1", "hi"), "{job}");
    let ledger = server.platform.db.job_ledger(job["job_id"].as_str().expect("an id")).await.expect("ledger");
    let metadata: Value = serde_json::from_str(&ledger[0].metadata).expect("JSON");
    assert_eq!(metadata["key_source"], "environment", "{metadata}");

    add_key(&server, "openai", "sk-customer-own-1", 1).await;
    let job = run(&server, "ask", ask("openai", "gpt-4o-mini", "hi")).await;
    assert_eq!(job["result"]["text"], answer_from("sk-customer-own-1", "hi"), "{job}");
    assert_eq!(fakes.calls_with("sk-platform-env-1"), 1, "the customer's own key is preferred");
    assert!(!server.get_json("/customers/me/provider-keys").await.to_string().contains("sk-customer"));
}

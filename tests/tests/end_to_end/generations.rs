//! Long-running generations end to end: `hello film` asks Veo (faked at the wire, real MP4s)
//! for a clip through `providers.generate-video`. The job suspends while the host submits,
//! polls and downloads; the clip is stored and charged its price once, a restart mid-way
//! polls the operation it submitted instead of paying for another, a submit Google may have
//! taken is never sent again, and refused or filtered requests cost nothing.

use serde_json::{Value, json};
use std::time::Duration;
use vidfarm_tests::fake_providers::FakeProviders;
use vidfarm_tests::server::TestServer;

const WITHIN: Duration = Duration::from_secs(60);
const FAST: &str = "veo-3.1-fast-generate-preview";

async fn server_with(fakes: &FakeProviders) -> TestServer {
    let endpoints = fakes.endpoints();
    let server = TestServer::start_with(
        move |c| {
            c.providers.endpoints = endpoints;
            c.providers.retry_base = Duration::from_millis(20);
            c.providers.video_poll = Duration::from_millis(20);
        },
        true,
    )
    .await;
    let body = json!({ "provider": "gemini", "secret": "g-veo-key-0001" });
    let added = server.post("/customers/me/provider-keys", &body).send().await.expect("sent");
    assert_eq!(added.status(), 201);
    server
}

fn film(prompt: &str, seconds: u32) -> Value {
    json!({ "provider": "gemini", "model": FAST, "prompt": prompt, "seconds": seconds })
}

async fn run(server: &TestServer, payload: Value) -> Value {
    let job_id = server.create_job("hello", "film", payload).await;
    server.wait_for("hello", &job_id, &["succeeded", "failed"], WITHIN).await
}

fn generation_charges(job: &Value) -> Vec<Value> {
    let charges = job["billing"]["charges"].as_array().cloned().unwrap_or_default();
    charges.into_iter().filter(|c| c["type"] == "ai_generation").collect()
}

/// The generation row of a job (its id is `<job>_r<effect number>`).
async fn generation_of(server: &TestServer, job_id: &str) -> Option<vidfarm::db::renders::RenderRow> {
    for seq in 1..=4 {
        if let Some(row) = server.platform.db.render(&format!("{job_id}_r{seq}")).await.expect("read") {
            return Some(row);
        }
    }
    None
}

#[tokio::test]
async fn a_veo_clip_is_submitted_once_polled_downloaded_stored_and_charged_its_price() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    let job = run(&server, film("a paper boat on a rainy street", 4)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let result = &job["result"];
    assert_eq!(result["key"], "clips/clip.mp4", "{job}");
    assert_eq!(result["metadata"]["provider"], "gemini", "{job}");
    assert_eq!(result["metadata"]["model"], FAST, "{job}");
    assert_eq!(result["metadata"]["has_audio"], true, "{job}");
    let url = result["url"].as_str().expect("a signed URL");
    let url = server.url(&url[url.find("/files/").expect("a host file URL")..]);
    let mp4 = server.http.get(&url).send().await.expect("sent").bytes().await.expect("the clip");
    let probed = vidfarm_tests::media::probe(&mp4);
    assert!((probed.duration - 4.0).abs() < 0.2, "{probed:?}");

    assert_eq!(fakes.veo_submits(), 1);
    assert!(fakes.veo_polls() >= 3, "polled until done: {}", fakes.veo_polls());
    let submit = fakes.seen().into_iter().find(|s| s.path == "predictLongRunning").expect("a submit");
    assert_eq!(submit.key, "g-veo-key-0001");
    assert_eq!(submit.body["instances"][0]["prompt"], "a paper boat on a rainy street");
    assert_eq!(submit.body["parameters"]["durationSeconds"], 4);
    assert_eq!(submit.body["parameters"]["aspectRatio"], "16:9");

    let job = server.job("hello", job["job_id"].as_str().expect("an id")).await;
    let charges = generation_charges(&job);
    assert_eq!(charges.len(), 1, "one clip, one charge: {job}");
    assert_eq!(charges[0]["provider"], "gemini", "{job}");
    assert_eq!(charges[0]["model"], FAST, "{job}");
    assert_eq!(charges[0]["cost_nusd"].as_i64(), Some(600_000_000), "4 s at $0.15 a second: {job}");
    let job_id = job["job_id"].as_str().expect("an id");
    let logs: Value = server.get_json(&format!("/templates/hello/jobs/{job_id}/logs?limit=500")).await;
    let text = logs.to_string();
    assert!(text.contains("started (gemini-veo)"), "{logs}");
    assert!(text.contains("\"kind\":\"generation\""), "the clip is an artifact event: {logs}");
}

#[tokio::test]
async fn a_restarted_host_collects_the_clip_it_submitted_and_never_submits_or_pays_again() {
    let fakes = FakeProviders::start().await;
    fakes.hold_veo(true);
    let server = server_with(&fakes).await;
    let job_id = server.create_job("hello", "film", film("a lighthouse at dawn", 6)).await;
    let deadline = tokio::time::Instant::now() + WITHIN;
    let stored = loop {
        // First the key alone (written before the submit), then the key and the operation.
        let row = generation_of(&server, &job_id).await;
        if let Some(id) = row.and_then(|r| r.external_id).filter(|id| id.contains("/operations/")) {
            break id;
        }
        assert!(tokio::time::Instant::now() < deadline, "the operation was never stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(stored.contains("\"key\":\"pk_"), "the operation and its key are stored: {stored}");
    let waiting = server.job("hello", &job_id).await;
    assert_eq!(waiting["status"], "waiting_for_child", "no instance is held meanwhile: {waiting}");

    let server = server.restart().await;
    fakes.hold_veo(false);
    let job = server.wait_for("hello", &job_id, &["succeeded", "failed"], WITHIN).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(fakes.veo_submits(), 1, "polled again, never submitted again");
    let row = generation_of(&server, &job_id).await.expect("the generation");
    assert_eq!(row.attempts, 2, "interrupted once, resumed once");
    assert_eq!(row.external_id.as_deref(), Some(stored.as_str()));
    assert_eq!(generation_charges(&job).len(), 1, "{job}");
    let logs: Value = server.get_json(&format!("/templates/hello/jobs/{job_id}/logs?limit=500")).await;
    assert!(logs.to_string().contains("resumed (gemini-veo, attempt 2)"), "{logs}");
}

#[tokio::test]
async fn refused_filtered_and_keyless_generations_cost_nothing_and_say_why() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    for (payload, code, says) in [
        (film("a cat", 12), "provider_invalid_request", "duration-seconds"),
        (
            json!({ "provider": "openai", "model": "sora-2", "prompt": "a cat", "seconds": 4 }),
            "provider_invalid_request",
            "shut down",
        ),
        (
            json!({ "provider": "gemini", "model": "veo-2.0-generate-001", "prompt": "a cat", "seconds": 8 }),
            "provider_invalid_request",
            "model",
        ),
    ] {
        let job = run(&server, payload).await;
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["error"]["code"], code, "{job}");
        assert!(job["error"]["message"].as_str().unwrap_or_default().contains(says), "{job}");
    }
    assert_eq!(fakes.veo_submits(), 0, "refused before any submit");

    let filtered = run(&server, film("FILTERED content", 4)).await;
    assert_eq!(filtered["status"], "failed", "{filtered}");
    assert_eq!(filtered["error"]["code"], "provider_failed", "{filtered}");
    assert!(filtered["error"]["message"].as_str().unwrap_or_default().contains("safety filter"), "{filtered}");
    assert_eq!(fakes.veo_submits(), 1);
    let filtered = server.job("hello", filtered["job_id"].as_str().expect("an id")).await;
    assert!(generation_charges(&filtered).is_empty(), "a withheld clip is not charged: {filtered}");

    let stranger = server.new_customer("no keys").await;
    let body = json!({ "tracer": "t", "payload": film("a cat", 4) });
    let created: Value = server
        .as_customer(&stranger, server.http.post(server.url("/templates/hello/operations/film")).json(&body))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    let job_id = created["job_id"].as_str().expect("an id");
    let deadline = tokio::time::Instant::now() + WITHIN;
    let job = loop {
        let job = server.get_json_as(&stranger, &format!("/templates/hello/jobs/{job_id}")).await;
        if job["status"] == "failed" || job["status"] == "succeeded" {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(job["error"]["code"], "no_valid_provider_key", "another customer's key is never used: {job}");
    assert_eq!(fakes.veo_submits(), 1);
}

#[tokio::test]
async fn a_customer_who_cannot_afford_the_clip_is_refused_before_it_is_submitted() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    assert!(server.platform.db.add_credit(&server.customer.id, 300_000_000).await.expect("credited"));
    // `film` states its cost ($3.20, an 8 s Veo 3.1 clip): $0.30 of credit cannot reserve it.
    let body = json!({ "tracer": "t", "payload": film("a very expensive sunset", 8) });
    let refused = server.post("/templates/hello/operations/film", &body).send().await.expect("sent");
    assert_eq!(refused.status(), 402);
    let refused: Value = refused.json().await.expect("JSON");
    assert_eq!(refused["error"]["code"], "billing_limit_reached", "{refused}");
    assert_eq!(fakes.veo_submits(), 0, "nothing is submitted that cannot be paid for");
}

#[tokio::test]
async fn a_submit_google_may_have_taken_is_never_sent_again_and_one_it_refused_is() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    // A 500 may hide an accepted, paid operation: the call fails and says so.
    fakes.script("g-veo-key-0001", [vidfarm_tests::fake_providers::Reply::status(500)]);
    let job = run(&server, film("a glass of water", 4)).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "provider_failed", "{job}");
    assert!(job["error"]["message"].as_str().unwrap_or_default().contains("may have been accepted"), "{job}");
    assert_eq!(fakes.veo_submits(), 1, "not sent again");
    // A 503 says Google did not take it: sent again, and the clip comes.
    fakes.script("g-veo-key-0001", [vidfarm_tests::fake_providers::Reply::status(503)]);
    let job = run(&server, film("a glass of milk", 4)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(fakes.veo_submits(), 3);
}

#[tokio::test]
async fn a_clip_address_off_the_gemini_endpoint_is_never_fetched_with_the_key() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    fakes.set_veo_uri("http://127.0.0.1:9/steal-the-key");
    let job = run(&server, film("a red balloon", 4)).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(job["error"]["message"].as_str().unwrap_or_default().contains("not on the Gemini endpoint"), "{job}");
    // Accepted by Google, so paid for: the clip's price is charged even though it was lost.
    let job = server.job("hello", job["job_id"].as_str().expect("an id")).await;
    assert_eq!(generation_charges(&job).len(), 1, "{job}");
}

#[tokio::test]
async fn cancelling_a_job_mid_generation_stops_the_polling_and_charges_the_accepted_clip() {
    let fakes = FakeProviders::start().await;
    fakes.hold_veo(true);
    let server = server_with(&fakes).await;
    let job_id = server.create_job("hello", "film", film("a slow river", 8)).await;
    let deadline = tokio::time::Instant::now() + WITHIN;
    while fakes.veo_polls() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "never polled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancelled =
        server.post(&format!("/templates/hello/jobs/{job_id}/cancel"), &json!({})).send().await.expect("sent");
    assert!(cancelled.status().is_success(), "{}", cancelled.status());
    let job = server.wait_for("hello", &job_id, &["cancelled"], WITHIN).await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // past a heartbeat
    let polls = fakes.veo_polls();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fakes.veo_polls(), polls, "the host stopped polling");
    let row = generation_of(&server, &job_id).await.expect("the generation");
    assert_eq!(row.status, "cancelled");
    let job = server.job("hello", job["job_id"].as_str().unwrap_or(&job_id)).await;
    let charges = generation_charges(&job);
    assert_eq!(charges.len(), 1, "Google bills an accepted clip, cancelled or not: {job}");
    assert_eq!(charges[0]["cost_nusd"].as_i64(), Some(1_200_000_000), "8 s at $0.15: {job}");
}

//! Quote, hold, capture: money is held before any effect that costs it, so a customer never
//! goes past their limit, however greedy the provider's answers and however many jobs race.
//! The provider stand-in bills every output token a request allows (200,000 when unbounded).

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use vidfarm_tests::fake_providers::FakeProviders;
use vidfarm_tests::server::TestServer;

const WITHIN: Duration = Duration::from_secs(60);
const THIRTY_CENTS: i64 = 300_000_000;

async fn greedy_customer_with_30_cents() -> (FakeProviders, TestServer) {
    let fakes = FakeProviders::start().await;
    fakes.set_greedy(true);
    let endpoints = fakes.endpoints();
    let server = TestServer::start_with(
        move |c| {
            c.providers.endpoints = endpoints;
            c.providers.retry_base = Duration::from_millis(20);
            c.max_concurrent_jobs = 64;
        },
        true,
    )
    .await;
    assert!(server.platform.db.add_credit(&server.customer.id, THIRTY_CENTS).await.expect("credited"));
    for provider in ["openai", "gemini"] {
        let body = json!({ "provider": provider, "secret": format!("sk-{provider}-greedy-0001") });
        let added = server.post("/customers/me/provider-keys", &body).send().await.expect("sent");
        assert_eq!(added.status(), 201);
    }
    (fakes, server)
}

/// Create a job; `Err(code)` when the API refuses it (a 402 once the credit is spent).
async fn try_create(server: &TestServer, template: &str, operation: &str, payload: Value) -> Result<String, String> {
    let body = json!({ "tracer": "holds", "payload": payload });
    let response = server.post(&format!("/templates/{template}/operations/{operation}"), &body).send().await;
    let response = response.expect("sent");
    let status = response.status();
    let answer: Value = response.json().await.expect("json");
    match status.as_u16() {
        202 => Ok(answer["job_id"].as_str().expect("an id").to_string()),
        402 => Err(answer["error"]["code"].as_str().unwrap_or("?").to_string()),
        other => panic!("creating {template}/{operation}: {other} {answer}"),
    }
}

/// Runs `payload` as `operation` in three waves of eight concurrent jobs; the outcomes (a job
/// refused at creation counts by its error code, like one that failed).
async fn three_waves_of_eight(server: &TestServer, operation: &str, payload: Value) -> BTreeMap<String, usize> {
    let mut outcomes = BTreeMap::new();
    for _ in 0..3 {
        let created =
            futures::future::join_all((0..8).map(|_| try_create(server, "hello", operation, payload.clone()))).await;
        let mut ids = Vec::new();
        for attempt in created {
            match attempt {
                Ok(id) => ids.push(id),
                Err(code) => *outcomes.entry(code).or_insert(0) += 1,
            }
        }
        for id in &ids {
            let job = server.wait_for("hello", id, &["succeeded", "failed"], WITHIN).await;
            let outcome = if job["status"] == "succeeded" {
                "succeeded".to_string()
            } else {
                job["error"]["code"].as_str().unwrap_or("?").to_string()
            };
            *outcomes.entry(outcome).or_insert(0) += 1;
        }
    }
    outcomes
}

async fn limits(server: &TestServer) -> Value {
    server.get_json("/billing/usage").await["limits"].clone()
}

#[tokio::test]
async fn greedy_answers_never_take_a_30_cent_customer_below_zero() {
    let (fakes, server) = greedy_customer_with_30_cents().await;
    // gpt-4o: $10 per 1M output tokens, charged at margin 2: the 16,384-token default bound
    // alone would cost $0.33, so the host lowers each call's bound to what is left.
    let ask = json!({ "provider": "openai", "model": "gpt-4o", "prompt": "write as much as you can" });
    let outcomes = three_waves_of_eight(&server, "ask", ask).await;
    let limits = limits(&server).await;
    let charged = limits["charged_nusd"].as_i64().expect("charged");
    assert!(charged <= THIRTY_CENTS, "charged {charged} nano-USD of 300,000,000: {limits}");
    assert!(outcomes.get("succeeded").is_some_and(|n| *n >= 1), "{outcomes:?}");
    assert_eq!(outcomes.keys().filter(|k| *k != "succeeded").cloned().collect::<Vec<_>>(), ["billing_limit_reached"]);
    assert!(limits["available_nusd"].as_i64().is_some_and(|a| a >= 0), "{limits}");
    assert_eq!(limits["held_nusd"], 0, "every hold settled: {limits}");

    // Only jobs that could pay reached the provider, each with an output bound that fits.
    let calls = fakes.seen();
    assert_eq!(calls.len(), outcomes["succeeded"], "refused jobs made no call");
    for call in &calls {
        let bound = call.body["max_completion_tokens"].as_u64().expect("the host always sets the bound");
        assert!((1..=16_384).contains(&bound), "{bound}");
    }
    server.stop().await;
}

#[tokio::test]
async fn image_calls_hold_their_real_price_and_stop_when_it_no_longer_fits() {
    let (fakes, server) = greedy_customer_with_30_cents().await;
    // Gemini's image model bills 1,290 output tokens at $30/M: $0.0387, $0.0774 at margin 2.
    let draw = json!({ "provider": "gemini", "model": "gemini-2.5-flash-image", "prompt": "a red fox" });
    // `draw` reserves its $0.10 estimate × 2 at creation, so fewer run at once than fit.
    let outcomes = three_waves_of_eight(&server, "draw", draw).await;
    let succeeded = outcomes.get("succeeded").copied().unwrap_or(0);
    assert!((1..=3).contains(&succeeded), "at most three $0.0774 images fit in $0.30: {outcomes:?}");
    assert_eq!(outcomes.get("billing_limit_reached"), Some(&(24 - succeeded)), "{outcomes:?}");
    assert_eq!(fakes.seen().len(), succeeded, "no call for the refused ones");
    let limits = limits(&server).await;
    let charged = limits["charged_nusd"].as_i64().expect("charged");
    // Each: 1,290 output tokens at $30/M and the 3 prompt tokens the fake reports at $0.30/M, × 2.
    assert_eq!(charged, succeeded as i64 * 2 * (1_290 * 30_000 + 3 * 300), "{limits}");
    server.stop().await;
}

#[tokio::test]
async fn an_image_whose_worst_case_exceeds_the_credit_is_never_called() {
    let (fakes, server) = greedy_customer_with_30_cents().await;
    // gpt-image-1 at its largest output is $0.2496, $0.4992 charged: it never fits $0.30.
    let big = json!({ "provider": "openai", "model": "gpt-image-1", "prompt": "a red fox" });
    let job_id = server.create_job("hello", "draw", big).await;
    let job = server.wait_for("hello", &job_id, &["succeeded", "failed"], WITHIN).await;
    assert_eq!(job["error"]["code"], "billing_limit_reached", "{job}");
    assert!(job["error"]["message"].as_str().is_some_and(|m| m.contains("$0.50")), "{job}");
    assert!(fakes.seen().is_empty(), "no call was made");
    server.stop().await;
}

#[tokio::test]
async fn a_job_shows_its_hold_captured_and_the_rest_released() {
    let (_fakes, server) = greedy_customer_with_30_cents().await;
    let ask = json!({ "provider": "openai", "model": "gpt-4o-mini", "prompt": "hi", "max_output_tokens": 1000 });
    let job_id = server.create_job("hello", "ask", ask).await;
    server.wait_for("hello", &job_id, &["succeeded"], WITHIN).await;
    let billing = server.job("hello", &job_id).await["billing"].clone();
    let hold = &billing["holds"][0];
    assert_eq!(
        (hold["type"].as_str(), hold["status"].as_str()),
        (Some("ai_generation"), Some("captured")),
        "{billing}"
    );
    // 1,000 output tokens at $0.60/M, the prompt (2 bytes + 32 of framing) at $0.15/M, × 2.
    assert_eq!(hold["held"]["nusd"], 2 * (1_000 * 600 + 34 * 150), "{billing}");
    let charge = &billing["charges"][0];
    assert_eq!(charge["charge_nusd"], hold["captured"]["nusd"]);
    assert_eq!(
        hold["held"]["nusd"].as_i64().expect("held"),
        hold["captured"]["nusd"].as_i64().expect("captured") + hold["released"]["nusd"].as_i64().expect("released")
    );
    assert!(charge["charge_usd"].as_str().is_some_and(|usd| usd.starts_with("0.00")), "a decimal string: {charge}");
    assert_eq!(billing["charged_nusd"], charge["charge_nusd"]);
    server.stop().await;
}

#[tokio::test]
async fn a_replayed_call_reuses_its_hold_and_is_captured_once() {
    // No workers: the test plays the run — hold, call, crash before the journal, replay.
    let server = TestServer::start_with(|_| {}, false).await;
    let db = &server.platform.db;
    assert!(db.add_credit(&server.customer.id, THIRTY_CENTS).await.expect("credited"));
    let job_id = server.create_job("hello", "greet", json!({ "name": "Ada" })).await;
    assert_eq!(db.claim_jobs(1, "run-1", 60_000, 10).await.expect("claimed").len(), 1);
    let key = format!("{job_id}:1");
    let request = vidfarm::db::holds::HoldRequest {
        effect_key: &key,
        customer_id: &server.customer.id,
        job_id: &job_id,
        template_id: "hello",
        kind: "ai_generation",
        want_cost_nusd: 50_000_000,
        min_cost_nusd: 1_000,
        lease_token: "run-1",
    };
    use vidfarm::db::holds::{Actual, HoldOutcome};
    let HoldOutcome::Held(first) = db.place_hold(&request, 2.0).await.expect("placed") else { panic!("no hold") };
    assert_eq!((first.held_nusd, first.reused), (100_000_000, false));
    let actual = Actual { cost_nusd: 20_000_000, provider: Some("openai"), model: Some("gpt-4o"), metadata: "{}" };
    assert_eq!(db.note_hold_actual(&key, &actual, 2.0).await.expect("noted"), Some(40_000_000));
    // The host dies here: the answer is lost, the journal has nothing. The replay asks again.
    let HoldOutcome::Held(again) = db.place_hold(&request, 2.0).await.expect("placed") else { panic!("no hold") };
    assert!(again.reused && again.held_nusd == first.held_nusd, "the same hold: {again:?}");
    db.note_hold_actual(&key, &actual, 2.0).await.expect("noted");
    let entry = vidfarm::capabilities::JournalEntry {
        seq: 1,
        kind: "providers.generate-text".into(),
        request_digest: "d".into(),
        result: "{}".into(),
    };
    assert!(db.append_journal(&job_id, "run-1", &entry).await.expect("journaled"));
    let ledger = db.job_ledger(&job_id).await.expect("ledger");
    assert_eq!(ledger.iter().map(|r| r.charge_nusd).collect::<Vec<_>>(), [40_000_000], "one charge: {ledger:?}");
    let summary = db.billing_summary(&server.customer.id).await.expect("summary").expect("a customer");
    assert_eq!((summary.held_nusd, summary.available_nusd), (0, THIRTY_CENTS - 40_000_000));
    server.stop().await;
}

#[tokio::test]
async fn a_hold_left_open_by_a_crash_is_settled_when_the_job_ends() {
    let server = TestServer::start_with(|_| {}, false).await;
    let db = &server.platform.db;
    assert!(db.add_credit(&server.customer.id, THIRTY_CENTS).await.expect("credited"));
    let job_id = server.create_job("hello", "greet", json!({ "name": "Ada" })).await;
    db.claim_jobs(1, "run-1", 60_000, 10).await.expect("claimed");
    use vidfarm::db::holds::{Actual, HoldRequest};
    let (spent, unspent) = (format!("{job_id}:1"), format!("{job_id}:2"));
    for key in [&spent, &unspent] {
        let request = HoldRequest {
            effect_key: key,
            customer_id: &server.customer.id,
            job_id: &job_id,
            template_id: "hello",
            kind: "ai_generation",
            want_cost_nusd: 10_000_000,
            min_cost_nusd: 1,
            lease_token: "run-1",
        };
        db.place_hold(&request, 1.0).await.expect("placed");
    }
    let actual = Actual { cost_nusd: 3_000_000, provider: None, model: None, metadata: "{}" };
    db.note_hold_actual(&spent, &actual, 1.0).await.expect("noted");
    let summary = db.billing_summary(&server.customer.id).await.expect("summary").expect("a customer");
    assert_eq!(summary.available_nusd, THIRTY_CENTS - 20_000_000, "both holds count while the job runs");
    // The job is cancelled before either effect is journaled.
    let finish = vidfarm::db::jobs::Finish::Cancelled { error: "{}".into() };
    assert!(db.finish_run(&job_id, "run-1", 0, &finish, None).await.expect("finished"));
    let holds = db.job_holds(&job_id).await.expect("holds");
    let states: Vec<_> = holds.iter().map(|h| (h.status.as_str(), h.captured_nusd)).collect();
    assert_eq!(states, [("captured", Some(3_000_000)), ("released", Some(0))]);
    let summary = db.billing_summary(&server.customer.id).await.expect("summary").expect("a customer");
    assert_eq!((summary.charged_nusd, summary.held_nusd), (3_000_000, 0));
    server.stop().await;
}

#[tokio::test]
async fn renders_hold_their_whole_price_before_they_are_queued() {
    // $3 per minute of output: a 2 s spec costs $0.10, $0.20 at margin 2 — one fits in $0.30.
    let server = TestServer::start_with(|c| c.render.usd_per_minute = 3.0, true).await;
    assert!(server.platform.db.add_credit(&server.customer.id, THIRTY_CENTS).await.expect("credited"));
    let dir = tempfile::tempdir().expect("a temp dir");
    let png = vidfarm_tests::media::png(dir.path(), "still.png", "teal", "160x120");
    let body = json!({ "key": "in/still.png", "content_type": "image/png" });
    let signed: Value =
        server.post("/files/sign-upload", &body).send().await.expect("sent").json().await.expect("json");
    let url = signed["url"].as_str().expect("a URL");
    let mut put = server.http.put(server.url(&url[url.find("/files/").expect("a host file URL")..])).body(png);
    for (name, value) in signed["headers"].as_object().into_iter().flatten() {
        put = put.header(name.as_str(), value.as_str().expect("a header value"));
    }
    assert!(put.send().await.expect("sent").status().is_success());
    let spec = json!({
        "canvas": { "width": 160, "height": 120, "fps": 10 },
        "duration": 2,
        "backgrounds": [{ "src": "workspace:in/still.png", "type": "image" }]
    });
    // One after another: each job reserves the template's $0.05 estimate × 2 at creation.
    let mut outcomes = BTreeMap::new();
    for _ in 0..4 {
        let outcome = match try_create(&server, "json-to-video", "render", spec.clone()).await {
            Err(code) => code,
            Ok(id) => {
                let job = server.wait_for("json-to-video", &id, &["succeeded", "failed"], WITHIN).await;
                let code = job["error"]["code"].as_str().unwrap_or("?").to_string();
                if job["status"] == "succeeded" { "succeeded".to_string() } else { code }
            }
        };
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    assert_eq!(outcomes.get("succeeded"), Some(&1), "{outcomes:?}");
    assert_eq!(outcomes.get("billing_limit_reached"), Some(&3), "{outcomes:?}");
    let rendered =
        server.platform.db.inspect("SELECT CAST(COUNT(*) AS TEXT) FROM renders", &[]).await.expect("counted");
    assert_eq!(rendered, [Some("1".to_string())], "the refused renders were never queued");
    let limits = limits(&server).await;
    let charged = limits["charged_nusd"].as_i64().expect("charged");
    assert!((190_000_000..=200_000_000).contains(&charged), "about 2 s at $3/min × 2: {limits}");
    assert_eq!(limits["held_nusd"], 0, "{limits}");
    server.stop().await;
}

//! Webhooks end to end: every job event reaches a receiver on loopback that verifies each
//! signature with the `standardwebhooks` package from PyPI (not our code); deliveries are
//! retried from the persisted outbox across a receiver outage and a host restart; 410 and
//! `Retry-After` are honoured; production refuses private addresses.

use serde_json::{Value, json};
use std::time::Duration;
use vidfarm_tests::receiver::Receiver;
use vidfarm_tests::server::TestServer;

const WITHIN: Duration = Duration::from_secs(30);

async fn server_with_schedule(schedule: &str) -> TestServer {
    let schedule: Vec<Duration> =
        schedule.split(',').map(|ms| Duration::from_millis(ms.trim().parse().expect("milliseconds"))).collect();
    TestServer::start_with(move |c| c.webhooks.retry_schedule = schedule, true).await
}

async fn add_destination(server: &TestServer, url: &str) -> Value {
    let response = server.post("/customers/me/webhooks", &json!({ "url": url })).send().await.expect("sent");
    assert_eq!(response.status(), 201);
    response.json().await.expect("json")
}

/// Wait until `done` holds for what the receiver got.
async fn wait_received(receiver: &Receiver, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let received = receiver.received().await;
        if done(&received) {
            return received;
        }
        assert!(tokio::time::Instant::now() < deadline, "never arrived; got {received:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn types_at<'a>(received: &'a [Value], path: &str) -> Vec<&'a str> {
    received.iter().filter(|r| r["path"] == path).filter_map(|r| r["body"]["type"].as_str()).collect()
}

fn has_lifecycle(types: &[&str]) -> bool {
    ["job.queued", "job.running", "job.succeeded"].iter().all(|t| types.contains(t))
}

async fn deliveries(server: &TestServer, query: &str) -> Vec<Value> {
    server.get_json(&format!("/customers/me/webhook-deliveries{query}")).await["data"]
        .as_array()
        .expect("a list")
        .clone()
}

/// A delivery is marked once the receiver's answer is back, a moment after the receiver got
/// the request: poll the listing until it shows what the test waits for.
async fn deliveries_when(server: &TestServer, query: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let listed = deliveries(server, query).await;
        if done(&listed) {
            return listed;
        }
        assert!(tokio::time::Instant::now() < deadline, "never recorded; got {listed:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_job_event_arrives_signed_and_verified_by_an_independent_implementation() {
    let receiver = Receiver::start(0);
    let server = server_with_schedule("0,200,400").await;
    let destination = add_destination(&server, &receiver.url("/all-jobs")).await;
    receiver.trust(destination["secret"].as_str().expect("the secret, shown once")).await;
    let listed = server.get_json("/customers/me/webhooks").await;
    assert!(listed["data"][0]["secret"].is_null(), "the secret is never shown again: {listed}");

    // The secret signing jobs' own webhook URLs, set up before the first such job.
    let rotated: Value =
        server.post("/customers/me/webhook-secret", &json!({})).send().await.expect("sent").json().await.expect("json");
    receiver.trust(rotated["secret"].as_str().expect("a secret")).await;
    let body = json!({ "tracer": "t-1", "payload": { "name": "Ada" }, "webhook_url": receiver.url("/this-job") });
    let created: Value =
        server.post("/templates/hello/operations/greet", &body).send().await.expect("sent").json().await.expect("json");
    assert!(created["webhook_secret"].is_null(), "the customer already has a secret: {created}");
    let job_id = created["job_id"].as_str().expect("an id");
    server.wait_for("hello", job_id, &["succeeded"], WITHIN).await;

    let received = wait_received(&receiver, |r| {
        has_lifecycle(&types_at(r, "/all-jobs")) && has_lifecycle(&types_at(r, "/this-job"))
    })
    .await;
    assert!(received.iter().all(|r| r["verified"] == true), "every signature verifies: {received:#?}");
    for path in ["/all-jobs", "/this-job"] {
        let types = types_at(&received, path);
        assert_eq!(types.first(), Some(&"job.queued"), "{types:?}");
        assert_eq!(types.last(), Some(&"job.succeeded"), "{types:?}");
        assert!(types.iter().filter(|t| **t == "job.progress").count() <= 1, "progress is throttled: {types:?}");
    }
    let succeeded = received.iter().find(|r| r["body"]["type"] == "job.succeeded").expect("succeeded");
    assert_eq!(succeeded["body"]["data"]["job_id"], *job_id);
    assert_eq!(succeeded["body"]["data"]["result"]["greeting"], "Hello, Ada!");
    assert_eq!(succeeded["body"]["data"]["tracer"], "t-1");

    // A customer without a secret gets one with their first webhook job, shown once.
    let newcomer = server.new_customer("Newcomer").await;
    let create =
        || server.as_customer(&newcomer, server.http.post(server.url("/templates/hello/operations/greet")).json(&body));
    let first: Value = create().send().await.expect("sent").json().await.expect("json");
    assert!(first["webhook_secret"].as_str().is_some_and(|s| s.starts_with("whsec_")), "{first}");
    let second: Value = create().send().await.expect("sent").json().await.expect("json");
    assert!(second["webhook_secret"].is_null(), "shown once only: {second}");
    let listed = deliveries_when(&server, &format!("?job_id={job_id}"), |l| {
        l.len() >= 6 && l.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    assert!(listed.len() >= 6, "{listed:#?}");
    for delivery in &listed {
        assert_eq!(delivery["status"], "delivered", "{delivery}");
        assert_eq!(delivery["attempts"][0]["status_code"], 200);
    }
}

#[tokio::test]
async fn a_receiver_down_then_up_gets_every_event_even_across_a_host_restart() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("addr").port();
    let schedule = std::iter::once("0").chain(std::iter::repeat_n("250", 60)).collect::<Vec<_>>().join(",");
    let server = server_with_schedule(&schedule).await;
    let destination = add_destination(&server, &format!("http://127.0.0.1:{port}/hooks")).await;
    let job_id = server.create_job("hello", "greet", json!({ "name": "Grace" })).await;
    server.wait_for("hello", &job_id, &["succeeded"], WITHIN).await;
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let pending = deliveries(&server, "?status=pending").await;
        let first = pending.iter().find(|d| d["event_type"] == "job.queued");
        if pending.len() >= 3 && first.is_some_and(|d| d["attempt_count"].as_i64() >= Some(2)) {
            let first = first.expect("found");
            assert!(first["attempts"][0]["status_code"].is_null(), "{first}");
            assert!(first["attempts"][0]["error"].as_str().is_some_and(|e| !e.is_empty()), "{first}");
            // Events of a job reach a URL in order: the later ones wait for the first.
            assert!(pending.iter().filter(|d| d["event_type"] != "job.queued").all(|d| d["attempt_count"] == 0));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no failed attempts recorded: {pending:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let server = server.restart().await;
    let receiver = Receiver::start_trusting(port, &[destination["secret"].as_str().expect("secret")]);
    let received = wait_received(&receiver, |r| has_lifecycle(&types_at(r, "/hooks"))).await;
    assert!(received.iter().all(|r| r["verified"] == true));
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !deliveries(&server, "?status=pending").await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "deliveries left pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(types_at(&received, "/hooks").first(), Some(&"job.queued"), "in order");
    for delivery in deliveries(&server, &format!("?job_id={job_id}")).await {
        assert_eq!(delivery["status"], "delivered", "{delivery}");
        let attempts = delivery["attempts"].as_array().expect("attempts");
        if delivery["event_type"] == "job.queued" {
            assert!(attempts.len() >= 3, "failed attempts are kept beside the success: {delivery}");
        }
        assert_eq!(attempts.last().expect("one")["status_code"], 200);
    }
}

#[tokio::test]
async fn retry_after_is_honoured_and_410_gone_disables_the_destination() {
    let receiver = Receiver::start(0);
    let server = server_with_schedule("0,100,100,100,100,100").await;
    let destination = add_destination(&server, &receiver.url("/busy")).await;
    receiver.trust(destination["secret"].as_str().expect("secret")).await;
    receiver.answer(503, json!({ "retry-after": "2" })).await;
    let job_id = server.create_job("hello", "greet", json!({ "name": "Lin" })).await;
    server.wait_for("hello", &job_id, &["succeeded"], WITHIN).await;
    wait_received(&receiver, |r| !r.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    receiver.answer(200, json!({})).await;
    let received = wait_received(&receiver, |r| has_lifecycle(&types_at(r, "/busy"))).await;
    let queued_answered = |l: &[Value]| {
        l.iter().any(|d| d["event_type"] == "job.queued" && d["attempts"].as_array().is_some_and(|a| a.len() >= 2))
    };
    let queued = deliveries_when(&server, &format!("?job_id={job_id}"), queued_answered)
        .await
        .into_iter()
        .find(|d| d["event_type"] == "job.queued")
        .expect("queued");
    let at = |a: &Value| {
        time::OffsetDateTime::parse(a["at"].as_str().expect("at"), &time::format_description::well_known::Rfc3339)
            .expect("time")
    };
    let attempts = queued["attempts"].as_array().expect("attempts");
    assert_eq!(
        (attempts[0]["status_code"].as_i64(), attempts[1]["status_code"].as_i64()),
        (Some(503), Some(200)),
        "{queued}"
    );
    let waited = (at(&attempts[1]) - at(&attempts[0])).as_seconds_f64();
    assert!(waited >= 1.9, "the second attempt came {waited} s after the first, not after Retry-After: 2");
    assert!(received.iter().filter(|r| r["answered"] == 503).count() >= 1);

    receiver.answer(410, json!({})).await;
    let gone_job = server.create_job("hello", "greet", json!({ "name": "Gone" })).await;
    server.wait_for("hello", &gone_job, &["succeeded"], WITHIN).await;
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let listed = server.get_json("/customers/me/webhooks").await;
        if listed["data"][0]["status"] == "disabled" {
            assert!(listed["data"][0]["disabled_reason"].as_str().is_some_and(|r| r.contains("410")));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{listed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = receiver.received().await.len();
    let later = server.create_job("hello", "greet", json!({ "name": "Later" })).await;
    server.wait_for("hello", &later, &["succeeded"], WITHIN).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().await.len(), before, "nothing goes to a disabled destination");
    assert!(deliveries(&server, &format!("?job_id={later}")).await.is_empty());
}

#[tokio::test]
async fn a_delivery_can_be_sent_again_with_the_same_webhook_id() {
    let receiver = Receiver::start(0);
    let server = server_with_schedule("0,100").await;
    let destination = add_destination(&server, &receiver.url("/again")).await;
    receiver.trust(destination["secret"].as_str().expect("secret")).await;
    let job_id = server.create_job("hello", "greet", json!({ "name": "Bo" })).await;
    server.wait_for("hello", &job_id, &["succeeded"], WITHIN).await;
    wait_received(&receiver, |r| has_lifecycle(&types_at(r, "/again"))).await;
    let delivered = deliveries_when(&server, &format!("?job_id={job_id}&status=delivered"), |l| {
        l.iter().any(|d| d["event_type"] == "job.succeeded")
    })
    .await;
    let id = delivered.iter().find(|d| d["event_type"] == "job.succeeded").expect("succeeded")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let response = server
        .post(&format!("/customers/me/webhook-deliveries/{id}/redeliver"), &json!({}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let received = wait_received(&receiver, |r| r.iter().filter(|x| x["id"] == id.as_str()).count() == 2).await;
    assert!(received.iter().all(|r| r["verified"] == true));
    // The attempt is recorded once the receiver's answer is back, a moment after it got the request.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let one = loop {
        let one = server.get_json(&format!("/customers/me/webhook-deliveries/{id}")).await;
        if one["attempts"].as_array().map(Vec::len) == Some(2) || tokio::time::Instant::now() > deadline {
            break one;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(one["attempts"].as_array().map(Vec::len), Some(2), "{one}");
    let stranger = server.new_customer("Stranger").await;
    let theirs = server
        .as_customer(
            &stranger,
            server.http.post(server.url(&format!("/customers/me/webhook-deliveries/{id}/redeliver"))),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(theirs.status(), 404);
}

#[tokio::test]
async fn production_refuses_webhooks_to_loopback_and_private_addresses() {
    // Production's setting (development keeps it on so local receivers work).
    let server = TestServer::start_with(|c| c.webhooks.allow_private = false, false).await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest",
        "http://[::1]/x",
    ] {
        let response = server.post("/customers/me/webhooks", &json!({ "url": url })).send().await.expect("sent");
        assert_eq!(response.status(), 422, "{url}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"]["details"][0]["field"], "url", "{error}");
        let job = json!({ "tracer": "t", "payload": { "name": "x" }, "webhook_url": url });
        let response = server.post("/templates/hello/operations/greet", &job).send().await.expect("sent");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"]["details"][0]["field"], "webhook_url", "{url}: {error}");
    }
}

#[tokio::test]
async fn a_job_waiting_on_its_render_still_sends_progress_webhooks() {
    let server = server_with_schedule("0").await;
    let receiver = Receiver::start(0);
    let destination = add_destination(&server, &receiver.url("/hooks")).await;
    receiver.trust(destination["secret"].as_str().expect("a secret")).await;
    // A parent waiting on spinning children stands in for a job waiting on its render: the
    // render worker moves such a job's progress the same way.
    let job_id = server.create_job("sandbox-probe", "spawn-spinners", json!({ "children": 1 })).await;
    server.wait_for("sandbox-probe", &job_id, &["waiting_for_child"], WITHIN).await;
    server.platform.db.set_render_progress(&job_id, 0.4, "rendering: frames 40%").await.expect("written");
    let received = wait_received(&receiver, |r| r.iter().any(|d| d["body"]["type"] == "job.progress")).await;
    let progress = received.iter().find(|d| d["body"]["type"] == "job.progress").expect("a progress webhook");
    assert_eq!(progress["body"]["data"]["status"], "waiting_for_child", "{progress}");
    assert_eq!(progress["body"]["data"]["progress"], 0.4);
    assert_eq!(progress["body"]["data"]["progress_message"], "rendering: frames 40%");
    let cancel = server.post(&format!("/templates/sandbox-probe/jobs/{job_id}/cancel"), &json!({})).send().await;
    assert_eq!(cancel.expect("sent").status(), 200);
    server.stop().await;
}

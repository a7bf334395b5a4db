//! The life of a job through HTTP: create, poll, logs, live events, listing; fan-out to
//! children; waiting for a human; per-customer config.

use futures::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use vidfarm_tests::server::TestServer;

const WITHIN: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_hello_job_lives_its_whole_life_through_http() {
    let server = TestServer::start().await;
    let created = server
        .post("/templates/hello/operations/greet", &json!({ "tracer": "order-42", "payload": { "name": "Ada" } }))
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), 202);
    let created: Value = created.json().await.expect("json");
    assert_eq!((created["tracer"].as_str(), created["status"].as_str()), (Some("order-42"), Some("queued")));
    let job_id = created["job_id"].as_str().expect("id").to_string();

    // Live events: `log` events as they happen, `status` changes, then `end`.
    let events = server.get(&format!("/templates/hello/jobs/{job_id}/events")).send().await.expect("sse");
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut body = String::new();
    let mut stream = events.bytes_stream();
    while let Ok(Some(chunk)) = tokio::time::timeout(WITHIN, stream.next()).await {
        body.push_str(&String::from_utf8_lossy(&chunk.expect("a chunk")));
        if body.contains("event: end") {
            break;
        }
    }
    assert!(body.contains("event: log") && body.contains("greeting composed"), "{body}");
    assert!(body.contains("\"status\":\"succeeded\""), "{body}");

    let job = server.wait_for("hello", &job_id, &["succeeded"], WITHIN).await;
    assert_eq!(job["result"], json!({ "greeting": "Hello, Ada!" }));
    for field in [
        "job_id",
        "template_id",
        "template_version",
        "operation_name",
        "tracer",
        "status",
        "payload",
        "result",
        "error",
        "progress",
        "webhook_url",
        "parent_job_id",
        "customer_id",
        "reservation_id",
        "attempt",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
    ] {
        assert!(job.get(field).is_some(), "the job has `{field}`: {job}");
    }
    assert_eq!((job["progress"].as_f64(), job["customer_id"].as_str()), (Some(1.0), Some(server.customer.id.as_str())));

    let logs: Value = server.get_json(&format!("/templates/hello/jobs/{job_id}/logs?limit=2")).await;
    assert_eq!(logs["events"].as_array().map(Vec::len), Some(2), "paged: {logs}");
    let next = logs["next_after"].as_i64().expect("a next page");
    let rest: Value = server.get_json(&format!("/templates/hello/jobs/{job_id}/logs?after={next}")).await;
    let all: Vec<&Value> = logs["events"].as_array().into_iter().chain(rest["events"].as_array()).flatten().collect();
    assert!(all.iter().any(|e| e["progress"] == 0.5), "progress is an event");
    assert!(all.iter().any(|e| e["artifact"]["key"] == "greeting.txt"), "the artifact is referenced");
    assert!(all.iter().all(|e| e["timestamp"].is_string() && e["level"].is_string() && e["metadata"].is_object()));

    let listed: Value = server.get_json("/templates/hello/jobs?status=succeeded").await;
    assert!(listed["jobs"].as_array().expect("jobs").iter().any(|j| j["job_id"] == job_id.as_str()));
    let queued: Value = server.get_json("/templates/hello/jobs?status=queued").await;
    assert!(!queued["jobs"].as_array().expect("jobs").iter().any(|j| j["job_id"] == job_id.as_str()));
    server.stop().await;
}

#[tokio::test]
async fn a_parent_that_fans_out_to_three_children_ends_with_all_three_results() {
    let server = TestServer::start().await;
    let parent = server.create_job("hello", "greet-many", json!({ "names": ["Ada", "Grace", "Linus"] })).await;
    let job = server.wait_for("hello", &parent, &["succeeded", "failed"], WITHIN).await;
    assert_eq!(job["result"], json!({ "greetings": ["Hello, Ada!", "Hello, Grace!", "Hello, Linus!"] }), "{job}");
    for n in 1..=3 {
        let child = server.job("hello", &format!("{parent}_c{n}")).await;
        assert_eq!(
            (child["parent_job_id"].as_str(), child["status"].as_str()),
            (Some(parent.as_str()), Some("succeeded")),
            "{child}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_job_waiting_for_a_human_resumes_with_the_resume_payload() {
    let server = TestServer::start().await;
    let job_id = server.create_job("hello", "greet-after-approval", json!({ "name": "Ada" })).await;
    let waiting = server.wait_for("hello", &job_id, &["waiting_for_human"], WITHIN).await;
    assert_eq!(waiting["waiting_for"]["human"]["question"], "May we greet Ada?");
    let resumed = server
        .post(&format!("/templates/hello/jobs/{job_id}/resume"), &json!({ "approved": true, "note": "go ahead" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(resumed.status(), 200);
    let done = server.wait_for("hello", &job_id, &["succeeded"], WITHIN).await;
    assert_eq!(done["result"], json!({ "approved": true, "greeting": "Hello, Ada!", "note": "go ahead" }));
    let again = server
        .post(&format!("/templates/hello/jobs/{job_id}/resume"), &json!({ "approved": false }))
        .send()
        .await
        .expect("sent");
    assert_eq!(again.status(), 409, "only a waiting job can be resumed");
    server.stop().await;
}

#[tokio::test]
async fn a_customers_template_config_reaches_its_jobs() {
    let server = TestServer::start().await;
    let bad = server.post("/templates/hello/config", &json!({ "salutation": 7 })).send().await.expect("sent");
    assert_eq!(bad.status(), 422);
    let bad: Value = bad.json().await.expect("json");
    assert_eq!(bad["error"]["details"][0]["field"], "/salutation", "{bad}");
    let ok = server.post("/templates/hello/config", &json!({ "salutation": "Ahoy" })).send().await.expect("sent");
    assert_eq!(ok.status(), 200);
    let job_id = server.create_job("hello", "greet", json!({ "name": "Ada" })).await;
    let job = server.wait_for("hello", &job_id, &["succeeded"], WITHIN).await;
    assert_eq!(job["result"]["greeting"], "Ahoy, Ada!");
    let manifest: Value = server.get_json("/templates/hello").await;
    assert_eq!(manifest["config_schema"]["properties"]["salutation"]["maxLength"], 40, "{manifest}");
    assert_eq!(manifest["operations"][0]["input_schema"]["required"], json!(["name"]));
    server.stop().await;
}

#[tokio::test]
async fn repeating_an_idempotency_key_returns_the_original_job() {
    let server = TestServer::start().await;
    let body = json!({ "tracer": "t", "payload": { "name": "Ada" }, "idempotency_key": "order-1" });
    let first: Value =
        server.post("/templates/hello/operations/greet", &body).send().await.expect("sent").json().await.expect("json");
    let second = server.post("/templates/hello/operations/greet", &body).send().await.expect("sent");
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.expect("json");
    assert_eq!(first["job_id"], second["job_id"]);
    let other = json!({ "tracer": "t", "payload": { "name": "Bob" }, "idempotency_key": "order-1" });
    let conflict = server.post("/templates/hello/operations/greet", &other).send().await.expect("sent");
    assert_eq!(conflict.status(), 409, "the same key for another request is refused");
    server.stop().await;
}

#[tokio::test]
async fn sixteen_creates_at_once_with_one_idempotency_key_make_one_job() {
    // Sent together, they share the host's insert batches: one statement for many rows must
    // still answer each create as one insert after another would.
    let server = TestServer::start().await;
    let body = json!({ "tracer": "t", "payload": { "name": "Ada" }, "idempotency_key": "order-2" });
    let answers = futures::future::join_all((0..16).map(|_| async {
        let response = server.post("/templates/hello/operations/greet", &body).send().await.expect("sent");
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.expect("json")["job_id"].clone())
    }))
    .await;
    let created = answers.iter().filter(|(status, _)| *status == 202).count();
    assert_eq!(created, 1, "one create made the job, the others found it: {answers:?}");
    assert!(answers.iter().all(|(status, id)| [200, 202].contains(status) && *id == answers[0].1), "{answers:?}");
    let jobs: Value = server.get_json("/templates/hello/jobs").await;
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(1), "{jobs}");
    server.stop().await;
}

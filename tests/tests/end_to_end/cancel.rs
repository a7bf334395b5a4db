//! Cancelling jobs: queued ones and waiting ones at once, running ones at their next yield,
//! and a parent's children with it.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use vidfarm_tests::server::TestServer;

const WITHIN: Duration = Duration::from_secs(20);

async fn cancel(server: &TestServer, template: &str, job_id: &str) -> (u16, Value) {
    let response =
        server.post(&format!("/templates/{template}/jobs/{job_id}/cancel"), &json!({})).send().await.expect("sent");
    (response.status().as_u16(), response.json().await.expect("json"))
}

/// Spinning guests run until stopped: fuel and deadline far away.
fn endless(config: &mut vidfarm::config::Config) {
    config.runtime.defaults.fuel = u64::MAX / 4;
    config.runtime.defaults.timeout_ms = 600_000;
}

#[tokio::test]
async fn a_queued_job_is_cancelled_at_once() {
    let server = TestServer::start_with(|_| {}, false).await;
    let job_id = server.create_job("hello", "greet", json!({ "name": "Ada" })).await;
    let (status, job) = cancel(&server, "hello", &job_id).await;
    assert_eq!((status, job["status"].as_str()), (200, Some("cancelled")));
    assert_eq!(server.job("hello", &job_id).await["error"]["code"], "cancelled");
    let (status, again) = cancel(&server, "hello", &job_id).await;
    assert_eq!((status, again["error"]["code"].as_str()), (409, Some("job_finished")));
    server.stop().await;
}

#[tokio::test]
async fn a_running_job_is_interrupted_promptly() {
    let server = TestServer::start_with(endless, true).await;
    let job_id = server.create_job("sandbox-probe", "spin", json!({})).await;
    server.wait_for("sandbox-probe", &job_id, &["running"], WITHIN).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    let (status, _) = cancel(&server, "sandbox-probe", &job_id).await;
    assert_eq!(status, 200);
    let job = server.wait_for("sandbox-probe", &job_id, &["cancelled", "failed", "succeeded"], WITHIN).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    assert!(asked.elapsed() < Duration::from_secs(2), "stopped in {:?}", asked.elapsed());
    server.stop().await;
}

#[tokio::test]
async fn a_job_waiting_for_a_human_is_cancelled_at_once() {
    let server = TestServer::start().await;
    let job_id = server.create_job("hello", "greet-after-approval", json!({ "name": "Ada" })).await;
    server.wait_for("hello", &job_id, &["waiting_for_human"], WITHIN).await;
    let (status, job) = cancel(&server, "hello", &job_id).await;
    assert_eq!((status, job["status"].as_str()), (200, Some("cancelled")));
    server.stop().await;
}

#[tokio::test]
async fn cancelling_a_parent_waiting_for_children_cancels_the_children() {
    let server = TestServer::start_with(endless, true).await;
    let parent = server.create_job("sandbox-probe", "spawn-spinners", json!({ "children": 2 })).await;
    server.wait_for("sandbox-probe", &parent, &["waiting_for_child"], WITHIN).await;
    for n in 1..=2 {
        server.wait_for("sandbox-probe", &format!("{parent}_c{n}"), &["running"], WITHIN).await;
    }
    let (status, job) = cancel(&server, "sandbox-probe", &parent).await;
    assert_eq!((status, job["status"].as_str()), (200, Some("cancelled")));
    for n in 1..=2 {
        let child = server
            .wait_for("sandbox-probe", &format!("{parent}_c{n}"), &["cancelled", "failed", "succeeded"], WITHIN)
            .await;
        assert_eq!(child["status"], "cancelled", "{child}");
    }
    server.stop().await;
}

#[tokio::test]
async fn one_customer_cannot_take_more_workers_than_its_cap() {
    let server = TestServer::start_with(
        |c| {
            endless(c);
            c.max_concurrent_jobs = 2;
        },
        true,
    )
    .await;
    let spinners: Vec<String> =
        futures::future::join_all((0..4).map(|_| server.create_job("sandbox-probe", "spin", json!({})))).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut running = 0;
    for id in &spinners {
        let job = server.job("sandbox-probe", id).await;
        running += i32::from(job["status"] == "running");
    }
    assert_eq!(running, 2, "the cap holds while free slots remain");
    let other = server.new_customer("Other").await;
    let body = json!({ "tracer": "t", "payload": { "name": "Bo" } });
    let created: Value = server
        .as_customer(&other, server.http.post(server.url("/templates/hello/operations/greet")).json(&body))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let id = created["job_id"].as_str().expect("an id");
    let deadline = Instant::now() + WITHIN;
    loop {
        let job: Value = server.get_json_as(&other, &format!("/templates/hello/jobs/{id}")).await;
        if job["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "another customer's job still runs at once: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in &spinners {
        cancel(&server, "sandbox-probe", id).await;
    }
    server.stop().await;
}

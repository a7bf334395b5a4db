//! The bounds wall, tried as a hostile customer: what a customer or a template sizes — a
//! result, a page of jobs — has a cap, and hitting it is a clear error or a shorter page,
//! never an unbounded response.

use serde_json::{Value, json};
use std::time::Duration;
use vidfarm_tests::server::TestServer;

#[tokio::test]
async fn a_result_over_the_cap_fails_the_job_with_result_too_large() {
    let server = TestServer::start().await;
    let blob = "x".repeat(300 << 10);
    let job_id = server.create_job("sandbox-probe", "echo", json!({ "blob": blob })).await;
    let job = server.wait_for("sandbox-probe", &job_id, &["succeeded", "failed"], Duration::from_secs(30)).await;
    assert_eq!(job["error"]["code"], "result_too_large", "{}", job["error"]);
    assert!(job["error"]["message"].as_str().is_some_and(|m| m.contains("262144")), "{}", job["error"]);
    assert!(job["result"].is_null());
    server.stop().await;
}

#[tokio::test]
async fn a_page_of_jobs_stops_at_its_byte_budget_and_the_cursor_goes_on() {
    let server = TestServer::start_with(|_| {}, false).await;
    let blob = "y".repeat(900 << 10);
    for _ in 0..8 {
        server.create_job("sandbox-probe", "echo", json!({ "blob": blob })).await;
    }
    let (mut seen, mut before, mut pages) = (0, None::<String>, 0);
    loop {
        let path = match &before {
            Some(id) => format!("/templates/sandbox-probe/jobs?limit=100&before={id}"),
            None => "/templates/sandbox-probe/jobs?limit=100".to_string(),
        };
        let response = server.get(&path).send().await.expect("sent");
        let body = response.bytes().await.expect("a body");
        assert!(body.len() < 5 << 20, "a page is at most ~4 MiB of payloads: {} bytes", body.len());
        let page: Value = serde_json::from_slice(&body).expect("json");
        seen += page["jobs"].as_array().map_or(0, Vec::len);
        pages += 1;
        match page["next_before"].as_str() {
            Some(id) => before = Some(id.to_string()),
            None => break,
        }
        assert!(pages < 10, "the cursor ends");
    }
    assert_eq!(seen, 8, "every job is reachable through the cursor");
    assert!(pages >= 2, "eight 900 KiB jobs do not fit one page");
    server.stop().await;
}

#[tokio::test]
async fn a_customers_live_streams_are_capped_and_a_stream_left_by_its_client_frees_its_slot() {
    let server = TestServer::start_with(|_| {}, false).await;
    let job_id = server.create_job("sandbox-probe", "echo", json!({})).await;
    let path = format!("/templates/sandbox-probe/jobs/{job_id}/events");
    let mut open = Vec::new();
    for _ in 0..16 {
        let stream = server.get(&path).send().await.expect("sent");
        assert_eq!(stream.status(), 200);
        open.push(stream);
    }
    let refused = server.get(&path).send().await.expect("sent");
    assert_eq!(refused.status(), 429, "the 17th stream of one customer is refused");
    let other = server.new_customer("Other").await;
    let theirs = server.as_customer(&other, server.http.get(server.url(&path))).send().await.expect("sent");
    assert_eq!(theirs.status(), 404, "another customer has slots of their own but not this job");
    drop(open);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let again = server.get(&path).send().await.expect("sent");
        if again.status() == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the streams the client left never ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn metrics_answer_only_the_operators_token_when_one_is_set() {
    let server = TestServer::start_with(|c| c.metrics_token = Some("m3trics".into()), false).await;
    let without = server.http.get(server.url("/metrics")).send().await.expect("sent");
    assert_eq!(without.status(), 401, "every customer's queue is not public");
    let wrong = server.http.get(server.url("/metrics")).bearer_auth("guess").send().await.expect("sent");
    assert_eq!(wrong.status(), 401);
    let with = server.http.get(server.url("/metrics")).bearer_auth("m3trics").send().await.expect("sent");
    assert_eq!(with.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_live_stream_ends_when_its_api_key_is_revoked() {
    let server = TestServer::start_with(|_| {}, false).await;
    let job_id = server.create_job("sandbox-probe", "echo", json!({})).await;
    let mut stream = server.get(&format!("/templates/sandbox-probe/jobs/{job_id}/events")).send().await.expect("sent");
    assert_eq!(stream.status(), 200);
    let keys = server.platform.db.api_keys(&server.customer.id).await.expect("keys");
    assert!(server.platform.db.revoke_api_key(&keys[0].id).await.expect("revoked"));
    // The key is checked every few seconds; the stream then says why it ends, and ends.
    let mut seen = String::new();
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(chunk) = stream.chunk().await.expect("a chunk") {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream went on after its key was revoked: {seen}");
    assert!(seen.contains("event: end") && seen.contains("key_revoked"), "{seen}");
    server.stop().await;
}

#[tokio::test]
async fn a_customer_over_the_rate_limit_costs_the_host_no_webhook_lookup() {
    // The rate limit comes first: the second request is a 429, not the 422 its private
    // webhook URL would earn once looked up.
    let server = TestServer::start_with(
        |c| {
            c.jobs_per_minute = 1;
            c.webhooks.allow_private = false;
        },
        false,
    )
    .await;
    let first = json!({ "tracer": "t", "payload": { "name": "Ada" } });
    let created = server.post("/templates/hello/operations/greet", &first).send().await.expect("sent");
    assert_eq!(created.status(), 202);
    let second = json!({ "tracer": "t", "payload": { "name": "Bob" }, "webhook_url": "http://127.0.0.1:9/h" });
    let refused = server.post("/templates/hello/operations/greet", &second).send().await.expect("sent");
    assert_eq!(refused.status(), 429);
    server.stop().await;
}

/// Open a request that announces a body and never sends it: the slowest client there is.
async fn stalled_request(server: &TestServer) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let address = server.base.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(address).await.expect("connected");
    let head = format!(
        "POST /templates/hello/operations/greet HTTP/1.1\r\nhost: x\r\nvidfarm-api-key: {}\r\n\
         vidfarm-user-id: {}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"tra",
        server.customer.key, server.customer.id
    );
    socket.write_all(head.as_bytes()).await.expect("head sent");
    socket
}

#[tokio::test]
async fn a_request_whose_body_never_arrives_is_answered_408_at_the_request_timeout() {
    use tokio::io::AsyncReadExt;
    let server = TestServer::start_with(|c| c.request_timeout = Duration::from_millis(800), false).await;
    let mut socket = stalled_request(&server).await;
    let mut answer = vec![0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut answer)).await;
    let n = read.expect("answered before the client gave up").expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn requests_past_the_concurrency_limit_wait_for_a_slot_instead_of_running() {
    let server = TestServer::start_with(
        |c| {
            c.max_concurrent_requests = 2;
            c.request_timeout = Duration::from_secs(3);
        },
        false,
    )
    .await;
    let held = [stalled_request(&server).await, stalled_request(&server).await];
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Both slots are taken by stalled bodies: a third request is not served meanwhile...
    let waiting = server.get("/health").timeout(Duration::from_millis(1_000)).send().await;
    assert!(waiting.is_err_and(|e| e.is_timeout()), "a third request ran while both slots were taken");
    // ...and is served once the request timeout frees them.
    let served = server.get("/health").timeout(Duration::from_secs(10)).send().await.expect("served");
    assert_eq!(served.status(), 200);
    drop(held);
    server.stop().await;
}

//! Fair shares: a heavy customer's backlog of jobs, renders or slow webhook endpoints delays
//! a light customer's first one by one slot turn at most; operators set each customer's caps.

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vidfarm_tests::server::{Credentials, TestServer};

const WITHIN: Duration = Duration::from_secs(120);

async fn create_as(server: &TestServer, who: &Credentials, template: &str, operation: &str, body: Value) -> String {
    let url = server.url(&format!("/templates/{template}/operations/{operation}"));
    let response = server.as_customer(who, server.http.post(url).json(&body)).send().await.expect("sent");
    assert_eq!(response.status(), 202, "creating {template}/{operation}");
    let created: Value = response.json().await.expect("json");
    created["job_id"].as_str().expect("a job id").to_string()
}

async fn count(server: &TestServer, sql: &str, customer: &str) -> i64 {
    let rows =
        server.platform.db.inspect(&format!("SELECT CAST(({sql}) AS TEXT)"), &[customer]).await.expect("counted");
    rows[0].as_deref().expect("a count").parse().expect("a number")
}

#[tokio::test]
async fn a_light_customers_job_starts_ahead_of_a_heavy_customers_backlog() {
    let server = TestServer::start_with(|c| c.worker_slots = 2, true).await;
    let light = server.new_customer("Light").await;
    let heavy = server.customer.clone();
    // 1,000 jobs of ~20 ms each: 10 s of work for two slots, queued before the light one.
    let work = json!({ "tracer": "heavy", "payload": { "steps": 1, "spin": 20_000_000 } });
    futures::future::join_all((0..1_000).map(|_| create_as(&server, &heavy, "sandbox-probe", "effects", work.clone())))
        .await;
    let light_job =
        create_as(&server, &light, "sandbox-probe", "echo", json!({ "tracer": "light", "payload": {} })).await;
    let asked = Instant::now();
    let job = wait_as(&server, &light, &light_job).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let waited = asked.elapsed();
    let heavy_left =
        count(&server, "SELECT COUNT(*) FROM jobs WHERE customer_id = $1 AND status = 'queued'", &heavy.id).await;
    assert!(heavy_left > 900, "the light job did not wait behind the backlog ({heavy_left} heavy jobs left)");
    eprintln!("light customer's job: done {waited:?} after creation, {heavy_left} heavy jobs still queued");
    assert!(waited < Duration::from_secs(2), "one slot turn is ~20 ms; waited {waited:?}");
    server.stop().await;
}

async fn wait_as(server: &TestServer, who: &Credentials, job_id: &str) -> Value {
    let deadline = Instant::now() + WITHIN;
    loop {
        let url = server.url(&format!("/templates/sandbox-probe/jobs/{job_id}"));
        let job: Value =
            server.as_customer(who, server.http.get(url)).send().await.expect("sent").json().await.expect("json");
        if job["status"] == "succeeded" || job["status"] == "failed" {
            return job;
        }
        assert!(Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_customers_cap_is_set_by_the_operator_and_holds() {
    let server = TestServer::start_with(|c| c.admin_token = Some("op-token".into()), true).await;
    let url = server.url(&format!("/admin/customers/{}/limits", server.customer.id));
    let set = server.http.patch(&url).bearer_auth("op-token").json(&json!({ "max_concurrent_jobs": 2 })).send();
    let set: Value = set.await.expect("sent").json().await.expect("json");
    assert_eq!(set["max_concurrent_jobs"], 2, "{set}");
    let refused = server.http.patch(&url).bearer_auth("op-token").json(&json!({ "max_concurrent_jobs": 0 })).send();
    let refused = refused.await.expect("sent");
    assert_eq!(refused.status(), 422);
    let error: Value = refused.json().await.expect("json");
    assert!(error.to_string().contains("max_concurrent_jobs"), "{error}");

    let work = json!({ "steps": 1, "spin": 50_000_000 });
    let ids: Vec<String> =
        futures::future::join_all((0..8).map(|_| server.create_job("sandbox-probe", "effects", work.clone()))).await;
    let mut most = 0;
    while most < 3 {
        let running = count(
            &server,
            "SELECT COUNT(*) FROM jobs WHERE customer_id = $1 AND status = 'running'",
            &server.customer.id,
        )
        .await;
        most = most.max(running);
        let left = count(
            &server,
            "SELECT COUNT(*) FROM jobs WHERE customer_id = $1 AND status NOT IN ('succeeded', 'failed')",
            &server.customer.id,
        )
        .await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(most <= 2, "{most} jobs ran at once under a cap of 2");
    for id in &ids {
        server.wait_for("sandbox-probe", id, &["succeeded"], WITHIN).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn one_claim_gives_each_waiting_customer_the_slots_its_cap_leaves_and_no_more() {
    // No workers: the test claims.
    let server = TestServer::start_with(|_| {}, false).await;
    let db = &server.platform.db;
    let (wide, narrow, full) =
        (server.customer.clone(), server.new_customer("Narrow").await, server.new_customer("Full").await);
    for (who, cap) in [(&wide, 5), (&narrow, 3), (&full, 1)] {
        let cap = vidfarm::db::customers::ShareChanges { max_concurrent_jobs: Some(Some(cap)), ..Default::default() };
        db.set_customer_shares(&who.id, &cap).await.expect("set").expect("a customer");
    }
    let echo = json!({ "tracer": "shares", "payload": {} });
    // Running already: two of Narrow's jobs and Full's one.
    for who in [&narrow, &narrow, &full] {
        create_as(&server, who, "sandbox-probe", "echo", echo.clone()).await;
    }
    assert_eq!(db.claim_jobs(64, "earlier", 60_000, 4).await.expect("claimed").len(), 3);
    for who in [&wide, &narrow, &full] {
        for _ in 0..8 {
            create_as(&server, who, "sandbox-probe", "echo", echo.clone()).await;
        }
    }
    let claimed = db.claim_jobs(64, "now", 60_000, 4).await.expect("claimed");
    let taken = |who: &Credentials| claimed.iter().filter(|j| j.customer_id == who.id).count();
    // 5 free of 5, 1 free of 3, none of 1: every free slot is filled, and no cap is passed.
    assert_eq!((taken(&wide), taken(&narrow), taken(&full)), (5, 1, 0));
    server.stop().await;
}

/// A spec FFmpeg renders in well under a second: a still image held for two seconds.
fn tiny_spec() -> Value {
    json!({
        "canvas": { "width": 160, "height": 120, "fps": 10 },
        "duration": 2,
        "backgrounds": [{ "src": "workspace:in/still.png", "type": "image" }]
    })
}

/// A still image in `who`'s workspace (`in/still.png`), through a signed upload.
async fn upload_still(server: &TestServer, who: &Credentials) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let png = vidfarm_tests::media::png(dir.path(), "still.png", "orange", "160x120");
    let body = json!({ "key": "in/still.png", "content_type": "image/png" });
    let sign = server.as_customer(who, server.http.post(server.url("/files/sign-upload")).json(&body));
    let signed: Value = sign.send().await.expect("sent").json().await.expect("json");
    let url = signed["url"].as_str().expect("a URL");
    let url = server.url(&url[url.find("/files/").expect("a host file URL")..]);
    let mut put = server.http.put(url).body(png);
    for (name, value) in signed["headers"].as_object().into_iter().flatten() {
        put = put.header(name.as_str(), value.as_str().expect("a header value"));
    }
    assert!(put.send().await.expect("sent").status().is_success());
}

#[tokio::test]
async fn a_light_customers_render_goes_before_a_heavy_customers_queued_renders() {
    let server = TestServer::start().await;
    let light = server.new_customer("Light").await;
    let heavy = server.customer.clone();
    upload_still(&server, &heavy).await;
    upload_still(&server, &light).await;
    for _ in 0..20 {
        create_as(&server, &heavy, "json-to-video", "render", json!({ "tracer": "heavy", "payload": tiny_spec() }))
            .await;
    }
    let deadline = Instant::now() + WITHIN;
    while count(&server, "SELECT COUNT(*) FROM renders WHERE customer_id = $1", &heavy.id).await < 20 {
        assert!(Instant::now() < deadline, "the heavy jobs never asked for their renders");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    create_as(&server, &light, "json-to-video", "render", json!({ "tracer": "light", "payload": tiny_spec() })).await;
    while count(&server, "SELECT COUNT(*) FROM renders WHERE customer_id = $1 AND status = 'succeeded'", &light.id)
        .await
        < 1
    {
        assert!(Instant::now() < deadline, "the light render never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let order: Vec<String> = server
        .platform
        .db
        .inspect("SELECT customer_id FROM renders WHERE started_at IS NOT NULL ORDER BY started_at, id", &[])
        .await
        .expect("renders")
        .into_iter()
        .flatten()
        .collect();
    let place = order.iter().position(|c| *c == light.id).expect("the light render started");
    eprintln!(
        "light customer's render started {} of the renders started so far (a 20-render backlog queued first)",
        place + 1
    );
    assert!(place <= 2, "one or two heavy renders may have been running first, not more: {place} in {order:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_slow_customers_webhooks_do_not_delay_another_customers() {
    let arrived: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let seen = arrived.clone();
    let app = Router::new().route("/slow", post(|| async { tokio::time::sleep(Duration::from_secs(14)).await })).route(
        "/fast",
        post(move |body: String| {
            let seen = seen.clone();
            async move { seen.lock().expect("lock").push((body, Instant::now())) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serves") });

    let server = TestServer::start_with(|c| c.shutdown_grace = Duration::from_millis(200), true).await;
    let fast = server.new_customer("Fast").await;
    let slow = server.customer.clone();
    for _ in 0..12 {
        let body = json!({ "tracer": "slow", "webhook_url": format!("{base}/slow"), "payload": {} });
        create_as(&server, &slow, "sandbox-probe", "echo", body).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // the slow deliveries are in flight
    let body = json!({ "tracer": "fast", "webhook_url": format!("{base}/fast"), "payload": {} });
    let created = Instant::now();
    create_as(&server, &fast, "sandbox-probe", "echo", body).await;
    let deadline = created + Duration::from_secs(10);
    loop {
        if let Some((_, at)) = arrived.lock().expect("lock").first() {
            eprintln!("fast customer's webhook arrived {:?} after its job was created", *at - created);
            assert!(*at - created < Duration::from_secs(3), "the fast customer waited {:?}", *at - created);
            break;
        }
        assert!(Instant::now() < deadline, "the fast customer's webhook never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

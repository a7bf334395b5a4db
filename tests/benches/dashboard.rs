//! The dashboard's job list with 10,000 jobs: what a browser downloads to show it (page weight)
//! and how long after navigation the first page of jobs is drawn, in headless Chromium; plus
//! the `GET /jobs` call behind it. `cargo bench -p vidfarm-tests --bench dashboard`.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use vidfarm::db::jobs::NewJob;
use vidfarm_tests::browser::Browser;
use vidfarm_tests::server::TestServer;

const JOBS: usize = 10_000;
const RUNS: usize = 7;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let server = TestServer::start_with(|_| {}, false).await;
    let signed = vidfarm_tests::accounts::signed_up(&server, "bench@example.com").await;
    let (session, customer_id) = (signed.cookie.trim_start_matches("vf_session=").to_string(), signed.customer_id);
    let hello = server.platform.catalog.active("hello").expect("hello");
    let started = Instant::now();
    let inserts = (0..JOBS).map(|i| {
        let db = server.platform.db.clone();
        let job = NewJob {
            id: format!("job_bench{i:08}"),
            customer_id: customer_id.clone(),
            template_id: "hello".into(),
            template_version: hello.manifest.version.clone(),
            template_digest: hello.digest.clone(),
            operation: "greet".into(),
            workflow: "greet".into(),
            tracer: format!("bench-{}", i % 100),
            payload: json!({ "name": format!("Customer {i}") }).to_string(),
            config: None,
            webhook_url: None,
            parent_job_id: None,
            idempotency_key: None,
            max_retries: 0,
            reserve_nusd: 0,
            request_id: None,
            traceparent: None,
            retry_of: None,
        };
        async move { db.insert_job(&job).await.expect("inserted") }
    });
    futures::future::join_all(inserts).await;
    println!("inserted {JOBS} jobs in {:.1} s", started.elapsed().as_secs_f64());

    // Page weight: the shell, its assets, and the first page of jobs the script asks for.
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(server.url(path)).header("cookie", format!("vf_session={session}")).send();
    let mut weight = Vec::new();
    for path in ["/app/jobs", "/assets/app.js", "/assets/app.css", "/assets/icon.svg", "/jobs"] {
        let plain = get(path).await.expect("sent").bytes().await.expect("a body").len();
        // As a browser fetches it (this client does not decompress: the bytes on the wire).
        let request = http.get(server.url(path)).header("cookie", format!("vf_session={session}"));
        let gzipped = request.header("accept-encoding", "gzip").send().await.expect("sent");
        let gzipped = gzipped.bytes().await.expect("a body").len();
        weight.push((path, plain, gzipped));
    }
    for (path, plain, gzipped) in &weight {
        println!("  {path:<18} {plain:>8} bytes, {gzipped:>8} gzipped");
    }
    let plain: usize = weight.iter().map(|(_, b, _)| b).sum();
    let gzipped: usize = weight.iter().map(|(_, _, g)| g).sum();
    println!("page weight: {plain} bytes uncompressed, {gzipped} bytes gzipped");

    // The list's API call, server side.
    let mut api_ms = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        let page: Value = get("/jobs").await.expect("sent").json().await.expect("json");
        api_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(page["jobs"].as_array().map(Vec::len), Some(50));
    }
    println!("GET /jobs (50 of {JOBS}): median {:.2} ms", median(api_ms));

    // Time to first render: navigation start to the first page of rows in the DOM.
    let browser = Browser::start("bench").await;
    browser.goto(&server.url("/assets/icon.svg")).await;
    browser.add_cookie("vf_session", &session).await;
    let mut render_ms = Vec::new();
    for _ in 0..RUNS {
        browser.goto(&server.url("/app/jobs")).await;
        let drawn = browser
            .eval(
                "const start = Date.now();
                 while (document.querySelectorAll('#job-list tr[data-job-id]').length < 50) {
                   if (Date.now() - start > 20000) return -1;
                   await new Promise(r => setTimeout(r, 5));
                 }
                 return performance.now();",
                json!([]),
            )
            .await;
        let ms = drawn.as_f64().expect("a time");
        assert!(ms > 0.0, "the list was not drawn");
        render_ms.push(ms);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("time to first render of the job list: median {:.0} ms over {RUNS} loads", median(render_ms));
    browser.quit().await;
    server.stop().await;
}

//! The tenant walls under a hostile load, measured in one process (the host and its clients):
//! peak RSS while 6 jobs have the host fetch 400 MB images (for Gemini layout calls, cap
//! 20 MiB) and 10 customers download 1 GB objects at once (streamed); then the CPU the host
//! burns while idle after 300 SSE streams were opened and dropped.
//! `cargo bench -p vidfarm-tests --bench walls`.

use futures::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};
use vidfarm_tests::fake_providers::FakeProviders;
use vidfarm_tests::server::TestServer;

/// This process's (resident, peak resident) set size in MiB.
fn rss_mib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("procfs");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("comm").1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap_or(0.0) + fields[12].parse::<f64>().unwrap_or(0.0);
    ticks / 100.0
}

/// A server answering every GET with `size` bytes, chunked (no length up front), made as sent.
async fn endless_image_server(size: usize) -> String {
    let app = axum::Router::new().route(
        "/huge.png",
        axum::routing::get(move || async move {
            let chunk = bytes_of(1 << 20);
            let stream = futures::stream::iter((0..size >> 20).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
            axum::body::Body::from_stream(stream)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}/huge.png", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn bytes_of(n: usize) -> axum::body::Bytes {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.resize(n, 0);
    axum::body::Bytes::from(png)
}

#[tokio::main]
async fn main() {
    let fakes = FakeProviders::start().await;
    let endpoints = fakes.endpoints();
    let server = TestServer::start_with(
        move |c| {
            c.providers.endpoints = endpoints;
            c.max_concurrent_jobs = 64;
            // Production's idle polling (the tests poll every 50 ms).
            c.poll_interval = Duration::from_millis(200);
        },
        true,
    )
    .await;
    let added = server
        .post("/customers/me/provider-keys", &json!({ "provider": "gemini", "secret": "sk-gemini-walls-0001" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(added.status(), 201);
    let (rss_start, _) = rss_mib();

    // Ten customers, each with a 1 GB object (sparse on disk: reading it costs no disk I/O).
    let mut urls = Vec::new();
    for i in 0..10 {
        let customer = server.new_customer(&format!("Downloader {i}")).await;
        let key = format!("customers/{}/workspace/big.bin", customer.id);
        let path = server.platform.config.data_dir.join("objects").join(&key);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("dirs");
        std::fs::File::create(&path).expect("file").set_len(1 << 30).expect("sparse");
        let (url, _) = server.platform.signer.url("GET", &key, vidfarm::db::now_ms() / 1000);
        urls.push(server.url(&url[url.find("/files/").expect("a host URL")..]));
    }
    let image = endless_image_server(400 << 20).await;

    let started = Instant::now();
    let jobs = futures::future::join_all((0..6).map(|_| {
        let payload = json!({ "provider": "gemini", "model": "gemini-2.5-flash", "image_url": image, "text": "hi" });
        server.create_job("hello", "place-text", payload)
    }))
    .await;
    let server = &server;
    let downloads = futures::future::join_all(urls.iter().map(|url| async move {
        let mut stream = server.http.get(url).send().await.expect("sent").bytes_stream();
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            total += chunk.expect("a chunk").len() as u64;
        }
        total
    }));
    let waits = futures::future::join_all(
        jobs.iter().map(|id| server.wait_for("hello", id, &["failed", "succeeded"], Duration::from_secs(120))),
    );
    let (downloaded, finished) = tokio::join!(downloads, waits);
    let took = started.elapsed();
    assert!(downloaded.iter().all(|n| *n == 1 << 30), "every download got 1 GiB");
    let refused = finished.iter().filter(|j| j["error"]["message"].as_str().is_some_and(|m| m.contains("20 MiB")));
    let refused = refused.count();
    let (_, rss_peak) = rss_mib();

    // The host idle before any stream: what its own polling costs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu_before, idle_started) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_before = (cpu_seconds() - cpu_before) / idle_started.elapsed().as_secs_f64() * 100.0;

    // 300 SSE streams opened (300 customers, each watching its own job waiting for a human)
    // and dropped by their clients, then the host idles.
    let mut streams = Vec::new();
    for i in 0..300 {
        let who = server.new_customer(&format!("Watcher {i}")).await;
        let body = json!({ "tracer": "walls", "payload": { "name": "Ada" } });
        let create = server.http.post(server.url("/templates/hello/operations/greet-after-approval")).json(&body);
        let created: serde_json::Value =
            server.as_customer(&who, create).send().await.expect("sent").json().await.expect("json");
        let job_id = created["job_id"].as_str().expect("a job id").to_string();
        let url = server.url(&format!("/templates/hello/jobs/{job_id}/events"));
        let stream = server.as_customer(&who, server.http.get(url)).send().await.expect("sent");
        assert_eq!(stream.status(), 200);
        streams.push(stream);
    }
    drop(streams);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu_before, idle_started) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu = (cpu_seconds() - cpu_before) / idle_started.elapsed().as_secs_f64() * 100.0;

    println!(
        "walls: 6 jobs naming a 400 MB image ({refused} refused at 20 MiB) and 10 × 1 GiB downloads at once in {:.1} s; \
         RSS {rss_start} MiB before, peak {rss_peak} MiB (goal < 300 MiB); \
         idle: {idle_before:.2} % of a core before any SSE stream, {idle_cpu:.2} % after 300 were opened and \
         dropped (goal < 2 %)",
        took.as_secs_f64()
    );
    drop(fakes);
}

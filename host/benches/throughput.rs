//! End-to-end throughput of `sandbox-probe echo` jobs (HTTP create → succeeded) and the
//! create latency at a fixed request rate, beside this machine's raw SQLite commit rate, all
//! in one run. `cargo bench -p vidfarm --bench throughput` (env BENCH_JOBS, BENCH_RATE, and
//! BENCH_CREDIT_USD: give the customer a prepaid credit, so every job is admitted, charged
//! and settled against a limit — the money path with holds — instead of unlimited).

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vidfarm::config::Config;
use vidfarm::engine::Platform;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let jobs = env_u64("BENCH_JOBS", 20_000);
    let rate = env_u64("BENCH_RATE", 500);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::from_env().expect("config");
    config.data_dir = dir.path().to_path_buf();
    config.runtime.cache_dir = Some(dir.path().join("compiled"));
    config.jobs_per_minute = u32::MAX / 2;
    config.max_concurrent_jobs = 10_000;
    // The examples built in the background would share the CPU being measured.
    config.example_templates = None;
    let platform = Platform::start(config).await.expect("platform");
    let raw_commits = platform.db.measure_commit_rate(5_000).await.expect("commit rate");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("port");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(vidfarm::server::run(platform.clone(), Some(listener), true, shutdown.clone()));
    let id = "cus_bench";
    platform.db.create_customer(id, "Bench").await.expect("customer");
    let key = vidfarm::api::issue_api_key(&platform.db, id, None).await.expect("key");
    let credit = std::env::var("BENCH_CREDIT_USD").ok().and_then(|v| v.parse::<f64>().ok());
    if let Some(nusd) = credit.and_then(vidfarm::money::from_usd) {
        platform.db.add_credit(id, nusd).await.expect("credited");
    }
    let http = reqwest::Client::builder().pool_max_idle_per_host(128).build().expect("client");
    let url = format!("{base}/templates/sandbox-probe/operations/echo");
    let create = {
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        move || {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            async move {
                let response = http
                    .post(&url)
                    .header("vidfarm-user-id", id)
                    .header("vidfarm-api-key", &key)
                    .json(&json!({ "tracer": "bench", "payload": { "n": 1 } }))
                    .send()
                    .await
                    .expect("sent");
                assert_eq!(response.status(), 202);
            }
        }
    };

    // Throughput: 64 clients create `jobs` jobs as fast as they can; the clock stops when the
    // last one has succeeded.
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let clients: Vec<_> = (0..64)
        .map(|_| {
            let (next, create) = (next.clone(), create.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < jobs {
                    create().await;
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("client");
    }
    let created_in = started.elapsed();
    loop {
        let counts = platform.db.job_counts().await.expect("counts");
        let done: i64 = counts.iter().filter(|(s, _)| s == "succeeded").map(|(_, n)| n).sum();
        let failed: i64 = counts.iter().filter(|(s, _)| s == "failed").map(|(_, n)| n).sum();
        assert_eq!(failed, 0, "no job may fail");
        if done as u64 >= jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let throughput = jobs as f64 / elapsed.as_secs_f64();

    // Latency: one create every 1/rate s for 5 s, each timed on its own.
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let mut pending = Vec::new();
    for _ in 0..rate * 5 {
        ticker.tick().await;
        let create = create.clone();
        pending.push(tokio::spawn(async move {
            let t = Instant::now();
            create().await;
            t.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(pending.len());
    for p in pending {
        latencies.push(p.await.expect("request"));
    }
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));

    shutdown.cancel();
    let _ = server.await;
    match credit {
        Some(usd) => println!("customer: ${usd} prepaid credit (limit checks, CPU charges against it)"),
        None => println!("customer: unlimited"),
    }
    println!("raw SQLite commit rate (BEGIN IMMEDIATE; 1-row insert; COMMIT): {raw_commits:.0} commits/s");
    println!(
        "end to end: {jobs} echo jobs created in {created_in:.2?}, all succeeded after {elapsed:.2?}: {throughput:.0} jobs/s"
    );
    println!("ratio: {:.2} commits of raw capacity per job at that rate", raw_commits / throughput);
    println!("create latency at {rate} req/s for 5 s: p50 {p50:.2?}, p99 {p99:.2?}");
}

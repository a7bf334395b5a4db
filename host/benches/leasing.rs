//! Provider key leasing: acquire + release throughput with 8 concurrent workers over 4 keys
//! (the SQLite key queue's `BEGIN IMMEDIATE` transactions), beside this machine's raw
//! `BEGIN IMMEDIATE` commit rate, in one run. `cargo bench -p vidfarm --bench leasing`
//! (env BENCH_LEASES, default 4,000).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;
use vidfarm::db::Db;
use vidfarm::db::key_leases::{KeyOutcome, LeaseOutcome, LeaseRequest};
use vidfarm::db::provider_keys::NewProviderKey;

const WORKERS: usize = 8;
const KEYS: usize = 4;

#[tokio::main]
async fn main() {
    let leases: u64 = std::env::var("BENCH_LEASES").ok().and_then(|v| v.parse().ok()).unwrap_or(4_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open(&dir.path().join("bench.sqlite")).await.expect("database");
    db.create_customer("cus_bench", "Bench").await.expect("customer");
    for n in 0..KEYS {
        let id = format!("pk_bench_{n}");
        db.insert_provider_key(&NewProviderKey {
            id: &id,
            customer_id: Some("cus_bench"),
            provider: "openai",
            label: None,
            encrypted_secret: "v1:not-used-by-the-queue",
            secret_last4: "0000",
            weight: 1,
            models: &[],
            source: "customer",
        })
        .await
        .expect("key");
    }
    let raw = db.measure_commit_rate(4_000).await.expect("commit rate");

    let granted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..WORKERS {
        let (db, granted, refused) = (db.clone(), granted.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let worker_id = format!("worker-{worker}");
            while granted.load(Relaxed) < leases {
                let request = LeaseRequest {
                    customer_id: "cus_bench",
                    provider: "openai",
                    model: "gpt-4o-mini",
                    job_id: "job_bench",
                    worker_id: &worker_id,
                    lease_ms: 60_000,
                    exclude: &[],
                    platform_fallback: false,
                };
                match db.lease_provider_key(&request).await.expect("lease") {
                    LeaseOutcome::Granted(lease) => {
                        granted.fetch_add(1, Relaxed);
                        let success = KeyOutcome::Success { input_tokens: 10, output_tokens: 20, cost_usd: 0.0001 };
                        db.finish_key_lease(&lease, "job_bench", "openai", "gpt-4o-mini", &success)
                            .await
                            .expect("release");
                    }
                    _ => {
                        refused.fetch_add(1, Relaxed);
                        tokio::task::yield_now().await;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("worker");
    }
    let took = started.elapsed().as_secs_f64();
    let cycles = granted.load(Relaxed) as f64 / took;
    println!("raw BEGIN IMMEDIATE commits/s:           {raw:>8.0}");
    println!("lease+release cycles/s ({WORKERS} workers, {KEYS} keys): {cycles:>8.0}");
    println!("  = {:.0} transactions/s (2 per cycle), {:.2}x the raw commit rate", cycles * 2.0, cycles * 2.0 / raw);
    println!(
        "  leases granted {}, attempts refused (all keys leased) {}",
        granted.load(Relaxed),
        refused.load(Relaxed)
    );
}

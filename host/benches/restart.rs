//! How fast a restarted host is ready: verify and load 20 published artifacts with an empty
//! compiled cache (cold) and with the cache a previous run left (warm), in one run.
//! `cargo bench -p vidfarm --bench restart`.

use std::sync::Arc;
use std::time::{Duration, Instant};
use vidfarm::engine::Catalog;
use vidfarm::runtime::{Runtime, RuntimeConfig};
use vidfarm_registry::{ArtifactStore, SigningKey, TrustedKeys};

const ARTIFACTS: usize = 20;

/// `bytes` with a custom section appended: the same component, another digest.
fn variant(bytes: &[u8], n: usize) -> Vec<u8> {
    let name = format!("vidfarm-bench-{n}");
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    out.push(payload.len() as u8); // LEB128 length (< 128)
    out.extend_from_slice(&payload);
    out
}

async fn load_all(registry: &std::path::Path, cache: &std::path::Path, trusted: &TrustedKeys) -> Duration {
    let runtime = Arc::new(
        Runtime::new(RuntimeConfig { cache_dir: Some(cache.to_path_buf()), ..RuntimeConfig::default() })
            .expect("runtime"),
    );
    let bundles = cache.join("bundles");
    let idle = std::time::Duration::from_secs(600);
    let catalog = Catalog::new(runtime, ArtifactStore::dir(registry).expect("store"), trusted.clone(), bundles, idle);
    let started = Instant::now();
    for n in 0..ARTIFACTS {
        catalog.load_version("hello", &format!("0.1.0+b{n}")).await.expect("loads");
    }
    started.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = dir.path().join("registry");
    let store = ArtifactStore::dir(&registry).expect("store");
    let key = SigningKey::generate();
    let mut trusted = TrustedKeys::default();
    trusted.add(&key);
    let hello = vidfarm_template_artifacts::bytes("hello").expect("built in");
    let publisher = Runtime::new(RuntimeConfig::default()).expect("runtime");
    for n in 0..ARTIFACTS {
        let bytes = variant(hello, n);
        vidfarm::engine::publish::publish(&publisher, &store, &key, &bytes, Some(&format!("b{n}")), "bench")
            .await
            .expect("published");
    }
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let cache = dir.path().join(format!("cache-{round}"));
        cold.push(load_all(&registry, &cache, &trusted).await);
        warm.push(load_all(&registry, &cache, &trusted).await);
    }
    let (cold, warm) = (median(cold), median(warm));
    println!("ready with {ARTIFACTS} published artifacts (verify + load + describe each), median of 3:");
    println!("  cold compiled cache: {cold:.2?} ({:.1?} per artifact)", cold / ARTIFACTS as u32);
    println!("  warm compiled cache: {warm:.2?} ({:.1?} per artifact)", warm / ARTIFACTS as u32);
    println!("  ratio cold/warm: {:.1}x", cold.as_secs_f64() / warm.as_secs_f64());
}

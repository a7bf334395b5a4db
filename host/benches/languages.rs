//! The same echo operation written in Rust (`sandbox-probe`), JavaScript (`probe-js`) and
//! Python (`probe-py`): component size, first compile, cached load, instantiate + run
//! (pooled, our full path), and each language's per-job overhead relative to Rust, in one
//! run. `cargo bench -p vidfarm --bench languages` (env BENCH_RUNS, default 30). Builds the
//! JS and Python probes first (npm and componentize-py must be installed: tests/run-all.sh).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vidfarm::capabilities::Capabilities;
use vidfarm::devrun::backends::{LocalJobs, MemoryBilling, MemoryEvents, MemoryJournal, NoRenderer};
use vidfarm::providers::DevEchoProvider;
use vidfarm::runtime::bindings::types::{Customer, Environment, JobContext};
use vidfarm::runtime::{Limits, RunOutcome, RunRequest, Runtime, RuntimeConfig};
use vidfarm::storage::LocalObjectStore;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scratch = tempfile::tempdir().expect("temp dir");
    let mut components =
        vec![("Rust", "sandbox-probe", vidfarm_template_artifacts::bytes("sandbox-probe").expect("built in").to_vec())];
    for (language, probe) in [("JavaScript", "probe-js"), ("Python", "probe-py")] {
        let out = scratch.path().join(format!("{probe}.wasm"));
        vidfarm::devrun::build::build(&repo.join("templates").join(probe), Some(&out)).expect("the probe builds");
        components.push((language, probe, std::fs::read(&out).expect("the component")));
    }
    let caps = Arc::new(Capabilities {
        events: Arc::new(MemoryEvents::default()),
        storage: Arc::new(LocalObjectStore::new(scratch.path().join("objects"), None).expect("storage")),
        billing: Arc::new(MemoryBilling::default()),
        providers: Arc::new(DevEchoProvider),
        renderer: Arc::new(NoRenderer),
        jobs: Arc::new(LocalJobs::default()),
        journal: Arc::new(MemoryJournal::default()),
    });

    println!(
        "| language | component | first compile | cached load | instantiate + run echo (median of {runs}) | fuel | vs Rust |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut rust_run = None;
    for (language, id, bytes) in components {
        let cache = scratch.path().join(format!("compiled-{id}"));
        let config = || RuntimeConfig { cache_dir: Some(cache.clone()), ..RuntimeConfig::default() };
        let started = Instant::now();
        let cold = Runtime::new(config()).expect("runtime");
        cold.load(Arc::from(bytes.clone())).await.expect("compiles");
        let compile = started.elapsed();
        drop(cold);
        let runtime = Runtime::new(config()).expect("runtime");
        let started = Instant::now();
        let template = runtime.load(Arc::from(bytes.clone())).await.expect("loads from the cache");
        let cached = started.elapsed();
        let mut samples = Vec::with_capacity(runs);
        let mut fuel = 0;
        for n in 0..runs + 2 {
            let request = RunRequest {
                workflow: "echo".into(),
                context: JobContext {
                    job_id: format!("bench-{n}"),
                    template_id: id.into(),
                    template_version: template.manifest.version.clone(),
                    operation: "echo".into(),
                    workflow: "echo".into(),
                    parent_job_id: None,
                    customer: Customer { id: "bench".into(), name: "bench".into() },
                    attempt: 1,
                    env: Environment::Development,
                    config: "{}".into(),
                },
                input: r#"{"hello":"world","n":[1,2,3]}"#.into(),
                limits: Limits::default(),
                start_ms: 0,
                cancel: Default::default(),
                lease_token: String::new(),
                journaled: None,
            };
            let started = Instant::now();
            let report = runtime.run(&template, request, caps.clone()).await;
            let took = started.elapsed();
            assert!(matches!(report.outcome, RunOutcome::Succeeded(_)), "{language}: {:?}", report.outcome);
            fuel = report.fuel_consumed;
            if n >= 2 {
                samples.push(took); // the first two warm the pool
            }
        }
        let run = median(samples);
        let ratio = rust_run.map_or(1.0, |rust: Duration| run.as_secs_f64() / rust.as_secs_f64());
        rust_run.get_or_insert(run);
        println!(
            "| {language} | {:.1} MiB | {:.0} ms | {:.1} ms | {:.3} ms | {fuel} | {ratio:.1}× |",
            bytes.len() as f64 / (1 << 20) as f64,
            ms(compile),
            ms(cached),
            ms(run)
        );
    }
}

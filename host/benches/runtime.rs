//! Instantiate + call `sandbox-probe echo`: bare wasmtime (pooling, nothing else) against our
//! full path (fresh store, fuel, epoch deadline, memory limiter, all capabilities linked,
//! journal, replay-stable WASI). Run with `cargo bench -p vidfarm --bench runtime`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;
use vidfarm::capabilities::Capabilities;
use vidfarm::devrun::backends::{LocalJobs, MemoryBilling, MemoryEvents, MemoryJournal, NoRenderer};
use vidfarm::providers::DevEchoProvider;
use vidfarm::runtime::bindings::types::{Customer, Environment, JobContext, TemplateError};
use vidfarm::runtime::{Limits, RunOutcome, RunRequest, Runtime, RuntimeConfig};
use vidfarm::storage::LocalObjectStore;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

const PAYLOAD: &str = r#"{"hello":"world","n":[1,2,3]}"#;

fn context() -> JobContext {
    JobContext {
        job_id: "bench".into(),
        template_id: "sandbox-probe".into(),
        template_version: "0.1.0".into(),
        operation: "echo".into(),
        workflow: "echo".into(),
        parent_job_id: None,
        customer: Customer { id: "bench".into(), name: "bench".into() },
        attempt: 1,
        env: Environment::Development,
        config: "{}".into(),
    }
}

struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

type RunFn = (String, JobContext, String);

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    let bytes = vidfarm_template_artifacts::bytes("sandbox-probe").expect("built in");
    let ctx = context();

    // Bare wasmtime: pooling allocator, WASI p2, our imports defined as traps (echo calls none).
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(PoolingAllocationConfig::default()));
    let engine = Engine::new(&config).expect("engine");
    let component = Component::new(&engine, bytes).expect("compiles");
    let mut linker: Linker<Bare> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
    linker.define_unknown_imports_as_traps(&component).expect("traps");
    let pre = linker.instantiate_pre(&component).expect("pre");
    c.bench_function("bare wasmtime: instantiate + echo (pooled)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut store =
                    Store::new(&engine, Bare { wasi: WasiCtx::builder().build(), table: ResourceTable::new() });
                let instance = pre.instantiate_async(&mut store).await.expect("instantiates");
                let run = instance
                    .get_typed_func::<RunFn, (Result<String, TemplateError>,)>(&mut store, "run")
                    .expect("run export");
                let (out,) =
                    run.call_async(&mut store, ("echo".into(), ctx.clone(), PAYLOAD.into())).await.expect("runs");
                assert!(out.is_ok());
            })
        })
    });

    // Our full path.
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let template = rt.block_on(runtime.load(Arc::from(bytes))).expect("loads");
    let caps = Arc::new(Capabilities {
        events: Arc::new(MemoryEvents::default()),
        storage: Arc::new(LocalObjectStore::new(dir.path(), None).expect("dir")),
        billing: Arc::new(MemoryBilling::default()),
        providers: Arc::new(DevEchoProvider),
        renderer: Arc::new(NoRenderer),
        jobs: Arc::new(LocalJobs::default()),
        journal: Arc::new(MemoryJournal::default()),
    });
    c.bench_function("vidfarm runtime: fresh store + limits + capabilities + echo", |b| {
        b.iter(|| {
            let request = RunRequest {
                workflow: "echo".into(),
                context: ctx.clone(),
                input: PAYLOAD.into(),
                limits: Limits::default(),
                start_ms: 0,
                cancel: Default::default(),
                lease_token: String::new(),
                journaled: None,
            };
            let report = rt.block_on(runtime.run(&template, request, caps.clone()));
            assert!(matches!(report.outcome, RunOutcome::Succeeded(_)));
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

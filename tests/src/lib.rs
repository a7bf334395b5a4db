//! Shared helpers of the end-to-end tests: a real runtime, the real built-in components,
//! local backends in a temporary directory.

pub mod accounts;
pub mod browser;
pub mod database;
pub mod fake_providers;
pub mod fake_veo;
pub mod media;
pub mod otlp;
pub mod receiver;
pub mod s3;
pub mod server;

use std::path::Path;
use std::sync::Arc;
use vidfarm::capabilities::Capabilities;
use vidfarm::devrun::backends::{LocalJobs, MemoryBilling, MemoryEvents, MemoryJournal, NoRenderer};
use vidfarm::providers::DevEchoProvider;
use vidfarm::runtime::bindings::types::{Customer, Environment, JobContext};
use vidfarm::runtime::{Limits, LoadedTemplate, RunRequest, Runtime, RuntimeConfig};
use vidfarm::storage::LocalObjectStore;

/// A runtime with the host defaults and a compiled cache under `dir`.
pub fn runtime(dir: &Path) -> Runtime {
    Runtime::new(RuntimeConfig { cache_dir: Some(dir.join("compiled")), ..RuntimeConfig::default() })
        .expect("the runtime starts")
}

/// A built-in template, loaded for real.
pub async fn load(runtime: &Runtime, id: &str) -> LoadedTemplate {
    let bytes = vidfarm_template_artifacts::bytes(id).expect("a built-in template");
    runtime.load(Arc::from(bytes)).await.expect("the template loads")
}

/// Local backends: storage under `dir/objects`, events and journal in memory.
pub struct Backends {
    pub caps: Arc<Capabilities>,
    pub events: Arc<MemoryEvents>,
    pub jobs: Arc<LocalJobs>,
}

pub fn backends(dir: &Path) -> Backends {
    let events = Arc::new(MemoryEvents::default());
    let jobs = Arc::new(LocalJobs::default());
    let caps = Arc::new(Capabilities {
        events: events.clone(),
        storage: Arc::new(LocalObjectStore::new(dir.join("objects"), None).expect("a storage dir")),
        billing: Arc::new(MemoryBilling::default()),
        providers: Arc::new(DevEchoProvider),
        renderer: Arc::new(NoRenderer),
        jobs: jobs.clone(),
        journal: Arc::new(MemoryJournal::default()),
    });
    Backends { caps, events, jobs }
}

/// A run of `operation` (its workflow has the same name in our templates) as job `job_id`.
pub fn request(
    template: &LoadedTemplate,
    job_id: &str,
    operation: &str,
    payload: serde_json::Value,
    limits: Limits,
) -> RunRequest {
    let op = template.operation(operation).expect("the operation exists");
    RunRequest {
        workflow: op.workflow.clone(),
        context: JobContext {
            job_id: job_id.into(),
            template_id: template.manifest.id.clone(),
            template_version: template.manifest.version.clone(),
            operation: operation.into(),
            workflow: op.workflow.clone(),
            parent_job_id: None,
            customer: Customer { id: "cus_test".into(), name: "Test".into() },
            attempt: 1,
            env: Environment::Development,
            config: "{}".into(),
        },
        input: payload.to_string(),
        limits,
        start_ms: 1_700_000_000_000,
        cancel: Default::default(),
        lease_token: String::new(),
        journaled: None,
    }
}

/// Build a template with `vidfarm template build` once per test process, into `out_dir`
/// (TypeScript builds share the SDK's node_modules: one build at a time, for every test).
pub fn built_template(dir: &Path, out_dir: &Path) -> std::path::PathBuf {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static BUILT: Mutex<Option<HashMap<std::path::PathBuf, std::path::PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    let map = built.get_or_insert_with(HashMap::new);
    if let Some(path) = map.get(dir) {
        return path.clone();
    }
    let name = dir.file_name().expect("a name").to_string_lossy().into_owned();
    let out = out_dir.join(format!("{name}.wasm"));
    let path = vidfarm::devrun::build::build(dir, Some(&out)).unwrap_or_else(|e| panic!("building {name}: {e}"));
    map.insert(dir.to_path_buf(), path.clone());
    path
}

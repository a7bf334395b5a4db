//! Templates in TypeScript/JavaScript and Python: built by `vidfarm template build` from their
//! normal package ecosystems (npm, PyPI) into components of the same WIT world, run in the
//! same sandbox under the same limits, failing with the same codes as Rust templates.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vidfarm::devrun::build::{self, Language};
use vidfarm::devrun::{self, DevRunOptions};
use vidfarm::runtime::bindings::types::Environment;
use vidfarm::runtime::{Limits, LoadedTemplate, RunError, RunOutcome, Runtime};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Build a template once per test process.
fn built(dir: &Path) -> PathBuf {
    vidfarm_tests::built_template(dir, &Path::new(env!("CARGO_TARGET_TMPDIR")).join("language-components"))
}

/// The runtime with a compiled cache kept between test runs (JS and Python components are
/// ~18 MB: compiling one takes seconds).
fn runtime() -> Runtime {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("language-compiled");
    vidfarm_tests::runtime(&cache)
}

async fn load(runtime: &Runtime, dir: &Path) -> LoadedTemplate {
    let bytes = std::fs::read(built(dir)).expect("the component");
    runtime.load(Arc::from(bytes)).await.expect("the component loads")
}

async fn run(runtime: &Runtime, template: &LoadedTemplate, operation: &str, payload: Value) -> devrun::DevRunReport {
    let dir = tempfile::tempdir().expect("a temp dir");
    let options = DevRunOptions {
        data_dir: dir.path().to_path_buf(),
        answer: None,
        env: Environment::Development,
        config: json!({}),
        render: None,
    };
    devrun::run(runtime, template, operation, payload, &options).await.expect("the run starts")
}

/// The probes' limits: small, so each attack ends fast.
fn small_limits() -> Limits {
    Limits { fuel: 3_000_000_000, memory_bytes: 96 << 20, timeout_ms: 60_000, ..Limits::default() }
}

async fn probe_fails_like_rust(probe: &str) {
    let runtime = runtime();
    let template = load(&runtime, &repo().join("templates").join(probe)).await;
    let echoed = run(&runtime, &template, "echo", json!({ "hello": "world" })).await;
    assert!(echoed.succeeded(), "{}", echoed.to_json());

    let limits = small_limits();
    let spin = vidfarm_tests::request(&template, "job_spin", "spin", json!({}), limits);
    let backends = vidfarm_tests::backends(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let outcome = runtime.run(&template, spin, backends.caps.clone()).await.outcome;
    assert!(matches!(outcome, RunOutcome::Failed(RunError::OutOfFuel { .. })), "{probe} spin: {outcome:?}");

    let hog = vidfarm_tests::request(&template, "job_hog", "hog-memory", json!({}), limits);
    let outcome = runtime.run(&template, hog, backends.caps.clone()).await.outcome;
    assert!(matches!(outcome, RunOutcome::Failed(RunError::MemoryLimit { .. })), "{probe} hog-memory: {outcome:?}");

    let message = format!("{probe} raised on purpose");
    let throw = vidfarm_tests::request(&template, "job_throw", "throw", json!({ "message": message }), limits);
    let outcome = runtime.run(&template, throw, backends.caps.clone()).await.outcome;
    let RunOutcome::Failed(RunError::GuestPanic { message: panic }) = &outcome else {
        panic!("{probe} throw: {outcome:?}");
    };
    assert!(panic.contains(&message), "the exception's message is in the job's error: {panic}");
    assert!(panic.contains("throw") || panic.contains("line"), "and its stack: {panic}");
    let logged = backends.events.0.lock().expect("events").clone();
    assert!(
        logged.iter().any(|(job, e)| job == "job_throw" && e.level == "error" && e.message.contains(&message)),
        "the exception is in the job's logs: {logged:?}"
    );
}

#[tokio::test]
async fn a_javascript_template_fails_with_the_same_codes_as_a_rust_one() {
    probe_fails_like_rust("probe-js").await;
}

#[tokio::test]
async fn a_python_template_fails_with_the_same_codes_as_a_rust_one() {
    probe_fails_like_rust("probe-py").await;
}

#[tokio::test]
async fn the_typescript_captioner_writes_srt_and_vtt_files_with_an_npm_dependency() {
    let runtime = runtime();
    let template = load(&runtime, &repo().join("templates/captioner-ts")).await;
    assert_eq!(template.manifest.id, "captioner-ts");
    let payload = json!({ "transcript": "So today we look at the new studio. It opened in March and it is big.",
                          "durationSeconds": 6, "refine": false });
    let report = run(&runtime, &template, "caption", payload).await;
    let out = report.to_json();
    assert!(report.succeeded(), "{out}");
    let keys = out["output"]["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "{out}");
    let stored: Vec<&Value> =
        out["events"].as_array().expect("events").iter().filter(|e| !e["artifact"].is_null()).collect();
    assert_eq!(stored.len(), 2, "both files were stored: {out}");
    assert!(out["output"]["cues"].as_u64().is_some_and(|n| n >= 1), "{out}");
}

#[tokio::test]
async fn the_python_summarizer_stores_a_summary_with_a_pypi_dependency() {
    let runtime = runtime();
    let template = load(&runtime, &repo().join("templates/summarizer-py")).await;
    assert_eq!(template.manifest.id, "summarizer-py");
    let text = "The studio opened in March. It has two stages. Crews book it by the hour. ".repeat(20);
    let report = run(&runtime, &template, "summarize", json!({ "text": text })).await;
    let out = report.to_json();
    assert!(report.succeeded(), "{out}");
    let stored = out["events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["artifact"]["key"].as_str().is_some_and(|k| k.ends_with(".md")));
    assert!(stored, "the summary was stored: {out}");
}

#[tokio::test]
async fn every_scaffold_builds_and_runs_as_it_is() {
    // Each scaffold is named after this process, so its component and compiled code are new
    // every run: they go to a temp dir, not to the caches kept between runs.
    let scratch = tempfile::tempdir().expect("a temp dir");
    let runtime = vidfarm_tests::runtime(scratch.path());
    for (language, lang) in [
        (Language::TypeScript, "ts"),
        (Language::JavaScript, "js"),
        (Language::Python, "python"),
        (Language::Rust, "rust"),
    ] {
        let name = format!("scaffold-check-{lang}-{}", std::process::id());
        let dir = repo().join("templates").join(&name);
        let _cleanup = RemoveOnDrop(dir.clone());
        build::new_template(&name, language, &dir, None).unwrap_or_else(|e| panic!("{lang}: {e}"));
        let refused = build::new_template(&name, language, &dir, None).expect_err("exists");
        assert!(refused.contains("already exists"), "{refused}");
        let bytes = std::fs::read(vidfarm_tests::built_template(&dir, scratch.path())).expect("the component");
        let template = runtime.load(Arc::from(bytes)).await.expect("the component loads");
        assert_eq!(template.manifest.id, name);
        let report = run(&runtime, &template, "draft", json!({ "topic": "tide pools" })).await;
        assert!(report.succeeded(), "{lang}: {}", report.to_json());
    }
    let bad = build::new_template("Bad Name", Language::Rust, &repo().join("templates/x"), None).expect_err("refused");
    assert!(bad.contains("a-z"), "{bad}");
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn the_typescript_captioner_runs_as_a_job_through_the_api_like_a_rust_template() {
    let server = vidfarm_tests::server::TestServer::start().await;
    let platform = &server.platform;
    let key = vidfarm::engine::publish::dev_key(&server.dir.path().join("registry-dev.key")).expect("the dev key");
    let bytes = std::fs::read(built(&repo().join("templates/captioner-ts"))).expect("the component");
    let (runtime, registry) = (platform.catalog.runtime(), platform.catalog.registry());
    let stored =
        vidfarm::engine::publish::publish(runtime, registry, &key, &bytes, None, "test").await.expect("published");
    registry.activate("captioner-ts", &stored.version, "test").expect("activated");
    assert!(platform.catalog.sync().await.is_empty(), "the signed component is accepted");
    let payload =
        json!({ "transcript": "Welcome to the studio. We open at nine.", "durationSeconds": 4, "refine": false });
    let job_id = server.create_job("captioner-ts", "caption", payload).await;
    let timeout = std::time::Duration::from_secs(120);
    let job = server.wait_for("captioner-ts", &job_id, &["succeeded", "failed"], timeout).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["template_version"], stored.version);
    assert_eq!(job["result"]["keys"].as_array().map(Vec::len), Some(2), "{job}");
    let logs = server.get_json(&format!("/templates/captioner-ts/jobs/{job_id}/logs")).await;
    let artifacts = logs["events"].as_array().expect("events").iter().filter(|e| !e["artifact"].is_null()).count();
    assert_eq!(artifacts, 2, "{logs}");
}

//! `vidfarm serve` publishes the TypeScript and Python example templates, not only the Rust
//! built-ins: it builds them in the background (once per source change) and activates them.

use crate::common;

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// Post a job and wait for it to finish; the finished job.
fn run_job(client: &common::Client, host: &common::Host, template: &str, operation: &str, payload: Value) -> Value {
    let job_id = client.create_in(host, template, operation, payload);
    let finished = |j: &Value| j["status"] == "succeeded" || j["status"] == "failed";
    client.wait_in(host, template, &job_id, finished, Duration::from_secs(120))
}

#[test]
fn serve_builds_publishes_and_runs_the_typescript_and_python_examples() {
    let data = tempfile::tempdir().expect("temp dir");
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
    // Shared by runs of this test, so only the first one after a source change builds.
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("example-builds");
    let (templates, cache) = (templates.to_string_lossy(), cache.to_string_lossy());
    let client = common::client(data.path());
    let host = common::serve(
        data.path(),
        &[("VIDFARM_EXAMPLE_TEMPLATES", templates.as_ref()), ("VIDFARM_EXAMPLE_CACHE", cache.as_ref())],
    );

    // A cold build of both (npm, componentize-js, componentize-py) takes a minute or two here.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let listed = client.get(&host, "/templates");
        let ids: Vec<&str> =
            listed["templates"].as_array().into_iter().flatten().filter_map(|t| t["id"].as_str()).collect();
        if ids.contains(&"captioner-ts") && ids.contains(&"summarizer-py") {
            assert!(ids.contains(&"hello"), "the Rust built-ins are still there: {listed}");
            break;
        }
        assert!(Instant::now() < deadline, "the examples were not published in time: {listed}");
        std::thread::sleep(Duration::from_millis(500));
    }

    let transcript = "So today we look at the new studio. It opened in March and it is big.";
    let captioned = run_job(
        &client,
        &host,
        "captioner-ts",
        "caption",
        json!({ "transcript": transcript, "durationSeconds": 6, "refine": false }),
    );
    assert_eq!(captioned["status"], "succeeded", "{captioned}");
    assert_eq!(captioned["result"]["keys"].as_array().map(Vec::len), Some(2), "an SRT and a VTT: {captioned}");

    let text = "The studio opened in March. It has two stages. Crews book it by the hour. ".repeat(20);
    let summarised = run_job(&client, &host, "summarizer-py", "summarize", json!({ "text": text }));
    assert_eq!(summarised["status"], "succeeded", "{summarised}");

    // Published as a development build, tagged with its digest.
    let manifest = client.get(&host, "/templates/captioner-ts");
    let versions = manifest["versions"].as_array().into_iter().flatten().filter_map(Value::as_str);
    assert!(versions.clone().any(|v| v.contains('+')), "{manifest}");
}

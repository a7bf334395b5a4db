//! Crash safety and graceful shutdown of the real `vidfarm` process: SIGKILL between effects
//! and a restart on the same data dir perform every effect exactly once; SIGTERM loses nothing.

use crate::common;

use common::*;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

const STEPS: u64 = 6;

#[test]
fn a_host_killed_between_effects_finishes_the_job_after_restart_with_each_effect_once() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let client = client(dir.path());
    let mut host = serve(dir.path(), &[]);
    let job_id = client.create(&host, "effects", json!({ "steps": STEPS, "spin": 150_000_000 }));
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.steps_logged(&host, &job_id) < 2 {
        assert!(Instant::now() < deadline, "the job never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    host.child.kill().expect("SIGKILL");
    host.child.wait().expect("reaped");
    let (ledger_at_crash, _) = effects_on_disk(dir.path(), &job_id);
    assert!((2..STEPS as usize).contains(&ledger_at_crash), "killed mid-job, after {ledger_at_crash} charges");

    let host = serve(dir.path(), &[]);
    let job = client.wait_finished(&host, &job_id);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(job["attempt"].as_i64().is_some_and(|a| a >= 2), "it ran again: {job}");
    let (ledger, journal) = effects_on_disk(dir.path(), &job_id);
    assert_eq!(ledger, STEPS as usize, "each charge exactly once");
    assert_eq!(journal, 2 * STEPS as usize, "each effect journaled once");
    let mut artifacts = client.artifacts(&host, &job_id);
    artifacts.sort();
    let expected: Vec<String> = (0..STEPS).map(|s| format!("steps/{s}.txt")).collect();
    assert_eq!(artifacts, expected, "each artifact written (and announced) once");
    let steps = client.steps_logged(&host, &job_id);
    assert_eq!(steps, STEPS as usize, "each log line once, even those of the step the crash interrupted");
}

fn sigterm(host: &mut Host) -> std::process::ExitStatus {
    let status = Command::new("kill").args(["-TERM", &host.child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    host.child.wait().expect("the host exits")
}

#[test]
fn sigterm_lets_a_running_job_finish_then_exits_0() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let client = client(dir.path());
    let mut host = serve(dir.path(), &[]);
    let job_id = client.create(&host, "effects", json!({ "steps": 3, "spin": 100_000_000 }));
    client.wait_until(&host, &job_id, |j| j["status"] == "running", Duration::from_secs(30));
    assert!(sigterm(&mut host).success(), "exit code 0");
    let (ledger, _) = effects_on_disk(dir.path(), &job_id);
    assert_eq!(ledger, 3, "the job finished before the host stopped");
    let host = serve(dir.path(), &[]);
    assert_eq!(client.get(&host, &format!("/templates/sandbox-probe/jobs/{job_id}"))["status"], "succeeded");
}

#[test]
fn sigterm_past_the_grace_period_releases_the_job_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let client = client(dir.path());
    let mut host = serve(dir.path(), &[("VIDFARM_SHUTDOWN_GRACE_MS", "100")]);
    let job_id = client.create(&host, "effects", json!({ "steps": STEPS, "spin": 150_000_000 }));
    client.wait_until(&host, &job_id, |j| j["status"] == "running", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    assert!(sigterm(&mut host).success(), "exit code 0");
    assert!(started.elapsed() < Duration::from_secs(5), "the grace period is respected");
    let host = serve(dir.path(), &[]);
    let job = client.wait_finished(&host, &job_id);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(effects_on_disk(dir.path(), &job_id).0, STEPS as usize, "each charge exactly once");
}

#[test]
fn the_api_and_the_worker_can_run_as_separate_processes_on_one_database() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let client = client(dir.path());
    let api = start("api", dir.path(), &[]);
    let job_id = client.create(&api, "effects", json!({ "steps": 2, "spin": 0 }));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        client.get(&api, &format!("/templates/sandbox-probe/jobs/{job_id}"))["status"],
        "queued",
        "no worker yet"
    );
    let _worker = start("worker", dir.path(), &[]);
    let job = client.wait_until(&api, &job_id, |j| j["status"] == "succeeded", Duration::from_secs(30));
    assert_eq!(job["result"], json!({ "steps": 2 }));
    // Cancellation crosses processes too: the worker sees it at its next heartbeat.
    let spinning = client.create(&api, "spin", json!({}));
    client.wait_until(&api, &spinning, |j| j["status"] == "running", Duration::from_secs(30));
    let cancelled = client
        .http
        .post(format!("{}/templates/sandbox-probe/jobs/{spinning}/cancel", api.base))
        .header("vidfarm-user-id", &client.id)
        .header("vidfarm-api-key", &client.key)
        .send()
        .expect("sent");
    assert_eq!(cancelled.status(), 200);
    let job = client.wait_until(&api, &spinning, |j| j["status"] != "running", Duration::from_secs(10));
    assert_eq!(job["status"], "cancelled", "{job}");
}

#[test]
fn a_job_finishing_in_the_grace_period_keeps_its_lease_and_is_not_run_twice() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let client = client(dir.path());
    let grace = [("VIDFARM_SHUTDOWN_GRACE_MS", "20000")];
    let mut first = serve(dir.path(), &grace);
    // Seconds of work: longer than the 1 s lease, shorter than the grace period.
    let job_id = client.create(&first, "effects", json!({ "steps": 4, "spin": 800_000_000 }));
    client.wait_until(&first, &job_id, |j| j["status"] == "running", Duration::from_secs(30));
    let second = serve(dir.path(), &[]);
    assert!(sigterm(&mut first).success(), "exit code 0");
    let job = client.wait_finished(&second, &job_id);
    assert_eq!(
        (job["status"].as_str(), job["attempt"].as_i64()),
        (Some("succeeded"), Some(1)),
        "finished by its first run only: {job}"
    );
    assert_eq!(effects_on_disk(dir.path(), &job_id).0, 4);
}

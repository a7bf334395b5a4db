//! Crash safety and graceful shutdown of the real `vidfarm` process: SIGKILL between effects
//! and a restart on the same data dir perform every effect exactly once; SIGTERM loses nothing.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vidfarm");

struct Host {
    child: Child,
    base: String,
}

/// Start `vidfarm serve` on a free port; returns once it listens.
fn serve(data_dir: &Path, extra_env: &[(&str, &str)]) -> Host {
    start("serve", data_dir, extra_env)
}

/// Start `vidfarm <role>` (`serve` or `api`: returns once it listens; `worker`: at once).
fn start(role: &str, data_dir: &Path, extra_env: &[(&str, &str)]) -> Host {
    let mut child = Command::new(BIN)
        .args([role, "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("VIDFARM_LEASE_MS", "1000")
        .env("VIDFARM_POLL_MS", "50")
        .env("VIDFARM_DEFAULT_FUEL", "1000000000000")
        .envs(extra_env.iter().copied())
        .env_remove("VIDFARM_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("vidfarm starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    if role == "worker" {
        std::thread::spawn(move || for _ in lines {});
        return Host { child, base: String::new() };
    }
    let addr = loop {
        let line = lines.next().expect("the server prints until it listens").expect("a line");
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().expect("an address").to_string();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Host { child, base: format!("http://{addr}") }
}

fn create_customer(data_dir: &Path) -> (String, String) {
    let out = Command::new(BIN)
        .args(["customers", "create", "--name", "Crash Co", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).expect("json");
    (created["customer_id"].as_str().expect("id").into(), created["api_key"].as_str().expect("key").into())
}

struct Client {
    http: reqwest::blocking::Client,
    id: String,
    key: String,
}

impl Client {
    fn get(&self, host: &Host, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", host.base))
            .header("vidfarm-user-id", &self.id)
            .header("vidfarm-api-key", &self.key)
            .send()
            .and_then(|r| r.json())
            .expect("a JSON answer")
    }

    fn create(&self, host: &Host, operation: &str, payload: Value) -> String {
        let created: Value = self
            .http
            .post(format!("{}/templates/sandbox-probe/operations/{operation}", host.base))
            .header("vidfarm-user-id", &self.id)
            .header("vidfarm-api-key", &self.key)
            .json(&json!({ "tracer": "durability", "payload": payload }))
            .send()
            .and_then(|r| r.json())
            .expect("created");
        created["job_id"].as_str().expect("a job id").into()
    }

    fn wait_until(&self, host: &Host, job_id: &str, done: impl Fn(&Value) -> bool, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let job = self.get(host, &format!("/templates/sandbox-probe/jobs/{job_id}"));
            if done(&job) {
                return job;
            }
            assert!(Instant::now() < deadline, "gave up waiting: {job}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn steps_logged(&self, host: &Host, job_id: &str) -> usize {
        let logs = self.get(host, &format!("/templates/sandbox-probe/jobs/{job_id}/logs?limit=1000"));
        logs["events"].as_array().map_or(0, |e| e.iter().filter(|e| e["message"] == "step done").count())
    }

    fn artifacts(&self, host: &Host, job_id: &str) -> Vec<String> {
        let logs = self.get(host, &format!("/templates/sandbox-probe/jobs/{job_id}/logs?limit=1000"));
        logs["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["artifact"]["key"].as_str().map(String::from))
            .collect()
    }
}

/// Ledger rows and journal entries of a job, read from the SQLite file itself.
fn effects_on_disk(data_dir: &Path, job_id: &str) -> (usize, usize) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        let db = vidfarm::db::Db::open(&data_dir.join("vidfarm.sqlite")).await.expect("the database opens");
        (db.job_ledger(job_id).await.expect("ledger").len(), db.journal(job_id).await.expect("journal").len())
    })
}

fn client(data_dir: &Path) -> Client {
    let (id, key) = create_customer(data_dir);
    Client { http: reqwest::blocking::Client::new(), id, key }
}

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
    let job = client.wait_until(
        &host,
        &job_id,
        |j| j["status"] == "succeeded" || j["status"] == "failed",
        Duration::from_secs(120),
    );
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
    let job = client.wait_until(
        &host,
        &job_id,
        |j| j["status"] == "succeeded" || j["status"] == "failed",
        Duration::from_secs(120),
    );
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(effects_on_disk(dir.path(), &job_id).0, STEPS as usize, "each charge exactly once");
}

impl Drop for Host {
    /// A failed assertion must not leave a server running (it would hold the test's pipes).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

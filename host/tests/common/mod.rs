//! Helpers of the process-level tests: the real `vidfarm` binary, started and stopped like an
//! operator would, and a blocking HTTP client.
#![allow(dead_code)] // each test file uses its own subset

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_vidfarm");

pub struct Host {
    pub child: Child,
    pub base: String,
}

/// Start `vidfarm serve` on a free port; returns once it listens.
pub fn serve(data_dir: &Path, extra_env: &[(&str, &str)]) -> Host {
    start("serve", data_dir, extra_env)
}

/// Start `vidfarm <role>` (`serve` or `api`: returns once it listens; `worker`: at once).
pub fn start(role: &str, data_dir: &Path, extra_env: &[(&str, &str)]) -> Host {
    let mut child = Command::new(BIN)
        .args([role, "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("VIDFARM_LEASE_MS", "1000")
        .env("VIDFARM_POLL_MS", "50")
        .env("VIDFARM_DEFAULT_FUEL", "1000000000000")
        .env("VIDFARM_MAX_CONCURRENT_JOBS", "16")
        .env("VIDFARM_JOBS_PER_MINUTE", "1000000")
        // Only the examples' own test builds them (it overrides this).
        .env("VIDFARM_EXAMPLE_TEMPLATES", "off")
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

pub fn create_customer(data_dir: &Path) -> (String, String) {
    let out = Command::new(BIN)
        .args(["customers", "create", "--name", "Crash Co", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).expect("json");
    (created["customer_id"].as_str().expect("id").into(), created["api_key"].as_str().expect("key").into())
}

pub struct Client {
    pub http: reqwest::blocking::Client,
    pub id: String,
    pub key: String,
}

impl Client {
    pub fn get(&self, host: &Host, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", host.base))
            .header("vidfarm-user-id", &self.id)
            .header("vidfarm-api-key", &self.key)
            .send()
            .and_then(|r| r.json())
            .expect("a JSON answer")
    }

    pub fn create(&self, host: &Host, operation: &str, payload: Value) -> String {
        self.create_in(host, "sandbox-probe", operation, payload)
    }

    pub fn create_in(&self, host: &Host, template: &str, operation: &str, payload: Value) -> String {
        let created: Value = self
            .http
            .post(format!("{}/templates/{template}/operations/{operation}", host.base))
            .header("vidfarm-user-id", &self.id)
            .header("vidfarm-api-key", &self.key)
            .json(&json!({ "tracer": "durability", "payload": payload }))
            .send()
            .and_then(|r| r.json())
            .expect("created");
        created["job_id"].as_str().expect("a job id").into()
    }

    pub fn wait_until(&self, host: &Host, job_id: &str, done: impl Fn(&Value) -> bool, within: Duration) -> Value {
        self.wait_in(host, "sandbox-probe", job_id, done, within)
    }

    pub fn wait_in(
        &self,
        host: &Host,
        template: &str,
        job_id: &str,
        done: impl Fn(&Value) -> bool,
        within: Duration,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let job = self.get(host, &format!("/templates/{template}/jobs/{job_id}"));
            if done(&job) {
                return job;
            }
            assert!(Instant::now() < deadline, "gave up waiting: {job}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Wait until the job has succeeded or failed (restarts and replays included).
    pub fn wait_finished(&self, host: &Host, job_id: &str) -> Value {
        self.wait_until(
            host,
            job_id,
            |j| j["status"] == "succeeded" || j["status"] == "failed",
            Duration::from_secs(120),
        )
    }

    pub fn steps_logged(&self, host: &Host, job_id: &str) -> usize {
        let logs = self.get(host, &format!("/templates/sandbox-probe/jobs/{job_id}/logs?limit=1000"));
        logs["events"].as_array().map_or(0, |e| e.iter().filter(|e| e["message"] == "step done").count())
    }

    pub fn artifacts(&self, host: &Host, job_id: &str) -> Vec<String> {
        let logs = self.get(host, &format!("/templates/sandbox-probe/jobs/{job_id}/logs?limit=1000"));
        logs["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["artifact"]["key"].as_str().map(String::from))
            .collect()
    }
}

/// Ledger rows the template recorded (not the host's own storage and CPU charges) and
/// journal entries of a job, read from the SQLite file itself.
pub fn effects_on_disk(data_dir: &Path, job_id: &str) -> (usize, usize) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        let db = vidfarm::db::Db::open(&data_dir.join("vidfarm.sqlite")).await.expect("the database opens");
        let ledger = db.job_ledger(job_id).await.expect("ledger");
        let by_template = ledger.iter().filter(|r| !r.metadata.contains(r#""recorded_by":"host""#)).count();
        (by_template, db.journal(job_id).await.expect("journal").len())
    })
}

pub fn client(data_dir: &Path) -> Client {
    let (id, key) = create_customer(data_dir);
    Client { http: reqwest::blocking::Client::new(), id, key }
}

impl Drop for Host {
    /// A failed assertion must not leave a server running (it would hold the test's pipes).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Helpers of the process-level tests: the real `vidfarm` binary, started and stopped like an
//! operator would, and a blocking HTTP client.

pub mod wire;

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
    start_watching(role, data_dir, extra_env, "").0
}

/// [`start`], counting the lines of its standard output that contain `needle` (none if empty).
pub fn start_watching(
    role: &str,
    data_dir: &Path,
    extra_env: &[(&str, &str)],
    needle: &str,
) -> (Host, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let (host, mut seen) = start_counting(role, data_dir, extra_env, &[needle]);
    (host, seen.remove(0))
}

/// [`start`], counting for each needle the lines of its standard output that contain it.
pub fn start_counting(
    role: &str,
    data_dir: &Path,
    extra_env: &[(&str, &str)],
    needles: &[&str],
) -> (Host, Vec<std::sync::Arc<std::sync::atomic::AtomicUsize>>) {
    let seen: Vec<_> = needles.iter().map(|_| std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0))).collect();
    let counts: Vec<(String, _)> = needles.iter().map(|n| n.to_string()).zip(seen.iter().cloned()).collect();
    let watch = move |line: &str| {
        for (needle, count) in &counts {
            if !needle.is_empty() && line.contains(needle.as_str()) {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    };
    let mut child = Command::new(BIN)
        .args([role, "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .envs(database_env(data_dir))
        .env("VIDFARM_LEASE_MS", "1000")
        .env("VIDFARM_POLL_MS", "50")
        .env("VIDFARM_DEFAULT_FUEL", "1000000000000")
        .env("VIDFARM_MAX_CONCURRENT_JOBS", "16")
        .env("VIDFARM_JOBS_PER_MINUTE", "1000000")
        // Only the examples' own test builds them (it overrides this).
        .env("VIDFARM_EXAMPLE_TEMPLATES", "off")
        .env_remove("VIDFARM_LOG")
        .envs(extra_env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("vidfarm starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    if role == "worker" {
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(|line| watch(&line)));
        return (Host { child, base: String::new() }, seen);
    }
    let addr = loop {
        let line = lines.next().expect("the server prints until it listens").expect("a line");
        watch(&line);
        // Development logs `addr=…`; production logs JSON, `"addr":"…"`.
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().expect("an address").to_string();
        }
        if let Some(rest) = line.split(r#""addr":""#).nth(1) {
            break rest.split('"').next().expect("an address").to_string();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(|line| watch(&line)));
    (Host { child, base: format!("http://{addr}") }, seen)
}

/// A database for the hosts of a multi-host test to share, named after the returned temp dir:
/// PostgreSQL pass only (`VIDFARM_TEST_DB=postgres`), since a SQLite file is one machine's.
pub fn shared_database() -> Option<(tempfile::TempDir, String)> {
    let cluster = tempfile::tempdir().expect("a temp dir");
    let url = database_url(cluster.path());
    if url.is_none() {
        eprintln!("PostgreSQL pass only (VIDFARM_TEST_DB=postgres): a SQLite file is one machine's");
    }
    url.map(|url| (cluster, url))
}

/// The `VIDFARM_DATABASE_URL` of the host whose data dir is `data_dir`: with
/// `VIDFARM_TEST_DB=postgres`, a database of its own on the server `VIDFARM_TEST_PG` names
/// (the same data dir always names the same database; the host creates it); else none, and
/// the host uses the SQLite file in its data dir. As `tests/src/database.rs` does.
pub fn database_url(data_dir: &Path) -> Option<String> {
    use std::hash::{Hash, Hasher};
    if std::env::var("VIDFARM_TEST_DB").ok().as_deref() != Some("postgres") {
        return None;
    }
    let server = std::env::var("VIDFARM_TEST_PG").expect("VIDFARM_TEST_DB=postgres needs VIDFARM_TEST_PG");
    let (base, _) = server.rsplit_once('/').expect("VIDFARM_TEST_PG is a postgres:// URL with a database");
    let mut hasher = std::hash::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    Some(format!("{base}/vidfarm_t_{:016x}", hasher.finish()))
}

/// Everything the host's database holds, to search for what must never be stored: the
/// SQLite file and its WAL, or a `pg_dump` of the database (as `tests/src/database.rs`).
pub fn stored_bytes(data_dir: &Path) -> Vec<u8> {
    let Some(url) = database_url(data_dir) else {
        return ["vidfarm.sqlite", "vidfarm.sqlite-wal"]
            .iter()
            .flat_map(|name| std::fs::read(data_dir.join(name)).unwrap_or_default())
            .collect();
    };
    let pg_dump = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|version| version.path().join("bin/pg_dump"))
        .filter(|path| path.exists())
        .max()
        .unwrap_or_else(|| "pg_dump".into());
    let out = Command::new(pg_dump).arg(url).output().expect("pg_dump runs");
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// [`database_url`] as the environment of a `vidfarm` process.
pub fn database_env(data_dir: &Path) -> Vec<(&'static str, String)> {
    database_url(data_dir).map(|url| ("VIDFARM_DATABASE_URL", url)).into_iter().collect()
}

pub fn create_customer(data_dir: &Path) -> (String, String) {
    let out = Command::new(BIN)
        .args(["customers", "create", "--name", "Crash Co", "--data-dir"])
        .arg(data_dir)
        .envs(database_env(data_dir))
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

    /// POST `body` to `path` on `host` as the customer; the HTTP status.
    pub fn post(&self, host: &Host, path: &str, body: Value) -> u16 {
        let response = self
            .http
            .post(format!("{}{path}", host.base))
            .header("vidfarm-user-id", &self.id)
            .header("vidfarm-api-key", &self.key)
            .json(&body)
            .send()
            .expect("sent");
        response.status().as_u16()
    }

    /// Give the customer a key of `provider`, through `host`'s API.
    pub fn add_provider_key(&self, host: &Host, provider: &str, secret: &str) {
        let added = self.post(host, "/customers/me/provider-keys", json!({ "provider": provider, "secret": secret }));
        assert_eq!(added, 201, "the {provider} key is added");
    }

    pub fn create(&self, host: &Host, operation: &str, payload: Value) -> String {
        self.create_in(host, "sandbox-probe", operation, payload)
    }

    pub fn create_in(&self, host: &Host, template: &str, operation: &str, payload: Value) -> String {
        self.create_with(host, template, operation, payload, false)
    }

    /// [`create_in`](Self::create_in) as a careful client does when the host's database
    /// connections may be cut: with an idempotency key, retrying while the host answers 503.
    /// Only for the tests that cut connections: anywhere else a 503 is a failure.
    pub fn create_retrying_in(&self, host: &Host, template: &str, operation: &str, payload: Value) -> String {
        self.create_with(host, template, operation, payload, true)
    }

    fn create_with(&self, host: &Host, template: &str, operation: &str, payload: Value, retry: bool) -> String {
        static CREATES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = CREATES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = json!({ "tracer": "durability", "payload": payload, "idempotency_key": format!("create-{n}") });
        for _ in 0..10 {
            let response = self
                .http
                .post(format!("{}/templates/{template}/operations/{operation}", host.base))
                .header("vidfarm-user-id", &self.id)
                .header("vidfarm-api-key", &self.key)
                .json(&body)
                .send()
                .expect("sent");
            let status = response.status().as_u16();
            let created: Value = response.json().expect("a JSON answer");
            if retry && status == 503 {
                assert_eq!(created["error"]["code"], "database_unavailable", "{created}");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            return created["job_id"].as_str().unwrap_or_else(|| panic!("a job id: {status} {created}")).into();
        }
        panic!("{template} {operation}: the host answered 503 ten times");
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
/// journal entries of a job, read from the database itself.
pub fn effects_on_disk(data_dir: &Path, job_id: &str) -> (usize, usize) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        let db = match database_url(data_dir) {
            Some(url) => vidfarm::db::Db::connect(&url, 2).await,
            None => vidfarm::db::Db::open(&data_dir.join("vidfarm.sqlite")).await,
        }
        .expect("the database opens");
        effects_of(&db, job_id).await
    })
}

/// [`effects_on_disk`] through an open database: ledger rows the template recorded, and
/// journal entries, of one job.
pub async fn effects_of(db: &vidfarm::db::Db, job_id: &str) -> (usize, usize) {
    let ledger = db.job_ledger(job_id).await.expect("ledger");
    let by_template = ledger.iter().filter(|r| !r.metadata.contains(r#""recorded_by":"host""#)).count();
    (by_template, db.journal(job_id).await.expect("journal").len())
}

/// `sql` on the PostgreSQL server of the database `url` (through `psql`, connected to the
/// server's `postgres` database): one value per row.
pub fn psql(url: &str, sql: &str) -> Vec<String> {
    let without_query = url.split('?').next().unwrap_or(url);
    let (server, _) = without_query.rsplit_once('/').expect("a database URL");
    psql_in(&format!("{server}/postgres"), sql)
}

/// `sql` in the database `url` itself: one value per row.
pub fn psql_in(url: &str, sql: &str) -> Vec<String> {
    let out = Command::new("psql").args([url, "-Atc", sql]).output().expect("psql runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect()
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

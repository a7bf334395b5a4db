//! Many hosts, sharing only PostgreSQL and an S3 bucket: two API processes and three worker
//! processes, each with a data dir of its own, all started at once on an empty database, run
//! thousands of jobs (some making paid provider calls) while one worker is killed and
//! database connections are cut. Runs in the suite's PostgreSQL pass
//! (`VIDFARM_TEST_DB=postgres`); a SQLite file cannot be shared between machines.

use crate::common;

use common::*;
use serde_json::json;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vidfarm::db::Db;

/// `effects` jobs created through the two API hosts together.
const JOBS: usize = 2_000;
/// `hello ask` jobs created beside them: one paid call at the provider each.
const ASKS: usize = 200;
/// Charges, stored files and log lines each job makes.
const STEPS: usize = 2;
/// Running jobs the customer may have at once, across every host.
const CAP: i64 = 6;

/// `s3s-fs` (tests/run-all.sh installs it), serving one bucket from a temp dir.
pub(crate) struct S3 {
    root: tempfile::TempDir,
    pub(crate) port: u16,
    child: Child,
}

impl S3 {
    pub(crate) fn start() -> Self {
        let root = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir_all(root.path().join("objects")).expect("the bucket");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo.join("target"), |t| repo.join(t));
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("addr").port();
        let child = Command::new(target.join("tools/bin/s3s-fs"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "AKIAMULTIHOST", "--secret-key", "multi-host-secret"])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs runs (tests/run-all.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs listens");
            std::thread::sleep(Duration::from_millis(25));
        }
        Self { root, port, child }
    }

    /// Every stored object's path under the bucket.
    fn keys(&self) -> Vec<PathBuf> {
        let bucket = self.root.path().join("objects");
        let mut keys = Vec::new();
        let mut stack = vec![bucket.clone()];
        while let Some(dir) = stack.pop() {
            for path in std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()) {
                let key = path.strip_prefix(&bucket).expect("inside").to_path_buf();
                // s3s-fs keeps metadata beside objects in dot files.
                if path.is_dir() {
                    stack.push(path);
                } else if !key.to_string_lossy().split('/').any(|part| part.starts_with('.')) {
                    keys.push(key);
                }
            }
        }
        keys
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// A customer created with the CLI in the shared database, and a client acting as it.
pub(crate) fn customer_in(url: &str, data_dir: &Path) -> Client {
    let out = Command::new(BIN)
        .args(["customers", "create", "--name", "Many Hosts Co", "--data-dir"])
        .arg(data_dir)
        .env("VIDFARM_DATABASE_URL", url)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    Client {
        http: reqwest::blocking::Client::new(),
        id: created["customer_id"].as_str().expect("id").into(),
        key: created["api_key"].as_str().expect("key").into(),
    }
}

/// Terminate up to `n` of the hosts' connections to the database, as a network cut would.
fn cut_connections(url: &str, n: usize) -> usize {
    let database = url.rsplit_once('/').expect("a database URL").1;
    let cut = psql(
        url,
        &format!(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = '{database}' AND pid <> pg_backend_pid() ORDER BY random() LIMIT {n}) cut"
        ),
    );
    cut[0].parse().expect("a count")
}

#[test]
fn two_api_hosts_and_three_workers_sharing_only_postgres_and_s3_run_every_job_once() {
    let Some((_cluster, url)) = shared_database() else { return };
    let s3 = S3::start();
    let fake = fake_openai(Duration::ZERO);
    let endpoint = format!("http://127.0.0.1:{}", s3.port);
    let env = [
        ("VIDFARM_DATABASE_URL", url.as_str()),
        ("VIDFARM_DATABASE_POOL", "6"),
        ("VIDFARM_S3_BUCKET", "objects"),
        // The registry too: each host publishes the example templates there at start.
        ("VIDFARM_REGISTRY_S3_BUCKET", "objects"),
        ("VIDFARM_S3_ENDPOINT", endpoint.as_str()),
        ("VIDFARM_S3_ACCESS_KEY_ID", "AKIAMULTIHOST"),
        ("VIDFARM_S3_SECRET_ACCESS_KEY", "multi-host-secret"),
        ("VIDFARM_S3_FORCE_PATH_STYLE", "true"),
        // Provider secrets are sealed with it and the development signing key is derived from
        // it: every host needs the same one. (A test's key, public: never one to deploy with.)
        ("VIDFARM_MASTER_KEY", "6d756c74692d686f73742d746573742d6d61737465722d6b65792d33322d2121"),
        ("VIDFARM_OPENAI_BASE_URL", fake.base.as_str()),
        ("VIDFARM_PROVIDER_BUSY_RETRY_MS", "20"),
        ("VIDFARM_MAX_CONCURRENT_JOBS", "6"),
        // Workers find new jobs by notification: polling alone would take this long.
        ("VIDFARM_POLL_MS", "2000"),
        ("VIDFARM_LOG", "info,vidfarm::engine::worker=debug"),
    ];
    let dirs: Vec<tempfile::TempDir> = (0..5).map(|_| tempfile::tempdir().expect("a data dir")).collect();
    // All five at once, on a database that does not exist yet: one of them creates it, one
    // migrates it, and the others wait for that (an advisory lock) instead of failing; then
    // they take turns publishing the built-ins into the bucket, so each version is written once.
    let (apis, mut workers) = std::thread::scope(|scope| {
        let env = &env;
        let apis: Vec<_> = dirs[..2].iter().map(|d| scope.spawn(move || start("api", d.path(), env))).collect();
        let workers: Vec<_> = dirs[2..]
            .iter()
            .map(|d| scope.spawn(move || start_watching("worker", d.path(), env, "run ended")))
            .collect();
        let apis: Vec<Host> = apis.into_iter().map(|h| h.join().expect("an API host")).collect();
        let workers: Vec<_> = workers.into_iter().map(|h| h.join().expect("a worker host")).collect();
        (apis, workers)
    });
    let migrations = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations-pg"))
        .expect("the PostgreSQL migrations")
        .count();
    let applied =
        psql_in(&url, "SELECT COUNT(*) || ' ' || COUNT(DISTINCT version) FROM _sqlx_migrations WHERE success");
    assert_eq!(applied, [format!("{migrations} {migrations}")], "every migration applied, once");
    // Each built-in was published once and activated once, however many hosts tried: the
    // registry keeps one record object per publish and per activation.
    let records: Vec<_> = s3.keys().into_iter().filter(|k| k.to_string_lossy().contains("/history/")).collect();
    for template in ["hello", "sandbox-probe"] {
        let of_it = records.iter().filter(|k| k.starts_with(format!("registry/{template}"))).count();
        assert_eq!(of_it, 2, "{template}: one publish and one activation, in {records:?}");
    }
    let client = customer_in(&url, dirs[0].path());
    for k in 0..4 {
        client.add_provider_key(&apis[0], "openai", &format!("sk-multi-host-{k:04}"));
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    let db = rt.block_on(Db::connect(&url, 2)).expect("the database");

    // Create through both API hosts from five threads; kill a worker and cut connections
    // part-way, while jobs run.
    let started = Instant::now();
    let (mut job_ids, asks): (Vec<String>, Vec<String>) = std::thread::scope(|scope| {
        let (client, apis) = (&client, &apis);
        let creators: Vec<_> = (0..4)
            .map(|t| {
                scope.spawn(move || {
                    (0..JOBS / 4)
                        .map(|i| {
                            client.create_retrying_in(
                                &apis[(t + i) % 2],
                                "sandbox-probe",
                                "effects",
                                json!({ "steps": STEPS, "spin": 20_000 }),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let askers = scope.spawn(move || {
            (0..ASKS)
                .map(|n| {
                    let payload = json!({ "provider": "openai", "model": "gpt-4o-mini", "prompt": format!("ask {n}") });
                    client.create_retrying_in(&apis[n % 2], "hello", "ask", payload)
                })
                .collect::<Vec<_>>()
        });
        // Killed mid-run: once it has run some jobs (each host compiles the templates at start).
        let (mut victim, ran_before_kill) = workers.pop().expect("a worker");
        let deadline = Instant::now() + Duration::from_secs(60);
        while ran_before_kill.load(SeqCst) < 20 {
            assert!(Instant::now() < deadline, "the third worker never took a share");
            std::thread::sleep(Duration::from_millis(5));
        }
        victim.child.kill().expect("SIGKILL");
        victim.child.wait().expect("reaped");
        eprintln!("killed a worker after it ran {} jobs", ran_before_kill.load(SeqCst));
        std::thread::sleep(Duration::from_millis(200));
        let cut = cut_connections(&url, 3);
        eprintln!("cut {cut} database connections");
        assert!(cut > 0, "no connection was cut");
        let job_ids = creators.into_iter().flat_map(|c| c.join().expect("the creator")).collect();
        (job_ids, askers.join().expect("the asker"))
    });
    assert_eq!((job_ids.len(), asks.len()), (JOBS, ASKS));

    // Every job succeeds; the customer's cap held across hosts the whole time.
    // Generous: about 40 s in a debug build here, on a CI machine shared with other tests.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut most_running = 0;
    loop {
        let counts = rt.block_on(db.job_counts()).expect("counts");
        let count = |status: &str| counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
        most_running = most_running.max(count("running"));
        if count("succeeded") == (JOBS + ASKS) as i64 {
            break;
        }
        assert!(Instant::now() < deadline, "not every job finished: {counts:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("{} jobs on 2 API hosts and 3 (then 2) workers in {:?}", JOBS + ASKS, started.elapsed());
    assert!(most_running <= CAP, "at most {CAP} running at once across hosts, saw {most_running}");

    // Each effect exactly once: charges and journal entries in the database, files in S3,
    // log lines in the events.
    job_ids.sort();
    job_ids.dedup();
    assert_eq!(job_ids.len(), JOBS, "every create made a job of its own");
    for id in &job_ids {
        let (charges, journaled) = rt.block_on(effects_of(&db, id));
        assert_eq!(charges, STEPS, "{id}: each charge once");
        assert_eq!(journaled, 2 * STEPS, "{id}: each effect journaled once");
        let events = rt.block_on(db.events_after(id, 0, 1_000)).expect("events");
        let logged = events.iter().filter(|e| e.message == "step done").count();
        assert_eq!(logged, STEPS, "{id}: each log line once");
    }
    let stored = s3.keys().into_iter().filter(|k| k.to_string_lossy().contains("/steps/")).count();
    assert_eq!(stored, JOBS * STEPS, "each file stored once, in the shared bucket");

    // Each paid call charged once. At the provider, a run that got its answer stored never
    // asks again: only a run cut off between the call and storing its answer may have, and
    // the job's next run asks again. (A job's attempts also count runs that found every key
    // busy and were queued again, so the per-job bound is loose; the total is not.)
    let calls = fake.prompts.lock().expect("lock").clone();
    let mut asked_again = 0;
    for (n, id) in asks.iter().enumerate() {
        let ledger = rt.block_on(db.job_ledger(id)).expect("ledger");
        let charged = ledger.iter().filter(|r| r.event_type == "ai_generation").count();
        assert_eq!(charged, 1, "{id}: one charge for its call");
        let attempts = rt.block_on(db.job(id)).expect("read").expect("the job").attempt;
        let asked = calls.get(&format!("ask {n}")).copied().unwrap_or(0);
        assert!(asked >= 1, "{id}: its call reached the provider");
        if attempts == 1 {
            assert_eq!(asked, 1, "{id}: one run, one call");
        } else {
            assert!(asked as i64 <= attempts, "{id}: {asked} calls in {attempts} runs");
        }
        asked_again += asked - 1;
    }
    eprintln!("{ASKS} paid calls, {asked_again} asked again after a cut");
    // The kill and the cut each interrupted at most the CAP runs going at that moment.
    assert!(asked_again <= 2 * CAP as usize, "{asked_again} calls repeated: more than the cut runs could make");
    assert_eq!(fake.calls.load(SeqCst), ASKS + asked_again, "no call the jobs did not account for");

    // Both surviving workers took a share of the work.
    for (i, (_, ran)) in workers.iter().enumerate() {
        let ran = ran.load(SeqCst);
        eprintln!("worker {i} ran {ran} jobs");
        assert!(ran >= JOBS / 10, "worker {i} ran only {ran} of {JOBS} jobs");
    }
}

/// OpenAI's chat completions on loopback, answering after a delay and remembering, per API
/// key, the most calls it had in flight at once, and per prompt, the calls that asked it.
struct FakeOpenAi {
    base: String,
    calls: Arc<AtomicUsize>,
    most_in_flight: Arc<Mutex<HashMap<String, usize>>>,
    prompts: Arc<Mutex<HashMap<String, usize>>>,
}

fn fake_openai(delay: Duration) -> FakeOpenAi {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let base = format!("http://{}/v1", listener.local_addr().expect("an address"));
    let calls = Arc::new(AtomicUsize::new(0));
    let most_in_flight: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let in_flight: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let prompts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let (counted, most, asked) = (calls.clone(), most_in_flight.clone(), prompts.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (counted, most, in_flight, asked) = (counted.clone(), most.clone(), in_flight.clone(), asked.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("a clone"));
                let (mut length, mut key) = (0, String::new());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(value) = lower.strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    if lower.starts_with("authorization:") {
                        key = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                counted.fetch_add(1, SeqCst);
                {
                    let mut now = in_flight.lock().expect("lock");
                    let n = now.entry(key.clone()).or_default();
                    *n += 1;
                    let mut most = most.lock().expect("lock");
                    let seen = most.entry(key.clone()).or_default();
                    *seen = (*seen).max(*n);
                }
                std::thread::sleep(delay);
                *in_flight.lock().expect("lock").get_mut(&key).expect("counted") -= 1;
                let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let prompt = request["messages"].as_array().and_then(|m| m.last()).map(|m| m["content"].clone());
                let prompt = prompt.and_then(|c| c.as_str().map(String::from)).unwrap_or_default();
                *asked.lock().expect("lock").entry(prompt).or_default() += 1;
                let reply = json!({
                    "id": "chatcmpl-multi", "object": "chat.completion", "created": 1_700_000_000,
                    "model": request["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "answered"},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
                })
                .to_string();
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            });
        }
    });
    FakeOpenAi { base, calls, most_in_flight, prompts }
}

#[test]
fn workers_on_three_hosts_never_make_two_calls_at_once_with_one_key() {
    let Some((_cluster, url)) = shared_database() else { return };
    let fake = fake_openai(Duration::from_millis(80));
    let env = [
        ("VIDFARM_DATABASE_URL", url.as_str()),
        ("VIDFARM_DATABASE_POOL", "6"),
        ("VIDFARM_MASTER_KEY", "6d756c74692d686f73742d746573742d6d61737465722d6b65792d33322d2121"),
        ("VIDFARM_OPENAI_BASE_URL", fake.base.as_str()),
        ("VIDFARM_PROVIDER_BUSY_RETRY_MS", "50"),
    ];
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().expect("a data dir")).collect();
    let api = start("api", dirs[0].path(), &env);
    let _workers: Vec<Host> = (1..4).map(|i| start("worker", dirs[i].path(), &env)).collect();
    let client = customer_in(&url, dirs[0].path());
    for k in 0..3 {
        client.add_provider_key(&api, "openai", &format!("sk-multi-host-{k:04}"));
    }
    let jobs: Vec<String> = (0..20)
        .map(|n| {
            let payload = json!({ "provider": "openai", "model": "gpt-4o-mini", "prompt": format!("job {n}") });
            client.create_in(&api, "hello", "ask", payload)
        })
        .collect();
    for id in &jobs {
        let job = client.wait_in(
            &api,
            "hello",
            id,
            |j| j["status"] == "succeeded" || j["status"] == "failed",
            Duration::from_secs(90),
        );
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let most = fake.most_in_flight.lock().expect("lock").clone();
    assert_eq!(most.len(), 3, "every key was used: {most:?}");
    assert!(most.values().all(|n| *n == 1), "a key served two calls at once across hosts: {most:?}");
    assert_eq!(fake.calls.load(SeqCst), 20, "one call per job");
}

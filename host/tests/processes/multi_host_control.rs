//! What one host or an operator changes reaches every host sharing the database: a
//! customer's creation rate is one rate however many API hosts take creates, a version
//! activated with the CLI is served by every host at once, and a human's answer, a child's end
//! and a cancellation reach the worker on another host by notification, and every job a burst
//! of creates makes due is announced, debounced. PostgreSQL pass only,
//! like `multi_host`.

use crate::common::*;
use crate::multi_host::{S3, customer_in};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MASTER_KEY: &str = "6d756c74692d686f73742d746573742d6d61737465722d6b65792d33322d2121";

/// A `vidfarm` command against the shared database; its JSON output.
fn vidfarm(args: &[&str], data_dir: &Path, env: &[(&str, &str)]) -> Value {
    let out =
        Command::new(BIN).args(args).arg("--data-dir").arg(data_dir).envs(env.iter().copied()).output().expect("runs");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Create a `hello greet` job through `host`: the HTTP status and, if created, the job id.
fn try_greet(client: &Client, host: &Host) -> (u16, Option<String>, Option<String>) {
    let response = client
        .http
        .post(format!("{}/templates/hello/operations/greet", host.base))
        .header("vidfarm-user-id", &client.id)
        .header("vidfarm-api-key", &client.key)
        .json(&json!({ "tracer": "many hosts", "payload": { "name": "Ada" } }))
        .send()
        .expect("sent");
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(String::from);
    let body: Value = response.json().unwrap_or(Value::Null);
    (status, body["job_id"].as_str().map(String::from), retry_after)
}

#[test]
fn a_customers_creation_rate_is_one_rate_however_many_api_hosts_take_creates() {
    let Some((_cluster, url)) = shared_database() else { return };
    let env = [("VIDFARM_DATABASE_URL", url.as_str()), ("VIDFARM_MASTER_KEY", MASTER_KEY)];
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().expect("a data dir")).collect();
    let client = customer_in(&url, dirs[0].path());
    vidfarm(&["customers", "limits", &client.id, "--jobs-per-minute", "10"], dirs[0].path(), &env);
    let apis = [start("api", dirs[0].path(), &env), start("api", dirs[1].path(), &env)];

    let started = Instant::now();
    let answers: Vec<(u16, Option<String>, Option<String>)> =
        (0..30).map(|i| try_greet(&client, &apis[i % 2])).collect();
    let created = answers.iter().filter(|(status, _, _)| *status == 202).count();
    // 10 a minute is one more token every 6 s: a slow run may earn a few.
    let earned = (started.elapsed().as_secs() / 6) as usize;
    assert!(
        (10..=10 + earned).contains(&created),
        "10 creates a minute across both hosts (each counting alone would allow 20): {created} created"
    );
    for (status, _, retry_after) in answers.iter().filter(|(status, _, _)| *status != 202) {
        assert_eq!(*status, 429, "over the rate is 429");
        let seconds: u64 = retry_after.as_deref().and_then(|s| s.parse().ok()).expect("a Retry-After in seconds");
        assert!((1..=6).contains(&seconds), "the next token comes within 6 s, not {seconds}");
    }
    // The bucket is a row every host reads: empty now, and not forgotten while in use.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    let db = rt.block_on(vidfarm::db::Db::connect(&url, 2)).expect("the database");
    let left = rt.block_on(db.rate_tokens(&client.id, 10)).expect("shared on PostgreSQL").expect("read");
    assert!(left < 1.0, "{left} tokens left after the allowance was used");
    assert_eq!(rt.block_on(db.forget_full_rate_buckets()).expect("swept"), 0, "a bucket in use is kept");
    // Both hosts took some of the ten.
    let through_second = answers.iter().enumerate().filter(|(i, (status, _, _))| i % 2 == 1 && *status == 202).count();
    assert!(through_second > 0 && through_second < created, "{through_second} of {created} through the second host");
}

#[test]
fn a_large_allowance_is_taken_in_chunks_and_the_hosts_together_still_never_pass_it() {
    use vidfarm::rate_limit::{RateLimiter, chunk};
    let Some((_cluster, url)) = shared_database() else { return };
    let dir = tempfile::tempdir().expect("a data dir");
    let client = customer_in(&url, dir.path());
    // 6,000 a minute: chunks of 10 tokens, 100 more every second.
    let per_minute = 6_000;
    assert_eq!(chunk(per_minute), 10);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    let (granted, asked, elapsed) = rt.block_on(async {
        let db = vidfarm::db::Db::connect(&url, 4).await.expect("the database");
        let hosts = [RateLimiter::for_database(&db), RateLimiter::for_database(&db)];
        let started = Instant::now();
        // Until both hosts are refused one after the other: then neither holds a token.
        let (mut granted, mut refused_in_a_row) = (0u64, 0);
        for i in 0..20_000 {
            match hosts[i % 2].take(&client.id, per_minute).await {
                Ok(()) => (granted, refused_in_a_row) = (granted + 1, 0),
                Err(seconds) => {
                    assert_eq!(seconds, 1, "the next token is less than a second away");
                    refused_in_a_row += 1;
                }
            }
            if refused_in_a_row == 2 {
                break;
            }
        }
        assert_eq!(refused_in_a_row, 2, "both hosts ran out");
        (granted, hosts[0].database_takes() + hosts[1].database_takes(), started.elapsed())
    });
    // A refused host holds nothing: every token taken from the bucket was spent.
    let earned = (elapsed.as_secs_f64() * 100.0).ceil() as u64;
    assert!(
        (6_000..=6_000 + earned + 1).contains(&granted),
        "one minute's allowance across both hosts, and what flowed in over {elapsed:?}: {granted} granted"
    );
    assert!(asked * 5 <= granted, "{asked} statements for {granted} tokens: the hosts took them in chunks");
}

#[test]
fn after_the_database_fails_to_answer_a_take_the_keys_creates_go_by_this_hosts_count_for_a_second() {
    use vidfarm::rate_limit::{RateLimiter, chunk};
    let Some((_cluster, url)) = shared_database() else { return };
    let per_minute = 60_000;
    assert_eq!(chunk(per_minute), 100);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        let db = vidfarm::db::Db::connect(&url, 2).await.expect("the database");
        let admin = sqlx::PgPool::connect(&url).await.expect("an admin connection");
        let host = RateLimiter::for_database(&db);
        // The bucket's table gone: every statement on it fails at once, as a database that
        // cannot answer would (without making the test wait out a timeout).
        sqlx::query("ALTER TABLE rate_buckets RENAME TO rate_buckets_away").execute(&admin).await.expect("renamed");
        assert_eq!(host.take("creates", per_minute).await, Ok(()), "this host's own count lets it through");
        assert_eq!(host.database_takes(), 1);
        for _ in 0..50 {
            assert_eq!(host.take("creates", per_minute).await, Ok(()));
        }
        assert_eq!(host.database_takes(), 1, "the creates right after a failure did not ask the database again");

        sqlx::query("ALTER TABLE rate_buckets_away RENAME TO rate_buckets")
            .execute(&admin)
            .await
            .expect("renamed back");
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        assert_eq!(host.take("creates", per_minute).await, Ok(()));
        assert_eq!(host.database_takes(), 2, "a second later the database is asked again");
        let taken: Vec<Option<String>> = db
            .inspect("SELECT CAST(taken AS TEXT) FROM rate_buckets WHERE key = $1", &["creates"])
            .await
            .expect("read");
        assert_eq!(taken, vec![Some("100".to_string())], "and a whole chunk is taken from the shared bucket");
    });
}

/// Create a greet job through `host` and wait for it; (version that ran it, greeting).
fn greet(client: &Client, host: &Host) -> (String, String) {
    let (status, id, _) = try_greet(client, host);
    assert_eq!(status, 202);
    let job =
        client.wait_in(host, "hello", &id.expect("an id"), |j| j["status"] == "succeeded", Duration::from_secs(30));
    (
        job["template_version"].as_str().unwrap_or_default().into(),
        job["result"]["greeting"].as_str().unwrap_or_default().into(),
    )
}

/// How long until every API host serves `version` as hello's active one and runs new jobs on it.
fn until_every_host_serves(client: &Client, apis: &[Host], version: &str, greeting: &str) -> Duration {
    let started = Instant::now();
    for api in apis {
        loop {
            if client.get(api, "/templates/hello")["active_version"] == version {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{} still serves another version", api.base);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let took = started.elapsed();
    for api in apis {
        assert_eq!(greet(client, api), (version.to_string(), greeting.to_string()), "a job through {}", api.base);
    }
    took
}

#[test]
fn a_version_activated_with_the_cli_is_served_by_every_host_at_once() {
    let Some((_cluster, url)) = shared_database() else { return };
    let ops = tempfile::tempdir().expect("the operator's laptop");
    let key_file = ops.path().join("ops.key");
    let out = Command::new(BIN).args(["registry", "keygen", "--out"]).arg(&key_file).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let keygen: Value = serde_json::from_slice(&out.stdout).expect("json");
    let trusted = ops.path().join("trusted.keys");
    std::fs::write(&trusted, format!("{}\n", keygen["public_key"].as_str().expect("a public key"))).expect("written");

    let s3 = S3::start();
    let endpoint = format!("http://127.0.0.1:{}", s3.port);
    let env = [
        ("VIDFARM_ENV", "production"),
        ("VIDFARM_METRICS_TOKEN", "metrics-secret"),
        ("VIDFARM_DATABASE_URL", url.as_str()),
        ("VIDFARM_MASTER_KEY", MASTER_KEY),
        ("VIDFARM_TRUSTED_KEYS", trusted.to_str().expect("utf-8")),
        ("VIDFARM_S3_BUCKET", "objects"),
        ("VIDFARM_REGISTRY_S3_BUCKET", "objects"),
        ("VIDFARM_S3_ENDPOINT", endpoint.as_str()),
        ("VIDFARM_S3_ACCESS_KEY_ID", "AKIAMULTIHOST"),
        ("VIDFARM_S3_SECRET_ACCESS_KEY", "multi-host-secret"),
        ("VIDFARM_S3_FORCE_PATH_STYLE", "true"),
        // A poll this slow leaves the database's notification as the only way to be fast.
        ("VIDFARM_REGISTRY_POLL_MS", "60000"),
    ];
    let key = key_file.to_str().expect("utf-8");
    let hello = vidfarm_template_artifacts::ALL.iter().find(|(id, _, _)| *id == "hello").expect("hello").1;
    let first = vidfarm(&["registry", "publish", hello, "--key", key], ops.path(), &env);
    let v1 = first["version"].as_str().expect("a version").to_string();
    vidfarm(&["registry", "activate", "hello", &v1], ops.path(), &env);

    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("a data dir")).collect();
    let apis = [start("api", dirs[0].path(), &env), start("api", dirs[1].path(), &env)];
    let _worker = start("worker", dirs[2].path(), &env);
    let client = customer_in(&url, dirs[0].path());
    for api in &apis {
        assert_eq!(greet(&client, api), (v1.clone(), "Hello, Ada!".to_string()));
    }

    vidfarm(&["registry", "publish", vidfarm_template_artifacts::HELLO_NEXT, "--key", key], ops.path(), &env);
    vidfarm(&["registry", "activate", "hello", "0.2.0"], ops.path(), &env);
    let took = until_every_host_serves(&client, &apis, "0.2.0", "Howdy, Ada!");
    eprintln!("both API hosts served 0.2.0 {took:?} after the CLI activated it");
    // Each host compiles the new version on first use (about a second, more on a loaded
    // machine); the bound only has to tell a notification from the 60 s poll.
    assert!(took < Duration::from_secs(10), "the hosts followed in {took:?} (their registry poll is 60 s)");

    let back = vidfarm(&["registry", "rollback", "hello"], ops.path(), &env);
    assert_eq!(back["to"], v1.as_str());
    let took = until_every_host_serves(&client, &apis, &v1, "Hello, Ada!");
    assert!(took < Duration::from_secs(10), "the rollback reached every host in {took:?}");
}

#[test]
fn a_human_answer_a_childs_end_and_a_cancel_reach_a_worker_on_another_host_by_notification() {
    let Some((_cluster, url)) = shared_database() else { return };
    let env = [
        ("VIDFARM_DATABASE_URL", url.as_str()),
        ("VIDFARM_MASTER_KEY", MASTER_KEY),
        // Polls and heartbeats (a third of the lease) this slow leave the database's
        // notifications as the only way to be done within `QUICK`.
        ("VIDFARM_POLL_MS", "60000"),
        ("VIDFARM_LEASE_MS", "180000"),
        // One run at a time: a spinning run the cancel misses keeps every later job waiting.
        ("VIDFARM_WORKER_SLOTS", "1"),
    ];
    const QUICK: Duration = Duration::from_secs(20);
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().expect("a data dir")).collect();
    let api = start("api", dirs[0].path(), &env);
    let _worker = start("worker", dirs[1].path(), &env);
    let client = customer_in(&url, dirs[0].path());
    let ended = |j: &Value| ["succeeded", "failed", "cancelled"].contains(&j["status"].as_str().unwrap_or_default());

    // A human's answer, given through the API host, sets the waiting job going on the worker.
    let waiting = client.create_in(&api, "hello", "greet-after-approval", json!({ "name": "Ada" }));
    client.wait_in(&api, "hello", &waiting, |j| j["status"] == "waiting_for_human", QUICK);
    let answered = client.post(&api, &format!("/templates/hello/jobs/{waiting}/resume"), json!({ "approved": true }));
    assert_eq!(answered, 200);
    let job = client.wait_in(&api, "hello", &waiting, ended, QUICK);
    assert_eq!(job["result"]["greeting"], "Hello, Ada!", "{job}");

    // Children end on the worker, and their parent, waiting for them, runs on at once.
    let parent = client.create_in(&api, "hello", "greet-many", json!({ "names": ["Ada", "Grace", "Edsger"] }));
    let job = client.wait_in(&api, "hello", &parent, ended, QUICK);
    assert_eq!(job["result"]["greetings"], json!(["Hello, Ada!", "Hello, Grace!", "Hello, Edsger!"]), "{job}");

    // A run spinning on the worker stops when the API host cancels its job: the next job gets
    // the worker's only slot.
    let spinning = client.create(&api, "spin", json!({}));
    client.wait_in(&api, "sandbox-probe", &spinning, |j| j["status"] == "running", QUICK);
    let cancelled = client.post(&api, &format!("/templates/sandbox-probe/jobs/{spinning}/cancel"), json!({}));
    assert_eq!(cancelled, 200);
    let next = client.create(&api, "echo", json!({ "after": "the cancel" }));
    let job = client.wait_in(&api, "sandbox-probe", &next, ended, QUICK);
    assert_eq!(job["status"], "succeeded", "{job}");
    let job = client.get(&api, &format!("/templates/sandbox-probe/jobs/{spinning}"));
    assert_eq!(job["status"], "cancelled", "{job}");
}

#[test]
fn every_job_a_burst_of_creates_makes_due_is_announced_at_once_and_the_announcements_come_debounced() {
    let Some((_cluster, url)) = shared_database() else { return };
    let env = [("VIDFARM_DATABASE_URL", url.as_str()), ("VIDFARM_MASTER_KEY", MASTER_KEY)];
    let dir = tempfile::tempdir().expect("a data dir");
    let client = customer_in(&url, dir.path());
    vidfarm(&["customers", "limits", &client.id, "--jobs-per-minute", "100000"], dir.path(), &env);
    // An API host and no worker: every job it creates stays queued, and only the host's
    // notifications tell anyone about them.
    let api = start("api", dir.path(), &env);

    // What a worker on another host would see: at each notification, the queued jobs (each
    // with the first time it was seen).
    let seen = Arc::new(Mutex::new(HashMap::<String, Instant>::new()));
    let heard = Arc::new(AtomicUsize::new(0));
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let listening = {
        let (url, seen, heard) = (url.clone(), seen.clone(), heard.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
            rt.block_on(async move {
                let pool = sqlx::PgPool::connect(&url).await.expect("the database");
                let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await.expect("a listener");
                listener.listen("vidfarm").await.expect("LISTEN");
                ready_tx.send(()).expect("the test waits");
                loop {
                    let notice = listener.recv().await.expect("the listener's connection stays");
                    match notice.payload() {
                        "job_due" => {}
                        "the test is done" => break,
                        _ => continue,
                    }
                    heard.fetch_add(1, Ordering::SeqCst);
                    let queued: Vec<String> = sqlx::query_scalar("SELECT id FROM jobs WHERE status = 'queued'")
                        .fetch_all(&pool)
                        .await
                        .expect("the queued jobs");
                    let now = Instant::now();
                    let mut seen = seen.lock().expect("not poisoned");
                    for id in queued {
                        seen.entry(id).or_insert(now);
                    }
                }
            })
        })
    };
    ready.recv().expect("listening");

    // Four bursts of 64 creates, 16 at a time, each followed by a quiet second and a half: a
    // burst's last jobs land within the gap after a notification, so the host owes them one.
    let (mut created, mut busy) = (Vec::new(), Duration::ZERO);
    for _ in 0..4 {
        let started = Instant::now();
        created.extend(std::thread::scope(|scope| {
            let senders: Vec<_> = (0..16)
                .map(|_| {
                    scope.spawn(|| {
                        (0..4).map(|_| (client.create(&api, "echo", json!({})), Instant::now())).collect::<Vec<_>>()
                    })
                })
                .collect();
            senders.into_iter().flat_map(|s| s.join().expect("creates")).collect::<Vec<_>>()
        }));
        busy += started.elapsed();
        std::thread::sleep(Duration::from_millis(1500));
    }
    psql_in(&url, "SELECT pg_notify('vidfarm', 'the test is done')");
    listening.join().expect("the listener stops");

    // Announced within half a second of its create's answer (a carried notification comes
    // before the answer; an owed one a gap after the commit), never by the next burst's.
    let seen = seen.lock().expect("not poisoned");
    let late: Vec<String> = created
        .iter()
        .filter(|(id, answered)| {
            seen.get(id).is_none_or(|at| at.saturating_duration_since(*answered) > Duration::from_millis(500))
        })
        .map(|(id, _)| id.clone())
        .collect();
    assert!(
        late.is_empty(),
        "{} of {} jobs were not announced within half a second: {late:?}",
        late.len(),
        created.len()
    );
    // One notification per 5 ms at most while creating, and one owed after each burst.
    let heard = heard.load(Ordering::SeqCst);
    let most = busy.as_millis() as usize / 5 + 4 * 2;
    assert!((4..=most).contains(&heard), "{heard} notifications for {} creates in {busy:?}", created.len());
}

/// libfaketime (Debian's `faketime`, which tests/run-all.sh installs), under the machine's
/// multiarch folder: preloaded, it moves the process's wall clock and leaves its monotonic
/// clock alone.
fn libfaketime() -> std::path::PathBuf {
    std::fs::read_dir("/usr/lib")
        .expect("/usr/lib")
        .flatten()
        .map(|dir| dir.path().join("faketime/libfaketime.so.1"))
        .find(|lib| lib.exists())
        .expect("libfaketime is installed (tests/run-all.sh installs Debian's faketime)")
}

#[test]
fn a_worker_whose_clock_runs_two_minutes_ahead_never_takes_jobs_another_worker_runs() {
    let Some((_cluster, url)) = shared_database() else { return };
    let faketime = libfaketime();
    let env = [
        ("VIDFARM_DATABASE_URL", url.as_str()),
        ("VIDFARM_MASTER_KEY", MASTER_KEY),
        ("VIDFARM_LOG", "info,vidfarm::engine::worker=debug"),
        // Four at a time per worker: sixteen jobs need both.
        ("VIDFARM_WORKER_SLOTS", "4"),
    ];
    let ahead: Vec<(&str, &str)> = env
        .iter()
        .copied()
        .chain([
            ("LD_PRELOAD", faketime.to_str().expect("utf-8")),
            ("FAKETIME", "+120s"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ])
        .collect();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("a data dir")).collect();
    let api = start("api", dirs[0].path(), &env);
    let (_on_time, ran_on_time) = start_watching("worker", dirs[1].path(), &env, "run ended");
    let (_ahead, counted) =
        start_counting("worker", dirs[2].path(), &ahead, &["run ended", "clock is off the database server's"]);
    let (ran_ahead, warned) = (&counted[0], &counted[1]);
    let client = customer_in(&url, dirs[0].path());

    // Jobs that each outlive the 1 s lease many times over their heartbeats: to a sweeper on a
    // clock two minutes ahead, every lease the other worker writes looks long expired.
    let jobs: Vec<String> =
        (0..16).map(|_| client.create(&api, "effects", json!({ "steps": 3, "spin": 300_000_000 }))).collect();
    for id in &jobs {
        let job = client.wait_until(
            &api,
            id,
            |j| j["status"] == "succeeded" || j["status"] == "failed",
            Duration::from_secs(120),
        );
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let (on_time, ahead) =
        (ran_on_time.load(std::sync::atomic::Ordering::SeqCst), ran_ahead.load(std::sync::atomic::Ordering::SeqCst));
    eprintln!("the worker on time ran {on_time} jobs, the one ahead {ahead}");
    assert!(on_time > 0 && ahead > 0, "both workers ran jobs: {on_time} and {ahead}");
    assert!(warned.load(std::sync::atomic::Ordering::SeqCst) > 0, "the worker ahead saw its clock was off");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    let db = rt.block_on(vidfarm::db::Db::connect(&url, 2)).expect("the database");
    let replayed =
        rt.block_on(db.inspect("SELECT CAST(COUNT(*) AS TEXT) FROM jobs WHERE attempt <> 1", &[])).expect("read");
    assert_eq!(replayed, vec![Some("0".to_string())], "no job was taken from the worker running it");
    for id in &jobs {
        assert_eq!(rt.block_on(db.journal(id)).expect("journal").len(), 6, "{id}: each effect once");
    }
}

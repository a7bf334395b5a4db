//! Operator commands against a real data dir: customers, API keys (hashed, listed by prefix,
//! revocable), online backups, and moving a platform from SQLite to PostgreSQL.

use crate::common;

use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn vidfarm(args: &[&str], data_dir: &Path) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vidfarm"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .envs(common::database_env(data_dir))
        .output()
        .expect("runs");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn customers_and_keys_are_managed_from_the_cli_and_keys_are_stored_only_as_hashes() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (code, created, err) = vidfarm(&["customers", "create", "--name", "Acme"], dir.path());
    assert_eq!(code, 0, "{err}");
    let customer = created["customer_id"].as_str().expect("an id").to_string();
    let first_key = created["api_key"].as_str().expect("a key").to_string();
    let (code, second, _) = vidfarm(&["keys", "create", "--customer", &customer, "--label", "ci"], dir.path());
    assert_eq!(code, 0);
    let second_key = second["api_key"].as_str().expect("a key").to_string();
    assert_ne!(first_key, second_key);

    let (_, listed, _) = vidfarm(&["keys", "list", "--customer", &customer], dir.path());
    let keys = listed["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| first_key.starts_with(k["prefix"].as_str().unwrap_or("-"))
        || second_key.starts_with(k["prefix"].as_str().unwrap_or("-"))));
    assert!(!listed.to_string().contains(&first_key[10..]), "a listed key shows its prefix only");
    let database = common::stored_bytes(dir.path());
    for key in [&first_key, &second_key] {
        let secret = key.as_bytes();
        assert!(!database.windows(secret.len()).any(|w| w == secret), "no plaintext key in the database");
    }

    let key_id = keys.iter().find(|k| k["label"] == "ci").and_then(|k| k["id"].as_str()).expect("the ci key");
    assert_eq!(vidfarm(&["keys", "revoke", key_id], dir.path()).0, 0);
    let (code, _, err) = vidfarm(&["keys", "revoke", key_id], dir.path());
    assert_eq!((code, err.contains("no live key")), (2, true), "{err}");
    let (_, listed, _) = vidfarm(&["keys", "list", "--customer", &customer], dir.path());
    assert!(listed["keys"].as_array().expect("keys").iter().any(|k| k["revoked_at"].is_i64()));
    let (code, _, err) = vidfarm(&["keys", "create", "--customer", "cus_nobody"], dir.path());
    assert_eq!((code, err.contains("no customer")), (2, true), "{err}");

    let backup = dir.path().join("backup.sqlite");
    let (code, _, err) = vidfarm(&["db", "backup", backup.to_str().expect("utf-8")], dir.path());
    if common::database_url(dir.path()).is_some() {
        assert_eq!((code, err.contains("pg_dump")), (1, true), "PostgreSQL is backed up with its own tools: {err}");
        return;
    }
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read(&backup).expect("the backup").starts_with(b"SQLite format 3\0"));
    let (code, _, err) = vidfarm(&["db", "backup", backup.to_str().expect("utf-8")], dir.path());
    assert_eq!((code, err.contains("never overwrite")), (2, true), "{err}");
}

#[test]
fn billing_credit_terms_and_show_manage_a_customers_limits() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (_, created, _) = vidfarm(&["customers", "create", "--name", "Acme"], dir.path());
    let customer = created["customer_id"].as_str().expect("an id").to_string();
    let (code, shown, _) = vidfarm(&["billing", "show", &customer], dir.path());
    assert_eq!((code, &shown["available_usd"]), (0, &Value::Null), "unlimited until limited");
    let (code, shown, err) = vidfarm(&["billing", "credit", &customer, "10"], dir.path());
    assert_eq!(
        (code, shown["credit_usd"].as_str(), shown["available_usd"].as_str()),
        (0, Some("10"), Some("10")),
        "{err}"
    );
    let (code, shown, err) =
        vidfarm(&["billing", "terms", &customer, "--monthly-cap", "4", "--margin", "3"], dir.path());
    assert_eq!((code, shown["available_usd"].as_str(), shown["margin"].as_f64()), (0, Some("4"), Some(3.0)), "{err}");
    let (code, shown, _) = vidfarm(&["billing", "terms", &customer, "--monthly-cap", "none"], dir.path());
    assert_eq!((code, shown["available_nusd"].as_i64()), (0, Some(10_000_000_000)));
    assert_eq!(
        vidfarm(&["billing", "terms", &customer, "--margin", "0.5"], dir.path()).0,
        2,
        "a margin below cost is refused"
    );
    assert_eq!(vidfarm(&["billing", "credit", &customer, "-1"], dir.path()).0, 2);
    assert_eq!(vidfarm(&["billing", "credit", "cus_nobody", "1"], dir.path()).0, 2);
}

#[test]
fn provider_keys_are_added_from_stdin_listed_without_secrets_paused_resumed_and_removed() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("a temp dir");
    let (_, created, _) = vidfarm(&["customers", "create", "--name", "Acme"], dir.path());
    let customer = created["customer_id"].as_str().expect("an id").to_string();
    let mut add = Command::new(env!("CARGO_BIN_EXE_vidfarm"))
        .args(["provider-keys", "add", "--customer", &customer, "--provider", "gemini", "--label", "main"])
        .args(["--model", "gemini-2.5-flash", "--data-dir"])
        .arg(dir.path())
        .envs(common::database_env(dir.path()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    add.stdin.take().expect("stdin").write_all(b"AIza-CLI-SECRET-0042\n").expect("written");
    let out = add.wait_with_output().expect("finishes");
    assert!(out.status.success());
    let key: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let id = key["id"].as_str().expect("an id").to_string();
    assert_eq!(
        (key["secret_hint"].as_str(), key["models"].clone()),
        (Some("…0042"), serde_json::json!(["gemini-2.5-flash"]))
    );

    let (code, listed, _) = vidfarm(&["provider-keys", "list", "--customer", &customer], dir.path());
    assert_eq!((code, listed["keys"].as_array().map(Vec::len)), (0, Some(1)));
    assert!(!listed.to_string().contains("CLI-SECRET"));
    let (_, paused, _) = vidfarm(&["provider-keys", "pause", &id], dir.path());
    assert_eq!(paused["status"], "paused");
    let (_, resumed, _) = vidfarm(&["provider-keys", "resume", &id], dir.path());
    assert_eq!(resumed["status"], "active");
    assert_eq!(vidfarm(&["provider-keys", "remove", &id], dir.path()).0, 0);
    let (code, _, err) = vidfarm(&["provider-keys", "remove", &id], dir.path());
    assert_eq!((code, err.contains("no provider key")), (2, true), "{err}");
    let (code, _, err) = vidfarm(
        &["provider-keys", "add", "--customer", &customer, "--provider", "anthropic", "--secret-env", "PATH"],
        dir.path(),
    );
    assert_eq!((code, err.contains("provider must be openai")), (2, true), "{err}");

    let database = common::stored_bytes(dir.path());
    assert!(!database.windows(10).any(|w| w == b"CLI-SECRET"), "no plaintext provider key in the database");
}

/// Run the CLI with `stdin` as its standard input.
fn vidfarm_with_input(args: &[&str], data_dir: &Path, stdin: &str) -> (i32, Value, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_vidfarm"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .envs(common::database_env(data_dir))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("written");
    let out = child.wait_with_output().expect("ends");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_customer_made_by_the_cli_gets_a_dashboard_password_read_from_stdin() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (_, created, _) = vidfarm(&["customers", "create", "--name", "Acme"], dir.path());
    let customer = created["customer_id"].as_str().expect("an id").to_string();
    let args = ["customers", "password", customer.as_str(), "--email", " Ops@Acme.example "];
    let (code, _, err) = vidfarm_with_input(&args, dir.path(), "short\n");
    assert_eq!((code, err.contains("password: must be 10 to 256 characters")), (2, true), "{err}");
    let (code, set, err) = vidfarm_with_input(&args, dir.path(), "a long enough password\n");
    assert_eq!(code, 0, "{err}");
    assert_eq!(set["email"], "ops@acme.example");
    let database = common::stored_bytes(dir.path());
    assert!(!database.windows(22).any(|w| w == b"a long enough password"), "no plaintext password in the database");
    let (code, _, err) = vidfarm_with_input(
        &["customers", "password", "cus_nobody", "--email", "x@y.example"],
        dir.path(),
        "a long enough password\n",
    );
    assert_eq!((code, err.contains("no customer")), (2, true), "{err}");
    let (code, invited, err) = vidfarm(&["customers", "invite", "Guest@Example.com"], dir.path());
    assert_eq!((code, invited["email"].as_str()), (0, Some("guest@example.com")), "{err}");
}

/// The CLI with no database of the suite's: `env` may name one (`VIDFARM_DATABASE_URL`), else
/// a command given `--data-dir` uses the SQLite file there.
fn vidfarm_env(args: &[&str], env: &[(&str, &str)]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vidfarm"))
        .args(args)
        .env_remove("VIDFARM_DATABASE_URL")
        .envs(env.iter().copied())
        .output()
        .expect("runs");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// What a customer sees of the platform that a move must keep: each of its jobs with its money
/// (`GET …/jobs/:id`), its limits and charges, and the ids of its webhook deliveries (sorted).
fn seen(client: &common::Client, host: &common::Host) -> (Vec<Value>, Value, Vec<String>) {
    let listed = client.get(host, "/jobs?limit=100");
    let jobs = listed["jobs"].as_array().expect("jobs").iter().map(|job| {
        let (template, id) = (job["template_id"].as_str().expect("a template"), job["job_id"].as_str().expect("an id"));
        client.get(host, &format!("/templates/{template}/jobs/{id}"))
    });
    let usage = client.get(host, "/billing/usage");
    let deliveries = client.get(host, "/customers/me/webhook-deliveries?limit=500");
    let mut ids: Vec<String> = deliveries["data"]
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|d| d["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    (jobs.collect(), json!({ "limits": usage["limits"], "total": usage["total"] }), ids)
}

#[test]
fn a_sqlite_platform_is_copied_to_postgres_and_keeps_its_customers_jobs_and_money() {
    let (old, new) = (tempfile::tempdir().expect("a temp dir"), tempfile::tempdir().expect("a temp dir"));
    // Only the suite's PostgreSQL pass names a server to move to.
    let Some(target) = common::database_url(new.path()) else { return };
    let old_dir = old.path().to_str().expect("utf-8");
    let on_sqlite = |args: &[&str]| vidfarm_env(&[args, &["--data-dir", old_dir][..]].concat(), &[]);
    let (code, created, err) = on_sqlite(&["customers", "create", "--name", "Acme"]);
    assert_eq!(code, 0, "{err}");
    let client = common::Client {
        http: reqwest::blocking::Client::new(),
        id: created["customer_id"].as_str().expect("an id").into(),
        key: created["api_key"].as_str().expect("a key").into(),
    };
    let (code, _, err) = on_sqlite(&["billing", "credit", client.id.as_str(), "10"]);
    assert_eq!(code, 0, "a limited customer (runs hold their fuel): {err}");
    let (code, migrated, err) = on_sqlite(&["db", "migrate"]);
    assert_eq!((code, &migrated["database"], &migrated["migrated"]), (0, &json!("sqlite"), &json!(true)), "{err}");
    assert!(migrated["version"].as_i64() >= Some(12), "{migrated}");

    // An empty URL is none: the old platform runs on its SQLite file whatever the suite's pass.
    let mut host = common::serve(old.path(), &[("VIDFARM_DATABASE_URL", "")]);
    // Deliveries to a closed port stay in the outbox, retried: rows a copy must not duplicate.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("an address");
    let hook = client
        .http
        .post(format!("{}/customers/me/webhooks", host.base))
        .header("vidfarm-user-id", &client.id)
        .header("vidfarm-api-key", &client.key)
        .json(&json!({ "url": format!("http://{closed}/hooks") }))
        .send()
        .expect("sent");
    assert_eq!(hook.status().as_u16(), 201);
    let finished = |j: &Value| j["status"] == "succeeded" || j["status"] == "failed";
    let mut ids: Vec<String> = ["Ada", "Grace", "Linus"]
        .iter()
        .map(|n| client.create_in(&host, "hello", "greet", json!({ "name": n })))
        .collect();
    ids.push(client.create_in(&host, "hello", "greet-many", json!({ "names": ["Ada", "Grace"] })));
    for id in &ids {
        let job = client.wait_in(&host, "hello", id, finished, Duration::from_secs(60));
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let before = seen(&client, &host);
    assert_eq!(before.0.len(), 6, "three greetings, a fan-out and its two children");
    assert!(before.1["limits"]["charged_nusd"].as_i64() > Some(0), "the runs' CPU is charged: {}", before.1);
    assert!(before.2.len() >= 2 * before.0.len(), "job.queued and job.succeeded of every job: {:?}", before.2);
    let stopped = Command::new("kill").args(["-TERM", &host.child.id().to_string()]).status().expect("kill runs");
    assert!(stopped.success());
    host.child.wait().expect("the old host stops");

    let from = format!("sqlite://{}", old.path().join("vidfarm.sqlite").display());
    let copy = ["db", "copy", "--from", from.as_str(), "--to", target.as_str()];
    let (code, report, err) = vidfarm_env(&copy, &[]);
    assert_eq!(code, 0, "{err}");
    let copied = &report["copied"];
    assert_eq!(
        (copied["customers"].as_u64(), copied["api_keys"].as_u64(), copied["jobs"].as_u64()),
        (Some(1), Some(1), Some(6)),
        "{report}"
    );
    assert_eq!(copied["webhook_deliveries"].as_u64(), Some(before.2.len() as u64), "{report}");
    assert!(copied["billing_events"].as_u64() >= Some(6), "a CPU charge per run at least: {report}");
    assert_eq!((&report["skipped"], &report["from"]), (&json!([]), &json!(from.as_str())), "{report}");
    let server = target.rsplit('@').next().unwrap_or_default();
    assert!(report["to"].as_str().is_some_and(|to| to.ends_with(server)), "{report}");
    let (code, _, err) = vidfarm_env(&copy, &[]);
    assert_eq!((code, err.contains("never merges")), (1, true), "a second copy is refused: {err}");

    let new_dir = new.path().to_str().expect("utf-8");
    let (code, migrated, err) =
        vidfarm_env(&["db", "migrate", "--data-dir", new_dir], &[("VIDFARM_DATABASE_URL", target.as_str())]);
    assert_eq!((code, &migrated["database"], &migrated["migrated"]), (0, &json!("postgres"), &json!(true)), "{err}");
    assert!(migrated["version"].as_i64() >= Some(1), "{migrated}");
    // Webhook secrets are encrypted with the master key: the new platform needs the same one.
    std::fs::copy(old.path().join("master.key"), new.path().join("master.key")).expect("the master key moves along");
    let host = common::serve(new.path(), &[("VIDFARM_DATABASE_URL", target.as_str())]);
    let after = seen(&client, &host);
    assert_eq!(after.0, before.0, "the same jobs, results and money per job");
    assert_eq!(after.1, before.1, "the same limits and charges");
    assert_eq!(after.2, before.2, "the same webhook deliveries: the copy fired no trigger");

    // A new job: new ids after the copied ones (events, holds, charges), its own deliveries.
    let id = client.create_in(&host, "hello", "greet", json!({ "name": "Margaret" }));
    let job = client.wait_in(&host, "hello", &id, finished, Duration::from_secs(60));
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(job["result"]["greeting"].as_str().is_some_and(|g| g.contains("Margaret")), "{job}");
    assert!(job["billing"]["charges"].as_array().is_some_and(|c| !c.is_empty()), "{job}");
    let now = seen(&client, &host);
    assert_eq!(now.0.len(), before.0.len() + 1);
    assert!(now.1["limits"]["charged_nusd"].as_i64() > before.1["limits"]["charged_nusd"].as_i64(), "{}", now.1);
    let of_new = client.get(&host, &format!("/customers/me/webhook-deliveries?job_id={id}&limit=500"));
    let of_new = of_new["data"].as_array().expect("deliveries");
    assert_eq!(now.2.len(), before.2.len() + of_new.len(), "the only new deliveries are the new job's");
    for event in ["job.queued", "job.succeeded"] {
        assert_eq!(of_new.iter().filter(|d| d["event_type"] == event).count(), 1, "{event}: {of_new:?}");
    }

    // docs/operations.md's backup of a PostgreSQL platform: `pg_dump -Fc` while the host runs,
    // `pg_restore` into an empty database, and a host there sees the same platform and goes on.
    let dump = new.path().join("vidfarm.dump");
    let dumped =
        Command::new("pg_dump").args(["-Fc", target.as_str(), "-f"]).arg(&dump).output().expect("pg_dump runs");
    assert!(dumped.status.success(), "{}", String::from_utf8_lossy(&dumped.stderr));
    drop(host);
    let restored = tempfile::tempdir().expect("a temp dir");
    let restored_url = common::database_url(restored.path()).expect("the PostgreSQL pass");
    let name = restored_url.rsplit('/').next().expect("a database name");
    common::psql(&restored_url, &format!("CREATE DATABASE \"{name}\""));
    let restore = Command::new("pg_restore").args(["-d", restored_url.as_str()]).arg(&dump).output().expect("runs");
    assert!(restore.status.success(), "{}", String::from_utf8_lossy(&restore.stderr));
    std::fs::copy(old.path().join("master.key"), restored.path().join("master.key")).expect("the master key too");
    let host = common::serve(restored.path(), &[("VIDFARM_DATABASE_URL", restored_url.as_str())]);
    assert_eq!(seen(&client, &host), now, "the restored platform is the dumped one");
    let id = client.create_in(&host, "hello", "greet", json!({ "name": "Barbara" }));
    let job = client.wait_in(&host, "hello", &id, finished, Duration::from_secs(60));
    assert_eq!(job["status"], "succeeded", "new rows after the restored ones: {job}");
}

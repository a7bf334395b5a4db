//! Operator commands against a real data dir: customers, API keys (hashed, listed by prefix,
//! revocable) and online backups.

mod common;

use serde_json::Value;
use std::path::Path;
use std::process::Command;

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

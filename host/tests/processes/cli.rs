//! `vidfarm template run` as authors use it: JSON on stdout, exit codes 0 / 1 / 2.

use std::process::Command;

fn vidfarm(args: &[&str], data_dir: &std::path::Path) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vidfarm"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("vidfarm runs");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn running_hello_greet_prints_the_outcome_and_exits_0() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (code, out, _) = vidfarm(&["template", "run", "hello", "greet", "--payload", r#"{"name":"Ada"}"#], dir.path());
    assert_eq!(code, 0);
    assert_eq!(out["status"], "succeeded");
    assert_eq!(out["output"]["greeting"], "Hello, Ada!");
    assert!(out["fuel_consumed"].as_u64().is_some_and(|f| f > 0));
    let events = out["events"].as_array().expect("events");
    assert!(events.iter().any(|e| e["progress"] == 0.5), "progress is an event");
    assert!(events.iter().any(|e| e["artifact"]["key"] == "greeting.txt"), "the artifact is announced");
}

#[test]
fn exporting_the_objects_kept_in_the_database_writes_files_or_names_what_is_wrong() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (code, out, err) = vidfarm(&["db", "export-objects"], dir.path());
    assert_eq!((code, &out["exported"]), (0, &serde_json::json!(0)), "{err}");
    assert_eq!(out["to"], dir.path().join("objects").display().to_string());
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").expect("written");
    let (code, _, err) = vidfarm(&["db", "export-objects", "--to", file.to_str().expect("utf-8")], dir.path());
    assert_eq!(code, 2);
    assert!(err.contains("--to") && err.contains("not a directory"), "{err}");
}

#[test]
fn a_failed_job_prints_its_error_code_and_exits_1() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (code, out, _) =
        vidfarm(&["template", "run", "sandbox-probe", "panic", "--payload", r#"{"message":"boom"}"#], dir.path());
    assert_eq!(code, 1);
    assert_eq!(out["status"], "failed");
    assert_eq!(out["error"]["code"], "guest_panic");
    assert!(out["error"]["message"].as_str().is_some_and(|m| m.contains("boom")));
}

#[test]
fn bad_usage_exits_2_with_a_message_naming_the_problem() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (code, _, err) = vidfarm(&["template", "run", "hello", "greet", "--payload", "{nope"], dir.path());
    assert_eq!((code, err.contains("--payload")), (2, true), "{err}");
    let (code, _, err) = vidfarm(&["template", "run", "hello", "shout", "--payload", "{}"], dir.path());
    assert_eq!((code, err.contains("no operation `shout`")), (2, true), "{err}");
    let (code, _, err) = vidfarm(&["template", "run", "hello", "greet", "--payload", r#"{"name": 7}"#], dir.path());
    assert_eq!((code, err.contains("/name")), (2, true), "{err}");
    let (code, _, err) = vidfarm(&["template", "run", "no-such-template", "greet"], dir.path());
    assert_eq!((code, err.contains("neither a .wasm file")), (2, true), "{err}");
}

#[test]
fn fan_out_and_human_waits_run_to_the_end_in_the_dev_runner() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (code, out, _) = vidfarm(
        &["template", "run", "hello", "greet-many", "--payload", r#"{"names":["Ada","Grace","Linus"]}"#],
        dir.path(),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["output"]["greetings"], serde_json::json!(["Hello, Ada!", "Hello, Grace!", "Hello, Linus!"]));
    let (code, out, _) = vidfarm(
        &[
            "template",
            "run",
            "hello",
            "greet-after-approval",
            "--payload",
            r#"{"name":"Ada"}"#,
            "--answer",
            r#"{"approved":false,"note":"not today"}"#,
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["output"], serde_json::json!({"approved": false, "greeting": null, "note": "not today"}));
}

#[test]
fn template_build_turns_a_crate_into_a_component() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("hello.wasm");
    let crate_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../templates/hello");
    let status = Command::new(env!("CARGO_BIN_EXE_vidfarm"))
        .args(["template", "build", crate_dir, "--out"])
        .arg(&out)
        .env("CARGO_TARGET_DIR", dir.path().join("target"))
        .output()
        .expect("vidfarm runs");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), out.display().to_string());
    let bytes = std::fs::read(&out).expect("the component exists");
    assert_eq!(&bytes[..4], b"\0asm");
    let (code, result, _) = vidfarm(
        &["template", "run", out.to_str().expect("utf-8 path"), "greet", "--payload", r#"{"name":"Bo"}"#],
        dir.path(),
    );
    assert_eq!((code, &result["output"]["greeting"]), (0, &serde_json::json!("Hello, Bo!")));
}

/// An author's own folder, far from any Vidfarm checkout: `template new`, `build` and `run`
/// work with the SDKs the binary carries, in every language.
#[test]
fn a_template_started_outside_any_checkout_builds_and_runs_with_the_sdks_the_binary_carries() {
    let outside = tempfile::tempdir().expect("a temp dir");
    let sdk_home = outside.path().join("sdk-home");
    // Rust builds share a target dir between runs of this test (a cold one takes a minute).
    let cargo_target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("outside-checkout-target");
    let author = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_vidfarm"))
            .args(args)
            .current_dir(outside.path())
            .env("VIDFARM_SDK_HOME", &sdk_home)
            .env("CARGO_TARGET_DIR", &cargo_target)
            .env_remove("VIDFARM_GUEST_SDK")
            .output()
            .expect("vidfarm runs");
        assert!(out.status.success(), "vidfarm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for (lang, manifest) in [("ts", "package.json"), ("python", "main.py"), ("rust", "Cargo.toml")] {
        let name = format!("mine-{lang}");
        let dir = outside.path().join(&name);
        author(&["template", "new", &name, "--lang", lang, "--dir", dir.to_str().expect("utf-8")]);
        let text = std::fs::read_to_string(dir.join(manifest)).expect("the scaffold");
        assert!(!text.contains("__TEMPLATE_NAME__"), "{text}");
        if lang != "python" {
            let sdk = if lang == "ts" { "guest-sdk/js" } else { "guest-sdk" };
            let linked = text.lines().find(|l| l.contains(sdk)).expect("the SDK dependency");
            let relative = linked.split(['"', ':']).find(|p| p.contains(sdk)).expect("a path").trim();
            let resolved = dir.join(relative).canonicalize().expect("the SDK path resolves");
            assert!(resolved.starts_with(sdk_home.canonicalize().expect("unpacked")), "{resolved:?}");
        }
        let wasm = dir.join("out.wasm");
        author(&["template", "build", dir.to_str().expect("utf-8"), "--out", wasm.to_str().expect("utf-8")]);
        let data = outside.path().join(format!("data-{lang}"));
        let (code, result, stderr) = run_draft(&wasm, &data);
        assert_eq!(code, 0, "{lang}: {result} {stderr}");
        assert_eq!(result["status"], "succeeded", "{lang}: {result}");
    }
}

/// `template run <wasm> draft`, the operation every scaffold has.
fn run_draft(wasm: &std::path::Path, data: &std::path::Path) -> (i32, serde_json::Value, String) {
    let payload = r#"{"topic":"tide pools"}"#;
    vidfarm(&["template", "run", wasm.to_str().expect("utf-8"), "draft", "--payload", payload], data)
}

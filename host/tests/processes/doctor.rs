//! `vidfarm doctor` as operators use it: one check per capability, the fix for what is missing.

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// `vidfarm doctor --json` with only `bin` on PATH: its exit code and its checks.
fn doctor(bin: &Path, data_dir: &Path) -> (i32, Vec<Value>) {
    doctor_with(bin, data_dir, &[])
}

/// [`doctor`] with `env` set besides.
fn doctor_with(bin: &Path, data_dir: &Path, env: &[(&str, &str)]) -> (i32, Vec<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_vidfarm"))
        .args(["doctor", "--json", "--data-dir"])
        .arg(data_dir)
        .env("PATH", bin)
        .env("VIDFARM_ENV", "development")
        .env_remove("VIDFARM_FFMPEG")
        .env_remove("VIDFARM_FFPROBE")
        .env_remove("VIDFARM_S3_BUCKET")
        .env_remove("VIDFARM_REGISTRY_S3_BUCKET")
        .env_remove("VIDFARM_TRUSTED_KEYS")
        .env_remove("VIDFARM_DATABASE_URL")
        .envs(env.iter().copied())
        .output()
        .expect("vidfarm runs");
    let checks = serde_json::from_slice(&out.stdout).expect("a JSON array on stdout");
    (out.status.code().expect("an exit code"), checks)
}

fn check<'a>(checks: &'a [Value], capability: &str) -> &'a Value {
    checks.iter().find(|c| c["capability"] == capability).expect("a check for the capability")
}

/// An executable shell script at `dir/name` that prints `line`.
fn stand_in(dir: &Path, name: &str, line: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\necho '{line}'\n")).expect("the stand-in is written");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("the stand-in is executable");
}

#[test]
fn a_machine_without_ffmpeg_is_told_how_to_install_it() {
    let (bin, data) = (tempfile::tempdir().expect("a temp dir"), tempfile::tempdir().expect("a temp dir"));
    let (code, checks) = doctor(bin.path(), data.path());
    for name in ["ffmpeg", "ffprobe"] {
        let missing = check(&checks, name);
        assert_eq!(missing["ready"], false, "{missing}");
        assert!(missing["fix"].as_str().is_some_and(|f| f.contains("scripts/setup.sh")), "{missing}");
    }
    assert_eq!(code, 1, "a missing renderer fails the doctor");
    let store = check(&checks, "object store");
    assert_eq!(store["ready"], true, "a temp data dir is writable: {store}");
}

#[test]
fn an_installed_ffmpeg_is_ready_and_its_version_is_reported() {
    let (bin, data) = (tempfile::tempdir().expect("a temp dir"), tempfile::tempdir().expect("a temp dir"));
    stand_in(bin.path(), "ffmpeg", "ffmpeg version 5.1.6 Copyright (c) 2000-2024 the FFmpeg developers");
    stand_in(bin.path(), "ffprobe", "ffprobe version 5.1.6 Copyright (c) 2007-2024 the FFmpeg developers");
    let (_, checks) = doctor(bin.path(), data.path());
    for name in ["ffmpeg", "ffprobe"] {
        let found = check(&checks, name);
        assert_eq!(found["ready"], true, "{found}");
        assert!(found["detail"].as_str().is_some_and(|d| d.contains("5.1.6")), "{found}");
        assert!(found["fix"].is_null(), "nothing to fix: {found}");
    }
}

#[test]
fn a_host_on_a_shared_database_is_told_its_local_files_are_its_own() {
    let (bin, data) = (tempfile::tempdir().expect("a temp dir"), tempfile::tempdir().expect("a temp dir"));
    let (_, checks) = doctor(bin.path(), data.path());
    assert_eq!(check(&checks, "files other hosts read")["ready"], true, "SQLite is one machine's");

    // The doctor only reads the URL: no server needs to answer it.
    let shared = [("VIDFARM_DATABASE_URL", "postgres://vidfarm@127.0.0.1:1/vidfarm")];
    let (_, checks) = doctor_with(bin.path(), data.path(), &shared);
    let local = check(&checks, "files other hosts read");
    assert_eq!(local["ready"], false, "{local}");
    let detail = local["detail"].as_str().expect("a detail");
    assert!(detail.contains("the object store and the registry are"), "{detail}");
    assert!(local["fix"].as_str().is_some_and(|f| f.contains("VIDFARM_REGISTRY_S3_BUCKET")), "{local}");

    // Files in a bucket (a closed port answers at once), but each development host would derive
    // its signing key from a master key of its own.
    let mut in_s3 = shared.to_vec();
    in_s3.extend([
        ("VIDFARM_S3_BUCKET", "objects"),
        ("VIDFARM_REGISTRY_S3_BUCKET", "registry"),
        ("VIDFARM_S3_ENDPOINT", "http://127.0.0.1:1"),
        ("VIDFARM_S3_ACCESS_KEY_ID", "AKIADOCTOR"),
        ("VIDFARM_S3_SECRET_ACCESS_KEY", "doctor-secret"),
    ]);
    let (_, checks) = doctor_with(bin.path(), data.path(), &in_s3);
    let own_key = check(&checks, "files other hosts read");
    assert_eq!(own_key["ready"], false, "{own_key}");
    assert!(own_key["fix"].as_str().is_some_and(|f| f.contains("VIDFARM_MASTER_KEY")), "{own_key}");
    in_s3.push(("VIDFARM_MASTER_KEY", "6d6f72652d7468616e2d6f6e652d686f73742d6d61737465722d6b65792d2121"));
    let (_, checks) = doctor_with(bin.path(), data.path(), &in_s3);
    assert_eq!(check(&checks, "files other hosts read")["ready"], true, "shared files, one master key");
}

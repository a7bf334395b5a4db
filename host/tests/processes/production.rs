//! `vidfarm serve` in production refuses settings that lose data or leak, each named with its
//! fix, before it listens; with them set (or explicitly opted into) it starts.

use crate::common;

use std::process::Command;

fn serve_production(data_dir: &std::path::Path, env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(common::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("VIDFARM_ENV", "production")
        .env_remove("VIDFARM_MASTER_KEY")
        .env_remove("VIDFARM_TRUSTED_KEYS")
        .env_remove("VIDFARM_S3_BUCKET")
        .env_remove("VIDFARM_METRICS_TOKEN")
        .envs(env.iter().copied())
        .output()
        .expect("vidfarm runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn production_names_every_unsafe_setting_and_its_fix_and_does_not_start() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (started, stderr) = serve_production(dir.path(), &[]);
    assert!(!started, "{stderr}");
    for named in ["VIDFARM_S3_BUCKET", "VIDFARM_ALLOW_LOCAL_OBJECTS", "VIDFARM_MASTER_KEY", "VIDFARM_TRUSTED_KEYS"] {
        assert!(stderr.contains(named), "{named} missing from: {stderr}");
    }
    assert!(stderr.contains("VIDFARM_METRICS_TOKEN") && stderr.contains("VIDFARM_METRICS_PUBLIC"), "{stderr}");
    assert!(!dir.path().join("vidfarm.sqlite").exists(), "refused before anything was written");
}

//! `vidfarm template build` and `vidfarm template run`.

use super::usage;
use crate::devrun::{self, DevRunOptions};
use crate::runtime::bindings::types::Environment;
use crate::runtime::{Runtime, RuntimeConfig};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;

#[derive(Subcommand)]
pub enum TemplateCommand {
    /// Build a template crate into a wasm component and print the .wasm path.
    Build {
        /// The template's crate directory (with its Cargo.toml).
        dir: PathBuf,
        /// Copy the component here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run one operation in the sandbox with local backends; print the outcome as JSON.
    Run {
        /// A component file (.wasm) or the id of a built-in template.
        template: String,
        /// The operation to run.
        operation: String,
        /// The payload (JSON).
        #[arg(long, default_value = "{}")]
        payload: String,
        /// The template config the job sees (JSON).
        #[arg(long, default_value = "{}")]
        config: String,
        /// The answer for a job that waits for a human (JSON).
        #[arg(long)]
        answer: Option<String>,
        /// Where artifacts and the compiled cache go.
        #[arg(long, env = "VIDFARM_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// `development` or `production`.
        #[arg(long, env = "VIDFARM_ENV", default_value = "development")]
        env: String,
    },
}

pub async fn run(command: TemplateCommand) -> ExitCode {
    match command {
        TemplateCommand::Build { dir, out } => match build(&dir, out.as_deref()) {
            Ok(path) => {
                println!("{}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => usage(e),
        },
        TemplateCommand::Run { template, operation, payload, config, answer, data_dir, env } => {
            run_operation(template, operation, payload, config, answer, data_dir, env).await
        }
    }
}

async fn run_operation(
    template: String,
    operation: String,
    payload: String,
    config: String,
    answer: Option<String>,
    data_dir: PathBuf,
    env: String,
) -> ExitCode {
    let Ok(payload) = serde_json::from_str(&payload) else {
        return usage("--payload is not valid JSON");
    };
    let Ok(config) = serde_json::from_str(&config) else {
        return usage("--config is not valid JSON");
    };
    if answer.as_deref().is_some_and(|a| serde_json::from_str::<serde_json::Value>(a).is_err()) {
        return usage("--answer is not valid JSON");
    }
    let env = match env.as_str() {
        "development" => Environment::Development,
        "production" => Environment::Production,
        other => return usage(format!("VIDFARM_ENV must be development or production, not `{other}`")),
    };
    let bytes: Arc<[u8]> = match component_bytes(&template) {
        Ok(bytes) => bytes.into(),
        Err(e) => return usage(e),
    };
    let config_rt = RuntimeConfig { cache_dir: Some(data_dir.join("compiled")), ..RuntimeConfig::default() };
    let runtime = match Runtime::new(config_rt) {
        Ok(rt) => rt,
        Err(e) => return usage(e),
    };
    let loaded = match runtime.load(bytes).await {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let options = DevRunOptions { data_dir, answer, env, config };
    match devrun::run(&runtime, &loaded, &operation, payload, &options).await {
        Ok(report) => {
            println!("{}", report.to_json());
            if report.succeeded() { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(e) => usage(e),
    }
}

/// The component's bytes: a file path, or a built-in template id.
fn component_bytes(template: &str) -> Result<Vec<u8>, String> {
    let path = Path::new(template);
    if path.extension().is_some_and(|e| e == "wasm") || path.exists() {
        return std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
    }
    vidfarm_template_artifacts::bytes(template).map(<[u8]>::to_vec).ok_or_else(|| {
        let known: Vec<&str> = vidfarm_template_artifacts::ALL.iter().map(|(id, _, _)| *id).collect();
        format!("`{template}` is neither a .wasm file nor a built-in template ({})", known.join(", "))
    })
}

/// `cargo build` the crate for wasm32-wasip2 with small-component settings; the .wasm path.
pub fn build(dir: &Path, out: Option<&Path>) -> Result<PathBuf, String> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.exists() {
        return Err(format!("{} has no Cargo.toml", dir.display()));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--target", "wasm32-wasip2", "--release", "--message-format=json-render-diagnostics"])
        .args(["--config", "profile.release.opt-level=\"s\"", "--config", "profile.release.lto=true"])
        .args(["--config", "profile.release.strip=true", "--config", "profile.release.debug=false"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err("the template did not build (cargo's errors are above)".into());
    }
    let wasm = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib")))
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or("the build produced no .wasm component: is the crate a `cdylib`?")?;
    match out {
        Some(out) => {
            std::fs::copy(&wasm, out).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            Ok(out.to_path_buf())
        }
        None => Ok(wasm),
    }
}

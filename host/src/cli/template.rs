//! `vidfarm template new`, `vidfarm template build` and `vidfarm template run`.

use super::usage;
use crate::devrun::{self, DevRunOptions, build};
use crate::runtime::bindings::types::Environment;
use crate::runtime::{Runtime, RuntimeConfig};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum TemplateCommand {
    /// Start a template from a scaffold that builds and runs as it is.
    New {
        /// The template id (a-z, 0-9, `-`).
        name: String,
        /// rust, ts, js or python.
        #[arg(long, default_value = "rust")]
        lang: String,
        /// Where to create it (default: `templates/<name>`).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Also a `remotion/` folder: the template's own Remotion compositions, bundled and
        /// published with it.
        #[arg(long)]
        remotion: bool,
        /// The scaffolds (default: those of the checkout the template is in, else those this
        /// binary carries, with the SDKs unpacked to `~/.vidfarm/sdk/`).
        #[arg(long)]
        scaffolds: Option<PathBuf>,
    },
    /// Build a template (Rust: Cargo.toml, TypeScript/JavaScript: package.json, Python:
    /// main.py) into a wasm component and print the .wasm path.
    Build {
        /// The template's directory.
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
        TemplateCommand::New { name, lang, dir, remotion, scaffolds } => {
            let language = match build::Language::parse(&lang) {
                Ok(language) => language,
                Err(e) => return usage(e),
            };
            let dir = dir.unwrap_or_else(|| Path::new("templates").join(&name));
            let made = build::new_template(&name, language, &dir, scaffolds.as_deref()).and_then(|()| {
                if remotion { build::add_compositions(&name, &dir, scaffolds.as_deref()) } else { Ok(()) }
            });
            match made {
                Ok(()) => {
                    println!("{}", dir.display());
                    ExitCode::SUCCESS
                }
                Err(e) => usage(e),
            }
        }
        TemplateCommand::Build { dir, out } => match build::build(&dir, out.as_deref()) {
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
    let cache_max_bytes = match crate::config::compiled_cache_max_bytes() {
        Ok(bytes) => bytes,
        Err(e) => return usage(e),
    };
    let config_rt =
        RuntimeConfig { cache_dir: Some(data_dir.join("compiled")), cache_max_bytes, ..RuntimeConfig::default() };
    let runtime = match Runtime::new(config_rt) {
        Ok(rt) => rt,
        Err(e) => return usage(e),
    };
    let mut loaded = match runtime.load(bytes).await {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    // A component built with its own compositions renders them, as it will once published.
    let packed = build::bundle_path(Path::new(&template));
    if template.ends_with(".wasm") && packed.is_file() {
        match install_bundle(&loaded, &packed, &data_dir) {
            Ok(bundle) => loaded.bundle = Some(bundle),
            Err(e) => return usage(format!("{}: {e}", packed.display())),
        }
    }
    // Renders run in process, configured like the host (`VIDFARM_FFMPEG`, `VIDFARM_REMOTION*`).
    let render = match crate::config::Config::from_env() {
        Ok(host) => Some(crate::render::RenderSettings { work_dir: data_dir.join("render-work"), ..host.render }),
        Err(e) => return usage(e),
    };
    let options = DevRunOptions { data_dir, answer, env, config, render };
    match devrun::run(&runtime, &loaded, &operation, payload, &options).await {
        Ok(report) => {
            println!("{}", report.to_json());
            if report.succeeded() { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(e) => usage(e),
    }
}

/// Unpack the packed bundle at `packed` for `loaded` under the data dir.
fn install_bundle(
    loaded: &crate::runtime::LoadedTemplate,
    packed: &Path,
    data_dir: &Path,
) -> Result<crate::render::bundles::TemplateBundle, String> {
    let bytes = std::fs::read(packed).map_err(|e| e.to_string())?;
    let bundle = crate::render::bundles::TemplateBundle {
        template_id: loaded.manifest.id.clone(),
        version: loaded.manifest.version.clone(),
        digest: vidfarm_registry::digest(&bytes),
    };
    let registry = vidfarm_registry::ArtifactStore::dir(data_dir.join("registry")).map_err(|e| e.to_string())?;
    let bundles = crate::render::bundles::TemplateBundles { registry, dir: data_dir.join("bundles") };
    bundles.install(&bundle, &bytes).map_err(|e| e.to_string())?;
    Ok(bundle)
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

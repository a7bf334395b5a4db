//! In development, `serve` also publishes the example templates written in TypeScript,
//! JavaScript and Python. The Rust examples are compiled into the binary (`publish_builtins`);
//! these need Node or componentize-py, so they are built in the background after start, once per
//! source digest into a cache under the data dir, then published and activated like the
//! built-ins. A build that fails is logged with its output and the server goes on without it.

use super::catalog::Catalog;
use super::publish;
use crate::devrun::build::{self, Language};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vidfarm_registry::SigningKey;

/// Where the example sources are and where their built components are kept.
#[derive(Debug, Clone)]
pub struct Examples {
    /// A folder of template folders (the checkout's `templates/`).
    pub dir: PathBuf,
    /// Built components, named `<template>-<source digest>.wasm`: a restart with unchanged
    /// sources builds nothing.
    pub cache: PathBuf,
}

/// Folders of the SDKs an example is built with: a change there is a change of the example.
const SDK_INPUTS: &[&str] = &[
    "wit",
    "guest-sdk/js/src",
    "guest-sdk/js/bin",
    "guest-sdk/js/wit-types",
    "guest-sdk/js/package.json",
    "guest-sdk/js/package-lock.json",
    "guest-sdk/python",
];

/// Build, publish and activate every TS/JS/Python example in turn; then sync the catalog so
/// each is served at once rather than at the next registry poll.
pub async fn publish_all(db: crate::db::Db, catalog: Arc<Catalog>, key: SigningKey, examples: Examples) {
    for dir in example_dirs(&examples.dir) {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let (source, cache) = (dir.clone(), examples.cache.clone());
        let built = tokio::task::spawn_blocking(move || built_component(&source, &cache)).await;
        let component = match built {
            Ok(Ok(path)) => path,
            Ok(Err(why)) => {
                tracing::warn!(example = %name, "example template not published: {why}");
                continue;
            }
            Err(panic) => {
                tracing::error!(example = %name, %panic, "building an example template panicked");
                continue;
            }
        };
        let bytes = match std::fs::read(&component) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(example = %name, "example template not published: {}: {e}", component.display());
                continue;
            }
        };
        // Its own compositions, when it has a remotion/ folder (packed beside the component).
        let bundle = std::fs::read(build::bundle_path(&component)).ok();
        let published = publish::publish_dev_build_with(
            &db,
            catalog.runtime(),
            catalog.registry(),
            &key,
            &bytes,
            bundle.as_deref(),
        );
        match published.await {
            Ok(version) => tracing::info!(example = %name, %version, "example template published"),
            Err(error @ crate::engine::CatalogError::Database(_)) => {
                // Not the build's fault: kept for the next start.
                tracing::warn!(example = %name, %error, "example template not published");
            }
            Err(error) => {
                // Built but refused: the next start builds it again rather than reusing it.
                let _ = std::fs::remove_file(&component);
                tracing::warn!(example = %name, %error, "example template not published");
            }
        }
        for (template, error) in catalog.sync().await {
            tracing::error!(template, %error, "a template in the registry was refused");
        }
    }
}

/// The template folders under `dir` written in TS, JS or Python, in name order. `probe-*` are
/// the language tests' fixtures, not examples.
pub fn example_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("probe-")))
        .filter(|p| matches!(Language::of(p), Ok(l) if l != Language::Rust))
        .collect();
    dirs.sort();
    dirs
}

/// The example's component from the cache, built into it first if its sources changed.
fn built_component(dir: &Path, cache: &Path) -> Result<PathBuf, String> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let digest = source_digest(dir)?;
    let component = cache.join(format!("{name}-{}.wasm", &digest[..16]));
    if component.exists() {
        return Ok(component);
    }
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    // Built beside and renamed: a crash mid-build never leaves a component that looks done.
    // (The pid: two servers building at once never write one file.)
    let partial = cache.join(format!("{name}-{}.{}.partial.wasm", &digest[..16], std::process::id()));
    tracing::info!(example = %name, "building example template (once per source change)");
    build::build_captured(dir, Some(&partial))?;
    // The bundle first: a component that looks done always has its compositions beside it.
    let bundle = build::bundle_path(&partial);
    if bundle.exists() {
        std::fs::rename(&bundle, build::bundle_path(&component)).map_err(|e| format!("{}: {e}", bundle.display()))?;
    }
    std::fs::rename(&partial, &component).map_err(|e| format!("{}: {e}", component.display()))?;
    Ok(component)
}

/// BLAKE3 over the example's files and the SDK sources it builds with, paths included;
/// dependencies and build outputs (`node_modules`, `dist`, caches) are left out.
pub fn source_digest(dir: &Path) -> Result<String, String> {
    let mut hasher = blake3::Hasher::new();
    let mut inputs = vec![dir.to_path_buf()];
    if let Some(root) = dir.parent().and_then(Path::parent) {
        inputs.extend(SDK_INPUTS.iter().map(|p| root.join(p)).filter(|p| p.exists()));
    }
    for input in inputs {
        let mut files = Vec::new();
        collect_files(&input, &mut files).map_err(|e| format!("{}: {e}", input.display()))?;
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            hasher.update(file.strip_prefix(&input).unwrap_or(&file).to_string_lossy().as_bytes());
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Folders that hold what a build fetched or made, not the template's sources.
const SKIPPED: &[&str] = &["node_modules", "dist", "target", "__pycache__", ".venv", "build"];

fn collect_files(path: &Path, into: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_file() {
        into.push(path.to_path_buf());
    } else if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            if !SKIPPED.iter().any(|s| entry.file_name() == *s) {
                collect_files(&entry.path(), into)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_examples_are_the_ts_js_and_python_templates_but_not_the_probes() {
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
        let names: Vec<String> = example_dirs(&templates)
            .iter()
            .map(|d| d.file_name().expect("a name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["captioner-ts", "summarizer-py"]);
    }

    #[test]
    fn a_changed_source_file_changes_the_digest_and_build_outputs_do_not() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let template = dir.path().join("templates/mine");
        std::fs::create_dir_all(template.join("node_modules")).expect("written");
        std::fs::write(template.join("main.py"), "print(1)").expect("written");
        let first = source_digest(&template).expect("a digest");
        std::fs::write(template.join("node_modules/x.js"), "anything").expect("written");
        assert_eq!(source_digest(&template).expect("a digest"), first, "node_modules is not a source");
        std::fs::write(template.join("main.py"), "print(2)").expect("written");
        assert_ne!(source_digest(&template).expect("a digest"), first, "an edited source is a new build");
    }
}

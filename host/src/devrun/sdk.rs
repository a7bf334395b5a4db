//! The guest SDKs (Rust, TypeScript/JavaScript, Python), the WIT world and the scaffolds, carried
//! inside the binary, so a template started in an author's own repository builds with nothing
//! from a Vidfarm checkout. They are unpacked once per SDK version into
//! `$VIDFARM_SDK_HOME` (default `~/.vidfarm/sdk/<version>-<digest>`), laid out as in this
//! repository (`wit/`, `guest-sdk/`, `templates/scaffolds/`), so the SDKs' own relative paths
//! (`../wit` from the Rust SDK, `../../wit` from the JS one) hold there too.

use std::path::{Path, PathBuf};

mod files {
    include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));
}

/// The Rust SDK's manifest outside this workspace (the checkout's inherits its versions from
/// the workspace; a test keeps the two in step).
const STANDALONE_RUST_MANIFEST: &str = r#"[package]
name = "vidfarm-guest"
description = "Write Vidfarm templates in plain Rust: typed operations, one context, one export macro."
version = "0.1.0"
edition = "2024"
rust-version = "1.95"
license = "Apache-2.0"
exclude = ["js", "python"]

[dependencies]
wit-bindgen = "0.63"
serde = { version = "1", features = ["derive"] }
serde_json = "1"
schemars = "1"

# Built on its own, never as part of an author's workspace.
[workspace]
"#;

/// The SDK's digest: its files, names included (a rebuilt binary with other SDK files unpacks
/// beside the older one instead of over it).
fn digest() -> String {
    let mut hasher = blake3::Hasher::new();
    for (path, bytes) in files::FILES {
        hasher.update(path.as_bytes());
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    hasher.finalize().to_hex()[..12].to_string()
}

/// Where the SDK is unpacked.
fn home() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("VIDFARM_SDK_HOME") {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME").ok_or("neither VIDFARM_SDK_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".vidfarm/sdk").join(format!("{}-{}", env!("CARGO_PKG_VERSION"), digest())))
}

/// The unpacked SDK's root, unpacking it first if this version is not there yet. Unpacked into
/// a temporary folder beside it and renamed, so a half-written SDK is never used.
pub fn installed() -> Result<PathBuf, String> {
    let root = home()?;
    if root.join(".complete").exists() {
        return Ok(root);
    }
    let parent = root.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let staging = tempfile::tempdir_in(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    for (path, bytes) in files::FILES {
        let bytes = if *path == "guest-sdk/Cargo.toml" { STANDALONE_RUST_MANIFEST.as_bytes() } else { bytes };
        let target = staging.path().join(path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&target, bytes).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    std::fs::write(staging.path().join(".complete"), digest()).map_err(|e| format!("{e}"))?;
    match std::fs::rename(staging.path(), &root) {
        Ok(()) => {
            // The folder is now `root`; the guard must not delete it.
            let _ = staging.keep();
            Ok(root)
        }
        // Another process unpacked the same SDK first: use its copy.
        Err(_) if root.join(".complete").exists() => Ok(root),
        Err(e) => Err(format!("{}: {e}", root.display())),
    }
}

/// `to` as a path relative to the folder `from` (both absolute), e.g. `../../sdk/guest-sdk`.
pub fn relative(from: &Path, to: &Path) -> PathBuf {
    let (from, to): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for part in &to[common..] {
        path.push(part);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_carries_every_sdk_the_wit_world_and_the_scaffolds_but_no_dependencies() {
        let paths: Vec<&str> = files::FILES.iter().map(|(p, _)| *p).collect();
        for needed in [
            "wit/template.wit",
            "guest-sdk/src/lib.rs",
            "guest-sdk/js/bin/vidfarm-build.mjs",
            "guest-sdk/js/package-lock.json",
            "guest-sdk/python/vidfarm_build.py",
            "templates/scaffolds/ts/package.json",
            "templates/scaffolds/rust/Cargo.toml",
        ] {
            assert!(paths.contains(&needed), "{needed} is missing");
        }
        assert!(!paths.iter().any(|p| p.contains("node_modules") || p.contains("__pycache__")), "{paths:?}");
    }

    #[test]
    fn the_standalone_rust_manifest_uses_the_workspaces_versions() {
        let workspace = include_str!("../../../Cargo.toml");
        for line in
            ["wit-bindgen = \"0.63\"", "serde = { version = \"1\", features = [\"derive\"] }", "schemars = \"1\""]
        {
            assert!(workspace.contains(line), "the workspace no longer says {line}");
            assert!(STANDALONE_RUST_MANIFEST.contains(line), "{line}");
        }
        for (field, value) in [("version", "0.1.0"), ("edition", "2024"), ("rust-version", "1.95")] {
            assert!(workspace.contains(&format!("{field} = \"{value}\"")), "{field}");
        }
    }

    #[test]
    fn relative_paths_climb_to_the_common_folder() {
        assert_eq!(relative(Path::new("/a/b/c"), Path::new("/a/x/y")), PathBuf::from("../../x/y"));
        assert_eq!(relative(Path::new("/a"), Path::new("/a/b")), PathBuf::from("b"));
    }
}

//! `sqlx::migrate!` embeds the migrations at compile time: rebuild when they change. And the
//! guest SDKs, the WIT world and the scaffolds travel inside the binary (`devrun::sdk`), so
//! `vidfarm template new|build` works in an author's own folder: this lists their files.
use std::path::{Path, PathBuf};

/// What an author needs beside the binary, relative to the workspace root.
const SDK_ROOTS: &[&str] = &["wit", "guest-sdk", "templates/scaffolds"];

/// Dependencies and build outputs, never sources.
const SKIPPED: &[&str] = &["node_modules", "dist", "target", "__pycache__", ".venv"];

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    println!("cargo:rerun-if-changed=../migrations-pg");
    let workspace = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("..");
    let mut files = Vec::new();
    for root in SDK_ROOTS {
        collect(&workspace, &workspace.join(root), &mut files, false);
    }
    let generated = files_table("The SDK files: (path relative to the SDK root, bytes).", files);
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out.join("sdk_files.rs"), generated).expect("OUT_DIR is writable");
    std::fs::write(out.join("builtin_compositions.rs"), builtin_compositions(&workspace)).expect("OUT_DIR is writable");
}

/// The `remotion/` folders of the Rust templates built into the binary (`templates/<id>/`
/// with a `Cargo.toml`): the server bundles them at start, so they travel with the binary too.
fn builtin_compositions(workspace: &Path) -> String {
    // Each Rust template's folder is watched whole, so a `remotion/` folder added later is seen
    // (a change there rebuilds the host through the artifacts crate anyway).
    let templates = workspace.join("templates");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&templates).expect("templates/").flatten() {
        if !entry.path().join("Cargo.toml").is_file() {
            continue;
        }
        let remotion = entry.path().join("remotion");
        let watched = !holds_skipped(&entry.path());
        if watched {
            println!("cargo:rerun-if-changed={}", entry.path().display());
        }
        if remotion.is_dir() {
            collect(&templates, &remotion, &mut files, watched);
        }
    }
    files_table("Built-in templates' compositions: (`<template>/remotion/<path>`, bytes).", files)
}

/// A `FILES` table of `(relative path, include_bytes!(absolute path))`, sorted by path.
fn files_table(doc: &str, mut files: Vec<(String, PathBuf)>) -> String {
    files.sort();
    let mut generated = format!("/// {doc}\npub const FILES: &[(&str, &[u8])] = &[\n");
    for (relative, absolute) in files {
        generated.push_str(&format!("    ({relative:?}, include_bytes!({:?})),\n", absolute.display().to_string()));
    }
    generated.push_str("];\n");
    generated
}

/// Collect the files under `path`. A folder with no dependencies inside is watched whole (cargo
/// scans it for changes, added files included); one with `node_modules` and the like is watched
/// file by file, or every `npm ci` would rebuild the host.
fn collect(workspace: &Path, path: &Path, into: &mut Vec<(String, PathBuf)>, watched: bool) {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return };
    let watch = !watched && (meta.is_file() || (meta.is_dir() && !holds_skipped(path)));
    if watch {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    if meta.is_file() {
        let relative = path.strip_prefix(workspace).expect("under the workspace");
        let relative = relative.to_string_lossy().replace('\\', "/");
        let absolute = path.canonicalize().expect("a real file");
        into.push((relative, absolute));
    } else if meta.is_dir() {
        for entry in std::fs::read_dir(path).expect("a readable dir").flatten() {
            let name = entry.file_name();
            let hidden = name.to_string_lossy().starts_with('.');
            if !hidden && !SKIPPED.iter().any(|s| name == *s) {
                collect(workspace, &entry.path(), into, watched || watch);
            }
        }
    }
}

fn holds_skipped(dir: &Path) -> bool {
    std::fs::read_dir(dir).into_iter().flatten().flatten().any(|entry| {
        SKIPPED.iter().any(|s| entry.file_name() == *s) || (entry.path().is_dir() && holds_skipped(&entry.path()))
    })
}

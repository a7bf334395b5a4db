//! Compiles every template crate to a wasm component in a target dir of its own, so plain
//! `cargo test` and `cargo run` always see fresh components (the pattern of wasmtime's
//! `crates/test-programs/artifacts/build.rs`). Emits `components.rs` with their paths.

use std::path::PathBuf;
use std::process::Command;

#[path = "wasm_target.rs"]
mod wasm_target;

/// (template id, crate name) of every Rust template built into the host.
const TEMPLATES: &[(&str, &str)] = &[
    ("hello", "template-hello"),
    ("sandbox-probe", "template-sandbox-probe"),
    ("json-to-video", "template-json-to-video"),
    ("ugc-voiceover", "template-ugc-voiceover"),
    ("research-render", "template-research-render"),
    ("storyteller", "template-storyteller"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.join("../..").canonicalize().expect("the workspace root exists");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Beside the host's own target dir, so the nested build neither waits on its lock nor
    // is rebuilt from scratch when OUT_DIR changes.
    let target_dir = std::env::var_os("VIDFARM_TEMPLATES_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        out_dir.ancestors().nth(4).expect("OUT_DIR is under the target dir").join("vidfarm-templates")
    });

    ensure_wasm_target();

    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(&workspace)
        .args(["build", "--target", "wasm32-wasip2", "--profile", "template"])
        .arg("--target-dir")
        .arg(&target_dir);
    for (_, krate) in TEMPLATES {
        cmd.args(["-p", krate]);
    }
    clear_cargo_env(&mut cmd);
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "building the template components failed");

    let mut generated = String::from(
        "/// Every built-in template: (template id, path of its component, its bytes).\npub const ALL: &[(&str, &str, &[u8])] = &[\n",
    );
    for (id, krate) in TEMPLATES {
        let wasm = target_dir.join("wasm32-wasip2/template").join(format!("{}.wasm", krate.replace('-', "_")));
        assert!(wasm.exists(), "{} was not built", wasm.display());
        let path = wasm.display().to_string();
        generated.push_str(&format!("    ({id:?}, {path:?}, include_bytes!({path:?})),\n"));
    }
    generated.push_str("];\n");

    // A next version of `hello` (0.2.0, says "Howdy") for the hot-swap tests; never
    // published automatically.
    let next_dir = target_dir.with_file_name("vidfarm-templates-hello-next");
    let mut next = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    next.current_dir(&workspace)
        .args(["build", "--target", "wasm32-wasip2", "--profile", "template", "-p", "template-hello"])
        .arg("--target-dir")
        .arg(&next_dir)
        .env("VIDFARM_HELLO_VERSION", "0.2.0")
        .env("VIDFARM_HELLO_SALUTATION", "Howdy");
    clear_cargo_env(&mut next);
    assert!(next.status().expect("cargo runs").success(), "building hello 0.2.0 failed");
    let next_wasm = next_dir.join("wasm32-wasip2/template/template_hello.wasm");
    generated.push_str(&format!(
        "\n/// `hello` 0.2.0 (greets with \"Howdy\"): a next version for hot-swap tests.\npub const HELLO_NEXT: &str = {:?};\n",
        next_wasm.display().to_string()
    ));
    std::fs::write(out_dir.join("components.rs"), generated).expect("OUT_DIR is writable");

    println!("cargo:rerun-if-changed={}", workspace.join("wit").display());
    // The Rust SDK only: guest-sdk/js and guest-sdk/python (with node_modules) are not ours.
    println!("cargo:rerun-if-changed={}", workspace.join("guest-sdk/src").display());
    println!("cargo:rerun-if-changed={}", workspace.join("guest-sdk/Cargo.toml").display());
    for (_, krate) in TEMPLATES {
        let dir = krate.strip_prefix("template-").unwrap_or(krate);
        println!("cargo:rerun-if-changed={}", workspace.join("templates").join(dir).display());
    }
}

/// Adds the guests' target to the toolchain when it is missing (a fresh machine with the pinned
/// toolchain already installed), so `cargo run` needs no step by hand.
fn ensure_wasm_target() {
    let rustc = PathBuf::from(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
    let rustup = PathBuf::from(std::env::var_os("RUSTUP").unwrap_or_else(|| "rustup".into()));
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").ok();
    let tools = wasm_target::Tools { rustc: &rustc, rustup: &rustup, toolchain: toolchain.as_deref() };
    match wasm_target::ensure(&tools) {
        Ok(wasm_target::Outcome::Present) => {}
        Ok(wasm_target::Outcome::Installed { toolchain }) => {
            println!("cargo:warning=installed the {} target for {toolchain}", wasm_target::TARGET)
        }
        Err(why) => panic!("{why}"),
    }
}

/// The outer build's flags and jobserver are for the host, not for the guests.
fn clear_cargo_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" || key.starts_with("RUSTC") || key == "RUSTFLAGS" {
            cmd.env_remove(key.as_ref());
        }
    }
}

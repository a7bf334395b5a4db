//! Makes sure the `wasm32-wasip2` standard library is installed before the guests are built.
//!
//! rustup installs a toolchain file's `targets` only when it installs the toolchain itself; a
//! machine that already had the pinned toolchain lacks the target, and `cargo run` would fail
//! deep inside the guests' build. So the build script checks the sysroot and, when the target
//! is missing and rustup manages the toolchain, adds it (idempotent, one download). Shared by
//! `build.rs` and this crate's unit tests, which drive it with a rustup stand-in.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The guests' target triple.
pub const TARGET: &str = "wasm32-wasip2";

/// What `ensure` found or did, for the build log.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The sysroot already had the target's standard library.
    Present,
    /// rustup added it to the named toolchain.
    Installed { toolchain: String },
}

/// The tools `ensure` runs: the compiler whose sysroot is checked and the rustup that may add
/// the target. Passed in so tests can substitute stand-ins.
pub struct Tools<'a> {
    /// `$RUSTC` as cargo hands it to build scripts.
    pub rustc: &'a Path,
    /// `rustup`, usually found on `PATH`.
    pub rustup: &'a Path,
    /// `$RUSTUP_TOOLCHAIN`: set by rustup's proxies to the toolchain this build runs on.
    pub toolchain: Option<&'a str>,
}

/// Checks for the target in `rustc`'s sysroot and adds it with rustup when missing.
/// The error says what the operator can run by hand when it cannot be fixed here.
pub fn ensure(tools: &Tools) -> Result<Outcome, String> {
    let sysroot = sysroot(tools.rustc)?;
    if has_target(&sysroot) {
        return Ok(Outcome::Present);
    }
    let Some(toolchain) = tools.toolchain else {
        return Err(format!(
            "the {TARGET} target is not installed in {} and this toolchain is not managed by \
             rustup; install the {TARGET} standard library for it (with rustup: \
             `rustup target add {TARGET}`)",
            sysroot.display()
        ));
    };
    let status =
        unless_busy(|| Command::new(tools.rustup).args(["target", "add", TARGET, "--toolchain", toolchain]).status())
            .map_err(|e| format!("could not run `{}` to add the {TARGET} target: {e}", tools.rustup.display()))?;
    if !status.success() {
        return Err(format!("`rustup target add {TARGET} --toolchain {toolchain}` failed ({status}); run it by hand"));
    }
    if has_target(&sysroot) {
        Ok(Outcome::Installed { toolchain: toolchain.to_string() })
    } else {
        Err(format!("rustup reported success but {} still lacks {TARGET}", sysroot.display()))
    }
}

fn sysroot(rustc: &Path) -> Result<PathBuf, String> {
    let out = unless_busy(|| Command::new(rustc).args(["--print", "sysroot"]).output())
        .map_err(|e| format!("could not run `{} --print sysroot`: {e}", rustc.display()))?;
    if !out.status.success() {
        return Err(format!("`{} --print sysroot` failed ({})", rustc.display(), out.status));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Start a program, again (up to 20 times, 10 ms apart) while it is "text file busy": a file
/// written a moment ago can still be open for writing in a child another thread just forked.
fn unless_busy<T>(mut start: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    const ETXTBSY: i32 = 26;
    for _ in 0..20 {
        match start() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) => std::thread::sleep(std::time::Duration::from_millis(10)),
            other => return other,
        }
    }
    start()
}

fn has_target(sysroot: &Path) -> bool {
    sysroot.join("lib/rustlib").join(TARGET).join("lib").is_dir()
}

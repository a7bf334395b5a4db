//! The built-in templates as wasm components, compiled by this crate's build script.
//!
//! The host embeds them so `vidfarm serve` has working templates out of the box, and the
//! tests load them as real components.

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// The path of a built-in template's component, by template id.
pub fn path(id: &str) -> Option<&'static str> {
    ALL.iter().find(|(name, _, _)| *name == id).map(|(_, path, _)| *path)
}

/// A built-in template's component bytes, by template id.
pub fn bytes(id: &str) -> Option<&'static [u8]> {
    ALL.iter().find(|(name, _, _)| *name == id).map(|(_, _, bytes)| *bytes)
}

#[cfg(test)]
#[path = "../wasm_target.rs"]
mod wasm_target;

#[cfg(test)]
mod tests {
    //! The build script's target check, driven with stand-ins for `rustc` and `rustup`.
    use super::wasm_target::{Outcome, TARGET, Tools, ensure};
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    /// A sysroot, a `rustc` that prints it, and a `rustup` that logs its arguments and (when
    /// `works`) installs the target's library into the sysroot like the real one.
    fn stand_ins(dir: &Path, target_present: bool, works: bool) -> (PathBuf, PathBuf, PathBuf) {
        let sysroot = dir.join("sysroot");
        fs::create_dir_all(sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu/lib")).expect("the temp dir is writable");
        if target_present {
            fs::create_dir_all(sysroot.join("lib/rustlib").join(TARGET).join("lib")).expect("the temp dir is writable");
        }
        let log = dir.join("rustup.log");
        let rustc = script(dir, "rustc", &format!("echo {}", sysroot.display()));
        let install = if works {
            format!("mkdir -p {}/lib/rustlib/{TARGET}/lib", sysroot.display())
        } else {
            "echo 'error: no network' >&2; exit 1".to_string()
        };
        let rustup = script(dir, "rustup", &format!("echo \"$@\" >> {}\n{install}", log.display()));
        (rustc, rustup, log)
    }

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("the temp dir is writable");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("the temp dir is writable");
        path
    }

    #[test]
    fn a_toolchain_without_the_target_gets_it_from_rustup() {
        let dir = tempfile_dir("missing");
        let (rustc, rustup, log) = stand_ins(&dir, false, true);
        let tools = Tools { rustc: &rustc, rustup: &rustup, toolchain: Some("1.95.0-x86_64-unknown-linux-gnu") };
        let outcome = ensure(&tools).expect("ensure succeeds");
        assert_eq!(outcome, Outcome::Installed { toolchain: "1.95.0-x86_64-unknown-linux-gnu".into() });
        let calls = fs::read_to_string(log).expect("the temp dir is writable");
        assert_eq!(calls.trim(), format!("target add {TARGET} --toolchain 1.95.0-x86_64-unknown-linux-gnu"));
    }

    #[test]
    fn a_toolchain_with_the_target_runs_no_rustup() {
        let dir = tempfile_dir("present");
        let (rustc, rustup, log) = stand_ins(&dir, true, true);
        let tools = Tools { rustc: &rustc, rustup: &rustup, toolchain: Some("stable") };
        assert_eq!(ensure(&tools).expect("ensure succeeds"), Outcome::Present);
        assert!(!log.exists(), "rustup was called although the target was there");
    }

    #[test]
    fn a_failing_rustup_is_reported_with_the_command_to_run() {
        let dir = tempfile_dir("offline");
        let (rustc, rustup, _) = stand_ins(&dir, false, false);
        let tools = Tools { rustc: &rustc, rustup: &rustup, toolchain: Some("1.95.0") };
        let why = ensure(&tools).expect_err("ensure must fail");
        assert!(why.contains("rustup target add wasm32-wasip2 --toolchain 1.95.0"), "{why}");
    }

    #[test]
    fn a_toolchain_not_managed_by_rustup_is_told_what_to_install() {
        let dir = tempfile_dir("distro");
        let (rustc, rustup, log) = stand_ins(&dir, false, true);
        let tools = Tools { rustc: &rustc, rustup: &rustup, toolchain: None };
        let why = ensure(&tools).expect_err("ensure must fail");
        assert!(why.contains("wasm32-wasip2") && why.contains("not managed by rustup"), "{why}");
        assert!(!log.exists());
    }

    /// A fresh directory per test under the system temp dir (no dev-dependency needed),
    /// removed when the test drops it.
    fn tempfile_dir(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("vidfarm-wasm-target-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("the temp dir is writable");
        TempDir(dir)
    }

    struct TempDir(PathBuf);

    impl std::ops::Deref for TempDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

//! Building templates in every language into wasm components, and scaffolding new ones:
//! Rust (`Cargo.toml`: cargo for wasm32-wasip2), TypeScript/JavaScript (`package.json`: the
//! JS SDK's `vidfarm-build`, esbuild + componentize-js, offline) and Python (`main.py`: the
//! Python SDK's `vidfarm_build.py`, componentize-py).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The languages a template may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Rust,
    TypeScript,
    JavaScript,
    Python,
}

impl Language {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "rust" => Ok(Self::Rust),
            "ts" | "typescript" => Ok(Self::TypeScript),
            "js" | "javascript" => Ok(Self::JavaScript),
            "python" | "py" => Ok(Self::Python),
            other => Err(format!("--lang must be rust, ts, js or python, not `{other}`")),
        }
    }

    fn scaffold(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::TypeScript => "ts",
            Self::JavaScript => "js",
            Self::Python => "python",
        }
    }

    /// What the template in `dir` is written in, from the files it has.
    pub fn of(dir: &Path) -> Result<Self, String> {
        if dir.join("Cargo.toml").exists() {
            Ok(Self::Rust)
        } else if dir.join("package.json").exists() {
            Ok(if dir.join("tsconfig.json").exists() { Self::TypeScript } else { Self::JavaScript })
        } else if dir.join("main.py").exists() {
            Ok(Self::Python)
        } else {
            Err(format!("{} is not a template: no Cargo.toml, package.json or main.py", dir.display()))
        }
    }
}

/// Build the template in `dir`; the component's path (`out`, or the language's default). The
/// tools' output goes to this process's terminal.
pub fn build(dir: &Path, out: Option<&Path>) -> Result<PathBuf, String> {
    build_with(dir, out, Output::Inherit)
}

/// [`build`] with the tools' output kept back and returned (its tail) only if a step fails: for
/// a server building in the background, whose stdout is its log.
pub fn build_captured(dir: &Path, out: Option<&Path>) -> Result<PathBuf, String> {
    build_with(dir, out, Output::Captured)
}

/// Where the build tools' output goes.
#[derive(Clone, Copy)]
enum Output {
    Inherit,
    Captured,
}

fn build_with(dir: &Path, out: Option<&Path>, output: Output) -> Result<PathBuf, String> {
    let component = build_component(dir, out, output)?;
    bundle_compositions(dir, &bundle_path(&component), None, output)?;
    Ok(component)
}

/// Bundle and pack the `remotion/` project of the template at `dir` into `packed`, as
/// `vidfarm template build` does, with the renderer in `renderer` (default: [`renderer_dir`]);
/// whether it had one.
pub fn pack_compositions(dir: &Path, packed: &Path, renderer: Option<&Path>) -> Result<bool, String> {
    bundle_compositions(dir, packed, renderer, Output::Captured)
}

/// Where `vidfarm template build` puts the packed Remotion bundle of the component at `component`.
pub fn bundle_path(component: &Path) -> PathBuf {
    component.with_extension("remotion.tar")
}

/// The entry point of the template's own Remotion project, if it has one.
pub fn remotion_entry(dir: &Path) -> Option<&'static str> {
    ["remotion/index.ts", "remotion/index.tsx", "remotion/index.js", "remotion/index.jsx"]
        .into_iter()
        .find(|entry| dir.join(entry).is_file())
}

/// Bundle the template's `remotion/` project (if any) with the operator's renderer and pack it
/// into `packed`; a template without one leaves no stale bundle behind.
fn bundle_compositions(dir: &Path, packed: &Path, renderer: Option<&Path>, output: Output) -> Result<bool, String> {
    let Some(entry) = remotion_entry(dir) else {
        return match std::fs::remove_file(packed) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("{}: {e}", packed.display())),
            _ => Ok(false),
        };
    };
    let renderer = match renderer {
        Some(renderer) => renderer.to_path_buf(),
        None => renderer_dir(dir)?,
    };
    let parent = packed.parent().unwrap_or(Path::new("."));
    let scratch = tempfile::Builder::new()
        .prefix(".remotion-bundle-")
        .tempdir_in(parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?;
    let bundle = scratch.path().join("bundle");
    run(
        Command::new("node").arg(renderer.join("bundle-template.mjs")).arg(dir.join(entry)).arg(&bundle),
        "bundling remotion/ (bundle-template.mjs)",
        output,
    )?;
    let info = serde_json::json!({ "entry_point": entry });
    std::fs::write(bundle.join(crate::render::bundles::BUNDLE_INFO), info.to_string()).map_err(|e| e.to_string())?;
    let bytes = crate::render::bundles::pack(&bundle).map_err(|e| format!("packing the bundle: {e}"))?;
    std::fs::write(packed, bytes).map_err(|e| format!("{}: {e}", packed.display()))?;
    Ok(true)
}

/// The operator's Remotion renderer (its `node_modules` bundle the template's compositions):
/// `VIDFARM_REMOTION_DIR`, else `renderers/remotion` of the checkout the template is in.
fn renderer_dir(dir: &Path) -> Result<PathBuf, String> {
    if let Ok(configured) = std::env::var("VIDFARM_REMOTION_DIR") {
        return Ok(PathBuf::from(configured));
    }
    let start = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    start
        .ancestors()
        .map(|a| a.join("renderers/remotion"))
        .find(|r| r.join("bundle-template.mjs").is_file() && r.join("node_modules/@remotion/bundler").is_dir())
        .ok_or_else(|| {
            "this template has a remotion/ folder: set VIDFARM_REMOTION_DIR to the Remotion renderer \
             (renderers/remotion with its node_modules installed) to bundle it"
                .into()
        })
}

fn build_component(dir: &Path, out: Option<&Path>, output: Output) -> Result<PathBuf, String> {
    let step = |command: &mut Command, what: &str| run(command, what, output);
    match Language::of(dir)? {
        Language::Rust => build_rust(dir, out),
        Language::TypeScript | Language::JavaScript => {
            let sdk = sdk_dir(dir)?.join("js");
            if needs_npm_ci(&sdk) {
                step(
                    Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&sdk),
                    "npm ci (the JS SDK)",
                )?;
            }
            if needs_npm_ci(dir) {
                step(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(dir), "npm ci")?;
            }
            let out = out.map(Path::to_path_buf).unwrap_or_else(|| default_out(dir));
            step(Command::new("node").arg(sdk.join("bin/vidfarm-build.mjs")).arg(dir).arg(&out), "vidfarm-build")?;
            Ok(out)
        }
        Language::Python => {
            let script = sdk_dir(dir)?.join("python/vidfarm_build.py");
            let python = std::env::var("VIDFARM_PYTHON").unwrap_or_else(|_| "python3".into());
            let out = out.map(Path::to_path_buf).unwrap_or_else(|| default_out(dir));
            step(Command::new(python).arg(script).arg(dir).arg(&out), "vidfarm_build.py")?;
            Ok(out)
        }
    }
}

/// Whether `dir`'s packages are missing or older than its lock file (npm writes
/// `node_modules/.package-lock.json` on every install).
fn needs_npm_ci(dir: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(&dir.join("package-lock.json")), modified(&dir.join("node_modules/.package-lock.json"))) {
        (_, None) => true,
        (Some(lock), Some(installed)) => lock > installed,
        (None, Some(_)) => false,
    }
}

/// `dist/<dir name>.wasm` inside the template.
fn default_out(dir: &Path) -> PathBuf {
    let name = dir.canonicalize().ok().and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
    dir.join("dist").join(format!("{}.wasm", name.unwrap_or_else(|| "template".into())))
}

/// The SDKs a template builds with: `VIDFARM_GUEST_SDK`, else `guest-sdk/` of the checkout the
/// template lives in, else the SDK this binary carries (unpacked on first use).
fn sdk_dir(dir: &Path) -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("VIDFARM_GUEST_SDK") {
        return Ok(PathBuf::from(dir));
    }
    let start = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(sdk_root(&start)?.join("guest-sdk"))
}

/// Where the SDKs and scaffolds for a template at (absolute) `dir` come from: the checkout
/// `dir` is in, else the SDK this binary carries (unpacked on first use).
fn sdk_root(dir: &Path) -> Result<PathBuf, String> {
    match dir.ancestors().find(|a| is_sdk_root(a)) {
        Some(checkout) => Ok(checkout.to_path_buf()),
        None => super::sdk::installed(),
    }
}

/// A folder laid out like this repository: the SDKs and the scaffolds beside each other.
fn is_sdk_root(dir: &Path) -> bool {
    dir.join("guest-sdk/js/bin/vidfarm-build.mjs").exists() && dir.join("templates/scaffolds").is_dir()
}

/// The longest a build step run in the background may take (a cold `cargo build` of a template
/// takes minutes; a bundle 15 s): past it the step is killed, so a hung bundler cannot hold the
/// built-ins' bundle lock, or a background build, for ever.
const CAPTURED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Run `command` with its output in a file (a pipe could fill and stall it), killing it past
/// `timeout`: its status (`None`: killed) and what it printed.
fn run_captured(
    command: &mut Command,
    timeout: std::time::Duration,
) -> std::io::Result<(Option<std::process::ExitStatus>, String)> {
    use std::io::{Read, Seek};
    let mut log = tempfile::tempfile()?;
    // Its own process group, so a kill takes what it started (node, rustc) down with it.
    let mut child = std::os::unix::process::CommandExt::process_group(command, 0)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .spawn()?;
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            kill_group(child.id());
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // Its end is what says why it failed: at most the last 64 KiB of a chatty build.
    let mut bytes = Vec::new();
    let size = log.metadata()?.len();
    log.seek(std::io::SeekFrom::Start(size.saturating_sub(64 << 10)))?;
    log.read_to_end(&mut bytes)?;
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// SIGKILL the process group led by `pid` (a child spawned with `process_group(0)`).
#[allow(unsafe_code)]
fn kill_group(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    // SAFETY: `kill` only sends a signal; a negative pid names the group our child leads (it is
    // not yet reaped, so its id cannot have been reused).
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

fn run(command: &mut Command, what: &str, output: Output) -> Result<(), String> {
    match output {
        Output::Inherit => match command.stdout(Stdio::inherit()).stderr(Stdio::inherit()).status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("{what} failed ({s}); its errors are above")),
            Err(e) => Err(format!("cannot run {what}: {e}")),
        },
        Output::Captured => {
            let (status, text) =
                run_captured(command, CAPTURED_TIMEOUT).map_err(|e| format!("cannot run {what}: {e}"))?;
            match status {
                Some(s) if s.success() => Ok(()),
                status => {
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
                    let how =
                        status.map_or(format!("killed after {} s", CAPTURED_TIMEOUT.as_secs()), |s| s.to_string());
                    Err(format!("{what} failed ({how}):\n{tail}"))
                }
            }
        }
    }
}

/// `cargo build` the crate for wasm32-wasip2 with small-component settings; the .wasm path.
fn build_rust(dir: &Path, out: Option<&Path>) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
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
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            std::fs::copy(&wasm, out).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            Ok(out.to_path_buf())
        }
        None => Ok(wasm),
    }
}

/// Scaffold a template named `name` in `language` at `dir`, from `scaffolds` (default: those of
/// the checkout `dir` is in, else those this binary carries), `__TEMPLATE_NAME__` replaced by
/// `name` and the scaffold's path to the SDK (`../../guest-sdk`) by the real one from `dir`.
pub fn new_template(name: &str, language: Language, dir: &Path, scaffolds: Option<&Path>) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if !valid {
        return Err(format!("the name must be 1 to 64 of a-z, 0-9 and `-` (it is the template id), not `{name}`"));
    }
    if dir.exists() {
        return Err(format!("{} already exists", dir.display()));
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let parent = parent.canonicalize().map_err(|e| format!("{}: {e}", parent.display()))?;
    let root = sdk_root(&parent)?;
    let scaffolds = scaffolds.map_or_else(|| root.join("templates/scaffolds"), Path::to_path_buf);
    let target = parent.join(dir.file_name().ok_or_else(|| format!("{} names no folder", dir.display()))?);
    // The SDK the template will build with (`sdk_dir`'s choice, made from where it will live).
    let guest = match std::env::var_os("VIDFARM_GUEST_SDK") {
        Some(dir) => PathBuf::from(&dir).canonicalize().map_err(|e| format!("VIDFARM_GUEST_SDK: {e}"))?,
        None => root.join("guest-sdk"),
    };
    let sdk = super::sdk::relative(&target, &guest);
    let replacements =
        [("__TEMPLATE_NAME__", name.to_string()), ("../../guest-sdk", sdk.to_string_lossy().into_owned())];
    copy_replacing(&scaffolds.join(language.scaffold()), dir, &replacements)
}

/// Give the template at `dir` a `remotion/` folder of its own compositions, from the scaffold
/// (`vidfarm template new --remotion`).
pub fn add_compositions(name: &str, dir: &Path, scaffolds: Option<&Path>) -> Result<(), String> {
    let absolute = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    let scaffolds = match scaffolds {
        Some(dir) => dir.to_path_buf(),
        None => sdk_root(&absolute)?.join("templates/scaffolds"),
    };
    copy_replacing(&scaffolds.join("remotion"), &dir.join("remotion"), &[("__TEMPLATE_NAME__", name.to_string())])
}

fn copy_replacing(from: &Path, to: &Path, replacements: &[(&str, String)]) -> Result<(), String> {
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    std::fs::create_dir_all(to).map_err(|e| io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| io(from, e))? {
        let entry = entry.map_err(|e| io(from, e))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if matches!(entry.file_name().to_str(), Some("node_modules" | "dist" | "target")) {
            continue;
        }
        if source.is_dir() {
            copy_replacing(&source, &target, replacements)?;
        } else {
            let text = std::fs::read_to_string(&source).map_err(|e| io(&source, e))?;
            let text = replacements.iter().fold(text, |text, (from, to)| text.replace(from, to));
            std::fs::write(&target, text).map_err(|e| io(&target, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_background_build_step_that_hangs_is_killed_at_its_deadline_with_what_it_printed() {
        let started = std::time::Instant::now();
        let mut hung = Command::new("sh");
        // A grandchild that would outlive a kill of `sh` alone, holding the log open.
        hung.args(["-c", "echo bundling; sleep 30 & wait"]);
        let (status, text) = run_captured(&mut hung, std::time::Duration::from_millis(300)).expect("runs");
        assert_eq!(status, None, "killed");
        assert_eq!(text, "bundling\n");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let mut fine = Command::new("sh");
        fine.args(["-c", "echo ok; echo warn >&2"]);
        let (status, text) = run_captured(&mut fine, std::time::Duration::from_secs(10)).expect("runs");
        assert!(status.is_some_and(|s| s.success()));
        assert_eq!(text, "ok\nwarn\n");
    }
}

//! `vidfarm doctor`: per capability, whether this machine has it and the command that fixes
//! it if not; `serve` (`api`, `worker`) logs the same once at start. Required (missing → exit 1):
//! ffmpeg, ffprobe, Chromium, Node and the Remotion bundle (renders; not with
//! `VIDFARM_REMOTION=off`), the object store, the master key, the trusted registry keys.
//! Optional: the wasm32-wasip2 target (templates are prebuilt into the binary), platform
//! provider keys (customers may bring their own) and files other hosts can read (one host on a
//! PostgreSQL database may keep its files local).

use super::{failure, usage};
use crate::config::{Config, Environment};
use crate::render::RemotionMode;
use clap::Args;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

/// Every external command and the S3 request get this long.
const TIMEOUT: Duration = Duration::from_secs(10);
const SETUP: &str = "scripts/setup.sh";
const FFMPEG_FIX: &str = "scripts/setup.sh or apt-get install ffmpeg";
const CHROMIUM_FIX: &str = "scripts/setup.sh or apt-get install chromium";
const NODE_FIX: &str = "scripts/setup.sh or apt-get install nodejs";
const CHROMIUM: &str = "chromium";
const NODE: &str = "node";
const BUNDLE: &str = "remotion bundle";
/// The two optional capabilities; every other one is required.
const WASM: &str = "wasm32-wasip2 target";
const PROVIDER_KEYS: &str = "platform provider keys";
const SHARED_FILES: &str = "files other hosts read";

#[derive(Args)]
pub struct DoctorArgs {
    /// Data directory: SQLite file, local object store, compiled cache [env: VIDFARM_DATA_DIR].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print the checks as a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// One capability's state.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Check {
    /// What was checked (`ffmpeg`, `master key` …): stable, so scripts and logs can key on it.
    pub capability: &'static str,
    /// Whether the host can use it now: decides the marker, the log level and the exit code.
    pub ready: bool,
    /// What was found (a version, a path, a bucket) or why it is missing, so nobody has to
    /// repeat the check by hand. Never a secret's value.
    pub detail: String,
    /// The command or setting that makes it ready; `None` when ready, so nothing is fixed twice.
    pub fix: Option<String>,
}

impl Check {
    fn ok(capability: &'static str, detail: impl Into<String>) -> Self {
        Self { capability, ready: true, detail: detail.into(), fix: None }
    }

    fn missing(capability: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { capability, ready: false, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// Whether serving or rendering needs `check`'s capability (see the module docs).
pub fn required(check: &Check) -> bool {
    !matches!(check.capability, WASM | PROVIDER_KEYS | SHARED_FILES)
}

/// `vidfarm doctor [--json]`: exit 1 when a required capability is missing.
pub async fn run(args: DoctorArgs) -> ExitCode {
    let config = match super::platform::config(args.data_dir, None) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let checks = checks(&config).await;
    if args.json {
        match serde_json::to_string_pretty(&checks) {
            Ok(json) => println!("{json}"),
            Err(e) => return failure(e),
        }
    } else {
        print!("{}", render(&checks));
    }
    if checks.iter().any(|c| !c.ready && required(c)) { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// Log every check once (at start): info when ready, warn with the fix when not.
pub async fn log(config: Config) {
    for check in checks(&config).await {
        if check.ready {
            tracing::info!(capability = check.capability, detail = %check.detail, "ready");
        } else {
            let (fix, needed) = (check.fix.as_deref().unwrap_or_default(), required(&check));
            tracing::warn!(capability = check.capability, detail = %check.detail, fix, required = needed, "not ready");
        }
    }
}

/// Every check, in the order the table shows them; the slow ones run concurrently.
pub async fn checks(config: &Config) -> Vec<Check> {
    let ffmpeg = &config.render.ffmpeg;
    let (wasm, ffmpeg, ffprobe, [chromium, node, bundle], store) = tokio::join!(
        wasm_target(),
        binary("ffmpeg", &ffmpeg.ffmpeg, "-version", FFMPEG_FIX),
        binary("ffprobe", &ffmpeg.ffprobe, "-version", FFMPEG_FIX),
        remotion(config),
        object_store(config),
    );
    let mut all = vec![wasm, ffmpeg, ffprobe, chromium, node, bundle, store];
    all.extend([provider_keys(config), master_key(config), trusted(config), shared_files(config)]);
    all
}

/// The table `doctor` prints: a marker, the capability, what was found, and the fix.
pub fn render(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.capability.len()).max().unwrap_or(0);
    let mut out = String::new();
    for check in checks {
        let marker = if check.ready { "ok" } else { "MISSING" };
        let mut line = format!("{marker:<7}  {:<width$}  {}", check.capability, check.detail);
        if let (false, Some(fix)) = (check.ready, &check.fix) {
            let _ = write!(line, "  fix: {fix}");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// The first non-empty line `program args` prints (stdout, else stderr), or why there is none.
async fn first_line(program: &str, args: &[&str]) -> Result<String, String> {
    let shown = format!("`{program} {}`", args.join(" "));
    let mut command = tokio::process::Command::new(program);
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let output = match tokio::time::timeout(TIMEOUT, command.output()).await {
        Err(_) => return Err(format!("{shown} did not answer within {} s", TIMEOUT.as_secs())),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return Err(format!("`{program}` not found")),
        Ok(Err(e)) => return Err(format!("cannot run `{program}`: {e}")),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        return Err(format!("{shown} exited with {}", output.status));
    }
    let text = if output.stdout.is_empty() { output.stderr } else { output.stdout };
    let text = String::from_utf8_lossy(&text);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    line.map(str::to_string).ok_or_else(|| format!("{shown} printed nothing"))
}

/// `ffmpeg version 5.1.6-0+deb12u1 Copyright …` → `ffmpeg version 5.1.6-0+deb12u1`.
fn version(line: &str) -> String {
    match line.find(" version ") {
        Some(at) => {
            let number = line[at + " version ".len()..].split_whitespace().next().unwrap_or_default();
            format!("{} version {number}", &line[..at])
        }
        None => line.chars().take(80).collect(),
    }
}

/// A binary that answers `program arg` with its version.
async fn binary(capability: &'static str, program: &str, arg: &str, fix: &str) -> Check {
    match first_line(program, &[arg]).await {
        Ok(line) if program.contains('/') => Check::ok(capability, format!("{} at {program}", version(&line))),
        Ok(line) => Check::ok(capability, version(&line)),
        Err(why) => Check::missing(capability, why, fix),
    }
}

async fn wasm_target() -> Check {
    const NAME: &str = WASM;
    const FIX: &str = "rustup target add wasm32-wasip2";
    const OPTIONAL: &str = "only `vidfarm template build` needs it; the example templates are built in";
    let sysroot = match first_line("rustc", &["--print", "sysroot"]).await {
        Ok(sysroot) => PathBuf::from(sysroot),
        Err(why) => return Check::missing(NAME, format!("{why} ({OPTIONAL})"), FIX),
    };
    if sysroot.join("lib/rustlib/wasm32-wasip2/lib").is_dir() {
        Check::ok(NAME, format!("installed in {}", sysroot.display()))
    } else {
        Check::missing(NAME, format!("not installed in {} ({OPTIONAL})", sysroot.display()), FIX)
    }
}

/// Chromium, Node and the bundle, as the configured Remotion mode needs them.
async fn remotion(config: &Config) -> [Check; 3] {
    let chromium = |path: String| async move { binary(CHROMIUM, &path, "--version", CHROMIUM_FIX).await };
    let node = |path: String| async move { binary(NODE, &path, "--version", NODE_FIX).await };
    match &config.render.remotion {
        Some(settings) => match &settings.mode {
            RemotionMode::Local => {
                let (c, n) = tokio::join!(chromium(settings.chromium.clone()), node(settings.node.clone()));
                [c, n, bundle(&settings.script, Path::new(&settings.serve_url))]
            }
            RemotionMode::Lambda { region, function_name } => [
                Check::ok(CHROMIUM, "not needed: Remotion renders on Lambda"),
                node(settings.node.clone()).await,
                Check::ok(BUNDLE, format!("{} for Lambda `{function_name}` in {region}", settings.serve_url)),
            ],
        },
        None if env("VIDFARM_REMOTION").is_some_and(|m| m == "off") => {
            let off = |capability: &'static str| Check::ok(capability, "not needed: VIDFARM_REMOTION=off");
            [off(CHROMIUM), off(NODE), off(BUNDLE)]
        }
        None => {
            // Local mode, but the configuration found no script or bundle: check the defaults.
            let dir = PathBuf::from(env("VIDFARM_REMOTION_DIR").unwrap_or_else(|| "renderers/remotion".into()));
            let built = env("VIDFARM_REMOTION_BUNDLE").map(PathBuf::from).unwrap_or_else(|| dir.join("build"));
            let (c, n) = tokio::join!(
                chromium(env("VIDFARM_CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into())),
                node(env("VIDFARM_NODE").unwrap_or_else(|| "node".into())),
            );
            [c, n, bundle(&dir.join("render.mjs"), &built)]
        }
    }
}

/// The renderer script and a built bundle (its `index.html`).
fn bundle(script: &Path, dir: &Path) -> Check {
    let index = dir.join("index.html");
    if !script.is_file() {
        Check::missing(BUNDLE, format!("no renderer script at {}", script.display()), SETUP)
    } else if !index.is_file() {
        Check::missing(BUNDLE, format!("no {}: the bundle is not built", index.display()), SETUP)
    } else {
        Check::ok(BUNDLE, dir.display().to_string())
    }
}

async fn object_store(config: &Config) -> Check {
    const NAME: &str = "object store";
    let Some(s3) = &config.s3 else {
        return local_store(NAME, &config.data_dir.join("objects"));
    };
    let place = format!("S3 bucket `{}` at {} ({})", s3.bucket, s3.endpoint.as_deref().unwrap_or("AWS"), s3.region);
    let fix = "check VIDFARM_S3_BUCKET, VIDFARM_S3_ENDPOINT and the S3 credentials";
    let store = crate::storage::S3ObjectStore::new(s3, config.file_url_ttl);
    match tokio::time::timeout(TIMEOUT, store.check_bucket()).await {
        Ok(Ok(())) => Check::ok(NAME, format!("{place} is reachable")),
        Ok(Err(e)) => Check::missing(NAME, format!("{place}: {e}"), fix),
        Err(_) => Check::missing(NAME, format!("{place} did not answer within {} s", TIMEOUT.as_secs()), fix),
    }
}

/// The local store's directory is writable (or, before the first start, its nearest parent).
fn local_store(name: &'static str, root: &Path) -> Check {
    let existing = root.ancestors().find(|p| p.is_dir()).unwrap_or(Path::new("."));
    match tempfile::Builder::new().prefix(".vidfarm-doctor-").tempfile_in(existing) {
        Ok(_) if existing == root => Check::ok(name, format!("{} is writable", root.display())),
        Ok(_) => Check::ok(name, format!("{} (created at start in {}, writable)", root.display(), existing.display())),
        Err(e) => Check::missing(
            name,
            format!("cannot write in {}: {e}", existing.display()),
            "make the data dir writable for this user, or set VIDFARM_DATA_DIR",
        ),
    }
}

/// Which providers have a platform key: names only, never values.
fn provider_keys(config: &Config) -> Check {
    use crate::providers::{ALL, provider_name};
    let set: Vec<&str> = config.providers.platform_keys.iter().map(|k| provider_name(k.provider)).collect();
    let unset: Vec<&str> = ALL.into_iter().map(provider_name).filter(|p| !set.contains(p)).collect();
    let detail = format!("set: [{}]; not set: [{}]", set.join(", "), unset.join(", "));
    if unset.is_empty() {
        return Check::ok(PROVIDER_KEYS, detail);
    }
    let prefix = if config.env == Environment::Production { "VIDFARM_PLATFORM_" } else { "" };
    let names: Vec<String> = unset.iter().map(|p| format!("{prefix}{}_API_KEY", p.to_ascii_uppercase())).collect();
    let fix = format!("set {} (or customers add their own: vidfarm provider-keys)", names.join(", "));
    Check::missing(PROVIDER_KEYS, detail, fix)
}

fn master_key(config: &Config) -> Check {
    const NAME: &str = "master key";
    const FIX: &str = "VIDFARM_MASTER_KEY=$(openssl rand -base64 32)";
    let file = config.data_dir.join("master.key");
    match config.providers.master_key.as_deref() {
        Some(text) => match crate::providers::MasterKey::parse(text) {
            Ok(_) => Check::ok(NAME, "VIDFARM_MASTER_KEY is set"),
            Err(e) => Check::missing(NAME, e.to_string(), FIX),
        },
        None if config.env == Environment::Production => {
            Check::missing(NAME, "VIDFARM_MASTER_KEY is not set; production requires it", FIX)
        }
        None if file.is_file() => Check::ok(NAME, format!("development key kept in {}", file.display())),
        None => Check::ok(NAME, format!("development: generated at start into {}", file.display())),
    }
}

fn trusted(config: &Config) -> Check {
    const NAME: &str = "trusted registry keys";
    const FIX: &str = "set VIDFARM_TRUSTED_KEYS to the public lines `vidfarm registry keygen` prints";
    let development = config.env == Environment::Development;
    match config.trusted_keys() {
        Err(e) => Check::missing(NAME, format!("VIDFARM_TRUSTED_KEYS is unusable: {e}"), FIX),
        Ok(keys) if keys.is_empty() && development && config.registry_s3.is_some() => Check::ok(
            NAME,
            "none configured; development trusts its own key, derived from the master key (the registry is shared)",
        ),
        Ok(keys) if keys.is_empty() && development => {
            Check::ok(NAME, "none configured; development trusts its own key (registry-dev.key in the data dir)")
        }
        Ok(keys) if keys.is_empty() => {
            Check::missing(NAME, "VIDFARM_TRUSTED_KEYS is empty: every template in the registry is refused", FIX)
        }
        Ok(_) => Check::ok(NAME, "configured in VIDFARM_TRUSTED_KEYS"),
    }
}

/// With a database other hosts may share, whether the objects and the registry are somewhere
/// they can read too: a local folder is this host's, and a job another host ran would name
/// files nobody here has (or a template version only this host serves).
fn shared_files(config: &Config) -> Check {
    let fix = "set VIDFARM_S3_BUCKET and VIDFARM_REGISTRY_S3_BUCKET (docs/operations.md, Scaling out)";
    if config.database_url.is_none() {
        return Check::ok(SHARED_FILES, "none: SQLite is this machine's alone");
    }
    let local: Vec<&str> = [(config.s3.is_none(), "the object store"), (config.registry_s3.is_none(), "the registry")]
        .into_iter()
        .filter_map(|(local, what)| local.then_some(what))
        .collect();
    let own_master_key = config.env == Environment::Development && config.providers.master_key.is_none();
    if local.is_empty() && own_master_key {
        // Each host would derive its own key from its own master key and refuse the others'
        // built-ins (and could not read their provider secrets).
        let detail = "development hosts sharing the registry bucket sign with a key derived from the master key, \
                      but VIDFARM_MASTER_KEY is not set: this host's is its own (master.key in its data dir)";
        return Check::missing(SHARED_FILES, detail, "set the same VIDFARM_MASTER_KEY on every host");
    }
    if local.is_empty() {
        return Check::ok(SHARED_FILES, "objects and the registry are in S3, beside the shared database");
    }
    let detail = format!(
        "the database is PostgreSQL, which other hosts may share, but {} on this host's disk: \
         other hosts cannot read it (fine for one host)",
        if local.len() == 2 { "the object store and the registry are".to_string() } else { format!("{} is", local[0]) }
    );
    Check::missing(SHARED_FILES, detail, fix)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

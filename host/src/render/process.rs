//! How render processes start: with a cleared environment plus an allow-list (FFmpeg, Node and
//! Chromium never see the master key, the admin token or the S3 keys the host runs with), and
//! under resource limits set by util-linux's `prlimit` (no `unsafe` `pre_exec` in the host):
//! CPU seconds and the largest file a render may write for every process; address space too
//! for FFmpeg (Chromium and V8 reserve huge virtual ranges, so Node's tree is bounded by CPU
//! time, file size and the render timeout instead).

use tokio::process::Command;

/// Variables a render process may inherit: where programs are, the locale, the time zone.
const ALLOWED: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// Limits of one render process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessLimits {
    /// RLIMIT_CPU: seconds of CPU the process may use.
    pub cpu_seconds: u64,
    /// RLIMIT_FSIZE: the largest file it may write (its output).
    pub file_bytes: u64,
    /// RLIMIT_AS: its address space, when it can live with one.
    pub address_space_bytes: Option<u64>,
}

/// [`confined`], and also cut off from every network but a loopback of its own: in a new user
/// and network namespace (util-linux `unshare`, no privileges needed where the kernel allows
/// unprivileged user namespaces), whose `lo` iproute2 brings up. For renders that run a
/// template's own code in Chromium: Remotion serves the bundle and drives Chromium over
/// loopback, the host has already inlined every input, and nothing else is reachable.
/// With a `view`, the process also gets a mount namespace in which `view.hide` (the data dir:
/// the database, keys, the registry, every customer's files) is an empty tmpfs but for the
/// bundle (read-only) and the scratch directory it renders into.
pub fn confined_offline(
    program: &str,
    limits: ProcessLimits,
    extra: &[(String, String)],
    view: Option<&FsView>,
) -> Command {
    let inner = confined(program, limits, extra);
    let std = inner.as_std();
    let mut command = Command::new("unshare");
    command.args(["--net", "--mount", "--map-root-user", "--", "sh", "-c", ISOLATE, "sh"]);
    match view {
        Some(view) => command.arg(&view.hide).arg(&view.bundle).arg(&view.scratch),
        None => command.args(["", "", ""]),
    };
    command
        .arg(std.get_program())
        .args(std.get_args())
        .env_clear()
        .envs(std.get_envs().filter_map(|(k, v)| Some((k, v?))));
    command
}

/// What a template's renderer may see of the host's files (see [`confined_offline`]).
#[derive(Debug, Clone)]
pub struct FsView {
    /// Hidden behind an empty tmpfs: the data dir.
    pub hide: std::path::PathBuf,
    /// Shown again, read-only: the template's unpacked bundle.
    pub bundle: std::path::PathBuf,
    /// Shown again, writable: the render's scratch directory (its output goes there).
    pub scratch: std::path::PathBuf,
}

/// Whether [`confined_offline`] works on this host (checked once: a kernel or container that
/// forbids unprivileged user namespaces makes it fail, and such renders are refused up front).
pub fn can_isolate_network() -> bool {
    static CAN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CAN.get_or_init(|| {
        std::process::Command::new("unshare")
            .args(["--net", "--mount", "--map-root-user", "--", "sh", "-c", ISOLATE, "sh", "", "", "", "true"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Bring the namespace's loopback up; hide `$1` but for `$2` (read-only) and `$3`, staged on a
/// private tmpfs over `/mnt` while `$1` is covered; then become the confined process.
const ISOLATE: &str = r#"fail() { echo "vidfarm: render namespace: $1" >&2; exit 125; }
ip=/usr/sbin/ip; [ -x "$ip" ] || ip=/sbin/ip; [ -x "$ip" ] || ip=ip
"$ip" link set lo up || fail "cannot bring up loopback"
hide=$1 bundle=$2 scratch=$3; shift 3
if [ -n "$hide" ]; then
  mount -t tmpfs -o mode=0700 vidfarm-stage /mnt || fail "cannot stage on /mnt"
  mkdir /mnt/b /mnt/s && mount --bind "$bundle" /mnt/b && mount --bind "$scratch" /mnt/s || fail "cannot stage"
  mount -t tmpfs -o mode=0755 vidfarm-hidden "$hide" || fail "cannot hide the data dir"
  mkdir -p "$bundle" "$scratch" && mount --bind /mnt/b "$bundle" && mount --bind /mnt/s "$scratch" || fail "cannot show"
  mount -o remount,bind,ro "$bundle" || fail "cannot make the bundle read-only"
fi
exec "$@""#;

/// `program` started through `prlimit` with `limits` and a cleared environment, plus `extra`
/// variables the caller names (e.g. the Lambda credentials a Lambda render needs).
pub fn confined(program: &str, limits: ProcessLimits, extra: &[(String, String)]) -> Command {
    let mut command = Command::new("prlimit");
    command.arg(format!("--cpu={}", limits.cpu_seconds)).arg(format!("--fsize={}", limits.file_bytes));
    if let Some(bytes) = limits.address_space_bytes {
        command.arg(format!("--as={bytes}"));
    }
    command.arg("--").arg(program).env_clear();
    for name in ALLOWED {
        if let Ok(value) = std::env::var(name) {
            command.env(name, value);
        }
    }
    command.envs(extra.iter().map(|(k, v)| (k, v)));
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_render_process_sees_no_secret_of_the_host_and_runs_under_its_limits() {
        // The test runs under cargo: its CARGO_* and RUST* variables stand for the host's secrets.
        let limits = ProcessLimits { cpu_seconds: 7, file_bytes: 1 << 20, address_space_bytes: Some(1 << 31) };
        let shown = confined("sh", limits, &[("ALLOWED_EXTRA".into(), "yes".into())])
            .args(["-c", "env; echo cpu=$(ulimit -t) fsize=$(ulimit -f)"])
            .output()
            .await
            .expect("sh runs");
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(text.contains("ALLOWED_EXTRA=yes") && text.contains("PATH="), "{text}");
        assert!(!text.contains("CARGO") && !text.contains("RUST"), "the host's environment leaked: {text}");
        assert!(text.contains("cpu=7"), "{text}");
        assert!(text.contains("fsize=2048"), "1 MiB in 512-byte blocks: {text}");
    }

    #[tokio::test]
    async fn an_offline_render_process_has_loopback_and_nothing_else() {
        let listener = std::net::TcpListener::bind("0.0.0.0:0").expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let limits = ProcessLimits { cpu_seconds: 7, file_bytes: 1 << 20, address_space_bytes: None };
        let script = format!(
            "env; echo cpu=$(ulimit -t); cat /proc/net/dev | grep -c ':' ; \
             (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo reached || echo unreachable"
        );
        let shown = confined_offline("bash", limits, &[], None).args(["-c", &script]).output().await.expect("runs");
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.status.success(), "{text} {}", String::from_utf8_lossy(&shown.stderr));
        assert!(!text.contains("CARGO") && text.contains("cpu=7"), "{text}");
        // Only `lo` in its namespace; the host's port on loopback is another namespace's.
        assert!(text.lines().any(|l| l.trim() == "1"), "one interface: {text}");
        assert!(text.contains("unreachable"), "{text}");
    }

    #[tokio::test]
    async fn an_offline_render_process_sees_its_bundle_and_scratch_but_nothing_else_of_the_data_dir() {
        let data = tempfile::tempdir().expect("a data dir");
        let (bundle, scratch) = (data.path().join("bundles/t/d"), data.path().join("render-work/r1"));
        std::fs::create_dir_all(&bundle).expect("a bundle dir");
        std::fs::create_dir_all(&scratch).expect("a scratch dir");
        std::fs::write(data.path().join("vidfarm.db"), "the database").expect("written");
        std::fs::write(bundle.join("index.html"), "<html>").expect("written");
        let view = FsView { hide: data.path().into(), bundle: bundle.clone(), scratch: scratch.clone() };
        let limits = ProcessLimits { cpu_seconds: 7, file_bytes: 1 << 20, address_space_bytes: None };
        let script = format!(
            "cat {db} 2>/dev/null || echo no-db; cat {index}; echo out > {out}; \
             (echo x > {index}) 2>/dev/null && echo bundle-writable || echo bundle-read-only",
            db = data.path().join("vidfarm.db").display(),
            index = bundle.join("index.html").display(),
            out = scratch.join("output.mp4").display(),
        );
        let shown =
            confined_offline("bash", limits, &[], Some(&view)).args(["-c", &script]).output().await.expect("runs");
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.status.success(), "{text} {}", String::from_utf8_lossy(&shown.stderr));
        assert!(text.contains("no-db") && !text.contains("the database"), "{text}");
        assert!(text.contains("<html>") && text.contains("bundle-read-only"), "{text}");
        assert_eq!(std::fs::read_to_string(scratch.join("output.mp4")).expect("the output"), "out\n");
        assert_eq!(std::fs::read_to_string(data.path().join("vidfarm.db")).expect("untouched"), "the database");
    }
}

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
pub fn confined_offline(program: &str, limits: ProcessLimits, extra: &[(String, String)]) -> Command {
    let inner = confined(program, limits, extra);
    let std = inner.as_std();
    let mut command = Command::new("unshare");
    command
        .args(["--net", "--map-root-user", "--", "sh", "-c", LOOPBACK_UP, "sh"])
        .arg(std.get_program())
        .args(std.get_args())
        .env_clear()
        .envs(std.get_envs().filter_map(|(k, v)| Some((k, v?))));
    command
}

/// Whether [`confined_offline`] works on this host (checked once: a kernel or container that
/// forbids unprivileged user namespaces makes it fail, and such renders are refused up front).
pub fn can_isolate_network() -> bool {
    static CAN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CAN.get_or_init(|| {
        std::process::Command::new("unshare")
            .args(["--net", "--map-root-user", "--", "sh", "-c", LOOPBACK_UP, "sh", "true"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Bring the namespace's loopback up, then become the confined process.
const LOOPBACK_UP: &str = "ip=/usr/sbin/ip; [ -x \"$ip\" ] || ip=/sbin/ip; [ -x \"$ip\" ] || ip=ip; \
     \"$ip\" link set lo up || { echo 'vidfarm: cannot bring up loopback in the render namespace' >&2; exit 125; }; \
     exec \"$@\"";

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
        let shown = confined_offline("bash", limits, &[]).args(["-c", &script]).output().await.expect("runs");
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.status.success(), "{text} {}", String::from_utf8_lossy(&shown.stderr));
        assert!(!text.contains("CARGO") && text.contains("cpu=7"), "{text}");
        // Only `lo` in its namespace; the host's port on loopback is another namespace's.
        assert!(text.lines().any(|l| l.trim() == "1"), "one interface: {text}");
        assert!(text.contains("unreachable"), "{text}");
    }
}

//! Remotion renders through `renderers/remotion/render.mjs` (Node): the host writes one JSON
//! request to its stdin and reads JSON lines back (`progress`, then `done` or `error`). Local
//! mode renders a pre-built bundle in Debian Chromium; Lambda mode drives
//! `renderMediaOnLambda` and downloads the result. Cancelling kills the process group (SIGTERM, then SIGKILL).
//! A Lambda render's id comes back as a `started` line and is stored (see `Remote`); a host
//! shutting down kills the script without cancelling the Lambda render, which the next
//! attempt resumes.

use super::{Failure, Progress};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq)]
pub enum RemotionMode {
    Local,
    Lambda { region: String, function_name: String },
}

impl RemotionMode {
    pub fn backend_name(&self) -> &'static str {
        match self {
            RemotionMode::Local => "remotion-local",
            RemotionMode::Lambda { .. } => "remotion-lambda",
        }
    }
}

/// `VIDFARM_REMOTION_*`.
#[derive(Debug, Clone)]
pub struct RemotionSettings {
    pub mode: RemotionMode,
    pub node: String,
    /// `render.mjs`.
    pub script: PathBuf,
    /// The bundle to render when a request names none: a directory (local) or URL (Lambda).
    pub serve_url: String,
    /// Other bundles a request may name in `serve-url` (a bundle is code Chromium runs here,
    /// so templates may not bring their own): `VIDFARM_REMOTION_OTHER_BUNDLES`.
    pub other_bundles: Vec<String>,
    pub chromium: String,
    /// Frames Chromium renders in parallel.
    pub concurrency: u32,
    /// Extra environment for the script (Lambda credentials and endpoint).
    pub env: Vec<(String, String)>,
}

impl RemotionSettings {
    /// Local renders with the renderer in `dir` (its `render.mjs` and bundled `build/`),
    /// Debian's Chromium, one frame at a time.
    pub fn local(dir: &Path) -> Self {
        Self {
            mode: RemotionMode::Local,
            node: "node".into(),
            script: dir.join("render.mjs"),
            serve_url: dir.join("build").display().to_string(),
            other_bundles: Vec::new(),
            chromium: "/usr/bin/chromium".into(),
            concurrency: 1,
            env: Vec::new(),
        }
    }
}

pub struct Request<'a> {
    pub composition_id: &'a str,
    pub serve_url: Option<&'a str>,
    /// `serve_url` is a template's own bundle (not one built from this renderer's compositions).
    pub template_bundle: bool,
    /// For a template's bundle: the directory its renderer must not see (the data dir).
    pub hide: Option<&'a Path>,
    pub input_props: &'a serde_json::Value,
    pub output: &'a Path,
    /// Lambda: the render to resume, where its id goes once started, and when to leave it be.
    pub remote: &'a super::Remote,
}

pub struct Remotion<'a> {
    pub settings: &'a RemotionSettings,
    /// The Node process's limits (CPU seconds, output size; no address-space cap: V8 and
    /// Chromium reserve more than any sane cap).
    pub limits: super::process::ProcessLimits,
}

impl Remotion<'_> {
    pub async fn render(
        &self,
        request: &Request<'_>,
        progress: &watch::Sender<Progress>,
        cancel: &CancellationToken,
    ) -> Result<(), Failure> {
        let (settings, limits) = (self.settings, self.limits);
        let serve_url = request.serve_url.unwrap_or(&settings.serve_url);
        let mut body = serde_json::json!({
            "compositionId": request.composition_id,
            "serveUrl": serve_url,
            "inputProps": request.input_props,
            "outputPath": request.output,
            "browserExecutable": settings.chromium,
            "concurrency": settings.concurrency,
            "templateBundle": request.template_bundle,
        });
        match &settings.mode {
            RemotionMode::Local => body["mode"] = "local".into(),
            RemotionMode::Lambda { region, function_name } => {
                body["mode"] = "lambda".into();
                body["region"] = region.as_str().into();
                body["functionName"] = function_name.as_str().into();
                if let Some(resume) = &request.remote.resume {
                    body["resume"] = resume.as_str().into();
                }
            }
        }
        // A cleared environment: the Lambda credentials (when configured) and nothing else.
        // A template's own bundle is the template's code: it renders with no network at all.
        let mut command = if request.template_bundle {
            let view = match (request.hide, request.output.parent()) {
                (Some(hide), Some(scratch)) => Some(super::process::FsView {
                    hide: hide.to_path_buf(),
                    bundle: PathBuf::from(serve_url),
                    scratch: scratch.to_path_buf(),
                }),
                _ => None,
            };
            super::process::confined_offline(&settings.node, limits, &settings.env, view.as_ref())
        } else {
            super::process::confined(&settings.node, limits, &settings.env)
        };
        command
            .arg(&settings.script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group, so cancelling takes Chromium down with it.
            .process_group(0);
        let mut child = command.spawn().map_err(|e| Failure::Failed(format!("cannot run {}: {e}", settings.node)))?;
        let pid = child.id();
        let mut stdin = child.stdin.take().ok_or_else(|| Failure::Failed("node has no stdin".into()))?;
        stdin.write_all(body.to_string().as_bytes()).await.map_err(|e| Failure::Failed(format!("node stdin: {e}")))?;
        drop(stdin);
        let stdout = child.stdout.take().ok_or_else(|| Failure::Failed("node has no stdout".into()))?;
        let mut stderr = child.stderr.take().ok_or_else(|| Failure::Failed("node has no stderr".into()))?;
        let logs = tokio::spawn(async move {
            let mut text = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
            text
        });
        progress.send_modify(|p| p.stage = "rendering");
        let mut lines = BufReader::new(stdout).lines();
        let mut outcome: Option<Result<(), Failure>> = None;
        let reading = async {
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                match event["event"].as_str() {
                    Some("progress") => {
                        let fraction = event["progress"].as_f64().unwrap_or(0.0).clamp(0.0, 1.0);
                        progress.send_modify(|p| p.fraction = p.fraction.max(fraction));
                    }
                    Some("started") => {
                        if let (Some(id), Some(started)) = (event["externalId"].as_str(), &request.remote.started) {
                            started.send_replace(Some(id.to_string()));
                        }
                    }
                    Some("done") => outcome = Some(Ok(())),
                    Some("error") => {
                        let message = event["message"].as_str().unwrap_or("the render failed").to_string();
                        outcome = Some(Err(if event["kind"] == "invalid_request" {
                            Failure::Invalid(message)
                        } else {
                            Failure::Failed(message)
                        }));
                    }
                    _ => {}
                }
            }
            child.wait().await
        };
        let status = tokio::select! {
            status = reading => Some(status.map_err(|e| Failure::Failed(format!("node: {e}")))?),
            _ = cancel.cancelled() => None,
        };
        let Some(status) = status else {
            if request.remote.detach.is_cancelled() && matches!(settings.mode, RemotionMode::Lambda { .. }) {
                // This host is shutting down: the Lambda render goes on, and the next attempt
                // resumes it by its stored id. SIGKILL, so the script cannot cancel it.
                signal_group(pid, "-KILL");
                let _ = child.wait().await;
                return Err(Failure::Cancelled);
            }
            // SIGTERM lets the script cancel the render and close Chromium cleanly; whatever
            // is left of the group after a grace period is killed.
            signal_group(pid, "-TERM");
            let _ = tokio::time::timeout(std::time::Duration::from_secs(3), child.wait()).await;
            signal_group(pid, "-KILL");
            return Err(Failure::Cancelled);
        };
        let logs = logs.await.unwrap_or_default();
        match outcome {
            Some(Ok(())) if status.success() => Ok(()),
            Some(Err(failure)) => Err(failure),
            _ => Err(Failure::Failed(format!("the Remotion script exited with {status}: {}", died_with(&logs)))),
        }
    }
}

/// What a script that ended without its error line left in its log: the last error Node
/// printed (it prints the thrown error above the stack and its own version last), else the
/// last line.
fn died_with(logs: &str) -> &str {
    let lines = || logs.lines().map(str::trim).filter(|l| !l.is_empty());
    lines()
        .rev()
        .find(|l| !l.starts_with("at ") && l.contains("Error"))
        .or_else(|| lines().next_back())
        .unwrap_or("no message")
}

/// Signal the render's whole process group (node and the Chromium it started), through
/// kill(1): the crate forbids `unsafe`, and this runs once per cancelled render.
fn signal_group(pid: Option<u32>, signal: &str) {
    if let Some(pid) = pid {
        let _ = std::process::Command::new("kill")
            .args([signal, "--", &format!("-{pid}")])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::died_with;

    #[test]
    fn a_script_that_died_is_reported_by_the_error_it_threw_not_by_nodes_version() {
        let logs = "render-local: selecting\nfile:///r/render.mjs:12\n        throw err;\n        ^\n\n\
                    TypeError: Cannot read properties of undefined (reading 'close')\n    at Socket.<anonymous> (x.js:1:2)\n\
                    {\n  code: 'X'\n}\n\nNode.js v20.20.2\n";
        assert_eq!(died_with(logs), "TypeError: Cannot read properties of undefined (reading 'close')");
        assert_eq!(died_with("just a line\n\n"), "just a line");
        assert_eq!(died_with(""), "no message");
    }
}

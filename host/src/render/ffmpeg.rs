//! Debian's `ffmpeg`/`ffprobe` as child processes: probe a source's length, run a command
//! reporting progress from `-progress pipe:1`, and die with the render when it is cancelled.

use super::process::{ProcessLimits, confined};
use super::timeline::Probe;
use super::{Failure, Progress};
use std::path::Path;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Where the binaries are (`VIDFARM_FFMPEG`, `VIDFARM_FFPROBE`).
#[derive(Debug, Clone)]
pub struct Ffmpeg {
    pub ffmpeg: String,
    pub ffprobe: String,
}

impl Ffmpeg {
    /// The length and streams of a local file.
    pub async fn probe(&self, path: &Path, field: &str, limits: ProcessLimits) -> Result<Probe, Failure> {
        let output = confined(&self.ffprobe, limits, &[])
            .args(["-v", "error", "-show_entries", "format=duration,format_name:stream=codec_type,width,height"])
            .args(["-of", "json"])
            .args(["-protocol_whitelist", "file,pipe", "-format_whitelist", super::timeline::SOURCE_FORMATS])
            .arg(path)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| Failure::Failed(format!("cannot run {}: {e}", self.ffprobe)))?;
        if !output.status.success() {
            return Err(Failure::Invalid(format!("{field}: not a media file ffprobe can read")));
        }
        let info: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        let streams = info["streams"].as_array().cloned().unwrap_or_default();
        let has = |kind: &str| streams.iter().any(|s| s["codec_type"] == kind);
        // A decompression bomb (a small PNG of 100,000 × 100,000 pixels) is refused from its
        // header, before any decoder allocates its frames (the render's decoders also run
        // under `-max_pixels`; ffprobe is not given it, as it then reports no size at all).
        for stream in streams.iter().filter(|s| s["codec_type"] == "video") {
            let (width, height) = (stream["width"].as_u64().unwrap_or(0), stream["height"].as_u64().unwrap_or(0));
            if width.saturating_mul(height) > super::timeline::MAX_INPUT_PIXELS {
                return Err(Failure::Invalid(format!(
                    "{field}: {width}×{height} pixels is more than a source may have (8K: 7680×4320)"
                )));
            }
        }
        // Still images report an `image2`/`*_pipe` format and no meaningful duration.
        let format = info["format"]["format_name"].as_str().unwrap_or_default();
        let still = format.contains("image2") || format.ends_with("_pipe") || format == "gif" && !has("audio");
        let duration = info["format"]["duration"].as_str().and_then(|d| d.parse::<f64>().ok()).filter(|d| *d > 0.0);
        Ok(Probe { duration: if still { None } else { duration }, has_audio: has("audio") })
    }

    /// Run ffmpeg with `args` (which end in `-progress pipe:1 <output>`), reporting the
    /// fraction of `total_seconds` done. Cancelling kills the process.
    pub async fn run(
        &self,
        args: &[String],
        total_seconds: f64,
        progress: &watch::Sender<Progress>,
        cancel: &CancellationToken,
        limits: ProcessLimits,
    ) -> Result<(), Failure> {
        progress.send_modify(|p| p.output_seconds = total_seconds);
        let mut child = confined(&self.ffmpeg, limits, &[])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Failure::Failed(format!("cannot run {}: {e}", self.ffmpeg)))?;
        let stdout = child.stdout.take().ok_or_else(|| Failure::Failed("ffmpeg has no stdout".into()))?;
        let mut stderr = child.stderr.take().ok_or_else(|| Failure::Failed("ffmpeg has no stderr".into()))?;
        let errors = tokio::spawn(async move {
            let mut text = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
            text
        });
        let mut lines = BufReader::new(stdout).lines();
        let reading = async {
            while let Ok(Some(line)) = lines.next_line().await {
                // `out_time_us` (and the misnamed `out_time_ms`) are microseconds.
                if let Some(us) = line.strip_prefix("out_time_us=").and_then(|v| v.trim().parse::<f64>().ok()) {
                    let fraction = (us / 1e6 / total_seconds.max(0.001)).clamp(0.0, 1.0);
                    progress.send_modify(|p| p.fraction = p.fraction.max(fraction));
                }
            }
            child.wait().await
        };
        let status = tokio::select! {
            status = reading => status.map_err(|e| Failure::Failed(format!("ffmpeg: {e}")))?,
            _ = cancel.cancelled() => return Err(Failure::Cancelled), // dropping `child` kills it
        };
        let stderr = errors.await.unwrap_or_default();
        if status.success() {
            progress.send_modify(|p| p.fraction = 1.0);
            Ok(())
        } else {
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
            Err(Failure::Failed(format!("ffmpeg exited with {status}: {last}")))
        }
    }
}

//! Real media for render tests: fixtures made with Debian's `ffmpeg` (installed by
//! tests/run-all.sh) and outputs checked with `ffprobe`.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Run ffmpeg with `args` (inputs from lavfi) writing `out`; panics with its message.
pub fn ffmpeg(args: &[&str], out: &Path) {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(out)
        .output()
        .expect("ffmpeg runs (tests/run-all.sh installs it)");
    assert!(output.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A PNG of one colour.
pub fn png(dir: &Path, name: &str, color: &str, size: &str) -> Vec<u8> {
    let path = dir.join(name);
    ffmpeg(&["-f", "lavfi", "-i", &format!("color=c={color}:s={size}"), "-frames:v", "1"], &path);
    std::fs::read(&path).expect("the PNG")
}

/// An H.264 MP4 test pattern of `seconds`, without audio.
pub fn test_video(dir: &Path, name: &str, seconds: f64, size: &str) -> Vec<u8> {
    let path = dir.join(name);
    let source = format!("testsrc=size={size}:rate=25:duration={seconds}");
    ffmpeg(&["-f", "lavfi", "-i", &source, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"], &path);
    std::fs::read(&path).expect("the MP4")
}

/// An MP3 sine tone of `seconds`.
pub fn tone(dir: &Path, name: &str, seconds: f64, hz: u32) -> Vec<u8> {
    let path = dir.join(name);
    ffmpeg(&["-f", "lavfi", "-i", &format!("sine=frequency={hz}:duration={seconds}"), "-c:a", "libmp3lame"], &path);
    std::fs::read(&path).expect("the MP3")
}

/// What ffprobe says about a media file.
#[derive(Debug, Clone)]
pub struct Probed {
    pub duration: f64,
    pub width: u64,
    pub height: u64,
    /// Codec names of the streams, e.g. `["h264", "aac"]`.
    pub codecs: Vec<String>,
    pub format: String,
}

/// Probe `bytes` (written to a temp file first).
pub fn probe(bytes: &[u8]) -> Probed {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("probe.mp4");
    std::fs::write(&path, bytes).expect("written");
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration,format_name:stream=codec_name,width,height",
            "-of",
            "json",
        ])
        .arg(&path)
        .output()
        .expect("ffprobe runs");
    assert!(output.status.success(), "ffprobe: {}", String::from_utf8_lossy(&output.stderr));
    let info: Value = serde_json::from_slice(&output.stdout).expect("ffprobe JSON");
    let streams = info["streams"].as_array().cloned().unwrap_or_default();
    let video = streams.iter().find(|s| s["width"].is_u64()).cloned().unwrap_or_default();
    Probed {
        duration: info["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0),
        width: video["width"].as_u64().unwrap_or(0),
        height: video["height"].as_u64().unwrap_or(0),
        codecs: streams.iter().filter_map(|s| s["codec_name"].as_str().map(String::from)).collect(),
        format: info["format"]["format_name"].as_str().unwrap_or_default().to_string(),
    }
}

/// Processes whose command line mentions `needle` (e.g. a render's work dir).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(needle) && !text.contains("cargo") {
            found.push(text);
        }
    }
    found
}

/// Processes started with `marker` in their environment (a render's node and its Chromium
/// inherit the variables the test gave the renderer).
pub fn processes_with_env(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if String::from_utf8_lossy(&environ).contains(marker) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(String::from_utf8_lossy(&cmdline).replace('\0', " "));
        }
    }
    found
}

/// A media file's audio stream: how long it lasts and how loud it is on average.
#[derive(Debug, Clone, Copy)]
pub struct AudioTrack {
    pub duration: f64,
    /// ffmpeg `volumedetect`'s mean volume, dBFS (digital silence is -91).
    pub mean_volume_db: f64,
}

/// The first audio stream of `bytes`, or `None` if there is none.
pub fn audio_track(bytes: &[u8]) -> Option<AudioTrack> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("media");
    std::fs::write(&path, bytes).expect("written");
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries", "stream=duration", "-of", "json"])
        .arg(&path)
        .output()
        .expect("ffprobe runs");
    let info: Value = serde_json::from_slice(&probe.stdout).expect("ffprobe JSON");
    let duration = info["streams"][0]["duration"].as_str()?.parse().ok()?;
    let detect = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(&path)
        .args(["-map", "0:a:0", "-af", "volumedetect", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let log = String::from_utf8_lossy(&detect.stderr);
    let mean_volume_db = log
        .lines()
        .find_map(|l| l.split("mean_volume:").nth(1))
        .and_then(|v| v.trim().trim_end_matches("dB").trim().parse().ok())
        .unwrap_or(-91.0);
    Some(AudioTrack { duration, mean_volume_db })
}

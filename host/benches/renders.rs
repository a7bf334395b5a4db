//! What a render costs on this machine: the FFmpeg spec path (720p and 1080p, an image and a
//! tone, 10 s of output) and Remotion (a 3 s title card, a 2-scene slideshow) through the
//! same [`Pipeline`] the render worker uses — fetch, render, probe, store. Medians of 3 runs,
//! in one process. Needs ffmpeg, chromium and the bundled renderer (tests/run-all.sh).
//! `cargo bench -p vidfarm --bench renders`.

use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use vidfarm::capabilities::ObjectStore;
use vidfarm::render::{Ffmpeg, Pipeline, RemotionSettings, RenderScope, RenderSettings, RenderTask};
use vidfarm::storage::LocalObjectStore;

const RUNS: usize = 3;

fn ffmpeg(args: &[&str], out: &Path) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn time(pipeline: &Pipeline, scope: &RenderScope, task: &RenderTask) -> (Duration, f64) {
    let mut times = Vec::new();
    let mut seconds = 0.0;
    for n in 0..RUNS {
        let (progress, _) = watch::channel(Default::default());
        let key = format!("{}/bench-{n}.mp4", scope.artifact_prefix);
        let started = Instant::now();
        let rendered = pipeline
            .run(scope, task, &key, "bench.mp4", &progress, &CancellationToken::new())
            .await
            .unwrap_or_else(|e| panic!("the render fails: {e}"));
        times.push(started.elapsed());
        seconds = rendered.seconds;
    }
    (median(times), seconds)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalObjectStore::new(dir.path().join("objects"), None).expect("a store"));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let remotion = repo.join("renderers/remotion");
    let settings = RenderSettings {
        ffmpeg: Ffmpeg { ffmpeg: "ffmpeg".into(), ffprobe: "ffprobe".into() },
        remotion: Some(RemotionSettings::local(&remotion)),
        slots: 1,
        per_customer: 1,
        generation_slots: 1,
        generation_per_customer: 1,
        max_output_bytes: 8 << 30,
        usd_per_minute: 0.01,
        max_seconds: 10_800.0,
        timeout: Duration::from_secs(600),
        lease: Duration::from_secs(30),
        max_attempts: 3,
        allow_private_sources: true,
        work_dir: dir.path().join("work"),
    };
    let pipeline = Pipeline::new(settings, store.clone(), None);
    let scope = RenderScope::new("bench_r1", "bench", "bench", "cus_bench");
    let fixtures = dir.path().join("fixtures");
    std::fs::create_dir_all(&fixtures).expect("a dir");
    ffmpeg(&["-f", "lavfi", "-i", "testsrc2=size=1920x1080", "-frames:v", "1"], &fixtures.join("still.png"));
    ffmpeg(&["-f", "lavfi", "-i", "sine=frequency=440:duration=10", "-c:a", "libmp3lame"], &fixtures.join("tone.mp3"));
    for name in ["still.png", "tone.mp3"] {
        let bytes = std::fs::read(fixtures.join(name)).expect("a fixture");
        store.put(&format!("{}/{name}", scope.artifact_prefix), bytes, "application/octet-stream").await.expect("put");
    }
    let spec = |w: u32, h: u32| -> RenderTask {
        RenderTask::Spec {
            spec: json!({
                "canvas": { "width": w, "height": h, "fps": 30 },
                "backgrounds": [{ "src": "job:still.png", "type": "image" }],
                "audio": [{ "src": "job:tone.mp3", "fadeIn": 1, "fadeOut": 1 }]
            }),
        }
    };
    let remotion_task = |id: &str, props: Value| RenderTask::Remotion {
        composition_id: id.into(),
        serve_url: None,
        entry_point: None,
        input_props: props,
        bundle: None,
    };
    let cases = [
        ("FFmpeg spec, 1280×720 30 fps, image + tone", spec(1280, 720)),
        ("FFmpeg spec, 1920×1080 30 fps, image + tone", spec(1920, 1080)),
        (
            "Remotion TitleCard, 640×360 30 fps",
            remotion_task(
                "TitleCard",
                json!({ "width": 640, "height": 360, "fps": 30, "text": "Chapter one", "durationSeconds": 3 }),
            ),
        ),
        (
            "Remotion Slideshow, 2 scenes, 1280×720 30 fps",
            remotion_task(
                "Slideshow",
                json!({ "width": 1280, "height": 720, "fps": 30, "scenes": [
                    { "imageUrl": "job:still.png", "text": "First", "durationSeconds": 1.5 },
                    { "imageUrl": "job:still.png", "text": "Second", "durationSeconds": 1.5 } ] }),
            ),
        ),
    ];
    println!("| render | output | median wall time | × real time |");
    println!("|---|---|---|---|");
    for (name, task) in &cases {
        let (took, seconds) = time(&pipeline, &scope, task).await;
        println!("| {name} | {seconds:.1} s | {:.2} s | {:.2} |", took.as_secs_f64(), seconds / took.as_secs_f64());
    }
}

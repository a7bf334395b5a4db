//! Renders through the HTTP API: the `json-to-video` template turns a JSON spec into a real,
//! playable MP4 (checked with ffprobe) on local disk and on S3; the job waits while FFmpeg
//! runs, progress arrives as events, the render is billed once, a bad spec is a 422, a
//! cancelled job kills its FFmpeg, and a restart mid-render re-runs the render (once).

use serde_json::{Value, json};
use std::time::Duration;
use vidfarm_tests::media::{self, Probed};
use vidfarm_tests::s3::S3Server;
use vidfarm_tests::server::TestServer;

const WITHIN: Duration = Duration::from_secs(120);

/// Upload `bytes` into the customer's workspace through `POST /files/sign-upload`.
async fn upload(server: &TestServer, key: &str, bytes: Vec<u8>, content_type: &str) {
    let body = json!({ "key": key, "content_type": content_type, "size": bytes.len() });
    let signed: Value =
        server.post("/files/sign-upload", &body).send().await.expect("sent").json().await.expect("json");
    let url = on_server(server, signed["url"].as_str().expect("a URL"));
    let mut put = server.http.put(&url).body(bytes);
    for (name, value) in signed["headers"].as_object().into_iter().flatten() {
        put = put.header(name.as_str(), value.as_str().expect("a header value"));
    }
    let put = put.send().await.expect("sent");
    assert!(put.status().is_success(), "upload {key}: {}", put.status());
}

/// Host file URLs carry the configured public base: aim them at the test server.
fn on_server(server: &TestServer, url: &str) -> String {
    match url.find("/files/") {
        Some(at) if !url.contains("X-Amz-Signature") => server.url(&url[at..]),
        _ => url.to_string(),
    }
}

/// Workspace fixtures: a still image, a 2 s test pattern and a 3 s tone.
async fn upload_fixtures(server: &TestServer) {
    let dir = tempfile::tempdir().expect("a temp dir");
    upload(server, "in/still.png", media::png(dir.path(), "still.png", "orange", "320x240"), "image/png").await;
    upload(server, "in/clip.mp4", media::test_video(dir.path(), "clip.mp4", 2.0, "320x240"), "video/mp4").await;
    upload(server, "in/voice.mp3", media::tone(dir.path(), "voice.mp3", 3.0, 440), "audio/mpeg").await;
}

/// Backgrounds: the image, then the clip (crossfade); the tone decides the length (3 s).
fn spec() -> Value {
    json!({
        "canvas": { "width": 640, "height": 360, "fps": 25 },
        "backgrounds": [
            { "src": "workspace:in/still.png", "type": "image", "duration": 1.5 },
            { "src": "workspace:in/clip.mp4", "type": "video", "fit": "contain" }
        ],
        "audio": [{ "src": "workspace:in/voice.mp3", "fadeIn": 0.5, "fadeOut": 0.5, "parentDurationDecider": true }],
        "crossfade": 0.5
    })
}

async fn fetch_video(server: &TestServer, job: &Value) -> Probed {
    let url = on_server(server, job["result"]["url"].as_str().expect("a signed URL for the video"));
    let response = server.http.get(&url).send().await.expect("sent");
    assert_eq!(response.status(), 200, "{url}");
    media::probe(&response.bytes().await.expect("bytes"))
}

fn assert_playable(video: &Probed) {
    assert_eq!((video.width, video.height), (640, 360), "{video:?}");
    assert!((video.duration - 3.0).abs() < 0.15, "the tone decides the length: {video:?}");
    assert_eq!(video.codecs, vec!["h264", "aac"], "{video:?}");
    assert!(video.format.contains("mp4"), "{video:?}");
}

#[tokio::test]
async fn json_to_video_renders_a_playable_mp4_on_local_disk_and_bills_it_once() {
    let server = TestServer::start_with(|c| c.render.usd_per_minute = 0.6, true).await;
    upload_fixtures(&server).await;
    let job_id = server.create_job("json-to-video", "render", spec()).await;
    let waiting = server.wait_for("json-to-video", &job_id, &["waiting_for_child"], WITHIN).await;
    assert_eq!(waiting["waiting_for"]["render"], format!("{job_id}_r1"), "the job waits for its render: {waiting}");
    let job = server.wait_for("json-to-video", &job_id, &["succeeded", "failed"], WITHIN).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_playable(&fetch_video(&server, &job).await);
    let key = format!("templates/json-to-video/users/{}/jobs/{job_id}/video.mp4", server.customer.id);
    assert!(std::fs::metadata(server.dir.path().join("objects").join(&key)).is_ok_and(|m| m.len() > 10_000));

    let logs = server.get_json(&format!("/templates/json-to-video/jobs/{job_id}/logs")).await;
    let events = logs["events"].as_array().expect("events");
    let rendering: Vec<&Value> =
        events.iter().filter(|e| e["message"].as_str().is_some_and(|m| m.starts_with("rendering"))).collect();
    assert!(!rendering.is_empty(), "progress events while rendering: {logs}");
    assert!(events.iter().any(|e| e["message"].as_str().is_some_and(|m| m.contains("finished"))), "{logs}");

    let ledger = server.platform.db.job_ledger(&job_id).await.expect("ledger");
    let renders: Vec<_> = ledger.iter().filter(|r| r.event_type == "render").collect();
    assert_eq!(renders.len(), 1, "one render, one charge: {ledger:?}");
    assert!((28_000_000..32_000_000).contains(&renders[0].cost_nusd), "3 s at $0.60/min: {:?}", renders[0]);
}

#[tokio::test]
async fn on_s3_the_sources_come_from_the_bucket_and_the_video_lands_in_it() {
    let s3 = S3Server::start().await;
    let settings = s3.settings.clone();
    let server = TestServer::start_with(move |c| c.s3 = Some(settings), true).await;
    upload_fixtures(&server).await;
    let job_id = server.create_job("json-to-video", "render", spec()).await;
    let job = server.wait_for("json-to-video", &job_id, &["succeeded", "failed"], WITHIN).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let key = format!("templates/json-to-video/users/{}/jobs/{job_id}/video.mp4", server.customer.id);
    assert!(s3.keys().contains(&key), "{:?}", s3.keys());
    assert!(job["result"]["url"].as_str().is_some_and(|u| u.contains("X-Amz-Signature=")), "{job}");
    assert_playable(&fetch_video(&server, &job).await);
}

#[tokio::test]
async fn a_bad_spec_is_refused_with_a_422_naming_the_field() {
    let server = TestServer::start_with(|_| {}, false).await;
    let with = |patch: Value| {
        let mut s = spec();
        for (k, v) in patch.as_object().expect("an object") {
            s[k] = v.clone();
        }
        s
    };
    let five = vec![json!({ "src": "workspace:a.png", "type": "image" }); 5];
    for (payload, field) in [
        (with(json!({ "canvas": { "width": 3840, "height": 2160 } })), "canvas"),
        (with(json!({ "canvas": { "width": 1920, "height": 1920 } })), "canvas"),
        (with(json!({ "canvas": { "width": 641, "height": 360 } })), "canvas/width"),
        (with(json!({ "backgrounds": five })), "backgrounds"),
        (with(json!({ "duration": 20000 })), "duration"),
        (with(json!({ "backgrounds": [{ "src": "/etc/passwd", "type": "image" }] })), "backgrounds/0/src"),
        (with(json!({ "audio": [{ "src": "workspace:a.mp3", "fadeIn": 90 }] })), "audio/0/fadeIn"),
    ] {
        let body = json!({ "tracer": "bad-spec", "payload": payload });
        let response = server.post("/templates/json-to-video/operations/render", &body).send().await.expect("sent");
        assert_eq!(response.status(), 422, "{payload}");
        let error: Value = response.json().await.expect("json");
        let fields: Vec<&str> =
            error["error"]["details"].as_array().into_iter().flatten().filter_map(|d| d["field"].as_str()).collect();
        assert!(fields.iter().any(|f| f.contains(field)), "expected `{field}` in {error}");
    }
    let jobs = server.get_json("/templates/json-to-video/jobs").await;
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(0), "no job was created: {jobs}");
}

#[tokio::test]
async fn a_spec_this_host_could_not_render_within_its_timeout_is_refused_with_a_422() {
    // 1080p30 renders at about 0.5 s per second of output here: 3 h would take 1.5 h, past
    // the 1 h render timeout; 1 h of 360p30 (a quarter of the work at least) fits.
    let server = TestServer::start_with(|c| c.render.timeout = Duration::from_secs(3600), false).await;
    let mut long = spec();
    long["canvas"] = json!({ "width": 1920, "height": 1080, "fps": 30 });
    long["duration"] = json!(10_800);
    let body = json!({ "tracer": "too-long", "payload": long });
    let response = server.post("/templates/json-to-video/operations/render", &body).send().await.expect("sent");
    assert_eq!(response.status(), 422);
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["error"]["details"][0]["field"], "payload.duration", "{error}");
    let problem = error["error"]["details"][0]["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("render timeout of 3600 s"), "{error}");

    let mut fits = spec();
    fits["canvas"] = json!({ "width": 640, "height": 360, "fps": 30 });
    fits["duration"] = json!(3_600);
    let body = json!({ "tracer": "fits", "payload": fits });
    let response = server.post("/templates/json-to-video/operations/render", &body).send().await.expect("sent");
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap_or_default());
    server.stop().await;
}

#[tokio::test]
async fn a_source_that_is_not_media_fails_the_job_naming_it() {
    let server = TestServer::start().await;
    upload_fixtures(&server).await;
    upload(&server, "in/notes.txt", b"not a video".to_vec(), "text/plain").await;
    // A playlist naming a file of the host: FFmpeg must not follow it (only media demuxers).
    let playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/hostname\n#EXT-X-ENDLIST\n";
    upload(&server, "in/list.m3u8", playlist.as_bytes().to_vec(), "application/vnd.apple.mpegurl").await;
    for source in ["workspace:in/notes.txt", "workspace:in/list.m3u8"] {
        let mut bad = spec();
        bad["audio"][0]["src"] = json!(source);
        let job_id = server.create_job("json-to-video", "render", bad).await;
        let job = server.wait_for("json-to-video", &job_id, &["succeeded", "failed"], WITHIN).await;
        assert_eq!(job["error"]["code"], "render_invalid_request", "{source}: {job}");
        assert!(job["error"]["message"].as_str().is_some_and(|m| m.contains("spec.audio[0].src")), "{job}");
        let ledger = server.platform.db.job_ledger(&job_id).await.expect("ledger");
        assert!(ledger.iter().all(|r| r.event_type != "render"), "a failed render is not charged: {ledger:?}");
    }
}

/// A render long enough to cancel or interrupt: 10 minutes of 1280×720 from one image.
fn long_spec() -> Value {
    json!({
        "canvas": { "width": 1280, "height": 720, "fps": 30 },
        "duration": 600,
        "backgrounds": [{ "src": "workspace:in/still.png", "type": "image" }]
    })
}

/// Wait until the job's render reports progress (FFmpeg is running).
async fn wait_until_rendering(server: &TestServer, job_id: &str) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let job = server.job("json-to-video", job_id).await;
        if job["progress_message"].as_str().is_some_and(|m| m.starts_with("rendering: rendering")) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "the render never started: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn cancelling_the_job_kills_its_ffmpeg() {
    let server = TestServer::start().await;
    upload_fixtures(&server).await;
    let job_id = server.create_job("json-to-video", "render", long_spec()).await;
    wait_until_rendering(&server, &job_id).await;
    let work_dir = server.dir.path().join("render-work").display().to_string();
    assert!(
        !media::processes_mentioning(&work_dir).is_empty(),
        "ffmpeg runs in the render's work dir: {:?}",
        media::processes_mentioning("ffmpeg")
    );
    let cancelled = server.post(&format!("/templates/json-to-video/jobs/{job_id}/cancel"), &json!({})).send().await;
    assert!(cancelled.expect("sent").status().is_success());
    let job = server.wait_for("json-to-video", &job_id, &["cancelled"], WITHIN).await;
    assert_eq!(job["status"], "cancelled");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !media::processes_mentioning(&work_dir).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ffmpeg still runs: {:?}",
            media::processes_mentioning(&work_dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let render = server.platform.db.render(&format!("{job_id}_r1")).await.expect("read").expect("the render");
    assert_eq!(render.status, "cancelled");
}

#[tokio::test]
async fn a_restart_mid_render_runs_the_render_again_and_charges_it_once() {
    let server = TestServer::start_with(
        |c| {
            c.render.lease = Duration::from_millis(1000);
            c.render.usd_per_minute = 0.6;
        },
        true,
    )
    .await;
    upload_fixtures(&server).await;
    let mut spec = long_spec();
    spec["duration"] = json!(20);
    spec["canvas"] = json!({ "width": 640, "height": 360, "fps": 25 });
    let job_id = server.create_job("json-to-video", "render", spec).await;
    wait_until_rendering(&server, &job_id).await;
    let server = server.restart().await;
    let job = server.wait_for("json-to-video", &job_id, &["succeeded", "failed"], WITHIN).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let render = server.platform.db.render(&format!("{job_id}_r1")).await.expect("read").expect("the render");
    assert_eq!(render.attempts, 2, "interrupted once, finished once");
    let video = fetch_video(&server, &job).await;
    assert!((video.duration - 20.0).abs() < 0.2, "{video:?}");
    let ledger = server.platform.db.job_ledger(&job_id).await.expect("ledger");
    assert_eq!(ledger.iter().filter(|r| r.event_type == "render").count(), 1, "{ledger:?}");
}

#[tokio::test]
async fn a_template_cannot_render_past_its_job() {
    let server = TestServer::start().await;
    let job_id = server.create_job("sandbox-probe", "escape-render", json!({})).await;
    let job = server.wait_for("sandbox-probe", &job_id, &["succeeded", "failed"], WITHIN).await;
    assert_eq!(job["error"]["code"], "render_refused", "every attempt refused at once: {job}");
    assert_eq!(job["error"]["details"]["attempts"], 6);
    let render = server.platform.db.render(&format!("{job_id}_r1")).await.expect("read");
    assert!(render.is_none(), "no render was queued");
}

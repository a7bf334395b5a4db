//! The four production patterns end to end through the HTTP API, with fake AI providers at
//! the wire and real renders (Remotion in Debian Chromium, FFmpeg): each produces a playable
//! MP4, checked with ffprobe. (`json-to-video` has its own file, `renders.rs`.)

use serde_json::{Value, json};
use std::time::Duration;
use vidfarm_tests::fake_providers::{self, FakeProviders, Reply};
use vidfarm_tests::media::{self, Probed};
use vidfarm_tests::s3::S3Server;
use vidfarm_tests::server::TestServer;

const WITHIN: Duration = Duration::from_secs(240);

async fn server_with(fakes: &FakeProviders, s3: Option<&S3Server>, own_compositions: bool) -> TestServer {
    let endpoints = fakes.endpoints();
    let s3 = s3.map(|s| s.settings.clone());
    TestServer::start_with(
        move |c| {
            c.providers.endpoints = endpoints;
            c.s3 = s3;
            // ugc-voiceover and research-render render their own compositions.
            c.builtin_compositions = own_compositions;
            c.example_cache = Some(vidfarm_tests::server::shared_bundle_cache());
        },
        true,
    )
    .await
}

/// The server, once `template` is served with its compositions (bundled in the background:
/// once per test run, the first time a few seconds of webpack).
async fn server_for(template: &str, fakes: &FakeProviders, s3: Option<&S3Server>) -> TestServer {
    let server = server_with(fakes, s3, true).await;
    server.wait_for_template(template, WITHIN).await;
    server
}

async fn add_key(server: &TestServer, provider: &str, secret: &str) {
    let body = json!({ "provider": provider, "secret": secret });
    let response = server.post("/customers/me/provider-keys", &body).send().await.expect("sent");
    assert_eq!(response.status(), 201, "adding a {provider} key");
}

async fn run(server: &TestServer, template: &str, operation: &str, payload: Value) -> Value {
    let job_id = server.create_job(template, operation, payload).await;
    let job = server.wait_for(template, &job_id, &["succeeded", "failed", "cancelled"], WITHIN).await;
    assert_eq!(job["status"], "succeeded", "{template}/{operation}: {job}");
    job
}

/// Download a video by its (signed) URL and probe it.
async fn probe_url(server: &TestServer, url: &str) -> Probed {
    let url = match url.find("/files/") {
        Some(at) if !url.contains("X-Amz-Signature") => server.url(&url[at..]),
        _ => url.to_string(),
    };
    let response = server.http.get(&url).send().await.expect("sent");
    assert_eq!(response.status(), 200, "{url}");
    media::probe(&response.bytes().await.expect("bytes"))
}

fn charges(ledger: &[vidfarm::db::billing::LedgerRow], kind: &str) -> usize {
    ledger.iter().filter(|r| r.event_type == kind).count()
}

#[tokio::test]
async fn ugc_voiceover_goes_from_topic_to_script_to_storyboard_to_a_captioned_video() {
    ugc_voiceover(None).await;
}

#[tokio::test]
async fn ugc_voiceover_does_the_same_on_s3() {
    let s3 = S3Server::start().await;
    ugc_voiceover(Some(&s3)).await;
    assert!(s3.keys().iter().any(|k| k.ends_with("/ugc.mp4")), "{:?}", s3.keys());
}

async fn ugc_voiceover(s3: Option<&S3Server>) {
    let fakes = FakeProviders::start().await;
    let server = server_for("ugc-voiceover", &fakes, s3).await;
    add_key(&server, "openai", "sk-openai-ugc-0001").await;
    let script = json!({ "title": "Tide pools", "scenes": [
        { "narration": "Tide pools hide whole worlds.", "visual": "a rocky tide pool at dawn" },
        { "narration": "Look, but never lift the rocks.", "visual": "a hand pointing at a starfish" },
    ]});
    fakes.script("sk-openai-ugc-0001", [Reply::chat(&format!("Here you go:\n```json\n{script}\n```"))]);
    let writer = json!({ "provider": "openai", "model": "gpt-4o-mini" });
    let scaffold =
        run(&server, "ugc-voiceover", "scaffold", json!({ "topic": "tide pools", "scenes": 2, "writer": writer }))
            .await;
    assert_eq!(scaffold["result"]["scenes"].as_array().map(Vec::len), Some(2), "{scaffold}");

    let illustrator = json!({ "provider": "openai", "model": "gpt-image-1" });
    let board = json!({ "script": scaffold["result"], "illustrator": illustrator });
    let storyboard = run(&server, "ugc-voiceover", "storyboard", board).await;
    let frames = storyboard["result"]["frames"].as_array().expect("frames");
    assert_eq!(frames.len(), 2);
    assert!(
        frames.iter().all(|f| f["image"].as_str().is_some_and(|u| u.contains("storyboard/scene-"))),
        "{storyboard}"
    );

    let payload = json!({ "storyboard": storyboard["result"], "width": 360, "height": 640 });
    let job_id = server.create_job("ugc-voiceover", "render", payload).await;
    let rendered = server.wait_for("ugc-voiceover", &job_id, &["succeeded", "failed"], WITHIN).await;
    assert_eq!(rendered["status"], "succeeded", "{rendered}");
    let video = probe_url(&server, rendered["result"]["url"].as_str().expect("a URL")).await;
    assert_eq!((video.width, video.height), (360, 640), "{video:?}");
    assert!(video.codecs.contains(&"h264".to_string()), "{video:?}");
    assert!((4.0..=6.0).contains(&video.duration), "two frames of 2.5 s: {video:?}");
    let logs = server.get_json(&format!("/templates/ugc-voiceover/jobs/{job_id}/logs")).await;
    let progress = logs["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["message"].as_str().is_some_and(|m| m.starts_with("rendering:")))
        .count();
    assert!(progress > 0, "Remotion's progress reached the job's events: {logs}");
    let ledger = server.platform.db.job_ledger(&job_id).await.expect("ledger");
    assert_eq!(charges(&ledger, "render"), 1, "{ledger:?}");
}

#[tokio::test]
async fn ugc_voiceover_speaks_each_scene_and_the_videos_audio_lasts_as_long_as_the_scenes() {
    let fakes = FakeProviders::start().await;
    let server = server_for("ugc-voiceover", &fakes, None).await;
    add_key(&server, "elevenlabs", "xi-voice-key-0001").await;
    let image = format!(
        "data:image/png;base64,{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, vidfarm_tests::fake_providers::PNG)
    );
    // The fakes speak 15 characters a second: 3.4 s and 4.4 s of speech.
    let lines = [
        "Tide pools hide whole worlds under the rocks, look.",
        "Look closely, and never lift the rocks: the crabs live under them.",
    ];
    let frames: Vec<Value> = lines.iter().map(|l| json!({ "narration": l, "image": image })).collect();
    // ElevenLabs' "George", a little steadier than its default.
    let narrator = json!({ "provider": "elevenlabs", "model": "eleven_multilingual_v2",
                           "voice": "JBFqnCBsd6RMkjVDRZzb", "voice_settings": { "stability": 0.6 } });
    let payload = json!({ "storyboard": { "title": "Tide pools", "frames": frames }, "narrator": narrator,
                          "width": 360, "height": 640 });
    let job_id = server.create_job("ugc-voiceover", "render", payload).await;
    let rendered = server.wait_for("ugc-voiceover", &job_id, &["succeeded", "failed"], WITHIN).await;
    assert_eq!(rendered["status"], "succeeded", "{rendered}");

    // Each scene lasts its line plus a 0.5 s pause (longer than reading the caption takes).
    let spoken: Vec<f64> =
        lines.iter().map(|l| l.chars().count() as f64 / fake_providers::SPOKEN_CHARS_PER_SECOND).collect();
    let scenes: f64 = spoken.iter().map(|s| s + 0.5).sum();
    let url = rendered["result"]["url"].as_str().expect("a URL");
    let url = server.url(&url[url.find("/files/").expect("a host file URL")..]);
    let mp4 = server.http.get(&url).send().await.expect("sent").bytes().await.expect("the MP4");
    let video = media::probe(&mp4);
    assert!(video.codecs.contains(&"aac".to_string()), "the MP4 has a sound track: {video:?}");
    assert!((video.duration - scenes).abs() < 0.25, "{scenes} s of scenes: {video:?}");
    let audio = media::audio_track(&mp4).expect("an audio stream");
    assert!((audio.duration - scenes).abs() < 0.25, "the narration spans the scenes ({scenes} s): {audio:?}");
    assert!(audio.mean_volume_db > -40.0, "the narration is audible, not silence: {audio:?}");

    let seen = fakes.seen();
    let said: Vec<&str> =
        seen.iter().filter(|s| s.provider == "elevenlabs").filter_map(|s| s.body["text"].as_str()).collect();
    assert_eq!(said, lines, "each scene's line was spoken once, in order");
    assert!(seen.iter().filter(|s| s.provider == "elevenlabs").all(|s| s.body["voice_id"] == "JBFqnCBsd6RMkjVDRZzb"));
    assert!(seen.iter().filter(|s| s.provider == "elevenlabs").all(|s| s.body["voice_settings"]["stability"] == 0.6));
    let ledger = server.platform.db.job_ledger(&job_id).await.expect("ledger");
    let speech: Vec<i64> = ledger.iter().filter(|r| r.event_type == "ai_generation").map(|r| r.cost_nusd).collect();
    let chars: Vec<i64> = lines.iter().map(|l| l.chars().count() as i64 * 100_000).collect();
    assert_eq!(speech, chars, "each line billed at Multilingual v2's $0.10 per 1,000 characters");
    assert_eq!(charges(&ledger, "render"), 1, "{ledger:?}");
    let logs = server.get_json(&format!("/templates/ugc-voiceover/jobs/{job_id}/logs")).await;
    let narrations =
        logs["events"].as_array().expect("events").iter().filter(|e| e["artifact"]["kind"] == "audio").count();
    assert_eq!(narrations, 2, "each narration is an artifact event: {logs}");
}

#[tokio::test]
async fn research_render_researches_writes_lays_out_and_renders() {
    research_render(None).await;
}

#[tokio::test]
async fn research_render_does_the_same_on_s3() {
    let s3 = S3Server::start().await;
    research_render(Some(&s3)).await;
    assert!(s3.keys().iter().any(|k| k.ends_with("/explainer.mp4")), "{:?}", s3.keys());
}

async fn research_render(s3: Option<&S3Server>) {
    let fakes = FakeProviders::start().await;
    let server = server_for("research-render", &fakes, s3).await;
    add_key(&server, "perplexity", "pplx-research-0001").await;
    add_key(&server, "openai", "sk-openai-research-0001").await;
    add_key(&server, "gemini", "gemini-layout-0001").await;
    let captions = json!([
        { "caption": "Coral reefs cover under 1% of the ocean floor.", "visual": "a coral reef from above" },
        { "caption": "They shelter a quarter of all marine species.", "visual": "fish around coral" },
    ]);
    fakes.script("sk-openai-research-0001", [Reply::chat(&captions.to_string())]);
    let payload = json!({
        "topic": "coral reefs", "scenes": 2, "width": 640, "height": 360,
        "researcher": { "provider": "perplexity", "model": "sonar" },
        "writer": { "provider": "openai", "model": "gpt-4o-mini" },
        "illustrator": { "provider": "openai", "model": "gpt-image-1" },
        "layout": { "provider": "gemini", "model": "gemini-2.5-flash" },
    });
    let job = run(&server, "research-render", "produce", payload).await;
    let scenes = job["result"]["scenes"].as_array().expect("scenes");
    assert_eq!(scenes.len(), 2);
    assert!(scenes.iter().all(|s| s["zone"] == "top" && s["align"] == "center"), "the vision model's layout: {job}");
    let video = probe_url(&server, job["result"]["video"]["url"].as_str().expect("a URL")).await;
    assert_eq!((video.width, video.height), (640, 360), "{video:?}");
    assert!((5.0..=7.0).contains(&video.duration), "two scenes of 3 s: {video:?}");
    let job_id = job["job_id"].as_str().or(job["id"].as_str()).expect("the job id");
    let notes_key = format!("templates/research-render/users/{}/jobs/{job_id}/research.md", server.customer.id);
    let notes = server.platform.caps.storage.get(&notes_key, 1 << 30).await.expect("research notes stored");
    assert!(String::from_utf8_lossy(&notes).contains("coral reefs"));
    let seen: Vec<&str> = fakes.seen().iter().map(|s| s.provider).collect();
    for provider in ["perplexity", "openai", "gemini"] {
        assert!(seen.contains(&provider), "{provider} was called: {seen:?}");
    }
    let ledger = server.platform.db.job_ledger(job_id).await.expect("ledger");
    assert_eq!(charges(&ledger, "ai_generation"), 6, "research, captions, 2 images, 2 layouts: {ledger:?}");
    assert_eq!(charges(&ledger, "render"), 1, "{ledger:?}");
}

#[tokio::test]
async fn storyteller_fans_out_one_child_per_scene_and_stitches_them_on_s3() {
    let s3 = S3Server::start().await;
    storyteller(Some(&s3)).await;
}

#[tokio::test]
async fn storyteller_does_the_same_on_local_disk() {
    storyteller(None).await;
}

async fn storyteller(s3: Option<&S3Server>) {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes, s3, false).await;
    add_key(&server, "openai", "sk-openai-story-0001").await;
    let story = json!([
        { "title": "The lost kite", "text": "A red kite slips from a child's hand." },
        { "title": "Home again", "text": "The wind carries it back over the roofs." },
    ]);
    fakes.script("sk-openai-story-0001", [Reply::chat(&story.to_string())]);
    let payload = json!({ "premise": "a kite that finds its way home", "scenes": 2,
                          "writer": { "provider": "openai", "model": "gpt-4o-mini" } });
    let job = run(&server, "storyteller", "tell", payload).await;
    let job_id = job["job_id"].as_str().or(job["id"].as_str()).expect("the job id").to_string();
    let objects = |key: String| match s3 {
        Some(s3) => s3.keys().contains(&key),
        None => server.dir.path().join("objects").join(&key).is_file(),
    };
    let prefix = format!("templates/storyteller/users/{}/jobs", server.customer.id);
    for n in 1..=2 {
        assert!(objects(format!("{prefix}/{job_id}_c{n}/scene.mp4")), "child {n}'s scene was stored");
    }
    assert!(objects(format!("{prefix}/{job_id}/story.mp4")), "the story was stored");
    let video = probe_url(&server, job["result"]["video"]["url"].as_str().expect("a URL")).await;
    assert_eq!((video.width, video.height), (640, 360), "{video:?}");
    assert!((5.5..=6.5).contains(&video.duration), "two 3 s scenes: {video:?}");
}

//! The real `vidfarm` process SIGKILLed between a video generation's submit and its collect:
//! after a restart the host polls the operation it submitted (stored before anything else)
//! instead of submitting, and paying for, another; the clip is stored and charged once. Killed
//! *during* the submit, it never submits again: the call fails, saying Google may have it.

use crate::common;

use common::wire::{read_request, respond};
use common::*;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// Veo on loopback: counts submits and polls; the operation is done once `done` is set.
struct FakeVeo {
    base: String,
    submits: Arc<AtomicUsize>,
    polls: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
    /// Submits are answered only after this long (a host can die while one is in flight).
    submit_delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

fn fake_veo(clip: Vec<u8>) -> FakeVeo {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = listener.local_addr().expect("an address");
    let (submits, polls, done) = (Arc::default(), Arc::default(), Arc::new(AtomicBool::new(false)));
    let fake =
        FakeVeo { base: format!("http://{address}/v1beta"), submits, polls, done, submit_delay_ms: Arc::default() };
    let (submits, polls, done) = (fake.submits.clone(), fake.polls.clone(), fake.done.clone());
    let delay = fake.submit_delay_ms.clone();
    let clip = Arc::new(clip);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (submits, polls, done, delay, clip) =
                (submits.clone(), polls.clone(), done.clone(), delay.clone(), clip.clone());
            std::thread::spawn(move || answer(stream, address, &submits, &polls, &done, &delay, &clip));
        }
    });
    fake
}

/// One request of the fake Veo.
fn answer(
    stream: std::net::TcpStream,
    address: std::net::SocketAddr,
    submits: &AtomicUsize,
    polls: &AtomicUsize,
    done: &AtomicBool,
    delay: &std::sync::atomic::AtomicU64,
    clip: &[u8],
) {
    {
        {
            let Some(request) = read_request(&stream) else { return };
            let name = "models/veo-3.1-fast-generate-preview/operations/op1";
            let keyed = request.header("x-goog-api-key") == Some("g-crash-key-0001");
            let (status, body) = match (request.method.as_str(), request.path.as_str()) {
                _ if !keyed => (403, json!({"error": {"code": 403, "message": "wrong key"}})),
                ("POST", path) if path.ends_with(":predictLongRunning") => {
                    submits.fetch_add(1, SeqCst);
                    std::thread::sleep(Duration::from_millis(delay.load(SeqCst)));
                    (200, json!({"name": name}))
                }
                ("GET", path) if path == format!("/v1beta/{name}") => {
                    polls.fetch_add(1, SeqCst);
                    let uri = format!("http://{address}/v1beta/files/op1:download?alt=media");
                    match done.load(SeqCst) {
                        true => (
                            200,
                            json!({"name": name, "done": true, "response": {"generateVideoResponse":
                            {"generatedSamples": [{"video": {"uri": uri}}]}}}),
                        ),
                        false => (200, json!({"name": name})),
                    }
                }
                ("GET", path) if path.starts_with("/v1beta/files/op1:download") => {
                    return respond(stream, 200, "video/mp4", clip);
                }
                _ => (404, json!({"error": {"code": 404, "message": "not found"}})),
            };
            respond(stream, status, "application/json", body.to_string().as_bytes());
        }
    }
}

/// A 4 s MP4 with sound, made by FFmpeg.
fn clip() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("clip.mp4");
    let made = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .args(["testsrc=size=320x180:rate=24:duration=4", "-f", "lavfi", "-i", "sine=frequency=440:duration=4"])
        .args(["-c:v", "libx264", "-preset", "ultrafast"])
        .arg(&path)
        .output()
        .expect("ffmpeg runs (tests/run-all.sh installs it)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    std::fs::read(path).expect("the clip")
}

/// A customer with $10 of credit and a Gemini key asks `hello film` for a 4 s clip.
fn create_film(host: &Host, data_dir: &std::path::Path) -> (Client, String) {
    let client = client(data_dir);
    let credit = std::process::Command::new(BIN)
        .args(["billing", "credit", &client.id, "10", "--data-dir"])
        .arg(data_dir)
        .envs(common::database_env(data_dir))
        .output()
        .expect("runs");
    assert!(credit.status.success(), "{}", String::from_utf8_lossy(&credit.stderr));
    let as_client = |request: reqwest::blocking::RequestBuilder| {
        request.header("vidfarm-user-id", &client.id).header("vidfarm-api-key", &client.key)
    };
    client.add_provider_key(host, "gemini", "g-crash-key-0001");
    let payload = json!({ "provider": "gemini", "model": "veo-3.1-fast-generate-preview",
        "prompt": "a kite over the dunes", "seconds": 4 });
    let created: Value = as_client(client.http.post(format!("{}/templates/hello/operations/film", host.base)))
        .json(&json!({ "tracer": "crash", "payload": payload }))
        .send()
        .and_then(|r| r.json())
        .expect("created");
    let job_id = created["job_id"].as_str().expect("a job id").to_string();
    (client, job_id)
}

fn wait_for_end(client: &Client, host: &Host, job_id: &str) -> Value {
    let path = format!("/templates/hello/jobs/{job_id}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = client.get(host, &path);
        if job["status"] == "succeeded" || job["status"] == "failed" {
            return job;
        }
        assert!(Instant::now() < deadline, "the job never finished: {job}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_host_killed_between_submit_and_collect_submits_the_clip_once_and_charges_it_once() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let veo = fake_veo(clip());
    let env = [("VIDFARM_GEMINI_BASE_URL", veo.base.as_str()), ("VIDFARM_VIDEO_POLL_MS", "50")];
    let mut host = serve(dir.path(), &env);
    let (client, job_id) = create_film(&host, dir.path());

    // Submitted, and polled a few times: the host dies while the clip is being made.
    let deadline = Instant::now() + Duration::from_secs(60);
    while veo.polls.load(SeqCst) < 3 {
        assert!(Instant::now() < deadline, "never polled");
        std::thread::sleep(Duration::from_millis(10));
    }
    host.child.kill().expect("SIGKILL");
    host.child.wait().expect("reaped");
    veo.done.store(true, SeqCst);

    let host = serve(dir.path(), &env);
    let job = wait_for_end(&client, &host, &job_id);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(veo.submits.load(SeqCst), 1, "the restarted host polled the stored operation");
    assert_eq!(job["result"]["key"], "clips/clip.mp4", "{job}");
    let seconds = job["result"]["metadata"]["duration_seconds"].as_f64().expect("a duration");
    assert!((seconds - 4.0).abs() < 0.2, "{job}");
    let billing = &job["billing"];
    let charges: Vec<&Value> =
        billing["charges"].as_array().expect("charges").iter().filter(|c| c["type"] == "ai_generation").collect();
    assert_eq!(charges.len(), 1, "one clip, one charge: {billing}");
    assert_eq!(charges[0]["cost_nusd"].as_i64(), Some(600_000_000), "{billing}");
    let holds: Vec<&Value> =
        billing["holds"].as_array().expect("holds").iter().filter(|h| h["type"] == "ai_generation").collect();
    assert_eq!(holds.len(), 1, "the replay reused the first run's hold: {billing}");
    assert_eq!(holds[0]["status"], "captured");
}

#[test]
fn a_host_killed_during_the_submit_never_submits_again_and_says_google_may_have_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let veo = fake_veo(clip());
    veo.submit_delay_ms.store(60_000, SeqCst); // the host dies before Google answers
    let env = [("VIDFARM_GEMINI_BASE_URL", veo.base.as_str()), ("VIDFARM_VIDEO_POLL_MS", "50")];
    let mut host = serve(dir.path(), &env);
    let (client, job_id) = create_film(&host, dir.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    while veo.submits.load(SeqCst) == 0 {
        assert!(Instant::now() < deadline, "never submitted");
        std::thread::sleep(Duration::from_millis(10));
    }
    host.child.kill().expect("SIGKILL");
    host.child.wait().expect("reaped");
    veo.submit_delay_ms.store(0, SeqCst);

    let host = serve(dir.path(), &env);
    let job = wait_for_end(&client, &host, &job_id);
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "provider_failed", "{job}");
    let message = job["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("may have accepted it"), "{job}");
    assert_eq!(veo.submits.load(SeqCst), 1, "never submitted twice");
}

//! The real `vidfarm` process SIGKILLed while ElevenLabs speaks the second part of a long
//! narration: ElevenLabs may have billed that part, so the restarted host never sends it
//! again. The narration fails saying so, and the customer pays for the first part only.

use crate::common;

use common::wire::{read_request, respond};
use common::*;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// ElevenLabs' text-to-speech on loopback: counts requests; from the second on, answers only
/// after `delay_ms` (a host can die while one is in flight).
struct FakeElevenLabs {
    base: String,
    requests: Arc<AtomicUsize>,
    delay_ms: Arc<AtomicU64>,
}

fn fake_elevenlabs() -> FakeElevenLabs {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let base = format!("http://{}/v1", listener.local_addr().expect("an address"));
    let fake = FakeElevenLabs { base, requests: Arc::default(), delay_ms: Arc::default() };
    let (requests, delay) = (fake.requests.clone(), fake.delay_ms.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (requests, delay) = (requests.clone(), delay.clone());
            std::thread::spawn(move || {
                let Some(request) = read_request(&stream) else { return };
                if request.header("xi-api-key") != Some("xi-crash-key-0001") {
                    let body = json!({"detail": {"status": "invalid_api_key", "message": "Invalid API key"}});
                    return respond(stream, 401, "application/json", body.to_string().as_bytes());
                }
                let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
                let chars = body["text"].as_str().map_or(0, |t| t.chars().count());
                if requests.fetch_add(1, SeqCst) >= 1 {
                    std::thread::sleep(Duration::from_millis(delay.load(SeqCst)));
                }
                // 15 characters a second of 24 kHz 16-bit silence.
                let pcm = vec![0u8; chars * 48_000 / 15];
                respond(stream, 200, "audio/pcm", &pcm);
            });
        }
    });
    fake
}

#[test]
fn a_host_killed_while_a_part_is_spoken_never_speaks_it_again_and_charges_only_the_parts_spoken() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let eleven = fake_elevenlabs();
    eleven.delay_ms.store(60_000, SeqCst); // the host dies before the second part's answer
    let env = [("VIDFARM_ELEVENLABS_BASE_URL", eleven.base.as_str())];
    let mut host = serve(dir.path(), &env);
    let client = client(dir.path());
    let credit = std::process::Command::new(BIN)
        .args(["billing", "credit", &client.id, "10", "--data-dir"])
        .arg(dir.path())
        .envs(common::database_env(dir.path()))
        .output()
        .expect("runs");
    assert!(credit.status.success(), "{}", String::from_utf8_lossy(&credit.stderr));
    let as_client = |request: reqwest::blocking::RequestBuilder| {
        request.header("vidfarm-user-id", &client.id).header("vidfarm-api-key", &client.key)
    };
    client.add_provider_key(&host, "elevenlabs", "xi-crash-key-0001");
    // 100 sentences of 50 characters: three parts of 2,000, 2,000 and 1,000 characters.
    let text: String = (0..100).map(|n| format!("Sentence {n:03} is read out over the calm rock pool. ")).collect();
    assert_eq!(text.chars().count(), 5_000);
    let payload = json!({ "provider": "elevenlabs", "model": "eleven_flash_v2_5", "text": text,
        "voice": "JBFqnCBsd6RMkjVDRZzb" });
    let created: Value = as_client(client.http.post(format!("{}/templates/hello/operations/narrate", host.base)))
        .json(&json!({ "tracer": "crash", "payload": payload }))
        .send()
        .and_then(|r| r.json())
        .expect("created");
    let job_id = created["job_id"].as_str().expect("a job id").to_string();

    let deadline = Instant::now() + Duration::from_secs(60);
    while eleven.requests.load(SeqCst) < 2 {
        assert!(Instant::now() < deadline, "the second part was never sent");
        std::thread::sleep(Duration::from_millis(10));
    }
    host.child.kill().expect("SIGKILL");
    host.child.wait().expect("reaped");
    eleven.delay_ms.store(0, SeqCst);

    let host = serve(dir.path(), &env);
    let path = format!("/templates/hello/jobs/{job_id}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let job = client.get(&host, &path);
        if job["status"] == "succeeded" || job["status"] == "failed" {
            break job;
        }
        assert!(Instant::now() < deadline, "the job never finished: {job}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "provider_failed", "{job}");
    assert!(job["error"]["message"].as_str().is_some_and(|m| m.contains("part 2 of 3")), "{job}");
    assert_eq!(eleven.requests.load(SeqCst), 2, "the part in flight was never sent again");
    // The first part is paid for: 2,000 characters of Flash at $0.05 per 1,000.
    let charges: Vec<&Value> = job["billing"]["charges"]
        .as_array()
        .expect("charges")
        .iter()
        .filter(|c| c["type"] == "ai_generation")
        .collect();
    assert_eq!(charges.len(), 1, "{job}");
    assert_eq!(charges[0]["cost_nusd"].as_i64(), Some(2_000 * 50_000), "{job}");
}

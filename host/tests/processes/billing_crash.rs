//! The real `vidfarm` process SIGKILLed while a paid provider call is in flight (held, made,
//! not yet captured): after a restart the job's replay reuses the same hold, and the ledger
//! holds exactly one charge for the call.

use crate::common;

use common::wire::{read_request, respond};
use common::*;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// OpenAI's chat completions on loopback: counts requests, answers after `delay_ms`.
struct FakeOpenAi {
    base: String,
    requests: Arc<AtomicUsize>,
    delay_ms: Arc<AtomicU64>,
}

fn fake_openai() -> FakeOpenAi {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let base = format!("http://{}/v1", listener.local_addr().expect("an address"));
    let (requests, delay_ms) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicU64::new(0)));
    let (counted, delay) = (requests.clone(), delay_ms.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (counted, delay) = (counted.clone(), delay.clone());
            std::thread::spawn(move || answer(stream, &counted, &delay));
        }
    });
    FakeOpenAi { base, requests, delay_ms }
}

/// One request on one connection (`Connection: close`), answered with a chat completion.
fn answer(stream: std::net::TcpStream, counted: &AtomicUsize, delay: &AtomicU64) {
    let Some(request) = read_request(&stream) else { return };
    let request: Value = serde_json::from_slice(&request.body).unwrap_or_default();
    counted.fetch_add(1, SeqCst);
    std::thread::sleep(Duration::from_millis(delay.load(SeqCst)));
    let max = request["max_completion_tokens"].as_u64().unwrap_or(200_000);
    let reply = json!({
        "id": "chatcmpl-crash", "object": "chat.completion", "created": 1_700_000_000, "model": request["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "answered"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": max, "total_tokens": 3 + max},
    });
    respond(stream, 200, "application/json", reply.to_string().as_bytes());
}

#[test]
fn a_host_killed_during_a_paid_call_charges_it_once_after_restart() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let fake = fake_openai();
    fake.delay_ms.store(30_000, SeqCst); // the first call never answers before the kill
    let env = [("VIDFARM_OPENAI_BASE_URL", fake.base.as_str())];
    let mut host = serve(dir.path(), &env);
    let client = client(dir.path());
    let credit = std::process::Command::new(BIN)
        .args(["billing", "credit", &client.id, "1", "--data-dir"])
        .arg(dir.path())
        .envs(common::database_env(dir.path()))
        .output()
        .expect("runs");
    assert!(credit.status.success(), "{}", String::from_utf8_lossy(&credit.stderr));
    client.add_provider_key(&host, "openai", "sk-crash-test-0001");
    let created: Value = client
        .http
        .post(format!("{}/templates/hello/operations/ask", host.base))
        .header("vidfarm-user-id", &client.id)
        .header("vidfarm-api-key", &client.key)
        .json(&json!({ "tracer": "crash", "payload": {
            "provider": "openai", "model": "gpt-4o-mini", "prompt": "hi", "max_output_tokens": 1000 } }))
        .send()
        .and_then(|r| r.json())
        .expect("created");
    let job_id = created["job_id"].as_str().expect("a job id").to_string();

    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.requests.load(SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the call was never made");
        std::thread::sleep(Duration::from_millis(10));
    }
    host.child.kill().expect("SIGKILL");
    host.child.wait().expect("reaped");
    fake.delay_ms.store(0, SeqCst);

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
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(fake.requests.load(SeqCst), 2, "the answer died with the host: asked again");
    let billing = &job["billing"];
    let charges: Vec<&Value> =
        billing["charges"].as_array().expect("charges").iter().filter(|c| c["type"] == "ai_generation").collect();
    assert_eq!(charges.len(), 1, "one charge for one call: {billing}");
    // (Each run also holds its fuel: those are `cpu_estimate` holds, one per run.)
    let holds: Vec<&Value> =
        billing["holds"].as_array().expect("holds").iter().filter(|h| h["type"] == "ai_generation").collect();
    assert_eq!(holds.len(), 1, "the replay reused the first run's hold: {billing}");
    assert_eq!(holds[0]["status"], "captured");
    // 1,000 output tokens at $0.60/M and 3 prompt tokens at $0.15/M, × 2.
    assert_eq!(charges[0]["charge_nusd"], 2 * (1_000 * 600 + 3 * 150), "{billing}");
    assert_eq!(billing["held_nusd"], 0);
}

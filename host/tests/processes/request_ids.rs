//! Request ids as an operator follows one request: every response carries `x-request-id` (a
//! client's own is kept), the access log has one line per request with its route template,
//! status and latency, and the job the request created logs under the same id.

use crate::common;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn one_request_id_follows_a_request_from_the_access_log_into_its_job() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (customer, key) = common::create_customer(dir.path());
    let mut child = Command::new(common::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .envs(common::database_env(dir.path()))
        .env("VIDFARM_LOG", "info,vidfarm::engine=debug")
        .env("VIDFARM_ENV", "development")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("vidfarm starts");
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let (sink, stdout) = (lines.clone(), child.stdout.take().expect("stdout"));
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().expect("lock").push(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        let found =
            lines.lock().expect("lock").iter().find_map(|l| {
                l.split("addr=").nth(1).and_then(|rest| rest.split_whitespace().next()).map(str::to_string)
            });
        if let Some(addr) = found {
            break addr;
        }
        assert!(Instant::now() < deadline, "the server never listened");
        std::thread::sleep(Duration::from_millis(20));
    };
    let http = reqwest::blocking::Client::new();
    let base = format!("http://{addr}");
    let create = http
        .post(format!("{base}/templates/sandbox-probe/operations/echo"))
        .header("vidfarm-user-id", &customer)
        .header("vidfarm-api-key", &key)
        .header("x-request-id", "client-req-42")
        .json(&json!({ "tracer": "ids", "payload": {} }))
        .send()
        .expect("sent");
    assert_eq!(create.headers()["x-request-id"], "client-req-42", "the client's own id is kept");
    let job_id = create.json::<Value>().expect("json")["job_id"].as_str().expect("an id").to_string();
    let generated = http.get(format!("{base}/health")).send().expect("sent");
    let own = generated.headers()["x-request-id"].to_str().expect("ascii").to_string();
    assert!(own.starts_with("req_"), "a request without one gets one: {own}");
    let refused = http.get(format!("{base}/templates/hello")).header("x-request-id", "bad id with spaces").send();
    let refused = refused.expect("sent");
    assert_ne!(refused.headers()["x-request-id"], "bad id with spaces", "an unsafe id is replaced");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logged = lines.lock().expect("lock").clone();
        let access = logged.iter().any(|l| {
            l.contains("client-req-42")
                && l.contains("/templates/{template_id}/operations/{operation}")
                && l.contains("status=202")
                && l.contains("latency_ms=")
        });
        let in_job = logged.iter().any(|l| l.contains("client-req-42") && l.contains(&job_id));
        if access && in_job {
            break;
        }
        assert!(Instant::now() < deadline, "missing access={access} in_job={in_job}:\n{}", logged.join("\n"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

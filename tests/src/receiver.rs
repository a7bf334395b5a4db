//! The Standard Webhooks receiver of the tests: `tests/webhook_receiver.py`, a separate
//! process verifying every delivery with the `standardwebhooks` package from PyPI.

use serde_json::{Value, json};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};

pub struct Receiver {
    pub port: u16,
    child: Child,
    http: reqwest::Client,
}

impl Receiver {
    /// Start on `port` (0: any free port).
    pub fn start(port: u16) -> Self {
        Self::start_trusting(port, &[])
    }

    /// Start on `port`, verifying with `secrets` from the first request on.
    pub fn start_trusting(port: u16, secrets: &[&str]) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/webhook_receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .args(secrets)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the receiver (pip install -r tests/requirements.txt)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the port");
        let port = line.trim().parse().unwrap_or_else(|_| panic!("the receiver did not start: {line:?}"));
        Self { port, child, http: reqwest::Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn trust(&self, secret: &str) {
        self.config(json!({ "secrets": [secret] })).await;
    }

    /// Answer deliveries with this status and headers from now on.
    pub async fn answer(&self, status: u16, headers: Value) {
        self.config(json!({ "mode": { "status": status, "headers": headers } })).await;
    }

    async fn config(&self, body: Value) {
        self.http.post(self.url("/_config")).json(&body).send().await.expect("the receiver answers");
    }

    /// Every delivery so far: `{path, id, verified, answered, body}`.
    pub async fn received(&self) -> Vec<Value> {
        self.http.get(self.url("/_received")).send().await.expect("sent").json().await.expect("JSON")
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

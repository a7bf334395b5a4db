//! A real headless Chromium driven over the W3C WebDriver protocol by Debian's `chromedriver`
//! (a private one per browser, on a free port): the dashboard's tests click, type and read
//! pages the way a customer's browser does. The protocol is plain JSON over HTTP, spoken here
//! with reqwest.

use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// One browser session; the driver process dies with it.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: std::process::Child,
    /// Screenshots go here (under the target dir).
    shots: std::path::PathBuf,
    /// One browser at a time per test process: Chromium beside renders on two cores is slow
    /// enough; two of them starve each other.
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An element found on the page (its WebDriver reference).
#[derive(Clone)]
pub struct Element(String);

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Start chromedriver and a headless Chromium.
    pub async fn start(name: &str) -> Self {
        let turn = ONE_AT_A_TIME.lock().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver runs (Debian's chromium-driver; tests/run-all.sh installs it)");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900",
                         "--autoplay-policy=no-user-gesture-required"],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        } } });
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("a session")
            .json()
            .await
            .expect("json");
        let session = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}"));
        let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots").join(name);
        std::fs::create_dir_all(&shots).expect("a screenshot dir");
        Self { http, session: format!("{base}/session/{session}"), driver, shots, _turn: turn }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.expect("the driver answers").json().await.expect("json");
        answer["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// Set a cookie for the page's current origin.
    pub async fn add_cookie(&self, name: &str, value: &str) {
        self.post("/cookie", json!({ "cookie": { "name": name, "value": value, "path": "/" } })).await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_string()
    }

    /// The element `css` names, waiting up to 20 s for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            let found = self.post("/element", json!({ "using": "css selector", "value": css })).await;
            if let Some(id) = found[ELEMENT_KEY].as_str() {
                return Element(id.to_string());
            }
            assert!(started.elapsed() < Duration::from_secs(20), "no `{css}` on {}: {found}", self.url().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many elements `css` names now.
    pub async fn count(&self, css: &str) -> usize {
        let found = self.post("/elements", json!({ "using": "css selector", "value": css })).await;
        found.as_array().map_or(0, Vec::len)
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.post(&format!("/element/{}/click", element.0), json!({})).await;
    }

    /// Clear the field `css` names and type `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.post(&format!("/element/{}/clear", element.0), json!({})).await;
        self.post(&format!("/element/{}/value", element.0), json!({ "text": text })).await;
    }

    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{}/text", element.0), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Wait up to `within` for the text of `css` to satisfy `ok`; returns it.
    pub async fn wait_text(&self, css: &str, within: Duration, ok: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(css).await;
            if ok(&text) {
                return text;
            }
            if started.elapsed() >= within {
                let page = self.eval("return document.body.innerText", json!([])).await;
                panic!(
                    "`{css}` still reads {text:?} on {}; the page reads:\n{}",
                    self.url().await,
                    page.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Run `script` in the page (`arguments` are `args`); its return value.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args })).await
    }

    /// Accept the page's `confirm()` dialog.
    pub async fn accept_dialog(&self) {
        let started = Instant::now();
        loop {
            let answer = self.post("/alert/accept", json!({})).await;
            if answer.is_null() {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no dialog: {answer}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the page, written as `<name>.png` under `target/screenshots/<test>/`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, png.as_str().unwrap_or_default())
                .expect("a base64 PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), bytes).expect("screenshot written");
    }

    /// The browser console's errors since the last call (the page's own and failed loads).
    pub async fn console_errors(&self) -> Vec<String> {
        let logs = self.post("/se/log", json!({ "type": "browser" })).await;
        logs.as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

/// The driver (and its browser) end with the session, even when a test panics.
impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

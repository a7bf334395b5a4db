//! A real server for end-to-end tests: the platform on `127.0.0.1:0` with a real SQLite file
//! in a temporary data dir, and a customer with an API key.

use serde_json::Value;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vidfarm::config::Config;
use vidfarm::engine::Platform;

pub struct TestServer {
    pub base: String,
    pub platform: Platform,
    pub customer: Credentials,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    /// What the server was started with (a restart reuses it).
    config: Config,
    workers: bool,
    /// Keeps the data dir alive as long as the server.
    pub dir: tempfile::TempDir,
}

#[derive(Clone)]
pub struct Credentials {
    pub id: String,
    pub key: String,
}

/// Host defaults tuned for tests (short leases and retries), from a fresh data dir.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config::from_env().expect("the test environment is a valid config");
    config.data_dir = dir.to_path_buf();
    config.database_url = crate::database::database_url(dir);
    config.database_pool = 8;
    config.runtime.cache_dir = Some(dir.join("compiled"));
    config.listen = "127.0.0.1:0".parse().expect("an address");
    config.lease = Duration::from_millis(1500);
    config.poll_interval = Duration::from_millis(50);
    config.retry_base = Duration::from_millis(50);
    config.shutdown_grace = Duration::from_secs(5);
    // Host-recorded storage and CPU charges are off unless a test is about them, so charge
    // sums in other tests are only what those tests cause.
    config.storage_usd_per_gb = 0.0;
    config.cpu_usd_per_billion_fuel = 0.0;
    // Fair-share caps as the tests were written against (production defaults are 4 running
    // jobs and 60 jobs a minute per customer); the fair-share tests set their own.
    config.max_concurrent_jobs = 16;
    // Building the TS/Python examples in the background is `serve`'s own test's business.
    config.example_templates = None;
    // So is bundling the built-ins' own compositions (a 26 MB bundle each); the tests that render
    // them turn it on, with [`shared_bundle_cache`].
    config.builtin_compositions = false;
    config.jobs_per_minute = 1_000_000;
    // The repo's Remotion renderer (tests/run-all.sh installs and bundles it), whatever the
    // working directory.
    let remotion = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../renderers/remotion");
    config.render.remotion = Some(vidfarm::render::RemotionSettings::local(&remotion));
    config
}

/// Where test servers keep the bundles of the built-ins' own compositions: shared by every
/// test process of a run, so each bundle is built once (builders take turns on a lock file).
pub fn shared_bundle_cache() -> std::path::PathBuf {
    std::env::temp_dir().join("vidfarm-test-builtin-bundles")
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}, true).await
    }

    /// Start with a tweaked config; `workers: false` runs the API alone (jobs stay queued).
    pub async fn start_with(tweak: impl FnOnce(&mut Config), workers: bool) -> Self {
        Self::start_custom(tweak, workers, |_| {}).await
    }

    /// Start with a tweaked config and platform (e.g. a capability backend swapped).
    pub async fn start_custom(
        tweak: impl FnOnce(&mut Config),
        workers: bool,
        adjust: impl FnOnce(&mut Platform),
    ) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut config = test_config(dir.path());
        tweak(&mut config);
        let mut platform = Platform::start(config.clone()).await.expect("the platform starts");
        adjust(&mut platform);
        let (base, shutdown, task) = serve(&platform, workers).await;
        let customer = create_customer(&platform, "Acme").await;
        Self { base, platform, customer, http: reqwest::Client::new(), shutdown, task, dir, config, workers }
    }

    /// Stop (SIGTERM's path) and start again on the same data dir, as after a deploy.
    pub async fn restart(self) -> Self {
        let Self { customer, http, shutdown, task, dir, config, workers, .. } = self;
        shutdown.cancel();
        task.await.expect("the server stops cleanly");
        let platform = Platform::start(config.clone()).await.expect("the platform restarts");
        let (base, shutdown, task) = serve(&platform, workers).await;
        Self { base, platform, customer, http, shutdown, task, dir, config, workers }
    }

    pub async fn new_customer(&self, name: &str) -> Credentials {
        create_customer(&self.platform, name).await
    }

    /// Shut down (SIGTERM's path) and wait until the server has stopped.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("the server stops cleanly");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.as_customer(&self.customer, self.http.get(self.url(path)))
    }

    pub fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.as_customer(&self.customer, self.http.post(self.url(path)).json(body))
    }

    /// The template `id` once it is served (`GET /templates/:id` answers 200): a built-in with
    /// its own compositions is published only when its bundle is built, in the background.
    pub async fn wait_for_template(&self, id: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let response = self.get(&format!("/templates/{id}")).send().await.expect("sent");
            if response.status() == 200 {
                return response.json().await.expect("a JSON body");
            }
            assert!(tokio::time::Instant::now() < deadline, "template `{id}` was not served within {within:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// GET as the default customer, the body as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).send().await.expect("sent").json().await.expect("a JSON body")
    }

    /// GET as another customer, the body as JSON.
    pub async fn get_json_as(&self, who: &Credentials, path: &str) -> Value {
        self.as_customer(who, self.http.get(self.url(path)))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("a JSON body")
    }

    pub fn as_customer(&self, who: &Credentials, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.header("vidfarm-user-id", &who.id).header("vidfarm-api-key", &who.key)
    }

    /// Create a job; returns its id (asserting 202).
    pub async fn create_job(&self, template: &str, operation: &str, payload: Value) -> String {
        let body = serde_json::json!({ "tracer": format!("test-{operation}"), "payload": payload });
        let response =
            self.post(&format!("/templates/{template}/operations/{operation}"), &body).send().await.expect("sent");
        assert_eq!(response.status(), 202, "creating {template}/{operation}");
        let created: Value = response.json().await.expect("json");
        created["job_id"].as_str().expect("a job id").to_string()
    }

    pub async fn job(&self, template: &str, job_id: &str) -> Value {
        self.get(&format!("/templates/{template}/jobs/{job_id}"))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json")
    }

    /// Poll until the job's status is one of `statuses` (or fail after `within`).
    pub async fn wait_for(&self, template: &str, job_id: &str, statuses: &[&str], within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let job = self.job(template, job_id).await;
            if statuses.iter().any(|s| job["status"] == *s) {
                return job;
            }
            assert!(tokio::time::Instant::now() < deadline, "job {job_id} never reached {statuses:?}: {job}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn serve(platform: &Platform, workers: bool) -> (String, CancellationToken, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let (platform, shutdown) = (platform.clone(), shutdown.clone());
        async move { vidfarm::server::run(platform, Some(listener), workers, shutdown).await.expect("the server runs") }
    });
    (base, shutdown, task)
}

async fn create_customer(platform: &Platform, name: &str) -> Credentials {
    let id = format!("cus_{}", uuid_like());
    platform.db.create_customer(&id, name).await.expect("customer created");
    let key = vidfarm::api::issue_api_key(&platform.db, &id, None).await.expect("key issued");
    Credentials { id, key }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{:x}{:x}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

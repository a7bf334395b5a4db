//! The host's configuration, read once from flags and the environment.

use crate::runtime::{Limits, RuntimeConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `development` allows developer keys from `.env` and loopback webhooks; `production` does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

impl Environment {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "development" => Ok(Self::Development),
            "production" => Ok(Self::Production),
            other => Err(format!("VIDFARM_ENV must be `development` or `production`, not `{other}`")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
        }
    }
}

/// Who may create a dashboard account (`VIDFARM_SIGNUP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupMode {
    /// Anyone (the development default).
    Open,
    /// Only emails the operator invited (`vidfarm customers invite`).
    Invite,
    /// Nobody: accounts come from the operator (the production default).
    Closed,
}

impl SignupMode {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(Self::Open),
            "invite" => Ok(Self::Invite),
            "closed" => Ok(Self::Closed),
            other => Err(format!("VIDFARM_SIGNUP must be `open`, `invite` or `closed`, not `{other}`")),
        }
    }
}

/// Everything the host is told. Defaults make `vidfarm serve` work with no setting at all.
#[derive(Debug, Clone)]
pub struct Config {
    /// SQLite file, local object store and compiled cache live here.
    pub data_dir: PathBuf,
    /// `VIDFARM_DATABASE_URL`: a `postgres://` server many hosts share; none means the SQLite
    /// file in `data_dir` (the embedded default).
    pub database_url: Option<String>,
    /// `VIDFARM_DATABASE_POOL`: connections this host opens to PostgreSQL. Every host's pool
    /// counts against the server's `max_connections`.
    pub database_pool: u32,
    pub listen: SocketAddr,
    pub env: Environment,
    /// Job runs one process executes at once. A run spends most of its time waiting (for a
    /// commit, a provider, storage) in a suspended fiber, so this is far above the core count:
    /// at 64 the `hello greet` benchmark was bound by runs waiting, not by CPU (issue #16).
    pub worker_slots: u32,
    /// How long a claim holds a job without a heartbeat; a dead worker's jobs are re-queued
    /// after this.
    pub lease: Duration,
    /// How often a worker looks for due jobs when nothing wakes it.
    pub poll_interval: Duration,
    /// On SIGTERM, how long running jobs may take to finish before they are released.
    pub shutdown_grace: Duration,
    /// Finished jobs (and their events and journals) are deleted after this.
    pub retention: Duration,
    /// Running jobs per customer unless the customer has its own cap.
    pub max_concurrent_jobs: u32,
    /// Job creations per customer per minute unless the customer has its own limit.
    pub jobs_per_minute: u32,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// How long one request's handler may take before it is answered 408.
    pub request_timeout: Duration,
    /// Requests one process handles at once; more wait.
    pub max_concurrent_requests: usize,
    /// First retry delay; doubles per retry (with jitter) up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Charge = cost × margin unless a customer or template says otherwise.
    pub default_margin: f64,
    /// The cost estimate reserved for an operation that declares none.
    pub default_estimate_usd: f64,
    /// What storing a byte costs the platform, per GB (`storage_write` events the host records).
    pub storage_usd_per_gb: f64,
    /// Bytes one customer may store (job artifacts, uploads, render outputs), unless the
    /// operator set their own quota.
    pub storage_quota_bytes: u64,
    /// What a run's CPU costs the platform, per billion fuel units (`cpu_estimate` events).
    pub cpu_usd_per_billion_fuel: f64,
    /// The template registry directory, when not `<data dir>/registry`.
    pub registry_dir: Option<PathBuf>,
    /// The registry in an S3 bucket instead (`VIDFARM_REGISTRY_S3_BUCKET`, with the
    /// `VIDFARM_S3_*` endpoint and credentials), under this prefix.
    pub registry_s3: Option<(crate::storage::S3Settings, String)>,
    /// How often the registry is checked for activations.
    pub registry_poll: Duration,
    /// A template version neither active nor used this long is unloaded from memory
    /// (`VIDFARM_UNLOAD_IDLE_VERSIONS_SECS`); a job of it loads it again.
    pub unload_idle_versions_after: Duration,
    /// Development only: the folder whose TypeScript, JavaScript and Python example templates
    /// `serve` builds and publishes in the background (`VIDFARM_EXAMPLE_TEMPLATES`; `off` for
    /// none; default the checkout's `templates/` when the binary runs beside it).
    pub example_templates: Option<PathBuf>,
    /// Where those builds are kept (`VIDFARM_EXAMPLE_CACHE`; default `<data dir>/example-builds`),
    /// and the bundles of the built-ins' own compositions.
    pub example_cache: Option<PathBuf>,
    /// Development only: whether the built-ins with their own Remotion compositions
    /// (`ugc-voiceover`, `research-render`) are published, bundled once in the background like
    /// the examples (Node, ~10 s each). `VIDFARM_EXAMPLE_TEMPLATES=off` turns this off too.
    pub builtin_compositions: bool,
    /// Public keys artifacts may be signed with: a list or a file of `<key id>:<base64>`.
    pub trusted_keys: String,
    /// Operator token for `/admin/*`; the admin API is off without one.
    pub admin_token: Option<String>,
    /// `VIDFARM_CORS_ORIGINS`: origins (comma-separated) whose pages may call the API with
    /// keys from a browser; none by default. Cookies are never sent cross-origin.
    pub cors_origins: Vec<String>,
    /// `VIDFARM_SIGNUP`: who may sign up on the dashboard (open in development, closed in
    /// production unless set).
    pub signup: SignupMode,
    /// `VIDFARM_METRICS_TOKEN`: `/metrics` answers only `authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// `VIDFARM_METRICS_PUBLIC=true`: production serves `/metrics` to anyone (opt-in).
    pub metrics_public: bool,
    /// `VIDFARM_ALLOW_LOCAL_OBJECTS=true`: production keeps objects on local disk (opt-in;
    /// seed 000 wants artifacts in S3, not on a container's disk).
    pub allow_local_objects: bool,
    pub runtime: RuntimeConfig,
    pub providers: ProviderSettings,
    pub webhooks: WebhookSettings,
    /// Where customers reach this host (signed file URLs point here).
    pub public_url: String,
    /// How long signed file URLs (and presigned S3 URLs) work.
    pub file_url_ttl: Duration,
    /// Objects in S3 instead of `<data dir>/objects` (`VIDFARM_S3_BUCKET` set).
    pub s3: Option<crate::storage::S3Settings>,
    pub render: crate::render::RenderSettings,
    /// Scheduled backups (`VIDFARM_BACKUP_EVERY` set), see `backup`.
    pub backup: Option<crate::backup::BackupSettings>,
}

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Delay before attempt n+1 (the first entry: the first attempt); after the last, the
    /// delivery fails. `VIDFARM_WEBHOOK_RETRY_SCHEDULE`, e.g. `0,5s,5m,30m,2h,5h,10h,10h`.
    pub retry_schedule: Vec<Duration>,
    /// One attempt's deadline.
    pub timeout: Duration,
    /// Receivers may be on loopback or private addresses (development only: SSRF).
    pub allow_private: bool,
    /// Deliveries one process sends at once, all customers together.
    pub max_in_flight: u32,
    /// Deliveries one customer may have in flight at once, unless the operator set theirs.
    pub per_customer: u32,
}

/// Where the AI providers are and how the key queue treats them.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub endpoints: Endpoints,
    /// `VIDFARM_MASTER_KEY`: encrypts provider secrets at rest (required in production).
    pub master_key: Option<String>,
    /// How long a key lease lasts without a heartbeat: a crashed worker's key is free after it.
    pub lease: Duration,
    /// A 429 without the provider's own wait cools the key down this long.
    pub default_cooldown: Duration,
    /// A 429 for an exhausted quota (not a rate) cools the key down at least this long.
    pub quota_cooldown: Duration,
    /// One provider request's deadline.
    pub timeout: Duration,
    /// Tries per call when the provider fails (5xx, timeouts), on other keys where possible.
    pub max_attempts: u32,
    /// The pause before the first such retry; doubles per retry.
    pub retry_base: Duration,
    /// When other jobs hold every key, the job comes back after about this long.
    pub busy_retry: Duration,
    /// The first pause before polling a video generation; later pauses grow 1.5× to 30 s.
    pub video_poll: Duration,
    /// Development with no key at all answers with the labelled dev echo.
    pub dev_echo: bool,
    /// Image URLs may point at private addresses (development only: SSRF).
    pub allow_private_urls: bool,
    /// Keys the platform itself holds (see `providers::env_keys`), used for customers with
    /// no usable key of their own and recorded as such.
    pub platform_keys: Vec<PlatformKey>,
}

/// A platform key from the environment; `Debug` never shows the secret.
#[derive(Clone)]
pub struct PlatformKey {
    pub provider: crate::providers::Provider,
    pub secret: String,
    /// `environment` (development's `OPENAI_API_KEY` …) or `platform` (production's
    /// `VIDFARM_PLATFORM_OPENAI_API_KEY` …).
    pub source: &'static str,
}

impl std::fmt::Debug for PlatformKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlatformKey({:?}, {}, …)", self.provider, self.source)
    }
}

/// Base URLs (with their version path), so tests and self-hosted gateways work.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub openai: String,
    pub gemini: String,
    pub openrouter: String,
    pub perplexity: String,
    pub elevenlabs: String,
}

impl Config {
    /// Defaults, overridden by `VIDFARM_*` environment variables.
    pub fn from_env() -> Result<Self, String> {
        let data_dir = PathBuf::from(var("VIDFARM_DATA_DIR").unwrap_or_else(|| "./data".into()));
        let listen = parse("VIDFARM_LISTEN", "127.0.0.1:8080")?;
        let env = Environment::parse(&var("VIDFARM_ENV").unwrap_or_else(|| "development".into()))?;
        let defaults = Limits {
            fuel: parse("VIDFARM_DEFAULT_FUEL", &Limits::default().fuel.to_string())?,
            memory_bytes: parse::<u64>("VIDFARM_DEFAULT_MEMORY_MIB", "256")? << 20,
            timeout_ms: parse("VIDFARM_DEFAULT_TIMEOUT_MS", "300000")?,
            max_log_events: parse("VIDFARM_MAX_LOG_EVENTS", "10000")?,
            max_retries: parse("VIDFARM_MAX_RETRIES", "3")?,
            ..Limits::default()
        };
        let worker_slots = parse("VIDFARM_WORKER_SLOTS", "256")?;
        let schedule = var("VIDFARM_WEBHOOK_RETRY_SCHEDULE").unwrap_or_else(|| "0,5s,5m,30m,2h,5h,10h,10h".into());
        let retry_schedule = schedule
            .split(',')
            .map(|d| {
                let d = d.trim();
                if d == "0" { Some(Duration::ZERO) } else { crate::providers::go_duration(d) }
            })
            .collect::<Option<Vec<_>>>()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("VIDFARM_WEBHOOK_RETRY_SCHEDULE={schedule:?} must be durations like 0,5s,5m,2h"))?;
        let s3 = match var("VIDFARM_S3_BUCKET") {
            None => None,
            Some(bucket) => Some(crate::storage::S3Settings {
                bucket,
                endpoint: var("VIDFARM_S3_ENDPOINT"),
                region: var("VIDFARM_S3_REGION").or_else(|| var("AWS_REGION")).unwrap_or_else(|| "us-east-1".into()),
                access_key_id: var("VIDFARM_S3_ACCESS_KEY_ID")
                    .or_else(|| var("AWS_ACCESS_KEY_ID"))
                    .ok_or("VIDFARM_S3_BUCKET needs VIDFARM_S3_ACCESS_KEY_ID (or AWS_ACCESS_KEY_ID)")?,
                secret_access_key: var("VIDFARM_S3_SECRET_ACCESS_KEY")
                    .or_else(|| var("AWS_SECRET_ACCESS_KEY"))
                    .ok_or("VIDFARM_S3_BUCKET needs VIDFARM_S3_SECRET_ACCESS_KEY (or AWS_SECRET_ACCESS_KEY)")?,
                force_path_style: parse("VIDFARM_S3_FORCE_PATH_STYLE", "false")?,
            }),
        };
        let render = render_settings(env)?;
        let backup = backup_settings(&data_dir, s3.as_ref())?;
        let registry_s3 = match var("VIDFARM_REGISTRY_S3_BUCKET") {
            None => None,
            Some(bucket) => Some((
                crate::storage::S3Settings {
                    bucket,
                    endpoint: var("VIDFARM_S3_ENDPOINT"),
                    region: var("VIDFARM_S3_REGION")
                        .or_else(|| var("AWS_REGION"))
                        .unwrap_or_else(|| "us-east-1".into()),
                    access_key_id: var("VIDFARM_S3_ACCESS_KEY_ID")
                        .or_else(|| var("AWS_ACCESS_KEY_ID"))
                        .ok_or("VIDFARM_REGISTRY_S3_BUCKET needs VIDFARM_S3_ACCESS_KEY_ID (or AWS_ACCESS_KEY_ID)")?,
                    secret_access_key: var("VIDFARM_S3_SECRET_ACCESS_KEY")
                        .or_else(|| var("AWS_SECRET_ACCESS_KEY"))
                        .ok_or(
                            "VIDFARM_REGISTRY_S3_BUCKET needs VIDFARM_S3_SECRET_ACCESS_KEY (or AWS_SECRET_ACCESS_KEY)",
                        )?,
                    force_path_style: parse("VIDFARM_S3_FORCE_PATH_STYLE", "false")?,
                },
                var("VIDFARM_REGISTRY_S3_PREFIX").unwrap_or_else(|| "registry".into()),
            )),
        };
        Ok(Self {
            render,
            backup,
            registry_s3,
            public_url: var("VIDFARM_PUBLIC_URL").unwrap_or_else(|| format!("http://{listen}")),
            file_url_ttl: Duration::from_secs(parse("VIDFARM_FILE_URL_TTL_SECS", "604800")?),
            s3,
            webhooks: WebhookSettings {
                retry_schedule,
                timeout: Duration::from_millis(parse("VIDFARM_WEBHOOK_TIMEOUT_MS", "15000")?),
                allow_private: env == Environment::Development,
                max_in_flight: parse::<u32>("VIDFARM_WEBHOOK_IN_FLIGHT", "64")?.max(1),
                per_customer: parse::<u32>("VIDFARM_WEBHOOK_PER_CUSTOMER", "4")?.max(1),
            },
            runtime: RuntimeConfig {
                cache_dir: Some(data_dir.join("compiled")),
                // Set from the master key when the platform starts.
                cache_key: None,
                cache_max_bytes: compiled_cache_max_bytes()?,
                defaults,
                maxima: Limits::maxima(),
                max_instances: worker_slots + 16,
            },
            data_dir,
            database_url: var("VIDFARM_DATABASE_URL").filter(|url| !url.is_empty()),
            database_pool: parse("VIDFARM_DATABASE_POOL", "16")?,
            listen,
            env,
            worker_slots,
            lease: Duration::from_millis(parse("VIDFARM_LEASE_MS", "30000")?),
            poll_interval: Duration::from_millis(parse("VIDFARM_POLL_MS", "200")?),
            shutdown_grace: Duration::from_millis(parse("VIDFARM_SHUTDOWN_GRACE_MS", "30000")?),
            retention: Duration::from_secs(parse::<u64>("VIDFARM_RETENTION_DAYS", "30")? * 86_400),
            max_concurrent_jobs: parse("VIDFARM_MAX_CONCURRENT_JOBS", "4")?,
            jobs_per_minute: parse("VIDFARM_JOBS_PER_MINUTE", "60")?,
            max_body_bytes: parse("VIDFARM_MAX_BODY_BYTES", "1048576")?,
            request_timeout: Duration::from_millis(parse("VIDFARM_REQUEST_TIMEOUT_MS", "120000")?),
            max_concurrent_requests: parse::<usize>("VIDFARM_MAX_CONCURRENT_REQUESTS", "1024")?.max(1),
            retry_base: Duration::from_millis(parse("VIDFARM_RETRY_BASE_MS", "1000")?),
            retry_max: Duration::from_millis(parse("VIDFARM_RETRY_MAX_MS", "300000")?),
            default_margin: parse("VIDFARM_DEFAULT_MARGIN", "2.0")?,
            registry_dir: var("VIDFARM_REGISTRY_DIR").map(PathBuf::from),
            default_estimate_usd: parse("VIDFARM_DEFAULT_ESTIMATE_USD", "0")?,
            storage_usd_per_gb: parse("VIDFARM_STORAGE_USD_PER_GB", "0.023")?,
            storage_quota_bytes: parse("VIDFARM_STORAGE_QUOTA_BYTES", "10737418240")?,
            cpu_usd_per_billion_fuel: parse("VIDFARM_CPU_USD_PER_BILLION_FUEL", "0.00001")?,
            registry_poll: Duration::from_millis(parse("VIDFARM_REGISTRY_POLL_MS", "250")?),
            unload_idle_versions_after: Duration::from_secs(parse("VIDFARM_UNLOAD_IDLE_VERSIONS_SECS", "600")?),
            example_templates: match var("VIDFARM_EXAMPLE_TEMPLATES") {
                Some(off) if off == "off" => None,
                Some(dir) => Some(PathBuf::from(dir)),
                None => {
                    Some(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../templates"))).filter(|dir| dir.is_dir())
                }
            },
            example_cache: var("VIDFARM_EXAMPLE_CACHE").map(PathBuf::from),
            builtin_compositions: var("VIDFARM_EXAMPLE_TEMPLATES").is_none_or(|v| v != "off"),
            trusted_keys: var("VIDFARM_TRUSTED_KEYS").unwrap_or_default(),
            admin_token: var("VIDFARM_ADMIN_TOKEN"),
            cors_origins: cors_origins(var("VIDFARM_CORS_ORIGINS").as_deref().unwrap_or(""))?,
            signup: match var("VIDFARM_SIGNUP") {
                Some(mode) => SignupMode::parse(&mode)?,
                None if env == Environment::Production => SignupMode::Closed,
                None => SignupMode::Open,
            },
            metrics_token: var("VIDFARM_METRICS_TOKEN"),
            metrics_public: parse("VIDFARM_METRICS_PUBLIC", "false")?,
            allow_local_objects: parse("VIDFARM_ALLOW_LOCAL_OBJECTS", "false")?,
            providers: ProviderSettings {
                endpoints: Endpoints {
                    openai: var("VIDFARM_OPENAI_BASE_URL").unwrap_or_else(|| "https://api.openai.com/v1".into()),
                    gemini: var("VIDFARM_GEMINI_BASE_URL")
                        .unwrap_or_else(|| "https://generativelanguage.googleapis.com/v1beta".into()),
                    openrouter: var("VIDFARM_OPENROUTER_BASE_URL")
                        .unwrap_or_else(|| "https://openrouter.ai/api/v1".into()),
                    perplexity: var("VIDFARM_PERPLEXITY_BASE_URL")
                        .unwrap_or_else(|| "https://api.perplexity.ai".into()),
                    elevenlabs: var("VIDFARM_ELEVENLABS_BASE_URL")
                        .unwrap_or_else(|| "https://api.elevenlabs.io/v1".into()),
                },
                master_key: var("VIDFARM_MASTER_KEY"),
                lease: Duration::from_millis(parse("VIDFARM_PROVIDER_LEASE_MS", "60000")?),
                default_cooldown: Duration::from_millis(parse("VIDFARM_PROVIDER_COOLDOWN_MS", "30000")?),
                quota_cooldown: Duration::from_millis(parse("VIDFARM_PROVIDER_QUOTA_COOLDOWN_MS", "3600000")?),
                timeout: Duration::from_millis(parse("VIDFARM_PROVIDER_TIMEOUT_MS", "120000")?),
                max_attempts: parse::<u32>("VIDFARM_PROVIDER_MAX_ATTEMPTS", "3")?.max(1),
                retry_base: Duration::from_millis(parse("VIDFARM_PROVIDER_RETRY_MS", "500")?),
                busy_retry: Duration::from_millis(parse::<u64>("VIDFARM_PROVIDER_BUSY_RETRY_MS", "1000")?.max(2)),
                video_poll: Duration::from_millis(parse::<u64>("VIDFARM_VIDEO_POLL_MS", "5000")?.max(10)),
                dev_echo: env == Environment::Development && parse("VIDFARM_DEV_ECHO", "true")?,
                allow_private_urls: env == Environment::Development,
                platform_keys: crate::providers::env_keys(env, &std::fs::read_to_string(".env").unwrap_or_default()),
            },
        })
    }

    /// The trusted keys: `VIDFARM_TRUSTED_KEYS` is a file path or the list itself.
    pub fn trusted_keys(&self) -> Result<vidfarm_registry::TrustedKeys, vidfarm_registry::RegistryError> {
        let path = std::path::Path::new(self.trusted_keys.trim());
        let list = if !self.trusted_keys.trim().is_empty() && path.is_file() {
            std::fs::read_to_string(path)?
        } else {
            self.trusted_keys.clone()
        };
        vidfarm_registry::TrustedKeys::parse(&list)
    }

    /// The template registry (a directory).
    pub fn registry_dir(&self) -> PathBuf {
        self.registry_dir.clone().unwrap_or_else(|| self.data_dir.join("registry"))
    }

    /// The template registry: in the S3 bucket when one is configured, else the directory.
    pub fn registry_store(&self) -> Result<vidfarm_registry::ArtifactStore, vidfarm_registry::RegistryError> {
        match &self.registry_s3 {
            Some((settings, prefix)) => {
                let blobs = crate::storage::S3Blobs::new(settings, prefix)?;
                Ok(vidfarm_registry::ArtifactStore::on(std::sync::Arc::new(blobs)))
            }
            None => vidfarm_registry::ArtifactStore::dir(self.registry_dir()),
        }
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("vidfarm.sqlite")
    }

    /// Open the configured database (migrating it): PostgreSQL when a URL is set, else the
    /// SQLite file.
    pub async fn open_database(&self) -> Result<crate::db::Db, crate::db::DbError> {
        match &self.database_url {
            Some(url) => crate::db::Db::connect(url, self.database_pool).await,
            None => crate::db::Db::open(&self.database_path()).await,
        }
    }
}

/// `VIDFARM_RENDER_*`, `VIDFARM_FFMPEG`, `VIDFARM_REMOTION*`: Remotion renders locally when
/// its script and a built bundle are found (`renderers/remotion` by default), through Lambda
/// with `VIDFARM_REMOTION=lambda`, not at all with `off`.
fn render_settings(env: Environment) -> Result<crate::render::RenderSettings, String> {
    use crate::render::{Ffmpeg, RemotionMode, RemotionSettings, RenderSettings};
    let dir = PathBuf::from(var("VIDFARM_REMOTION_DIR").unwrap_or_else(|| "renderers/remotion".into()));
    let script = dir.join("render.mjs");
    let bundle =
        PathBuf::from(var("VIDFARM_REMOTION_BUNDLE").unwrap_or_else(|| dir.join("build").display().to_string()));
    let mode = var("VIDFARM_REMOTION").unwrap_or_else(|| "local".into());
    let aws_env: Vec<(String, String)> =
        ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION"]
            .into_iter()
            .chain(["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA", "AWS_ENDPOINT_URL_S3", "REMOTION_AWS_ACCESS_KEY_ID"])
            .chain(["REMOTION_AWS_SECRET_ACCESS_KEY"])
            .filter_map(|k| var(k).map(|v| (k.to_string(), v)))
            .collect();
    let remotion = match mode.as_str() {
        "off" => None,
        "local" if !(script.is_file() && bundle.join("index.html").is_file()) => None,
        "local" | "lambda" => Some(RemotionSettings {
            mode: if mode == "local" {
                RemotionMode::Local
            } else {
                RemotionMode::Lambda {
                    region: var("VIDFARM_REMOTION_LAMBDA_REGION").unwrap_or_else(|| "us-east-1".into()),
                    function_name: var("VIDFARM_REMOTION_LAMBDA_FUNCTION")
                        .ok_or("VIDFARM_REMOTION=lambda needs VIDFARM_REMOTION_LAMBDA_FUNCTION")?,
                }
            },
            node: var("VIDFARM_NODE").unwrap_or_else(|| "node".into()),
            script: std::path::absolute(&script).map_err(|e| format!("{}: {e}", script.display()))?,
            serve_url: match var("VIDFARM_REMOTION_SERVE_URL") {
                Some(url) => url,
                None => std::path::absolute(&bundle)
                    .map_err(|e| format!("{}: {e}", bundle.display()))?
                    .display()
                    .to_string(),
            },
            other_bundles: var("VIDFARM_REMOTION_OTHER_BUNDLES")
                .map(|list| list.split(',').map(|u| u.trim().to_string()).filter(|u| !u.is_empty()).collect())
                .unwrap_or_default(),
            chromium: var("VIDFARM_CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()),
            concurrency: parse("VIDFARM_REMOTION_CONCURRENCY", "1")?,
            env: aws_env,
        }),
        other => return Err(format!("VIDFARM_REMOTION={other:?} must be local, lambda or off")),
    };
    Ok(RenderSettings {
        ffmpeg: Ffmpeg {
            ffmpeg: var("VIDFARM_FFMPEG").unwrap_or_else(|| "ffmpeg".into()),
            ffprobe: var("VIDFARM_FFPROBE").unwrap_or_else(|| "ffprobe".into()),
        },
        remotion,
        slots: parse::<u32>("VIDFARM_RENDER_SLOTS", "1")?.max(1),
        per_customer: parse::<u32>("VIDFARM_RENDER_PER_CUSTOMER", "1")?.max(1),
        generation_slots: parse::<u32>("VIDFARM_GENERATION_SLOTS", "16")?.max(1),
        generation_per_customer: parse::<u32>("VIDFARM_GENERATION_PER_CUSTOMER", "4")?.max(1),
        max_output_bytes: parse("VIDFARM_RENDER_MAX_OUTPUT_BYTES", "8589934592")?,
        usd_per_minute: parse("VIDFARM_RENDER_USD_PER_MINUTE", "0.01")?,
        max_seconds: parse("VIDFARM_RENDER_MAX_SECONDS", "10800")?,
        timeout: Duration::from_secs(parse("VIDFARM_RENDER_TIMEOUT_SECS", "3600")?),
        lease: Duration::from_millis(parse("VIDFARM_RENDER_LEASE_MS", "30000")?),
        max_attempts: parse("VIDFARM_RENDER_MAX_ATTEMPTS", "3")?,
        allow_private_sources: env == Environment::Development,
        // Empty: `<data dir>/render-work` (the data dir may still change after this).
        work_dir: var("VIDFARM_RENDER_WORK_DIR").map(PathBuf::from).unwrap_or_default(),
    })
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `https://app.example.com,http://localhost:3000` as a list of origins (scheme, host, port).
fn cors_origins(list: &str) -> Result<Vec<String>, String> {
    list.split(',')
        .map(|o| o.trim().trim_end_matches('/'))
        .filter(|o| !o.is_empty())
        .map(|origin| {
            let valid = reqwest::Url::parse(origin)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.path() == "/");
            if valid {
                Ok(origin.to_string())
            } else {
                Err(format!("VIDFARM_CORS_ORIGINS: `{origin}` is not an origin like https://app.example.com"))
            }
        })
        .collect()
}

/// `VIDFARM_COMPILED_CACHE_MB` in bytes: the bound of `<data dir>/compiled`, which the server and
/// the CLI's commands that compile share.
pub fn compiled_cache_max_bytes() -> Result<u64, String> {
    Ok(parse::<u64>("VIDFARM_COMPILED_CACHE_MB", "2048")?.saturating_mul(1 << 20))
}

fn parse<T: std::str::FromStr>(name: &str, default: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    let raw = var(name).unwrap_or_else(|| default.to_string());
    raw.trim().parse().map_err(|e| format!("{name}={raw:?} is invalid: {e}"))
}

/// `VIDFARM_BACKUP_EVERY` (`6h`, `30m` …; unset: no scheduled backups), `VIDFARM_BACKUP_KEEP`
/// (7), and where: `VIDFARM_BACKUP_S3_PREFIX` in the `VIDFARM_S3_*` bucket, else
/// `VIDFARM_BACKUP_DIR` (default `<data dir>/backups`).
fn backup_settings(
    data_dir: &std::path::Path,
    s3: Option<&crate::storage::S3Settings>,
) -> Result<Option<crate::backup::BackupSettings>, String> {
    let Some(every) = var("VIDFARM_BACKUP_EVERY") else { return Ok(None) };
    if var("VIDFARM_DATABASE_URL").is_some_and(|url| !url.is_empty()) {
        return Err("VIDFARM_BACKUP_EVERY copies the SQLite file; with VIDFARM_DATABASE_URL back PostgreSQL up \
                    with pg_dump or the server's own backups (docs/operations.md)"
            .into());
    }
    let every = crate::providers::go_duration(&every)
        .filter(|d| *d >= Duration::from_secs(1))
        .ok_or_else(|| format!("VIDFARM_BACKUP_EVERY={every:?} must be a duration like 6h or 30m"))?;
    let keep = parse::<usize>("VIDFARM_BACKUP_KEEP", "7")?.max(1);
    let target = match var("VIDFARM_BACKUP_S3_PREFIX") {
        Some(prefix) => crate::backup::BackupTarget::S3 {
            settings: s3.cloned().ok_or("VIDFARM_BACKUP_S3_PREFIX needs VIDFARM_S3_BUCKET and its credentials")?,
            prefix: format!("{}/", prefix.trim_matches('/')),
        },
        None => crate::backup::BackupTarget::Dir(
            var("VIDFARM_BACKUP_DIR").map_or_else(|| data_dir.join("backups"), PathBuf::from),
        ),
    };
    Ok(Some(crate::backup::BackupSettings { every, keep, target }))
}

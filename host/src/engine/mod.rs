//! The durable job engine: templates by version (`catalog`), SQLite-backed capabilities
//! (`backends`), workers that claim, run, heartbeat and finish jobs (`worker`), and the
//! sweeps that recover dead workers' jobs and expire old ones (`sweeper`).

pub mod backends;
mod builtin_bundles;
mod bus;
mod catalog;
pub mod examples;
pub mod publish;
mod sweeper;
pub mod switch;
mod worker;

pub use bus::Bus;
pub use catalog::{Catalog, CatalogError, check_describe};
pub use worker::Worker;

use crate::capabilities::Capabilities;
use crate::config::Config;
use crate::db::Db;
use crate::providers::{MasterKey, ProviderRouter};
use crate::storage::{LocalObjectStore, S3ObjectStore, SmallObjectsInDb, UrlSigner};
use std::sync::Arc;

/// Everything the API and the workers share.
#[derive(Clone)]
pub struct Platform {
    pub config: Arc<Config>,
    pub db: Db,
    pub catalog: Arc<Catalog>,
    pub bus: Arc<Bus>,
    pub caps: Arc<Capabilities>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Encrypts provider secrets the API receives.
    pub master_key: MasterKey,
    /// Signs and checks the URLs of `/files/…`.
    pub signer: UrlSigner,
    /// Runs renders (FFmpeg, Remotion) for waiting jobs.
    pub renders: Arc<crate::render::worker::RenderWorker>,
    /// Job creations per customer per minute, API and child jobs alike.
    pub limiter: Arc<crate::rate_limit::RateLimiter>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot use the data dir: {0}")]
    DataDir(#[from] std::io::Error),
    #[error("cannot open the database: {0}")]
    Database(#[from] crate::db::DbError),
    #[error("cannot run migrations: {0}")]
    Migrations(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("the template registry: {0}")]
    Catalog(#[from] CatalogError),
    #[error("the template registry: {0}")]
    Registry(#[from] vidfarm_registry::RegistryError),
    #[error("AI providers: {0}")]
    Providers(#[from] crate::providers::ProviderSetupError),
    #[error("refusing to start in production:\n  - {}", .0.join("\n  - "))]
    Unsafe(Vec<String>),
}

impl Platform {
    /// Open the data dir, the database (migrated), the runtime and the built-in templates.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let refusals = crate::guardrails::production_refusals(&config);
        if !refusals.is_empty() {
            return Err(StartError::Unsafe(refusals));
        }
        std::fs::create_dir_all(&config.data_dir)?;
        let db = config.open_database().await?;
        let master_key = crate::providers::master_key(&config).map_err(crate::providers::ProviderSetupError::from)?;
        let runtime_config = crate::runtime::RuntimeConfig {
            cache_key: Some(master_key.derive("vidfarm compiled cache v1")),
            ..config.runtime.clone()
        };
        let runtime = Arc::new(crate::runtime::Runtime::new(runtime_config)?);
        let registry = config.registry_store()?;
        let mut trusted = config.trusted_keys()?;
        let example_cache = config.example_cache.clone().unwrap_or_else(|| config.data_dir.join("example-builds"));
        let renderer = config.render.local_renderer_dir();
        let (dev_key, pending_builtins) = match config.env {
            crate::config::Environment::Development => {
                let key = publish::development_key(&config, &master_key)?;
                trusted.add(&key);
                let own = match renderer.as_deref() {
                    _ if !config.builtin_compositions => publish::OwnCompositions::Skipped,
                    Some(renderer) => publish::OwnCompositions::Bundled { cache: &example_cache, renderer },
                    None => publish::OwnCompositions::NoRenderer,
                };
                let pending = publish::publish_builtins(&db, &runtime, &registry, &key, own).await?;
                // The cached bundles it read (26 MB each) are freed: give the memory back.
                crate::runtime::cache::release_freed_memory();
                (Some(key), pending)
            }
            crate::config::Environment::Production => (None, Vec::new()),
        };
        let catalog = Arc::new(Catalog::new(
            runtime,
            registry,
            trusted,
            config.data_dir.join("bundles"),
            config.unload_idle_versions_after,
        ));
        for (template, error) in catalog.sync().await {
            tracing::error!(template, %error, "a template in the registry was refused");
        }
        if let (Some(key), Some(renderer), false) = (&dev_key, renderer, pending_builtins.is_empty()) {
            let publishing = builtin_bundles::publish_when_bundled(
                db.clone(),
                catalog.clone(),
                key.clone(),
                example_cache.clone(),
                renderer,
                pending_builtins,
            );
            tokio::spawn(publishing);
        }
        if let (Some(key), Some(dir)) = (dev_key, &config.example_templates) {
            let examples = examples::Examples { dir: dir.clone(), cache: example_cache };
            tokio::spawn(examples::publish_all(db.clone(), catalog.clone(), key, examples));
        }
        tokio::spawn(follow_registry(catalog.clone(), config.registry_poll));
        let bus = Arc::new(Bus::new(db.clone()));
        if let Some(signals) = db.listen().await {
            tokio::spawn(hear_other_hosts(signals, bus.clone(), catalog.clone()));
        }
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let providers =
            Arc::new(ProviderRouter::start(db.clone(), &config, master_key.clone(), metrics.clone()).await?);
        let signer = UrlSigner::new(master_key.derive("vidfarm file URLs v1"), &config.public_url, config.file_url_ttl);
        let storage: Arc<dyn crate::capabilities::ObjectStore> = match &config.s3 {
            Some(s3) => Arc::new(S3ObjectStore::new(s3, config.file_url_ttl)),
            None => Arc::new(SmallObjectsInDb::new(
                db.clone(),
                LocalObjectStore::new(config.data_dir.join("objects"), Some(signer.clone()))?,
            )),
        };
        let events: Arc<dyn crate::capabilities::EventSink> =
            Arc::new(backends::DbEvents { db: db.clone(), bus: bus.clone() });
        let mut render = config.render.clone();
        if render.work_dir.as_os_str().is_empty() {
            render.work_dir = config.data_dir.join("render-work");
        }
        let pipeline = Arc::new(
            crate::render::Pipeline::new(render, storage.clone(), Some(signer.clone()))
                .with_generator(providers.clone())
                .with_bundles(catalog.bundles().clone()),
        );
        let render_due = Arc::new(tokio::sync::Notify::new());
        let renders = Arc::new(crate::render::worker::RenderWorker {
            db: db.clone(),
            bus: bus.clone(),
            pipeline: pipeline.clone(),
            events: events.clone(),
            render_due: render_due.clone(),
            default_margin: config.default_margin,
            poll: config.poll_interval.max(std::time::Duration::from_millis(200)),
        });
        let renderer = crate::render::RenderService {
            db: db.clone(),
            pipeline,
            render_due,
            default_margin: config.default_margin,
            storage_quota_bytes: config.storage_quota_bytes,
        };
        let limiter = Arc::new(crate::rate_limit::RateLimiter::for_database(&db));
        let caps = Arc::new(Capabilities {
            events,
            storage,
            billing: Arc::new(backends::DbLedger {
                db: db.clone(),
                margin: config.default_margin,
                storage_usd_per_gb: config.storage_usd_per_gb,
                storage_quota_bytes: config.storage_quota_bytes,
            }),
            providers,
            renderer: Arc::new(renderer),
            jobs: Arc::new(backends::DbJobs {
                db: db.clone(),
                limiter: limiter.clone(),
                default_jobs_per_minute: config.jobs_per_minute,
                default_margin: config.default_margin,
                default_estimate_nusd: crate::money::from_usd(config.default_estimate_usd).unwrap_or(0),
                catalog: catalog.clone(),
                bus: bus.clone(),
            }),
            journal: Arc::new(backends::DbJournal { db: db.clone(), bus: bus.clone() }),
        });
        Ok(Self { config: Arc::new(config), db, catalog, bus, caps, metrics, master_key, signer, renders, limiter })
    }
}

/// Act on what the hosts sharing this database say (see `db::signals`).
async fn hear_other_hosts(
    mut signals: tokio::sync::mpsc::Receiver<crate::db::signals::Signal>,
    bus: Arc<Bus>,
    catalog: Arc<Catalog>,
) {
    use crate::db::signals::Signal;
    while let Some(signal) = signals.recv().await {
        match signal {
            Signal::JobDue => bus.job_due.notify_one(),
            Signal::Cancelled(ids) => {
                bus.cancel_running(&ids);
                for id in &ids {
                    bus.changed(id);
                }
            }
            Signal::Registry => {
                catalog.sync().await;
            }
        }
    }
}

/// Follow the registry's activations (made by this process, another one, or the CLI).
async fn follow_registry(catalog: Arc<Catalog>, every: std::time::Duration) {
    loop {
        tokio::time::sleep(every).await;
        catalog.sync().await;
    }
}

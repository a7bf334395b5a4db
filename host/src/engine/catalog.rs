//! The templates this host serves, from the signed registry: every loaded version, and which
//! one is active per id. New jobs take the active version; a job keeps the version it was
//! created with, which stays loadable (loaded on demand if needed) while the registry has it.
//! `sync` follows the registry's active versions, so an activation by any process takes
//! effect here without a restart; loading compiles off the request path. A version neither
//! active nor used for a while (no job took it, none runs on it) is unloaded: a host that
//! hot-swaps all day would otherwise keep every version's compiled code in memory.

use crate::render::bundles::{TemplateBundle, TemplateBundles};
use crate::runtime::bindings::types::Manifest;
use crate::runtime::{LoadError, LoadedTemplate, Runtime};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use vidfarm_registry::{ArtifactManifest, ArtifactStore, RegistryError, TrustedKeys, verify_artifact};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Waiting for this host's turn at the registry (see [`super::publish::REGISTRY_TURN`]).
    #[error("the database: {0}")]
    Database(#[from] crate::db::DbError),
}

#[derive(Default)]
struct Versions {
    /// Loaded versions by registry version.
    loaded: BTreeMap<String, Loaded>,
    active: Option<String>,
}

/// A loaded version and when a job last took it.
struct Loaded {
    template: Arc<LoadedTemplate>,
    /// Milliseconds since the catalog started: a clock read per lookup, no lock.
    used_ms: AtomicU64,
}

/// The registry-backed set of loaded templates.
pub struct Catalog {
    runtime: Arc<Runtime>,
    registry: ArtifactStore,
    trusted: TrustedKeys,
    /// Where the templates' own Remotion bundles are unpacked (checked at load).
    bundles: TemplateBundles,
    templates: RwLock<HashMap<String, Versions>>,
    /// Published versions per template and when they were read (see `versions`).
    published: std::sync::Mutex<HashMap<String, (Vec<String>, std::time::Instant)>>,
    /// A version neither active nor used this long is unloaded (`VIDFARM_UNLOAD_IDLE_VERSIONS_SECS`).
    unload_after: Duration,
    /// What `used_ms` counts from.
    started: Instant,
    /// When idle versions were last looked for (ms since `started`): at most once a second.
    swept_ms: AtomicU64,
}

/// How long a template's list of published versions is served from memory.
const VERSIONS_TTL: std::time::Duration = std::time::Duration::from_secs(2);

impl Catalog {
    /// `bundles_dir`: where this host unpacks templates' Remotion bundles.
    /// `unload_after`: how long a version neither active nor used stays loaded.
    pub fn new(
        runtime: Arc<Runtime>,
        registry: ArtifactStore,
        trusted: TrustedKeys,
        bundles_dir: PathBuf,
        unload_after: Duration,
    ) -> Self {
        let bundles = TemplateBundles { registry: registry.clone(), dir: bundles_dir };
        bundles.sweep_partials();
        Self {
            runtime,
            registry,
            trusted,
            bundles,
            templates: RwLock::default(),
            published: Default::default(),
            unload_after,
            started: Instant::now(),
            swept_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Unload the versions that are not active, that no job has taken for `unload_after` and
    /// that no run holds. A job of such a version (queued before a switch, or retried) loads it
    /// again on demand.
    fn unload_idle(&self) {
        let now = self.now_ms();
        if now.saturating_sub(self.swept_ms.load(Ordering::Relaxed)) < 1_000 {
            return;
        }
        self.swept_ms.store(now, Ordering::Relaxed);
        let idle_ms = self.unload_after.as_millis() as u64;
        let mut templates = self.write();
        for (id, versions) in templates.iter_mut() {
            let active = versions.active.clone();
            versions.loaded.retain(|version, loaded| {
                let keep = active.as_ref() == Some(version)
                    || Arc::strong_count(&loaded.template) > 1
                    || now.saturating_sub(loaded.used_ms.load(Ordering::Relaxed)) < idle_ms;
                if !keep {
                    tracing::info!(template = %id, version, "idle template version unloaded");
                }
                keep
            });
        }
    }

    /// The templates' Remotion bundles on this host (renders resolve theirs here).
    pub fn bundles(&self) -> &TemplateBundles {
        &self.bundles
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn registry(&self) -> &ArtifactStore {
        &self.registry
    }

    /// Verify and load one version from the registry (or return it if loaded).
    pub async fn load_version(&self, id: &str, version: &str) -> Result<Arc<LoadedTemplate>, CatalogError> {
        if let Some(loaded) = self.version(id, version) {
            return Ok(loaded);
        }
        let (bytes, signed) = {
            let (id, version) = (id.to_string(), version.to_string());
            self.blocking(move |registry| registry.load(&id, &version)).await?
        };
        let manifest = verify_artifact(&bytes, &signed, &self.trusted)?;
        // A version's compositions are checked (digest against the signed manifest) and
        // unpacked before it can serve a job: a tampered bundle refuses the whole version.
        let bundle = match &manifest.bundle_digest {
            Some(digest) => {
                let bundle = TemplateBundle { template_id: id.into(), version: version.into(), digest: digest.clone() };
                self.bundles.local_dir(&bundle).await?;
                Some(bundle)
            }
            None => None,
        };
        let mut loaded = self.runtime.load(Arc::from(bytes)).await?;
        loaded.bundle = bundle;
        check_describe(&manifest, &loaded.manifest)?;
        // Jobs and clients see the registry's version (dev builds carry `+<digest>`).
        loaded.manifest.version = manifest.version.clone();
        let loaded = Arc::new(loaded);
        let entry = Loaded { template: loaded.clone(), used_ms: AtomicU64::new(self.now_ms()) };
        self.write().entry(id.to_string()).or_default().loaded.insert(version.to_string(), entry);
        tracing::info!(template = id, version, cache = ?loaded.cache_outcome, "template version loaded");
        Ok(loaded)
    }

    /// Follow the registry: load each template's active version and switch to it. A version
    /// that fails verification is refused (logged) and the previous one keeps serving.
    pub async fn sync(&self) -> Vec<(String, CatalogError)> {
        let mut refused = Vec::new();
        // One read per template: its active version (every poll; an S3 registry pays a GET each).
        let actives = self
            .blocking(|registry| {
                let ids = registry.templates()?;
                Ok(ids.into_iter().filter_map(|id| Some((registry.active(&id).ok()??, id))).collect::<Vec<_>>())
            })
            .await;
        let actives = match actives {
            Ok(actives) => actives,
            Err(e) => return vec![("*".into(), e.into())],
        };
        for (version, id) in actives {
            if self.active_version(&id).as_deref() == Some(version.as_str()) {
                continue;
            }
            match self.load_version(&id, &version).await {
                Ok(_) => {
                    let previous = self.write().entry(id.clone()).or_default().active.replace(version.clone());
                    tracing::info!(template = %id, from = ?previous, to = %version, "active version switched");
                }
                Err(e) => {
                    tracing::error!(template = %id, version = %version, error = %e, "refusing to activate");
                    refused.push((id, e));
                }
            }
        }
        self.unload_idle();
        refused
    }

    /// Run registry I/O (files, or S3 requests) off the async threads.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&ArtifactStore) -> Result<T, RegistryError> + Send + 'static,
    ) -> Result<T, RegistryError> {
        let registry = self.registry.clone();
        tokio::task::spawn_blocking(move || work(&registry))
            .await
            .map_err(|e| RegistryError::Io(std::io::Error::other(format!("registry task: {e}"))))?
    }

    pub(crate) fn active_version(&self, id: &str) -> Option<String> {
        self.read().get(id)?.active.clone()
    }

    pub fn active(&self, id: &str) -> Option<Arc<LoadedTemplate>> {
        let templates = self.read();
        let entry = templates.get(id)?;
        entry.loaded.get(entry.active.as_ref()?).map(|loaded| loaded.template.clone())
    }

    /// The versions of a template held in memory now (looking does not count as use).
    pub fn loaded_versions(&self, id: &str) -> Vec<String> {
        self.read().get(id).map(|versions| versions.loaded.keys().cloned().collect()).unwrap_or_default()
    }

    /// A loaded version (marked used: see `unload_idle`).
    pub fn version(&self, id: &str, version: &str) -> Option<Arc<LoadedTemplate>> {
        let templates = self.read();
        let loaded = templates.get(id)?.loaded.get(version)?;
        loaded.used_ms.store(self.now_ms(), Ordering::Relaxed);
        Some(loaded.template.clone())
    }

    /// Published versions of a template, oldest first.
    /// Read from the manifests only (never the components), off the async threads, and
    /// cached for [`VERSIONS_TTL`]: a busy `GET /templates/:id` costs no registry reads.
    pub async fn versions(&self, id: &str) -> Vec<String> {
        if let Some((versions, at)) = self.published.lock().unwrap_or_else(|p| p.into_inner()).get(id)
            && at.elapsed() < VERSIONS_TTL
        {
            return versions.clone();
        }
        let owned = id.to_string();
        let listed = self.blocking(move |registry| registry.versions(&owned)).await;
        let versions: Vec<String> = listed.map(|v| v.into_iter().map(|v| v.version).collect()).unwrap_or_default();
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        published.insert(id.to_string(), (versions.clone(), std::time::Instant::now()));
        versions
    }

    /// Every template's active version.
    pub fn list(&self) -> Vec<Arc<LoadedTemplate>> {
        let templates = self.read();
        let mut ids: Vec<&String> = templates.keys().collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|id| templates.get(id).and_then(|e| e.loaded.get(e.active.as_ref()?)))
            .map(|loaded| loaded.template.clone())
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Versions>> {
        self.templates.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Versions>> {
        self.templates.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The component's own `describe` must say what its signed manifest says.
pub fn check_describe(signed: &ArtifactManifest, described: &Manifest) -> Result<(), RegistryError> {
    let mismatch = |what: String| Err(RegistryError::DescribeMismatch(what));
    if signed.template_id != described.id {
        return mismatch(format!("id `{}` is signed, `{}` described", signed.template_id, described.id));
    }
    if signed.version.split('+').next() != Some(described.version.as_str()) {
        return mismatch(format!("version `{}` is signed, `{}` described", signed.version, described.version));
    }
    let ops = |m: &[vidfarm_registry::OperationSummary]| {
        m.iter().map(|o| (o.name.clone(), o.workflow.clone(), o.input_schema.clone())).collect::<Vec<_>>()
    };
    let described_ops: Vec<_> =
        described.operations.iter().map(|o| (o.name.clone(), o.workflow.clone(), o.input_schema.clone())).collect();
    if ops(&signed.operations) != described_ops {
        return mismatch("the operations differ".into());
    }
    Ok(())
}

/// The manifest's operations as the registry records them.
pub fn operation_summaries(described: &Manifest) -> Vec<vidfarm_registry::OperationSummary> {
    described
        .operations
        .iter()
        .map(|o| vidfarm_registry::OperationSummary {
            name: o.name.clone(),
            description: o.description.clone(),
            workflow: o.workflow.clone(),
            input_schema: o.input_schema.clone(),
        })
        .collect()
}

//! The templates this host serves: every loaded version, and which one is active per id.
//! New jobs take the active version; a job keeps the version it was created with.

use crate::runtime::{LoadError, LoadedTemplate, Runtime};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

#[derive(Default)]
struct Versions {
    /// Loaded versions by version string.
    loaded: BTreeMap<String, Arc<LoadedTemplate>>,
    active: Option<String>,
}

pub struct Catalog {
    runtime: Arc<Runtime>,
    templates: RwLock<HashMap<String, Versions>>,
}

impl Catalog {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self { runtime, templates: RwLock::default() }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Load a component and make its version available (active if `activate`).
    pub async fn add(&self, bytes: Arc<[u8]>, activate: bool) -> Result<Arc<LoadedTemplate>, LoadError> {
        let loaded = Arc::new(self.runtime.load(bytes).await?);
        let (id, version) = (loaded.manifest.id.clone(), loaded.manifest.version.clone());
        let mut templates = self.write();
        let entry = templates.entry(id).or_default();
        entry.loaded.insert(version.clone(), loaded.clone());
        if activate || entry.active.is_none() {
            entry.active = Some(version);
        }
        Ok(loaded)
    }

    /// The built-in example templates, each active.
    pub async fn add_builtins(&self) -> Result<(), LoadError> {
        for (id, _, bytes) in vidfarm_template_artifacts::ALL {
            let loaded = self.add(Arc::from(*bytes), true).await?;
            tracing::info!(template = id, version = %loaded.manifest.version, cache = ?loaded.cache_outcome, "template loaded");
        }
        Ok(())
    }

    pub fn active(&self, id: &str) -> Option<Arc<LoadedTemplate>> {
        let templates = self.read();
        let entry = templates.get(id)?;
        entry.loaded.get(entry.active.as_ref()?).cloned()
    }

    pub fn version(&self, id: &str, version: &str) -> Option<Arc<LoadedTemplate>> {
        self.read().get(id)?.loaded.get(version).cloned()
    }

    /// Loaded versions of a template, oldest first.
    pub fn versions(&self, id: &str) -> Vec<String> {
        self.read().get(id).map(|v| v.loaded.keys().cloned().collect()).unwrap_or_default()
    }

    /// Every template's active version, by id.
    pub fn list(&self) -> Vec<Arc<LoadedTemplate>> {
        let templates = self.read();
        let mut ids: Vec<&String> = templates.keys().collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|id| templates.get(id).and_then(|e| e.loaded.get(e.active.as_ref()?).cloned()))
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Versions>> {
        self.templates.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Versions>> {
        self.templates.write().unwrap_or_else(|p| p.into_inner())
    }
}

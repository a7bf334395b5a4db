//! The registry on disk (a directory; an S3 bucket uses the same layout):
//!
//! ```text
//! <root>/<template id>/<version>/component.wasm
//! <root>/<template id>/<version>/manifest.json   signed manifest
//! <root>/<template id>/active                    the active version
//! <root>/<template id>/history.jsonl             every publish, activation and rollback
//! ```
//!
//! Files are written beside and renamed into place, so a reader (another process polling the
//! registry) never sees half a file.

use crate::{RegistryError, SignedManifest};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One published version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredVersion {
    pub template_id: String,
    pub version: String,
    pub digest: String,
    pub signer_key_id: String,
    pub created_at: i64,
}

/// One line of a template's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationRecord {
    /// `publish`, `activate` or `rollback`.
    pub action: String,
    pub from: Option<String>,
    pub to: String,
    /// Who did it: a key id, `admin-api`, `dev-autopublish`, …
    pub actor: String,
    /// Unix milliseconds.
    pub at: i64,
}

pub struct DirStore {
    root: PathBuf,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Ids and versions become path segments: allow only what manifests allow.
fn segment<'a>(what: &'static str, value: &'a str) -> Result<&'a str, RegistryError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value != "."
        && value != ".."
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '+' | '_'));
    if ok {
        Ok(value)
    } else {
        Err(RegistryError::Invalid { what, problem: format!("`{value}` is not a valid {what}") })
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let partial = path.with_extension(format!("partial-{}-{}", std::process::id(), now_ms()));
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)
}

impl DirStore {
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, RegistryError> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    fn dir(&self, template_id: &str) -> Result<PathBuf, RegistryError> {
        Ok(self.root.join(segment("template id", template_id)?))
    }

    fn version_dir(&self, template_id: &str, version: &str) -> Result<PathBuf, RegistryError> {
        Ok(self.dir(template_id)?.join(segment("version", version)?))
    }

    /// Store a signed artifact. Publishing the same bytes again is a no-op; other bytes under
    /// an existing version are refused.
    pub fn publish(&self, bytes: &[u8], signed: &SignedManifest, actor: &str) -> Result<StoredVersion, RegistryError> {
        let m = &signed.manifest;
        let dir = self.version_dir(&m.template_id, &m.version)?;
        if let Ok((_, existing)) = self.load(&m.template_id, &m.version) {
            if existing.manifest.digest != m.digest {
                return Err(RegistryError::VersionExists {
                    template_id: m.template_id.clone(),
                    version: m.version.clone(),
                    existing: existing.manifest.digest,
                });
            }
            return Ok(stored(&existing));
        }
        let manifest = serde_json::to_vec_pretty(signed)
            .map_err(|e| RegistryError::Invalid { what: "manifest", problem: e.to_string() })?;
        write_atomically(&dir.join("component.wasm"), bytes)?;
        write_atomically(&dir.join("manifest.json"), &manifest)?;
        self.record(
            &m.template_id,
            ActivationRecord {
                action: "publish".into(),
                from: None,
                to: m.version.clone(),
                actor: actor.into(),
                at: now_ms(),
            },
        )?;
        Ok(stored(signed))
    }

    /// A version's bytes and signed manifest (verify them before use).
    pub fn load(&self, template_id: &str, version: &str) -> Result<(Vec<u8>, SignedManifest), RegistryError> {
        let dir = self.version_dir(template_id, version)?;
        let not_found = || RegistryError::NotFound(format!("{template_id}@{version}"));
        let manifest = std::fs::read(dir.join("manifest.json")).map_err(|_| not_found())?;
        let bytes = std::fs::read(dir.join("component.wasm")).map_err(|_| not_found())?;
        let signed = serde_json::from_slice(&manifest).map_err(|e| {
            RegistryError::Tampered(format!("the manifest of {template_id}@{version} is unreadable: {e}"))
        })?;
        Ok((bytes, signed))
    }

    /// Every template id in the registry.
    pub fn templates(&self) -> Result<Vec<String>, RegistryError> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.root)?
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// A template's published versions, oldest first.
    pub fn versions(&self, template_id: &str) -> Result<Vec<StoredVersion>, RegistryError> {
        let dir = self.dir(template_id)?;
        let mut versions = Vec::new();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Some(version) = entry.file_name().to_str().map(String::from) else { continue };
            if entry.path().is_dir()
                && let Ok((_, signed)) = self.load(template_id, &version)
            {
                versions.push(stored(&signed));
            }
        }
        versions.sort_by_key(|v| v.created_at);
        Ok(versions)
    }

    pub fn active(&self, template_id: &str) -> Result<Option<String>, RegistryError> {
        match std::fs::read_to_string(self.dir(template_id)?.join("active")) {
            Ok(version) => Ok(Some(version.trim().to_string()).filter(|v| !v.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Make `version` the one new jobs use.
    pub fn activate(&self, template_id: &str, version: &str, actor: &str) -> Result<ActivationRecord, RegistryError> {
        self.load(template_id, version)?;
        self.switch(template_id, version, "activate", actor)
    }

    /// Go back to the version active before the last activation or rollback.
    pub fn rollback(&self, template_id: &str, actor: &str) -> Result<ActivationRecord, RegistryError> {
        let active = self.active(template_id)?;
        let previous = self
            .history(template_id)?
            .into_iter()
            .rev()
            .filter(|r| r.action != "publish" && Some(&r.to) == active.as_ref())
            .find_map(|r| r.from)
            .ok_or_else(|| RegistryError::NotFound(format!("an earlier active version of {template_id}")))?;
        self.switch(template_id, &previous, "rollback", actor)
    }

    fn switch(
        &self,
        template_id: &str,
        version: &str,
        action: &str,
        actor: &str,
    ) -> Result<ActivationRecord, RegistryError> {
        let from = self.active(template_id)?;
        write_atomically(&self.dir(template_id)?.join("active"), version.as_bytes())?;
        let record =
            ActivationRecord { action: action.into(), from, to: version.into(), actor: actor.into(), at: now_ms() };
        self.record(template_id, record.clone())?;
        Ok(record)
    }

    pub fn history(&self, template_id: &str) -> Result<Vec<ActivationRecord>, RegistryError> {
        let text = match std::fs::read_to_string(self.dir(template_id)?.join("history.jsonl")) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
    }

    fn record(&self, template_id: &str, record: ActivationRecord) -> Result<(), RegistryError> {
        use std::io::Write;
        let line = serde_json::to_string(&record)
            .map_err(|e| RegistryError::Invalid { what: "history", problem: e.to_string() })?;
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir(template_id)?.join("history.jsonl"))?;
        writeln!(file, "{line}")?;
        Ok(())
    }
}

fn stored(signed: &SignedManifest) -> StoredVersion {
    let m = &signed.manifest;
    StoredVersion {
        template_id: m.template_id.clone(),
        version: m.version.clone(),
        digest: m.digest.clone(),
        signer_key_id: m.signer_key_id.clone(),
        created_at: m.created_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ArtifactManifest, SigningKey};

    fn publish(
        store: &DirStore,
        key: &SigningKey,
        version: &str,
        bytes: &[u8],
    ) -> Result<StoredVersion, RegistryError> {
        let signed = key.sign(ArtifactManifest::new("hello", version, bytes, vec![], key))?;
        store.publish(bytes, &signed, &key.key_id())
    }

    #[test]
    fn publish_activate_and_rollback_are_recorded_in_order() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = DirStore::new(dir.path()).expect("a store");
        let key = SigningKey::generate();
        publish(&store, &key, "1.0.0", b"one").expect("v1");
        publish(&store, &key, "2.0.0", b"two").expect("v2");
        store.activate("hello", "1.0.0", "ops").expect("activate v1");
        store.activate("hello", "2.0.0", "ops").expect("activate v2");
        let back = store.rollback("hello", "ops").expect("rollback");
        assert_eq!((back.from.as_deref(), back.to.as_str()), (Some("2.0.0"), "1.0.0"));
        assert_eq!(store.active("hello").expect("reads").as_deref(), Some("1.0.0"));
        let actions: Vec<String> =
            store.history("hello").expect("history").into_iter().map(|r| format!("{}:{}", r.action, r.to)).collect();
        assert_eq!(actions, ["publish:1.0.0", "publish:2.0.0", "activate:1.0.0", "activate:2.0.0", "rollback:1.0.0"]);
        assert_eq!(store.versions("hello").expect("versions").len(), 2);
    }

    #[test]
    fn a_version_cannot_be_republished_with_other_bytes() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = DirStore::new(dir.path()).expect("a store");
        let key = SigningKey::generate();
        publish(&store, &key, "1.0.0", b"one").expect("v1");
        publish(&store, &key, "1.0.0", b"one").expect("the same bytes again is fine");
        assert!(matches!(publish(&store, &key, "1.0.0", b"other"), Err(RegistryError::VersionExists { .. })));
    }

    #[test]
    fn activating_an_unknown_version_or_path_tricks_are_refused() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = DirStore::new(dir.path()).expect("a store");
        assert!(matches!(store.activate("hello", "9.9.9", "ops"), Err(RegistryError::NotFound(_))));
        assert!(matches!(store.activate("../etc", "1.0.0", "ops"), Err(RegistryError::Invalid { .. })));
        assert!(matches!(store.rollback("hello", "ops"), Err(RegistryError::NotFound(_))));
    }
}

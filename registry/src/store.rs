//! The registry's layout, the same in a directory and in an S3 bucket (under a prefix):
//!
//! ```text
//! <template id>/<version>/component.wasm
//! <template id>/<version>/manifest.json    signed manifest
//! <template id>/<version>/bundle.tar       its Remotion bundle, when it has one
//! <template id>/active                     the active version
//! <template id>/history/<ns>-<nonce>       one publish, activation or rollback each
//! ```
//!
//! Objects are written whole (a directory renames them into place), so a reader in another
//! process never sees half of one; history is one object per record, because object stores
//! cannot append. (Directories written before this layout kept `history.jsonl`: still read.)

use crate::blobs::{Blobs, DirBlobs};
use crate::{RegistryError, SignedManifest};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

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
    /// `publish`, `activate`, `rollback`, or `revert` (a refused version switched back).
    pub action: String,
    pub from: Option<String>,
    pub to: String,
    /// Who did it: a key id, `admin-api`, `dev-autopublish`, …
    pub actor: String,
    /// Unix milliseconds.
    pub at: i64,
}

/// The artifact store over any [`Blobs`]; cheap to clone.
#[derive(Clone)]
pub struct ArtifactStore {
    blobs: Arc<dyn Blobs>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Unix nanoseconds, never the same twice in this process (history records sort by it).
fn next_stamp() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let previous = LAST.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(now.max(last + 1))).unwrap_or(0);
    now.max(previous + 1)
}

/// Ids and versions become key segments: allow only what manifests allow.
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

/// The largest Remotion bundle (packed) a version may carry; hosts refuse larger ones too.
pub const MAX_BUNDLE_BYTES: u64 = 256 << 20;

/// Names under a template that are not versions.
const NOT_VERSIONS: &[&str] = &["active", "history", "history.jsonl"];

impl ArtifactStore {
    /// A registry in a directory.
    pub fn dir(root: impl Into<PathBuf>) -> Result<Self, RegistryError> {
        Ok(Self::on(Arc::new(DirBlobs::new(root)?)))
    }

    /// A registry on any blob store (the host's S3 one, say).
    pub fn on(blobs: Arc<dyn Blobs>) -> Self {
        Self { blobs }
    }

    /// Where the registry is, for messages.
    pub fn location(&self) -> String {
        self.blobs.location()
    }

    fn version_key(template_id: &str, version: &str, file: &str) -> Result<String, RegistryError> {
        Ok(format!("{}/{}/{file}", segment("template id", template_id)?, segment("version", version)?))
    }

    /// Store a signed artifact. Publishing the same bytes again is a no-op; other bytes under
    /// an existing version are refused.
    pub fn publish(&self, bytes: &[u8], signed: &SignedManifest, actor: &str) -> Result<StoredVersion, RegistryError> {
        self.publish_with_bundle(bytes, None, signed, actor)
    }

    /// [`publish`](Self::publish) with the template's Remotion bundle, which the manifest must
    /// name by digest (and only then).
    pub fn publish_with_bundle(
        &self,
        bytes: &[u8],
        bundle: Option<&[u8]>,
        signed: &SignedManifest,
        actor: &str,
    ) -> Result<StoredVersion, RegistryError> {
        let m = &signed.manifest;
        if let Some(bundle) = bundle
            && bundle.len() as u64 > MAX_BUNDLE_BYTES
        {
            return Err(RegistryError::Invalid {
                what: "bundle",
                problem: format!("{} bytes, more than the {MAX_BUNDLE_BYTES} a bundle may have", bundle.len()),
            });
        }
        match (bundle, &m.bundle_digest) {
            (Some(bundle), Some(_)) => crate::verify_bundle(bundle, m)?,
            (None, None) => {}
            (Some(_), None) => {
                return Err(RegistryError::Invalid { what: "bundle", problem: "the manifest names no bundle".into() });
            }
            (None, Some(_)) => {
                return Err(RegistryError::Invalid { what: "bundle", problem: "the manifest names a bundle".into() });
            }
        }
        if let Ok((_, existing)) = self.load(&m.template_id, &m.version) {
            if existing.manifest.digest != m.digest || existing.manifest.bundle_digest != m.bundle_digest {
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
        // The bundle and the component first: a manifest is only ever visible beside its bytes.
        if let Some(bundle) = bundle {
            self.blobs.put(&Self::version_key(&m.template_id, &m.version, "bundle.tar")?, bundle)?;
        }
        self.blobs.put(&Self::version_key(&m.template_id, &m.version, "component.wasm")?, bytes)?;
        self.blobs.put(&Self::version_key(&m.template_id, &m.version, "manifest.json")?, &manifest)?;
        let record = ActivationRecord {
            action: "publish".into(),
            from: None,
            to: m.version.clone(),
            actor: actor.into(),
            at: now_ms(),
        };
        self.record(&m.template_id, &record)?;
        Ok(stored(signed))
    }

    /// A version's bytes and signed manifest (verify them before use).
    pub fn load(&self, template_id: &str, version: &str) -> Result<(Vec<u8>, SignedManifest), RegistryError> {
        let signed = self.manifest(template_id, version)?;
        let bytes = self
            .blobs
            .get(&Self::version_key(template_id, version, "component.wasm")?)?
            .ok_or_else(|| RegistryError::NotFound(format!("{template_id}@{version}")))?;
        Ok((bytes, signed))
    }

    /// A version's Remotion bundle (verify it against the manifest before use).
    pub fn bundle(&self, template_id: &str, version: &str) -> Result<Vec<u8>, RegistryError> {
        self.blobs
            .get(&Self::version_key(template_id, version, "bundle.tar")?)?
            .ok_or_else(|| RegistryError::NotFound(format!("the Remotion bundle of {template_id}@{version}")))
    }

    /// A version's signed manifest alone (a few KB, never the component), checked to name the
    /// path it was stored under.
    pub fn manifest(&self, template_id: &str, version: &str) -> Result<SignedManifest, RegistryError> {
        let not_found = || RegistryError::NotFound(format!("{template_id}@{version}"));
        let manifest =
            self.blobs.get(&Self::version_key(template_id, version, "manifest.json")?)?.ok_or_else(not_found)?;
        let signed: SignedManifest = serde_json::from_slice(&manifest).map_err(|e| {
            RegistryError::Tampered(format!("the manifest of {template_id}@{version} is unreadable: {e}"))
        })?;
        // A signed manifest copied under another template's or version's path is still
        // validly signed: the path must be what it names.
        let named = &signed.manifest;
        if named.template_id != template_id || named.version != version {
            return Err(RegistryError::Tampered(format!(
                "the manifest stored as {template_id}@{version} is for {}@{}",
                named.template_id, named.version
            )));
        }
        Ok(signed)
    }

    /// Every template id in the registry.
    pub fn templates(&self) -> Result<Vec<String>, RegistryError> {
        let mut ids: Vec<String> =
            self.blobs.children("")?.into_iter().filter(|id| segment("id", id).is_ok()).collect();
        ids.sort();
        Ok(ids)
    }

    /// A template's published versions, oldest first.
    pub fn versions(&self, template_id: &str) -> Result<Vec<StoredVersion>, RegistryError> {
        let mut versions = Vec::new();
        for version in self.blobs.children(segment("template id", template_id)?)? {
            if NOT_VERSIONS.contains(&version.as_str()) || segment("version", &version).is_err() {
                continue;
            }
            if let Ok(signed) = self.manifest(template_id, &version) {
                versions.push(stored(&signed));
            }
        }
        versions.sort_by_key(|v| v.created_at);
        Ok(versions)
    }

    pub fn active(&self, template_id: &str) -> Result<Option<String>, RegistryError> {
        let bytes = self.blobs.get(&format!("{}/active", segment("template id", template_id)?))?;
        Ok(bytes.map(|b| String::from_utf8_lossy(&b).trim().to_string()).filter(|v| !v.is_empty()))
    }

    /// Make `version` the one new jobs use. Only forward: a version older than the active
    /// one (by version number) is refused — going back is `rollback`, which the history
    /// records as such.
    pub fn activate(&self, template_id: &str, version: &str, actor: &str) -> Result<ActivationRecord, RegistryError> {
        self.load(template_id, version)?;
        if let Some(active) = self.active(template_id)?
            && older(version, &active)
        {
            return Err(RegistryError::Invalid {
                what: "version",
                problem: format!("{template_id}@{version} is older than the active {active}; use rollback to go back"),
            });
        }
        self.switch(template_id, version, "activate", actor)
    }

    /// Put `version` back after the version just activated was refused by the hosts: a switch
    /// like an activation, but backwards, recorded as a `revert` that rollbacks pass over.
    pub fn revert(&self, template_id: &str, version: &str, actor: &str) -> Result<ActivationRecord, RegistryError> {
        self.load(template_id, version)?;
        self.switch(template_id, version, "revert", actor)
    }

    /// Go back to the version active before the last activation or rollback.
    pub fn rollback(&self, template_id: &str, actor: &str) -> Result<ActivationRecord, RegistryError> {
        let active = self.active(template_id)?;
        let previous = self
            .history(template_id)?
            .into_iter()
            .rev()
            .filter(|r| r.action != "publish" && r.action != "revert" && Some(&r.to) == active.as_ref())
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
        self.blobs.put(&format!("{}/active", segment("template id", template_id)?), version.as_bytes())?;
        let record =
            ActivationRecord { action: action.into(), from, to: version.into(), actor: actor.into(), at: now_ms() };
        self.record(template_id, &record)?;
        Ok(record)
    }

    /// Every publish, activation, rollback and revert of a template, oldest first.
    pub fn history(&self, template_id: &str) -> Result<Vec<ActivationRecord>, RegistryError> {
        let id = segment("template id", template_id)?;
        let legacy = self.blobs.get(&format!("{id}/history.jsonl"))?.unwrap_or_default();
        let mut records: Vec<ActivationRecord> =
            String::from_utf8_lossy(&legacy).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let mut names = self.blobs.children(&format!("{id}/history"))?;
        names.sort();
        for name in names {
            if let Some(bytes) = self.blobs.get(&format!("{id}/history/{name}"))?
                && let Ok(record) = serde_json::from_slice(&bytes)
            {
                records.push(record);
            }
        }
        Ok(records)
    }

    fn record(&self, template_id: &str, record: &ActivationRecord) -> Result<(), RegistryError> {
        let bytes = serde_json::to_vec(record)
            .map_err(|e| RegistryError::Invalid { what: "history", problem: e.to_string() })?;
        // Names sort by time: nanoseconds, strictly increasing within this process; the nonce
        // keeps two processes writing in the same nanosecond apart.
        let nonce: u32 = rand::random();
        let name = format!("{:020}-{nonce:08x}", next_stamp());
        self.blobs.put(&format!("{}/history/{name}", segment("template id", template_id)?), &bytes)?;
        Ok(())
    }
}

/// Whether version `a` is older than `b`, comparing dot-separated numbers (`0.10.0` is newer
/// than `0.9.1`); a pre-release or build suffix is ignored, and versions that are not numbers
/// are never "older" (nothing is refused that cannot be compared).
fn older(a: &str, b: &str) -> bool {
    let parts =
        |v: &str| -> Option<Vec<u64>> { v.split(['-', '+']).next()?.split('.').map(|p| p.parse().ok()).collect() };
    matches!((parts(a), parts(b)), (Some(a), Some(b)) if a < b)
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
        store: &ArtifactStore,
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
        let store = ArtifactStore::dir(dir.path()).expect("a store");
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
    fn the_active_version_moves_back_only_through_rollback() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = ArtifactStore::dir(dir.path()).expect("a store");
        let key = SigningKey::generate();
        for (version, bytes) in [("1.9.0", b"nine"), ("1.10.0", b"tens")] {
            publish(&store, &key, version, bytes).expect("published");
        }
        store.activate("hello", "1.10.0", "ops").expect("activate 1.10.0");
        let refused = store.activate("hello", "1.9.0", "ops").expect_err("older than the active one");
        assert!(refused.to_string().contains("use rollback"), "{refused}");
        assert_eq!(store.active("hello").expect("reads").as_deref(), Some("1.10.0"));
        assert!(older("1.9.0", "1.10.0") && !older("2.0.0", "1.10.0") && !older("next", "1.0.0"));
    }

    #[test]
    fn a_manifest_copied_under_another_version_is_refused() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = ArtifactStore::dir(dir.path()).expect("a store");
        let key = SigningKey::generate();
        publish(&store, &key, "1.0.0", b"one").expect("v1");
        publish(&store, &key, "2.0.0", b"two").expect("v2");
        // Someone with write access to the store copies 1.0.0 (manifest and bytes, validly
        // signed) over 2.0.0: the signature holds, the path does not match.
        for file in ["manifest.json", "component.wasm"] {
            std::fs::copy(dir.path().join("hello/1.0.0").join(file), dir.path().join("hello/2.0.0").join(file))
                .expect("copied");
        }
        let refused = store.load("hello", "2.0.0").expect_err("refused");
        assert!(matches!(refused, RegistryError::Tampered(_)), "{refused}");
        assert!(refused.to_string().contains("is for hello@1.0.0"), "{refused}");
    }

    #[test]
    fn a_version_cannot_be_republished_with_other_bytes() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = ArtifactStore::dir(dir.path()).expect("a store");
        let key = SigningKey::generate();
        publish(&store, &key, "1.0.0", b"one").expect("v1");
        publish(&store, &key, "1.0.0", b"one").expect("the same bytes again is fine");
        assert!(matches!(publish(&store, &key, "1.0.0", b"other"), Err(RegistryError::VersionExists { .. })));
    }

    #[test]
    fn a_version_cannot_be_republished_with_another_bundle() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = ArtifactStore::dir(dir.path()).expect("a store");
        let key = SigningKey::generate();
        let with = |bundle: &[u8]| {
            let manifest = ArtifactManifest::new("hello", "1.0.0", b"one", vec![], &key).with_bundle(bundle);
            key.sign(manifest).expect("signs")
        };
        store.publish_with_bundle(b"one", Some(b"tar"), &with(b"tar"), "ops").expect("published");
        store.publish_with_bundle(b"one", Some(b"tar"), &with(b"tar"), "ops").expect("the same again is fine");
        let refused = store.publish_with_bundle(b"one", Some(b"taz"), &with(b"taz"), "ops");
        assert!(matches!(refused, Err(RegistryError::VersionExists { .. })), "{refused:?}");
        assert_eq!(store.bundle("hello", "1.0.0").expect("stored"), b"tar");
        let unsigned = key.sign(ArtifactManifest::new("hello", "2.0.0", b"two", vec![], &key)).expect("signs");
        let refused = store.publish_with_bundle(b"two", Some(b"tar"), &unsigned, "ops").expect_err("not named");
        assert!(refused.to_string().contains("names no bundle"), "{refused}");
    }

    #[test]
    fn activating_an_unknown_version_or_path_tricks_are_refused() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = ArtifactStore::dir(dir.path()).expect("a store");
        assert!(matches!(store.activate("hello", "9.9.9", "ops"), Err(RegistryError::NotFound(_))));
        assert!(matches!(store.activate("../etc", "1.0.0", "ops"), Err(RegistryError::Invalid { .. })));
        assert!(matches!(store.rollback("hello", "ops"), Err(RegistryError::NotFound(_))));
    }
}

//! Publishing a component to the registry: read its `describe`, sign the manifest, store it.
//! Used by `vidfarm registry publish` and, in development, to publish the built-in templates
//! at start with a local dev key.

use super::catalog::{CatalogError, operation_summaries};
use crate::db::Db;
use crate::runtime::Runtime;
use std::sync::Arc;
use vidfarm_registry::{ArtifactManifest, ArtifactStore, RegistryError, SignedManifest, SigningKey, StoredVersion};

/// Publish `bytes` as the version its `describe` states (`+build` appended if given).
pub async fn publish(
    runtime: &Runtime,
    store: &ArtifactStore,
    key: &SigningKey,
    bytes: &[u8],
    build: Option<&str>,
    actor: &str,
) -> Result<StoredVersion, CatalogError> {
    publish_with_bundle(runtime, store, key, bytes, None, build, actor).await
}

/// [`publish`] with the template's packed Remotion bundle, signed with it (its digest in the
/// manifest) and stored beside it.
pub async fn publish_with_bundle(
    runtime: &Runtime,
    store: &ArtifactStore,
    key: &SigningKey,
    bytes: &[u8],
    bundle: Option<&[u8]>,
    build: Option<&str>,
    actor: &str,
) -> Result<StoredVersion, CatalogError> {
    let signed = signed_manifest(runtime, key, bytes, bundle, build).await?;
    Ok(store.publish_with_bundle(bytes, bundle, &signed, actor)?)
}

/// The signed manifest of `bytes` (loaded to read its `describe`: compiled, which takes
/// seconds).
async fn signed_manifest(
    runtime: &Runtime,
    key: &SigningKey,
    bytes: &[u8],
    bundle: Option<&[u8]>,
    build: Option<&str>,
) -> Result<SignedManifest, CatalogError> {
    let loaded = runtime.load(Arc::from(bytes)).await?;
    let described = &loaded.manifest;
    let version = match build {
        Some(build) => format!("{}+{build}", described.version),
        None => described.version.clone(),
    };
    let mut manifest = ArtifactManifest::new(&described.id, &version, bytes, operation_summaries(described), key);
    if let Some(bundle) = bundle {
        manifest = manifest.with_bundle(bundle);
    }
    Ok(key.sign(manifest)?)
}

/// What hosts sharing a database, and the requests of one host, take turns at: any write to
/// the registry (see [`publish_dev_build_with`]; an operator's activation or rollback).
/// (The text is the lock's key. It is the one the first use, publishing, had, so hosts of an
/// earlier release still take turns with these during a rolling upgrade.)
pub const REGISTRY_TURN: &str = "publishing development builds";

/// How long a host waits for its turn at the registry. A turn lasts a few object writes; one
/// held longer belongs to a host that froze holding it. A development build is then published
/// without it rather than wait on (on S3, whose PUTs are atomic, the turn only spares writing
/// twice); an operator's switch is refused, to be tried again.
pub const REGISTRY_TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The key development hosts publish the built-in templates with, and trust.
///
/// With the registry in a bucket, every host sharing it must trust what the others publish
/// there: the key is derived from the master key, which hosts sharing a database share already
/// (their provider secrets are sealed with it). A key file in one data dir would be one host's
/// only, and the others would refuse its versions. With a registry folder, the key under the
/// data dir ([`dev_key`]).
pub fn development_key(
    config: &crate::config::Config,
    master_key: &crate::providers::MasterKey,
) -> Result<SigningKey, RegistryError> {
    match config.registry_s3 {
        Some(_) => Ok(SigningKey::from_seed(master_key.derive("vidfarm development registry key v1"))),
        None => dev_key(&config.data_dir.join("registry-dev.key")),
    }
}

/// The development key under the data dir, created on first use.
pub fn dev_key(path: &std::path::Path) -> Result<SigningKey, RegistryError> {
    match std::fs::read_to_string(path) {
        Ok(text) => SigningKey::from_file_text(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(path, key.to_file_text())?;
            Ok(key)
        }
        Err(e) => Err(e.into()),
    }
}

/// Publish every built-in template (versions tagged with their digest, so a rebuild is a new
/// version) and activate it where nothing else is active or the active one is an older dev
/// build. Development only.
///
/// A built-in with its own compositions is published only with them, as `own` says; those left
/// to bundle are returned,
/// for [`super::builtin_bundles::publish_when_bundled`].
pub async fn publish_builtins(
    db: &Db,
    runtime: &Runtime,
    store: &ArtifactStore,
    key: &SigningKey,
    own: OwnCompositions<'_>,
) -> Result<Vec<&'static str>, CatalogError> {
    let mut pending = Vec::new();
    for (id, _, bytes) in vidfarm_template_artifacts::ALL {
        if !super::builtin_bundles::has_compositions(id) {
            publish_dev_build(db, runtime, store, key, bytes).await?;
            continue;
        }
        match own {
            OwnCompositions::Bundled { cache, renderer } => match super::builtin_bundles::cached(cache, id, renderer) {
                Some((path, bundle)) => {
                    let published = publish_dev_build_with(db, runtime, store, key, bytes, Some(&bundle)).await;
                    if let Err(CatalogError::Database(e)) = published {
                        // Not the bundle's fault: keep it, and fail the start as any database error does.
                        return Err(e.into());
                    }
                    if let Err(error) = published {
                        // A cached bundle that cannot be published is built again, not kept.
                        tracing::warn!(template = id, %error, "a cached bundle was refused; bundling it again");
                        let _ = std::fs::remove_file(path);
                        pending.push(*id);
                    }
                }
                None => pending.push(*id),
            },
            OwnCompositions::NoRenderer => {
                tracing::warn!(template = id, "not published: its compositions need a local Remotion renderer");
            }
            OwnCompositions::Skipped => {}
        }
    }
    Ok(pending)
}

/// What [`publish_builtins`] does with the built-ins that carry their own compositions.
#[derive(Clone, Copy)]
pub enum OwnCompositions<'a> {
    /// With the bundle cached in `cache` (as built by the local renderer at `renderer`); those
    /// not cached yet are left to bundle.
    Bundled { cache: &'a std::path::Path, renderer: &'a std::path::Path },
    /// Not at all, said in the log: Remotion is off or on Lambda, where a template's own
    /// bundle cannot render (a version without it would take renders it cannot do).
    NoRenderer,
    /// Not at all (tests that never render them spare every server a 26 MB bundle).
    Skipped,
}

/// Publish a development build of a component (its version tagged `+<digest>`) and activate it
/// unless an operator's release (a version without `+`) is active. The version published.
pub async fn publish_dev_build(
    db: &Db,
    runtime: &Runtime,
    store: &ArtifactStore,
    key: &SigningKey,
    bytes: &[u8],
) -> Result<String, CatalogError> {
    publish_dev_build_with(db, runtime, store, key, bytes, None).await
}

/// [`publish_dev_build`] with the template's packed compositions; the version's tag then names
/// both digests, so a changed bundle is a new version too.
///
/// Hosts sharing a registry bucket publish the same builds at start: they take turns
/// ([`REGISTRY_TURN`]), so the first writes each version and the others find it there. Writing
/// the same objects at once is harmless on S3, whose PUTs are atomic, but not on every
/// S3-compatible server: s3s-fs renames an object into place and then writes its checksum, so
/// two PUTs of manifests that differ (each host stamps its own `created_at`) can leave one's
/// bytes under the other's checksum, which every read then refuses.
pub async fn publish_dev_build_with(
    db: &Db,
    runtime: &Runtime,
    store: &ArtifactStore,
    key: &SigningKey,
    bytes: &[u8],
    bundle: Option<&[u8]>,
) -> Result<String, CatalogError> {
    let mut build = vidfarm_registry::digest(bytes)[..12].to_string();
    if let Some(bundle) = bundle {
        build = format!("{build}-{}", &vidfarm_registry::digest(bundle)[..8]);
    }
    // Compiled and signed before the turn, which then lasts only the store's reads and writes.
    let signed = signed_manifest(runtime, key, bytes, bundle, Some(&build)).await?;
    let turn = db.take_turn(REGISTRY_TURN, REGISTRY_TURN_WAIT).await?;
    if turn.is_none() {
        let template = &signed.manifest.template_id;
        tracing::warn!(%template, "another host has held the turn at the registry for {REGISTRY_TURN_WAIT:?}; publishing without it");
    }
    let stored = store.publish_with_bundle(bytes, bundle, &signed, "dev-autopublish")?;
    let active = store.active(&stored.template_id)?;
    let dev_build_or_none = active.as_deref().is_none_or(|v| v.contains('+'));
    if dev_build_or_none && active.as_deref() != Some(stored.version.as_str()) {
        store.activate(&stored.template_id, &stored.version, "dev-autopublish")?;
    }
    Ok(stored.version)
}

/// The registry's operation summaries of a described manifest.
pub fn operation_summaries_of(
    described: &crate::runtime::bindings::types::Manifest,
) -> Vec<vidfarm_registry::OperationSummary> {
    operation_summaries(described)
}

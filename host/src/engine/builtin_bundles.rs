//! The built-in Rust templates that carry their own Remotion compositions (`templates/<id>/
//! remotion/`, inside the binary like their components). A bundle needs Node and webpack
//! (about 10 s each), so it is built once per source digest into a cache and reused at every
//! start; a template whose bundle is not cached yet is published when its bundle is, never
//! without it (its renders would name compositions nobody has).

use super::catalog::Catalog;
use super::publish;
use crate::devrun::build;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vidfarm_registry::SigningKey;

mod files {
    include!(concat!(env!("OUT_DIR"), "/builtin_compositions.rs"));
}

/// Whether the built-in template `id` has a `remotion/` folder.
pub fn has_compositions(id: &str) -> bool {
    sources(id).next().is_some()
}

/// The files of `id`'s `remotion/` folder: (path inside it, bytes).
fn sources(id: &str) -> impl Iterator<Item = (&'static str, &'static [u8])> + '_ {
    files::FILES.iter().filter_map(move |(path, bytes)| {
        let inside = path.strip_prefix(id)?.strip_prefix("/remotion/")?;
        Some((inside, *bytes))
    })
}

/// The cached bundle's path: the folder's files and the bundler script (which decides what the
/// bundle holds) under one digest, so an edit to either is a new bundle.
fn cached_path(cache: &Path, id: &str, renderer: &Path) -> PathBuf {
    let mut hasher = blake3::Hasher::new();
    // How this binary packs a bundle (`render::bundles::pack`, `vidfarm-bundle.json`) is part of it.
    hasher.update(concat!("vidfarm-bundle-format-1 ", env!("CARGO_PKG_VERSION")).as_bytes());
    for (path, bytes) in sources(id) {
        hasher.update(path.as_bytes());
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    for script in ["bundle-template.mjs", "package-lock.json"] {
        hasher.update(&std::fs::read(renderer.join(script)).unwrap_or_default());
    }
    cache.join(format!("{id}-{}.remotion.tar", &hasher.finalize().to_hex()[..16]))
}

/// `id`'s packed bundle and its path, if it is cached already.
pub fn cached(cache: &Path, id: &str, renderer: &Path) -> Option<(PathBuf, Vec<u8>)> {
    let path = cached_path(cache, id, renderer);
    std::fs::read(&path).ok().map(|bytes| (path, bytes))
}

/// `id`'s packed bundle, built into the cache first if needed. Processes building the same
/// bundle at once (tests start many servers) take turns on a lock file: one builds, the others
/// find it built.
fn built(cache: &Path, id: &str, renderer: &Path) -> Result<Vec<u8>, String> {
    let packed = cached_path(cache, id, renderer);
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let lock_path = packed.with_extension("lock");
    let lock = std::fs::File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock().map_err(|e| format!("{}: {e}", lock_path.display()))?;
    if let Ok(bytes) = std::fs::read(&packed) {
        return Ok(bytes);
    }
    tracing::info!(template = id, "bundling the built-in template's compositions (once per change)");
    let scratch = tempfile::tempdir_in(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    for (path, bytes) in sources(id) {
        let target = scratch.path().join("remotion").join(path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&target, bytes).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    let partial = scratch.path().join("bundle.tar");
    build::pack_compositions(scratch.path(), &partial, Some(renderer))?;
    // On disk, then renamed into place: a bundle in the cache is always a whole one, even after
    // a crash.
    let synced = std::fs::File::open(&partial).and_then(|f| f.sync_all());
    synced.map_err(|e| format!("{}: {e}", partial.display()))?;
    std::fs::rename(&partial, &packed).map_err(|e| format!("{}: {e}", packed.display()))?;
    forget_older(cache, id, &packed);
    std::fs::read(&packed).map_err(|e| format!("{}: {e}", packed.display()))
}

/// Remove `id`'s bundles of earlier sources (26 MB each) from the cache, keeping `current`.
fn forget_older(cache: &Path, id: &str, current: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else { return };
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let digest =
            name.strip_prefix(id).and_then(|r| r.strip_prefix('-')).and_then(|r| r.strip_suffix(".remotion.tar"));
        if digest.is_some_and(|d| d.len() == 16 && !d.contains('-')) && path != current {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Bundle each of `pending` (built-in ids whose bundles were not cached at start), publish and
/// activate it with its bundle, and serve it at once.
pub async fn publish_when_bundled(
    db: crate::db::Db,
    catalog: Arc<Catalog>,
    key: SigningKey,
    cache: PathBuf,
    renderer: PathBuf,
    pending: Vec<&'static str>,
) {
    for id in pending {
        let Some(component) = vidfarm_template_artifacts::bytes(id) else { continue };
        let (cache, renderer) = (cache.clone(), renderer.clone());
        let bundle = match tokio::task::spawn_blocking(move || built(&cache, id, &renderer)).await {
            Ok(Ok(bundle)) => bundle,
            Ok(Err(why)) => {
                tracing::warn!(template = id, "built-in template not published: its compositions: {why}");
                continue;
            }
            Err(panic) => {
                tracing::error!(template = id, %panic, "bundling a built-in template panicked");
                continue;
            }
        };
        let published =
            publish::publish_dev_build_with(&db, catalog.runtime(), catalog.registry(), &key, component, Some(&bundle));
        let published = published.await;
        drop(bundle);
        crate::runtime::cache::release_freed_memory();
        match published {
            Ok(version) => tracing::info!(template = id, %version, "built-in template published with its compositions"),
            Err(error) => tracing::warn!(template = id, %error, "built-in template not published"),
        }
        for (template, error) in catalog.sync().await {
            tracing::error!(template, %error, "a template in the registry was refused");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_carries_the_compositions_of_ugc_voiceover_and_research_render_only() {
        assert!(has_compositions("ugc-voiceover") && has_compositions("research-render"));
        assert!(!has_compositions("hello") && !has_compositions("storyteller"));
        let paths: Vec<&str> = sources("ugc-voiceover").map(|(p, _)| p).collect();
        assert!(paths.contains(&"index.ts") && paths.contains(&"Root.tsx"), "{paths:?}");
        assert!(!has_compositions("ugc"), "a prefix of an id is not the id");
    }

    #[test]
    fn a_new_bundle_removes_the_older_ones_of_its_template_only() {
        let cache = tempfile::tempdir().expect("a dir");
        let file = |name: &str| cache.path().join(name);
        for name in [
            "ugc-voiceover-0123456789abcdef.remotion.tar",
            "ugc-voiceover-fedcba9876543210.remotion.tar",
            "ugc-voiceover-extra-0123456789abcdef.remotion.tar",
            "research-render-0123456789abcdef.remotion.tar",
        ] {
            std::fs::write(file(name), "x").expect("written");
        }
        forget_older(cache.path(), "ugc-voiceover", &file("ugc-voiceover-fedcba9876543210.remotion.tar"));
        assert!(!file("ugc-voiceover-0123456789abcdef.remotion.tar").exists(), "the older bundle is gone");
        for kept in [
            "ugc-voiceover-fedcba9876543210.remotion.tar",
            "ugc-voiceover-extra-0123456789abcdef.remotion.tar",
            "research-render-0123456789abcdef.remotion.tar",
        ] {
            assert!(file(kept).exists(), "{kept} is kept");
        }
    }

    #[test]
    fn an_edit_to_the_bundler_is_a_new_cached_bundle() {
        let (cache, renderer) = (tempfile::tempdir().expect("a dir"), tempfile::tempdir().expect("a dir"));
        std::fs::write(renderer.path().join("bundle-template.mjs"), "one").expect("written");
        let first = cached_path(cache.path(), "ugc-voiceover", renderer.path());
        assert_eq!(first, cached_path(cache.path(), "ugc-voiceover", renderer.path()));
        std::fs::write(renderer.path().join("bundle-template.mjs"), "two").expect("written");
        assert_ne!(first, cached_path(cache.path(), "ugc-voiceover", renderer.path()));
        assert_ne!(first, cached_path(cache.path(), "research-render", renderer.path()));
    }
}

//! A template's own Remotion compositions: the bundle `vidfarm template build` makes from its
//! `remotion/` folder, packed as one tar, signed with the component (its digest is in the
//! manifest) and stored beside it in the registry. A host unpacks each bundle once, by digest,
//! under `<data dir>/bundles/`; a render of that template names it by template, version and
//! digest, so a hot swap or rollback swaps the compositions with the component, and a render
//! queued before the swap still renders the compositions its job was created with.

use super::Failure;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use vidfarm_registry::{ArtifactStore, RegistryError};

/// The largest packed bundle a host unpacks (the registry refuses to publish larger ones).
pub const MAX_BUNDLE_BYTES: u64 = vidfarm_registry::MAX_BUNDLE_BYTES;
/// The most files one bundle may hold.
const MAX_ENTRIES: usize = 20_000;
/// Written last into an unpacked bundle: a directory without it is a crashed unpack.
const COMPLETE: &str = ".vidfarm-complete";

/// Which bundle a render uses: the template version that carries it and its signed digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateBundle {
    pub template_id: String,
    pub version: String,
    /// blake3 of the packed bundle, from the version's verified manifest.
    pub digest: String,
}

/// Written into a bundle by `vidfarm template build`: `{"entry_point": "remotion/index.ts"}`.
pub const BUNDLE_INFO: &str = "vidfarm-bundle.json";

/// The entry the unpacked `bundle` under `dir` was built from (see [`BUNDLE_INFO`]; the file is
/// the template's, so at most 4 KiB of it is read).
pub fn entry_point(dir: &Path, bundle: &TemplateBundle) -> Option<String> {
    let file = std::fs::File::open(unpacked(dir, bundle)?.join(BUNDLE_INFO)).ok()?;
    let mut info = Vec::new();
    file.take(4096).read_to_end(&mut info).ok()?;
    let info: serde_json::Value = serde_json::from_slice(&info).ok()?;
    info["entry_point"].as_str().map(str::to_string)
}

/// Where `bundle` is unpacked under `dir`: `<template id>/<digest>`, so a manifest naming
/// another template's digest never reaches that template's files. `None` for a digest that is
/// not 64 lowercase hex digits or an id that is not a plain name.
fn unpacked(dir: &Path, bundle: &TemplateBundle) -> Option<PathBuf> {
    let digest = &bundle.digest;
    let id = &bundle.template_id;
    let digest_ok = digest.len() == 64 && digest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let id_ok = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    (digest_ok && id_ok).then(|| dir.join(id).join(digest))
}

/// Where this host keeps unpacked bundles, and the registry it fetches them from.
#[derive(Clone)]
pub struct TemplateBundles {
    pub registry: ArtifactStore,
    pub dir: PathBuf,
}

impl TemplateBundles {
    /// The unpacked bundle's directory (what Remotion's `serveUrl` names), fetching, checking
    /// and unpacking it first if this host has not yet.
    pub async fn local_dir(&self, bundle: &TemplateBundle) -> Result<PathBuf, RegistryError> {
        let (this, bundle) = (self.clone(), bundle.clone());
        tokio::task::spawn_blocking(move || this.local_dir_blocking(&bundle))
            .await
            .map_err(|e| RegistryError::Io(std::io::Error::other(format!("bundle task: {e}"))))?
    }

    fn local_dir_blocking(&self, bundle: &TemplateBundle) -> Result<PathBuf, RegistryError> {
        let target = self.target(bundle)?;
        if target.join(COMPLETE).exists() {
            return Ok(target);
        }
        let packed = self.registry.bundle(&bundle.template_id, &bundle.version)?;
        let installed = self.install(bundle, &packed);
        drop(packed);
        crate::runtime::cache::release_freed_memory();
        installed
    }

    /// Check `packed` against `bundle`'s digest and unpack it (once per digest); its directory.
    /// (The dev runner installs a bundle from beside the component, with no registry.)
    pub fn install(&self, bundle: &TemplateBundle, packed: &[u8]) -> Result<PathBuf, RegistryError> {
        let digest = &bundle.digest;
        let target = self.target(bundle)?;
        if target.join(COMPLETE).exists() {
            return Ok(target);
        }
        let actual = vidfarm_registry::digest(packed);
        if &actual != digest {
            return Err(RegistryError::Tampered(format!(
                "the Remotion bundle of {}@{} has digest {actual}, its signed manifest says {digest}",
                bundle.template_id, bundle.version
            )));
        }
        let parent = target.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent)?;
        // A directory without the marker is an unpack that died half-way: start it over.
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        let partial = tempfile::Builder::new().prefix(&format!("{digest}.partial-")).tempdir_in(parent)?;
        unpack(packed, partial.path()).map_err(|problem| RegistryError::Invalid { what: "bundle", problem })?;
        std::fs::write(partial.path().join(COMPLETE), digest)?;
        let partial = partial.keep();
        match std::fs::rename(&partial, &target) {
            Ok(()) => Ok(target),
            // Another render unpacked the same bundle meanwhile: use theirs.
            Err(_) if target.join(COMPLETE).exists() => {
                let _ = std::fs::remove_dir_all(&partial);
                Ok(target)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&partial);
                Err(e.into())
            }
        }
    }
}

impl TemplateBundles {
    fn target(&self, bundle: &TemplateBundle) -> Result<PathBuf, RegistryError> {
        unpacked(&self.dir, bundle).ok_or_else(|| RegistryError::Invalid {
            what: "bundle",
            problem: format!("`{}` / `{}` do not name a bundle", bundle.template_id, bundle.digest),
        })
    }

    /// Remove the unpacks a crashed host left half-done (at start, before anything unpacks).
    pub fn sweep_partials(&self) {
        let Ok(templates) = std::fs::read_dir(&self.dir) else { return };
        for template in templates.flatten() {
            let Ok(entries) = std::fs::read_dir(template.path()) else { continue };
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().contains(".partial-") {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Self {
        Failure::Failed(format!("the template's Remotion bundle: {e}"))
    }
}

/// Pack the bundle directory `dir` as the tar a template version carries: regular files and
/// directories only (source maps included: Remotion reads them), sorted, with no owners or times, so the same bundle packs to the same bytes.
pub fn pack(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    for relative in files {
        let bytes = std::fs::read(dir.join(&relative))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, &relative, bytes.as_slice())?;
    }
    builder.into_inner()
}

fn collect(root: &Path, dir: &Path, into: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect(root, &entry.path(), into)?;
        } else if kind.is_file() {
            into.push(entry.path().strip_prefix(root).map_err(std::io::Error::other)?.to_path_buf());
        }
    }
    Ok(())
}

/// Unpack a packed bundle into `into`: regular files and directories under it only (no links,
/// no absolute paths, no `..`), within [`MAX_BUNDLE_BYTES`] and [`MAX_ENTRIES`].
fn unpack(packed: &[u8], into: &Path) -> Result<(), String> {
    if packed.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(format!("{} bytes packed, more than {MAX_BUNDLE_BYTES}", packed.len()));
    }
    let mut archive = tar::Archive::new(packed);
    let mut written = 0u64;
    for (n, entry) in archive.entries().map_err(|e| e.to_string())?.enumerate() {
        if n >= MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} files"));
        }
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        if path.as_os_str().is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(format!("`{}` is not a plain relative path", path.display()));
        }
        let target = into.join(&path);
        match entry.header().entry_type() {
            tar::EntryType::Directory => std::fs::create_dir_all(&target).map_err(|e| e.to_string())?,
            tar::EntryType::Regular => {
                written += entry.size();
                if written > MAX_BUNDLE_BYTES {
                    return Err(format!("more than {MAX_BUNDLE_BYTES} bytes unpacked"));
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                let mut bytes = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
                std::fs::write(&target, bytes).map_err(|e| e.to_string())?;
            }
            other => return Err(format!("`{}` is a {other:?}, not a file or directory", path.display())),
        }
    }
    if !into.join("index.html").is_file() {
        return Err("it has no index.html: not a Remotion bundle".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("index.html"), "<html></html>").expect("written");
        std::fs::create_dir_all(dir.path().join("public")).expect("a dir");
        std::fs::write(dir.path().join("public/bundle.js"), "console.log(1)").expect("written");
        dir
    }

    #[test]
    fn the_same_bundle_packs_to_the_same_bytes_and_unpacks_whole() {
        let dir = bundle_dir();
        let packed = pack(dir.path()).expect("packs");
        assert_eq!(packed, pack(dir.path()).expect("packs again"));
        let out = tempfile::tempdir().expect("a temp dir");
        unpack(&packed, out.path()).expect("unpacks");
        assert_eq!(std::fs::read_to_string(out.path().join("public/bundle.js")).expect("read"), "console.log(1)");
    }

    #[test]
    fn links_and_paths_out_of_the_bundle_are_refused() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, "index.html", "/etc/passwd").expect("appended");
        let packed = builder.into_inner().expect("packed");
        let out = tempfile::tempdir().expect("a temp dir");
        let refused = unpack(&packed, out.path()).expect_err("a link");
        assert!(refused.contains("not a file or directory"), "{refused}");

        let mut raw = tar::Header::new_old();
        raw.as_old_mut().name[..13].copy_from_slice(b"../escape.txt");
        raw.set_size(1);
        raw.set_entry_type(tar::EntryType::Regular);
        raw.set_cksum();
        let mut packed = raw.as_bytes().to_vec();
        packed.extend_from_slice(&[b'x'; 512]);
        packed.extend_from_slice(&[0; 1024]);
        let refused = unpack(&packed, out.path()).expect_err("a path out");
        assert!(refused.contains("not a plain relative path"), "{refused}");
        assert!(!out.path().join("../escape.txt").exists());
    }
}

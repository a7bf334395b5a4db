//! Objects as files under one root directory, opened as a cap-std `Dir`: every file
//! operation resolves inside it (no `..`, no absolute paths, no symlink out), so even a key
//! that slipped past validation could not leave the root. Keys are validated by the
//! capability first; this backend also refuses anything but plain relative paths.

use super::UrlSigner;
use crate::capabilities::{ObjectReader, ObjectStore, StoreError, UploadUrl};
use async_trait::async_trait;
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Stores `key` at `root/key`.
pub struct LocalObjectStore {
    /// Everything this store writes lives below this directory.
    root: PathBuf,
    /// The root as a capability: the only handle file operations go through.
    dir: Arc<Dir>,
    /// Signs URLs of the host's file route, when it serves files (`None` in the dev runner).
    signer: Option<UrlSigner>,
}

fn now_s() -> i64 {
    crate::db::now_ms() / 1000
}

impl LocalObjectStore {
    pub fn new(root: impl Into<PathBuf>, signer: Option<UrlSigner>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        let dir = Arc::new(Dir::open_ambient_dir(&root, ambient_authority())?);
        Ok(Self { root: root.canonicalize()?, dir, signer })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `key` inside the root, refusing anything that is not a plain relative path.
    pub(super) fn relative(&self, key: &str) -> Result<PathBuf, StoreError> {
        let relative = Path::new(key);
        if key.is_empty() || !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(StoreError::Unavailable(format!("refusing unsafe key `{}`", key.escape_default())));
        }
        Ok(relative.to_path_buf())
    }
}

/// Run `work` in the folder `relative` goes in (created if missing, opened once, so the
/// object's writes do not walk the key's path again) with the object's name in it.
fn in_folder<T>(
    root: &Dir,
    relative: &Path,
    work: impl FnOnce(&Dir, &std::ffi::OsStr) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let name = relative.file_name().ok_or_else(|| std::io::Error::other("a key without a name"))?;
    match relative.parent().filter(|p| !p.as_os_str().is_empty()) {
        None => work(root, name),
        Some(parent) => {
            // Most keys go in a new folder whose parents exist (a job's first artifact):
            // one mkdir, and the walk up only when that fails.
            match root.create_dir(parent) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(_) => root.create_dir_all(parent)?,
            }
            work(&root.open_dir(parent)?, name)
        }
    }
}

/// A name beside `name` for the object while it is written.
fn partial_name(name: &std::ffi::OsStr) -> std::ffi::OsString {
    let mut partial = name.to_os_string();
    partial.push(format!(".partial-{}", uuid::Uuid::new_v4().simple()));
    partial
}

/// Run blocking file work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(std::io::Error::other)?
}

#[async_trait]
impl ObjectStore for LocalObjectStore {
    async fn put(&self, key: &str, bytes: Vec<u8>, _content_type: &str) -> Result<u64, StoreError> {
        let relative = self.relative(key)?;
        let size = bytes.len() as u64;
        let dir = self.dir.clone();
        blocking(move || {
            in_folder(&dir, &relative, |folder, name| {
                // Write beside, then rename: a reader never sees half an object.
                let partial = partial_name(name);
                folder.write(&partial, bytes)?;
                folder.rename(&partial, folder, name)
            })
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(size)
    }

    async fn put_file(&self, key: &str, path: &std::path::Path, _content_type: &str) -> Result<u64, StoreError> {
        let relative = self.relative(key)?;
        let (dir, source) = (self.dir.clone(), path.to_path_buf());
        blocking(move || {
            in_folder(&dir, &relative, |folder, name| {
                let partial = partial_name(name);
                let mut from = std::fs::File::open(&source)?;
                let size = std::io::copy(&mut from, &mut folder.create(&partial)?)?;
                folder.rename(&partial, folder, name)?;
                Ok(size)
            })
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn open(&self, key: &str) -> Result<ObjectReader, StoreError> {
        let relative = self.relative(key)?;
        let dir = self.dir.clone();
        let opened = blocking(move || {
            let file = dir.open(&relative)?;
            let size = file.metadata()?.len();
            Ok((file.into_std(), size))
        })
        .await;
        match opened {
            Ok((file, size)) => Ok(ObjectReader { size, body: Box::pin(tokio::fs::File::from_std(file)) }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound(key.to_string())),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        }
    }

    async fn public_url(&self, key: &str) -> Option<String> {
        self.signer.as_ref().map(|signer| signer.url("GET", key, now_s()).0)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let relative = self.relative(key)?;
        let dir = self.dir.clone();
        blocking(move || match dir.remove_file(&relative) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn upload_url(&self, key: &str, _content_type: &str, _size: Option<u64>) -> Option<UploadUrl> {
        let signer = self.signer.as_ref()?;
        let (url, _) = signer.url("PUT", key, now_s());
        Some(UploadUrl { url, method: "PUT".into(), headers: Vec::new(), ttl: signer.ttl })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn objects_round_trip_and_a_symlink_inside_the_root_does_not_lead_out_of_it() {
        let root = tempfile::tempdir().expect("a temp dir");
        let outside = tempfile::tempdir().expect("a temp dir");
        std::fs::write(outside.path().join("secret.txt"), "outside").expect("written");
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).expect("a symlink");
        let store = LocalObjectStore::new(root.path(), None).expect("a store");

        store.put("a/b/c.txt", b"inside".to_vec(), "text/plain").await.expect("stored");
        assert_eq!(store.get("a/b/c.txt", 1 << 20).await.expect("read"), b"inside");
        assert!(matches!(store.get("a/missing.txt", 1 << 20).await, Err(StoreError::NotFound(_))));

        assert!(store.get("link/secret.txt", 1 << 20).await.is_err(), "read through a symlink out of the root");
        assert!(store.put("link/new.txt", b"x".to_vec(), "text/plain").await.is_err());
        assert!(!outside.path().join("new.txt").exists(), "nothing was written outside the root");
        assert!(store.get("../secret.txt", 1 << 20).await.is_err());
    }

    #[tokio::test]
    async fn objects_land_at_their_keys_in_new_existing_and_deep_folders_with_nothing_left_beside_them() {
        let root = tempfile::tempdir().expect("a temp dir");
        let store = LocalObjectStore::new(root.path(), None).expect("a store");
        let source = root.path().join("source.bin");
        std::fs::write(&source, b"from a file").expect("written");

        store.put("top.txt", b"at the root".to_vec(), "text/plain").await.expect("stored at the root");
        store.put("jobs/j1/a.txt", b"first".to_vec(), "text/plain").await.expect("stored in new folders");
        store.put("jobs/j1/a.txt", b"replaced".to_vec(), "text/plain").await.expect("stored over itself");
        store.put("jobs/j1/b.txt", b"second".to_vec(), "text/plain").await.expect("stored in an existing folder");
        store.put_file("jobs/j2/deep/er/c.bin", &source, "application/octet-stream").await.expect("copied deep");

        for (key, bytes) in [
            ("top.txt", &b"at the root"[..]),
            ("jobs/j1/a.txt", b"replaced"),
            ("jobs/j1/b.txt", b"second"),
            ("jobs/j2/deep/er/c.bin", b"from a file"),
        ] {
            assert_eq!(std::fs::read(root.path().join(key)).expect("a file at the key"), bytes, "{key}");
        }
        let mut left: Vec<_> = std::fs::read_dir(root.path().join("jobs/j1"))
            .expect("the folder")
            .map(|e| e.expect("an entry").file_name().into_string().expect("utf-8"))
            .collect();
        left.sort();
        assert_eq!(left, ["a.txt", "b.txt"], "no partial file is left beside the objects");
        assert!(
            store.put("jobs/j1/a.txt/inside", b"x".to_vec(), "text/plain").await.is_err(),
            "an object is no folder"
        );
    }
}

//! Objects as files under one root directory. Keys are validated by the capability; this
//! backend checks again that the path it builds stays under its root.

use super::UrlSigner;
use crate::capabilities::{ObjectStore, StoreError, UploadUrl};
use async_trait::async_trait;
use std::path::{Component, Path, PathBuf};

/// Stores `key` at `root/key`.
pub struct LocalObjectStore {
    /// Everything this store writes lives below this directory.
    root: PathBuf,
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
        Ok(Self { root: root.canonicalize()?, signer })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `key`, refusing anything that is not a plain relative path.
    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let relative = Path::new(key);
        if key.is_empty() || !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(StoreError::Unavailable(format!("refusing unsafe key `{}`", key.escape_default())));
        }
        Ok(self.root.join(relative))
    }
}

#[async_trait]
impl ObjectStore for LocalObjectStore {
    async fn put(&self, key: &str, bytes: Vec<u8>, _content_type: &str) -> Result<u64, StoreError> {
        let path = self.path(key)?;
        let size = bytes.len() as u64;
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        tokio::fs::create_dir_all(&parent).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        // Write beside, then rename: a reader never sees half an object.
        let partial = path.with_extension(format!("partial-{}", uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&partial, bytes).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        tokio::fs::rename(&partial, &path).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(size)
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound(key.to_string())),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        }
    }

    async fn public_url(&self, key: &str) -> Option<String> {
        self.signer.as_ref().map(|signer| signer.url("GET", key, now_s()).0)
    }

    async fn upload_url(&self, key: &str, _content_type: &str) -> Option<UploadUrl> {
        let signer = self.signer.as_ref()?;
        let (url, _) = signer.url("PUT", key, now_s());
        Some(UploadUrl { url, method: "PUT".into(), headers: Vec::new(), ttl: signer.ttl })
    }
}

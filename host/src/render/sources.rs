//! Fetching a render's sources into its work directory: the job's own objects (`job:`), the
//! customer's workspace (`workspace:`), the host's own signed file URLs (read from the store,
//! never fetched from itself) and other http(s) URLs under the outbound policy (public
//! addresses only in production), each capped in size. FFmpeg then reads local files only.

use super::{Failure, RenderScope};
use crate::capabilities::{ObjectStore, StoreError};
use crate::storage::{UrlSigner, keys};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The largest source a render downloads.
const MAX_SOURCE_BYTES: u64 = 2 << 30;

pub struct Sources {
    pub store: Arc<dyn ObjectStore>,
    /// Recognises the host's own file URLs.
    pub signer: Option<UrlSigner>,
    /// Sources may be on loopback or private addresses (development only: SSRF).
    pub allow_private: bool,
    /// One download's deadline.
    pub timeout: Duration,
}

impl Sources {
    /// Put `src` (named `field` in errors) at `dest`.
    pub async fn fetch(&self, scope: &RenderScope, src: &str, field: &str, dest: &Path) -> Result<(), Failure> {
        let now_s = crate::db::now_ms() / 1000;
        let object = if let Some(key) = src.strip_prefix("job:") {
            Some(keys::resolve(&scope.artifact_prefix, key))
        } else if let Some(key) = src.strip_prefix("workspace:") {
            Some(keys::resolve(&scope.workspace_prefix, key))
        } else {
            self.signer.as_ref().and_then(|s| s.own_object(src, now_s)).map(Ok)
        };
        match object {
            Some(key) => {
                let key = key.map_err(|reason| Failure::Invalid(format!("{field}: {reason}")))?;
                let bytes = self.store.get(&key).await.map_err(|e| match e {
                    StoreError::NotFound(_) => Failure::Invalid(format!("{field}: no object at `{src}`")),
                    StoreError::Unavailable(m) => Failure::Failed(format!("storage: {m}")),
                })?;
                tokio::fs::write(dest, bytes).await.map_err(|e| Failure::Failed(format!("work dir: {e}")))
            }
            None => self.download(src, field, dest).await,
        }
    }

    async fn download(&self, url: &str, field: &str, dest: &Path) -> Result<(), Failure> {
        let (parsed, addrs) = crate::outbound::check_destination(url, self.allow_private)
            .await
            .map_err(|reason| Failure::Invalid(format!("{field}: {reason}")))?;
        let client = crate::outbound::pinned_client(&parsed, &addrs, self.timeout)
            .map_err(|e| Failure::Failed(format!("http client: {e}")))?;
        let mut response = client
            .get(parsed)
            .send()
            .await
            .map_err(|e| Failure::Invalid(format!("{field}: cannot fetch `{url}`: {e}")))?;
        if !response.status().is_success() {
            return Err(Failure::Invalid(format!("{field}: `{url}` answered {}", response.status())));
        }
        let mut file = tokio::fs::File::create(dest).await.map_err(|e| Failure::Failed(format!("work dir: {e}")))?;
        let mut written = 0u64;
        while let Some(chunk) =
            response.chunk().await.map_err(|e| Failure::Invalid(format!("{field}: reading `{url}`: {e}")))?
        {
            written += chunk.len() as u64;
            if written > MAX_SOURCE_BYTES {
                return Err(Failure::Invalid(format!("{field}: larger than {} GiB", MAX_SOURCE_BYTES >> 30)));
            }
            file.write_all(&chunk).await.map_err(|e| Failure::Failed(format!("work dir: {e}")))?;
        }
        file.flush().await.map_err(|e| Failure::Failed(format!("work dir: {e}")))
    }
}

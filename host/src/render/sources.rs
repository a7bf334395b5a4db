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
    /// Put `src` (named `field` in errors) at `dest`; at most the largest source a render takes.
    pub async fn fetch(&self, scope: &RenderScope, src: &str, field: &str, dest: &Path) -> Result<(), Failure> {
        self.fetch_capped(scope, src, field, dest, MAX_SOURCE_BYTES).await.map(|_| ())
    }

    /// Put `src` at `dest`, streamed, refusing it once it passes `max` bytes; returns its size.
    pub async fn fetch_capped(
        &self,
        scope: &RenderScope,
        src: &str,
        field: &str,
        dest: &Path,
        max: u64,
    ) -> Result<u64, Failure> {
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
                self.store.get_to_file(&key, dest, max).await.map_err(|e| match e {
                    StoreError::NotFound(_) => Failure::Invalid(format!("{field}: no object at `{src}`")),
                    StoreError::TooLarge { limit } => Failure::Invalid(format!("{field}: larger than {limit} bytes")),
                    StoreError::Unavailable(m) => Failure::Failed(format!("storage: {m}")),
                })
            }
            None => self.download(src, field, dest, max).await,
        }
    }

    async fn download(&self, url: &str, field: &str, dest: &Path, max: u64) -> Result<u64, Failure> {
        use crate::outbound::DownloadError;
        let mut file = tokio::fs::File::create(dest).await.map_err(|e| Failure::Failed(format!("work dir: {e}")))?;
        crate::outbound::download_capped(url, self.allow_private, self.timeout, max, &mut file).await.map_err(|e| {
            match e {
                DownloadError::Refused(reason) => Failure::Invalid(format!("{field}: {reason}")),
                DownloadError::Unreachable(m) => Failure::Invalid(format!("{field}: cannot fetch `{url}`: {m}")),
                DownloadError::TooLarge { limit } => Failure::Invalid(format!("{field}: larger than {limit} bytes")),
                DownloadError::Sink(e) => Failure::Failed(format!("work dir: {e}")),
            }
        })
    }
}

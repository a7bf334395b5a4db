//! `storage`: artifacts under the job's prefix, the customer's workspace read-only. Keys are
//! checked by `storage::keys` before any backend sees them, so no key can leave its prefix.

use super::{HostState, JobEvent, StoreError};
use crate::runtime::bindings::storage::{Host, PutOptions, StorageError, StoredObject};
use crate::storage::keys;

/// Largest single object a template may write or read (bytes).
const MAX_OBJECT_BYTES: u64 = 512 << 20;

impl Host for HostState {
    async fn put(
        &mut self,
        key: String,
        bytes: Vec<u8>,
        options: PutOptions,
    ) -> wasmtime::Result<Result<StoredObject, StorageError>> {
        self.check_cancelled()?;
        let full_key = match keys::resolve(&self.job.artifact_prefix, &key) {
            Ok(full) => full,
            Err(reason) => return Ok(Err(StorageError::InvalidKey(reason))),
        };
        if bytes.len() as u64 > MAX_OBJECT_BYTES {
            return Ok(Err(StorageError::TooLarge(MAX_OBJECT_BYTES)));
        }
        let request = serde_json::json!({
            "key": key,
            "digest": blake3::hash(&bytes).to_hex().as_str(),
            "content_type": options.content_type,
        });
        let content_type = options.content_type.clone();
        let seq = self.journal.next_seq();
        let result: Result<StoredObject, StorageError> = self
            .effect("storage.put", request, move |caps, job, _request| async move {
                let effect_key = format!("{}:{seq}", job.job_id());
                caps.billing.record_storage_write(&job, &effect_key, &full_key, bytes.len() as u64, false).await?;
                Ok(match caps.storage.put(&full_key, bytes, &content_type).await {
                    Ok(size) => {
                        Ok(StoredObject { key: key.clone(), url: caps.storage.public_url(&full_key).await, size })
                    }
                    Err(e) => Err(storage_error(e)),
                })
            })
            .await?;
        if let Ok(stored) = &result {
            self.emit(JobEvent {
                level: "info".into(),
                message: format!("stored {}", stored.key),
                metadata: super::logging::metadata_value(&options.metadata),
                progress: None,
                artifact: Some(serde_json::json!({
                    "key": stored.key, "url": stored.url, "size": stored.size,
                    "content_type": options.content_type, "kind": options.kind,
                })),
            })
            .await?;
        }
        Ok(result)
    }

    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Vec<u8>, StorageError>> {
        let prefix = self.job.artifact_prefix.clone();
        self.read(&prefix, &key).await
    }

    async fn read_workspace(&mut self, key: String) -> wasmtime::Result<Result<Vec<u8>, StorageError>> {
        let prefix = self.job.workspace_prefix.clone();
        self.read(&prefix, &key).await
    }

    /// Journaled like an effect: a signed URL carries its expiry, and a replay must see the
    /// URL the first run saw.
    async fn public_url(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, StorageError>> {
        self.check_cancelled()?;
        let full = match keys::resolve(&self.job.artifact_prefix, &key) {
            Ok(full) => full,
            Err(reason) => return Ok(Err(StorageError::InvalidKey(reason))),
        };
        self.effect("storage.public-url", key, |caps, _job, _key| async move {
            Ok(Ok(caps.storage.public_url(&full).await))
        })
        .await
    }
}

impl HostState {
    async fn read(&mut self, prefix: &str, key: &str) -> wasmtime::Result<Result<Vec<u8>, StorageError>> {
        self.check_cancelled()?;
        let full_key = match keys::resolve(prefix, key) {
            Ok(full) => full,
            Err(reason) => return Ok(Err(StorageError::InvalidKey(reason))),
        };
        Ok(match self.caps.storage.get(&full_key, MAX_OBJECT_BYTES).await {
            Ok(bytes) => Ok(bytes),
            Err(StoreError::NotFound(_)) => Err(StorageError::NotFound(key.to_string())),
            Err(e) => Err(storage_error(e)),
        })
    }
}

fn storage_error(error: StoreError) -> StorageError {
    match error {
        StoreError::NotFound(key) => StorageError::NotFound(key),
        StoreError::TooLarge { limit } => StorageError::TooLarge(limit),
        StoreError::Unavailable(message) => StorageError::Unavailable(message),
    }
}

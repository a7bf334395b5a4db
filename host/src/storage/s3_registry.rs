//! The template registry in an S3 bucket, under a prefix (`VIDFARM_REGISTRY_S3_BUCKET`,
//! `VIDFARM_REGISTRY_S3_PREFIX`): the registry crate's [`Blobs`] over aws-sdk-s3. The
//! registry is synchronous (the CLI and the catalog share it), so each call runs on a small
//! runtime of its own, from a thread of its own: callable from async code and plain threads
//! alike. The catalog calls it off its async threads (`spawn_blocking`).

use super::S3Settings;
use aws_sdk_s3::primitives::ByteStream;
use std::io;
use vidfarm_registry::Blobs;

pub struct S3Blobs {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// `""` or `"registry/"`.
    prefix: String,
    /// Always `Some` until dropped (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for S3Blobs {
    /// A runtime may not be dropped (which blocks) on an async thread: shut it down in the
    /// background instead.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn io_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("S3 registry: {e}"))
}

impl S3Blobs {
    pub fn new(settings: &S3Settings, prefix: &str) -> io::Result<Self> {
        let prefix = prefix.trim_matches('/');
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        Ok(Self {
            client: super::s3::client(settings),
            bucket: settings.bucket.clone(),
            prefix: if prefix.is_empty() { String::new() } else { format!("{prefix}/") },
            runtime: Some(runtime),
        })
    }

    /// Run `work` on this store's runtime from a fresh thread (so it never blocks, or panics
    /// in, a caller that is itself on a runtime).
    fn run<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = io::Result<T>> + Send + 'static,
    ) -> io::Result<T> {
        let handle = self.runtime.as_ref().ok_or_else(|| io_error("the store is closed"))?.handle().clone();
        std::thread::scope(|scope| scope.spawn(move || handle.block_on(work)).join())
            .map_err(|_| io_error("the S3 call panicked"))?
    }
}

impl Blobs for S3Blobs {
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let request = self.client.get_object().bucket(&self.bucket).key(format!("{}{key}", self.prefix));
        self.run(async move {
            match request.send().await {
                Ok(object) => Ok(Some(object.body.collect().await.map_err(io_error)?.into_bytes().to_vec())),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
                Err(e) => Err(io_error(aws_sdk_s3::error::DisplayErrorContext(e))),
            }
        })
    }

    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(format!("{}{key}", self.prefix))
            .body(ByteStream::from(bytes.to_vec()));
        self.run(async move {
            request.send().await.map_err(|e| io_error(aws_sdk_s3::error::DisplayErrorContext(e)))?;
            Ok(())
        })
    }

    fn children(&self, prefix: &str) -> io::Result<Vec<String>> {
        let full = if prefix.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}{}/", self.prefix, prefix.trim_matches('/'))
        };
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        self.run(async move {
            let mut names = Vec::new();
            let mut pages =
                client.list_objects_v2().bucket(bucket).prefix(&full).delimiter("/").into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| io_error(aws_sdk_s3::error::DisplayErrorContext(e)))?;
                let dirs = page.common_prefixes().iter().filter_map(|p| p.prefix());
                let files = page.contents().iter().filter_map(|o| o.key());
                for key in dirs.chain(files) {
                    let name = key[full.len().min(key.len())..].trim_end_matches('/');
                    if !name.is_empty() {
                        names.push(name.to_string());
                    }
                }
            }
            Ok(names)
        })
    }

    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

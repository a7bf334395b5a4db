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

/// Reads of one object, when its body is cut off part-way.
const GET_ATTEMPTS: u32 = 3;

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
            // The SDK retries a request that fails, not a body that breaks off after the answer
            // began (a connection reset): read it again. The error keeps its causes (a checksum
            // that does not match the body says so only there).
            let mut attempt = 1;
            loop {
                match request.clone().send().await {
                    Ok(object) => match object.body.collect().await {
                        Ok(body) => return Ok(Some(body.into_bytes().to_vec())),
                        Err(e) if attempt < GET_ATTEMPTS => {
                            let error = aws_sdk_s3::error::DisplayErrorContext(e);
                            tracing::debug!(%error, attempt, "a registry object's body was not read whole; reading it again");
                        }
                        Err(e) => return Err(io_error(aws_sdk_s3::error::DisplayErrorContext(e))),
                    },
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
                    Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => return Ok(None),
                    Err(e) => return Err(io_error(aws_sdk_s3::error::DisplayErrorContext(e))),
                }
                tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// An S3 endpoint on loopback: its first answer promises ten bytes and sends five before
    /// hanging up; the later ones are whole. Counts the GETs.
    fn cutting_endpoint() -> (String, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let gets = Arc::new(AtomicUsize::new(0));
        let counted = gets.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().expect("a clone"));
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    line.clear();
                }
                let body: &[u8] = if counted.fetch_add(1, SeqCst) == 0 { b"hello" } else { b"helloworld" };
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 10\r\nconnection: close\r\n\r\n";
                let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body));
            }
        });
        (base, gets)
    }

    #[test]
    fn a_registry_object_whose_body_is_cut_off_is_read_again() {
        let (endpoint, gets) = cutting_endpoint();
        let settings = S3Settings {
            bucket: "registry".into(),
            endpoint: Some(endpoint),
            region: "us-east-1".into(),
            access_key_id: "AKIACUTOFF".into(),
            secret_access_key: "cut-off-secret".into(),
            force_path_style: true,
        };
        let blobs = S3Blobs::new(&settings, "").expect("a store");
        assert_eq!(blobs.get("hello/active").expect("read again"), Some(b"helloworld".to_vec()));
        assert_eq!(gets.load(SeqCst), 2, "one cut-off answer, one whole");
    }
}

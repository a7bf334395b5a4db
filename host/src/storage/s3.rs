//! Objects in an S3 bucket (AWS or any S3-compatible server) through aws-sdk-s3: the same
//! keys as the local backend, presigned GET URLs for customers, presigned PUT URLs for uploads.

use crate::capabilities::{ObjectReader, ObjectStore, StoreError, UploadUrl};
use async_trait::async_trait;
use aws_sdk_s3::config::{BehaviorVersion, Builder, Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use std::time::Duration;

/// Where the bucket is and how to reach it (`VIDFARM_S3_*`).
#[derive(Clone)]
pub struct S3Settings {
    pub bucket: String,
    /// An S3-compatible server; `None`: AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// `bucket` in the path instead of the host name (most S3-compatible servers need it).
    pub force_path_style: bool,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Settings({}, {:?}, {}, …)", self.bucket, self.endpoint, self.region)
    }
}

pub struct S3ObjectStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// How long presigned URLs work (SigV4 allows at most 7 days).
    url_ttl: Duration,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("S3: {e}"))
}

/// A client for the settings' bucket.
pub(crate) fn client(settings: &S3Settings) -> aws_sdk_s3::Client {
    let credentials =
        Credentials::new(&settings.access_key_id, &settings.secret_access_key, None, None, "vidfarm-config");
    let mut builder = Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(settings.region.clone()))
        .credentials_provider(credentials)
        .force_path_style(settings.force_path_style);
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

impl S3ObjectStore {
    pub fn new(settings: &S3Settings, url_ttl: Duration) -> Self {
        Self {
            client: client(settings),
            bucket: settings.bucket.clone(),
            url_ttl: url_ttl.min(Duration::from_secs(7 * 86_400)),
        }
    }

    /// A HeadBucket: the bucket exists and these credentials reach it (`vidfarm doctor`).
    pub async fn check_bucket(&self) -> Result<(), StoreError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(unavailable(aws_sdk_s3::error::DisplayErrorContext(e))),
        }
    }

    fn presigning(&self) -> Option<PresigningConfig> {
        PresigningConfig::expires_in(self.url_ttl).ok()
    }
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<u64, StoreError> {
        let size = bytes.len() as u64;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(size)
    }

    async fn put_file(&self, key: &str, path: &std::path::Path, content_type: &str) -> Result<u64, StoreError> {
        let size = tokio::fs::metadata(path).await.map_err(unavailable)?.len();
        // Streamed from the file (one PUT: up to 5 GB).
        let body = ByteStream::from_path(path).await.map_err(unavailable)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .body(body)
            .send()
            .await
            .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(size)
    }

    async fn open(&self, key: &str) -> Result<ObjectReader, StoreError> {
        match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(object) => {
                // The size from the response headers, before the body is read.
                let size = object.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(u64::MAX);
                Ok(ObjectReader { size, body: Box::pin(object.body.into_async_read()) })
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Err(StoreError::NotFound(key.into())),
            Err(e) => Err(unavailable(aws_sdk_s3::error::DisplayErrorContext(e))),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn public_url(&self, key: &str) -> Option<String> {
        let request = self.client.get_object().bucket(&self.bucket).key(key);
        Some(request.presigned(self.presigning()?).await.ok()?.uri().to_string())
    }

    async fn upload_url(&self, key: &str, content_type: &str, size: Option<u64>) -> Option<UploadUrl> {
        let mut request = self.client.put_object().bucket(&self.bucket).key(key).content_type(content_type);
        // Signed into the URL: S3 refuses a body of any other length, so the customer cannot
        // upload more than the quota was checked for.
        if let Some(size) = size {
            request = request.content_length(i64::try_from(size).ok()?);
        }
        let presigned = request.presigned(self.presigning()?).await.ok()?;
        let headers = presigned.headers().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Some(UploadUrl { url: presigned.uri().to_string(), method: "PUT".into(), headers, ttl: self.url_ttl })
    }
}

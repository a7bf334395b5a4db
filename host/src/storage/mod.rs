//! Object storage backends and the key rules that confine templates to their prefixes.

pub mod keys;
mod local;
mod s3;
mod s3_registry;
pub mod signed_urls;
pub mod small_objects;

pub use local::LocalObjectStore;
pub(crate) use s3::client as s3_client;
pub use s3::{S3ObjectStore, S3Settings};
pub use s3_registry::S3Blobs;
pub use signed_urls::UrlSigner;
pub use small_objects::{SMALL_OBJECT_BYTES, SmallObjectsInDb};

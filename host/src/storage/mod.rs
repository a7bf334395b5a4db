//! Object storage backends and the key rules that confine templates to their prefixes.

pub mod keys;
mod local;
mod s3;
pub mod signed_urls;

pub use local::LocalObjectStore;
pub use s3::{S3ObjectStore, S3Settings};
pub use signed_urls::UrlSigner;

//! Signed template artifacts: a component's bytes (addressed by their blake3 digest) plus a
//! manifest signed with ed25519, and a store that keeps them. No HTTP or SQL here: the host
//! and the CLI build on this crate.
//!
//! ```
//! use vidfarm_registry::{ArtifactManifest, SigningKey, TrustedKeys, verify_artifact};
//!
//! let key = SigningKey::generate();
//! let bytes = b"\0asm component bytes";
//! let manifest = ArtifactManifest::new("hello", "1.0.0", bytes, vec![], &key);
//! let signed = key.sign(manifest).expect("signs");
//! let trusted = TrustedKeys::parse(&key.public_line()).expect("a key list");
//! assert_eq!(verify_artifact(bytes, &signed, &trusted).expect("verified").template_id, "hello");
//! ```

mod blobs;
mod error;
mod keys;
mod manifest;
mod store;

pub use blobs::{Blobs, DirBlobs};
pub use error::RegistryError;
pub use keys::{SigningKey, TrustedKeys};
pub use manifest::{ArtifactManifest, OperationSummary, SignedManifest, WIT_WORLD, verify_artifact, verify_bundle};
pub use store::{ActivationRecord, ArtifactStore, MAX_BUNDLE_BYTES, StoredVersion};

/// The blake3 digest of a component's bytes, hex-encoded: the address of an artifact.
pub fn digest(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

//! ed25519 keys: the publisher's signing key (a file) and the host's set of trusted public
//! keys. A key's id is the first 16 hex digits of the blake3 of its public key.

use crate::RegistryError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, Verifier};
use std::collections::HashMap;

/// Prefix of a signing-key file, so a key is never mistaken for something else.
const SECRET_PREFIX: &str = "vidfarm-ed25519-secret:";

/// A publisher's signing key (cloned only to hand the dev key to background publishers).
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

pub fn key_id(public: &ed25519_dalek::VerifyingKey) -> String {
    blake3::hash(public.as_bytes()).to_hex()[..16].to_string()
}

impl SigningKey {
    pub fn generate() -> Self {
        use rand::Rng;
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        Self::from_seed(seed)
    }

    /// The key whose secret is `seed` (for a key derived from another secret).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The key file's text (keep it secret).
    pub fn to_file_text(&self) -> String {
        format!("{SECRET_PREFIX}{}\n", B64.encode(self.0.to_bytes()))
    }

    pub fn from_file_text(text: &str) -> Result<Self, RegistryError> {
        let invalid = |problem: &str| RegistryError::Invalid { what: "signing key file", problem: problem.into() };
        let encoded = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| invalid("it does not start with `vidfarm-ed25519-secret:`"))?;
        let bytes = B64.decode(encoded).map_err(|e| invalid(&e.to_string()))?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| invalid("the key is not 32 bytes"))?;
        Ok(Self::from_seed(seed))
    }

    pub fn key_id(&self) -> String {
        key_id(&self.0.verifying_key())
    }

    /// `<key id>:<base64 public key>`: one entry of `VIDFARM_TRUSTED_KEYS`.
    pub fn public_line(&self) -> String {
        format!("{}:{}", self.key_id(), B64.encode(self.0.verifying_key().as_bytes()))
    }

    pub(crate) fn sign_bytes(&self, bytes: &[u8]) -> String {
        B64.encode(self.0.sign(bytes).to_bytes())
    }
}

/// The public keys a host accepts artifacts from, by key id.
#[derive(Clone, Default)]
pub struct TrustedKeys(HashMap<String, ed25519_dalek::VerifyingKey>);

impl TrustedKeys {
    /// Entries `<key id>:<base64 public key>` separated by commas, spaces or newlines. The id
    /// must match the key (a mistyped list is refused, not half-trusted).
    pub fn parse(list: &str) -> Result<Self, RegistryError> {
        let mut keys = HashMap::new();
        for entry in
            list.split([',', ' ', '\n', '\r', '\t']).map(str::trim).filter(|e| !e.is_empty() && !e.starts_with('#'))
        {
            let invalid = |problem: String| RegistryError::Invalid {
                what: "trusted key",
                problem: format!("`{entry}`: {problem}"),
            };
            let (id, encoded) =
                entry.split_once(':').ok_or_else(|| invalid("expected `<key id>:<base64 public key>`".into()))?;
            let bytes: [u8; 32] = B64
                .decode(encoded)
                .map_err(|e| invalid(e.to_string()))?
                .try_into()
                .map_err(|_| invalid("a public key is 32 bytes".into()))?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|e| invalid(e.to_string()))?;
            if key_id(&key) != id {
                return Err(invalid(format!("the key's id is `{}`, not `{id}`", key_id(&key))));
            }
            keys.insert(id.to_string(), key);
        }
        Ok(Self(keys))
    }

    pub fn add(&mut self, key: &SigningKey) {
        let public = key.0.verifying_key();
        self.0.insert(key_id(&public), public);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn verify(&self, key_id: &str, message: &[u8], signature: &str) -> Result<(), RegistryError> {
        let key = self.0.get(key_id).ok_or_else(|| RegistryError::UntrustedKey(key_id.into()))?;
        let bytes: [u8; 64] = B64
            .decode(signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| RegistryError::BadSignature(key_id.into()))?;
        key.verify(message, &ed25519_dalek::Signature::from_bytes(&bytes))
            .map_err(|_| RegistryError::BadSignature(key_id.into()))
    }
}

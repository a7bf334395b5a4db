//! Provider secrets at rest: XChaCha20-Poly1305 under the operator's master key, with the key
//! row's id as associated data (a ciphertext copied onto another row does not decrypt).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngExt;
use std::path::Path;

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 24;

/// The master key (`VIDFARM_MASTER_KEY`: 32 bytes as base64 or hex).
#[derive(Clone)]
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    /// The key itself, to derive purpose-bound keys from (never used directly but here).
    raw: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("VIDFARM_MASTER_KEY must be 32 bytes as base64 or 64 hex characters")]
    BadMasterKey,
    #[error(
        "VIDFARM_MASTER_KEY is required in production (32 random bytes, base64): provider keys are encrypted with it"
    )]
    MissingInProduction,
    #[error("the master key file {0}: {1}")]
    KeyFile(String, std::io::Error),
    #[error("a stored provider secret does not decrypt (wrong master key, or the row was altered)")]
    Undecryptable,
}

impl MasterKey {
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let bytes = hex::decode(text).ok().filter(|b| b.len() == 32).or_else(|| STANDARD.decode(text).ok());
        match bytes {
            Some(bytes) if bytes.len() == 32 => Ok(Self::from_bytes(&bytes)),
            _ => Err(SecretError::BadMasterKey),
        }
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        let mut raw = [0; 32];
        raw.copy_from_slice(bytes);
        Self { cipher: XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(bytes)), raw }
    }

    /// A key for one purpose (e.g. signing file URLs), derived so that it reveals nothing
    /// about the master key or the keys of other purposes.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        blake3::derive_key(purpose, &self.raw)
    }

    /// The configured key, else the one kept in `file`; `None` when neither exists (nothing is
    /// created: for commands that only read, such as checking a signature).
    pub fn existing(configured: Option<&str>, file: &Path) -> Result<Option<Self>, SecretError> {
        match configured {
            Some(text) => Self::parse(text).map(Some),
            None => match std::fs::read_to_string(file) {
                Ok(text) => Self::parse(&text).map(Some),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(SecretError::KeyFile(file.display().to_string(), e)),
            },
        }
    }

    /// The configured key; in development without one, a key generated once and kept in
    /// `file` (mode 0600) so `vidfarm serve` works out of the box.
    pub fn load(configured: Option<&str>, production: bool, file: &Path) -> Result<Self, SecretError> {
        if let Some(text) = configured {
            return Self::parse(text);
        }
        if production {
            return Err(SecretError::MissingInProduction);
        }
        let io = |e| SecretError::KeyFile(file.display().to_string(), e);
        if let Ok(text) = std::fs::read_to_string(file) {
            return Self::parse(&text);
        }
        let bytes: [u8; 32] = rand::rng().random();
        write_private(file, STANDARD.encode(bytes).as_bytes()).map_err(io)?;
        Ok(Self::from_bytes(&bytes))
    }

    /// Encrypt `secret` for the key row `key_id`.
    pub fn encrypt(&self, key_id: &str, secret: &str) -> String {
        let nonce: [u8; NONCE_LEN] = rand::rng().random();
        let payload = Payload { msg: secret.as_bytes(), aad: key_id.as_bytes() };
        // Encryption with a fresh nonce and an in-memory buffer cannot fail.
        let sealed = self.cipher.encrypt(XNonce::from_slice(&nonce), payload).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", STANDARD.encode(out))
    }

    pub fn decrypt(&self, key_id: &str, stored: &str) -> Result<String, SecretError> {
        let raw =
            stored.strip_prefix(PREFIX).and_then(|b| STANDARD.decode(b).ok()).ok_or(SecretError::Undecryptable)?;
        if raw.len() <= NONCE_LEN {
            return Err(SecretError::Undecryptable);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: key_id.as_bytes() })
            .map_err(|_| SecretError::Undecryptable)?;
        String::from_utf8(plain).map_err(|_| SecretError::Undecryptable)
    }
}

/// The last four characters of a secret, for lists.
pub fn last4(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::parse(&"11".repeat(32)).expect("a hex key")
    }

    #[test]
    fn a_secret_round_trips_and_never_appears_in_its_ciphertext() {
        let stored = key().encrypt("pk_1", "sk-live-abcdef123456");
        assert!(!stored.contains("sk-live"));
        assert_eq!(key().decrypt("pk_1", &stored).expect("decrypts"), "sk-live-abcdef123456");
    }

    #[test]
    fn a_ciphertext_moved_to_another_row_or_read_with_another_key_does_not_decrypt() {
        let stored = key().encrypt("pk_1", "secret");
        assert!(key().decrypt("pk_2", &stored).is_err());
        let other = MasterKey::parse(&"22".repeat(32)).expect("a hex key");
        assert!(other.decrypt("pk_1", &stored).is_err());
    }

    #[test]
    fn a_master_key_must_be_32_bytes() {
        assert!(MasterKey::parse("c2hvcnQ=").is_err());
        assert!(MasterKey::parse(&STANDARD.encode([7u8; 32])).is_ok());
        assert_eq!(last4("sk-abcdWXYZ"), "WXYZ");
        assert_eq!(last4("ab"), "ab");
    }
}

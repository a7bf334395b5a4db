//! Compiled components on disk, keyed by the component's blake3 digest and the engine's
//! fingerprint. `Component::deserialize` trusts its input, so every file carries a blake3
//! checksum of its payload that is verified first: a corrupted file is discarded and the
//! component recompiled, never loaded.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Marks a cache file of this format; a file without it is not ours and is discarded.
const MAGIC: &[u8; 8] = b"VFCWASM1";

/// How a load went: callers report it, tests assert on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a verified cache file.
    Hit,
    /// Compiled, then written to the cache.
    Miss,
    /// A cache file existed but failed verification; it was discarded and recompiled.
    Corrupt,
    /// No cache directory configured: compiled in memory.
    Disabled,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("the component does not compile: {0}")]
    Compile(String),
    #[error("the compiled-component cache is unusable: {0}")]
    Io(#[from] std::io::Error),
}

/// The on-disk cache (one per engine).
pub struct ComponentCache {
    dir: Option<PathBuf>,
    /// Compatibility fingerprint of the engine: settings that make artifacts incompatible.
    fingerprint: String,
}

impl ComponentCache {
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Result<Self, CacheError> {
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir)?;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        Ok(Self { dir, fingerprint: format!("{:016x}", hasher.finish()) })
    }

    /// The cache file of a component with this digest.
    pub fn path_of(&self, digest: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.join(format!("{digest}-{}.cwasm", self.fingerprint)))
    }

    /// The compiled component for `bytes` (whose blake3 digest is `digest`): from a verified
    /// cache file, or compiled now and cached. Blocking: call from a blocking thread.
    pub fn load(&self, engine: &Engine, digest: &str, bytes: &[u8]) -> Result<(Component, CacheOutcome), CacheError> {
        let Some(path) = self.path_of(digest) else {
            return Ok((compile(engine, bytes)?, CacheOutcome::Disabled));
        };
        let mut outcome = CacheOutcome::Miss;
        if let Ok(file) = std::fs::read(&path) {
            match verified_payload(&file) {
                Some(payload) => match deserialize(engine, payload) {
                    Ok(component) => return Ok((component, CacheOutcome::Hit)),
                    Err(_) => outcome = CacheOutcome::Corrupt,
                },
                None => outcome = CacheOutcome::Corrupt,
            }
            let _ = std::fs::remove_file(&path);
        }
        let component = compile(engine, bytes)?;
        let payload = component.serialize().map_err(|e| CacheError::Compile(e.to_string()))?;
        write_atomically(&path, &payload)?;
        Ok((component, outcome))
    }
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, CacheError> {
    Component::new(engine, bytes).map_err(|e| CacheError::Compile(format!("{e:#}")))
}

/// The payload of a cache file if its magic and checksum hold.
fn verified_payload(file: &[u8]) -> Option<&[u8]> {
    let rest = file.strip_prefix(MAGIC.as_slice())?;
    let (checksum, payload) = rest.split_at_checked(32)?;
    (blake3::hash(payload).as_bytes() == checksum).then_some(payload)
}

/// `Component::deserialize` on bytes we wrote and whose checksum just matched.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, payload: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `payload` is exactly what `Component::serialize` produced for this engine
    // configuration (the fingerprint is in the file name) and its blake3 checksum matches,
    // so it is not corrupted or substituted; wasmtime checks version compatibility too.
    unsafe { Component::deserialize(engine, payload) }
}

fn write_atomically(path: &Path, payload: &[u8]) -> std::io::Result<()> {
    let mut file = Vec::with_capacity(MAGIC.len() + 32 + payload.len());
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(blake3::hash(payload).as_bytes());
    file.extend_from_slice(payload);
    let partial = path.with_extension(format!("partial-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&partial, &file)?;
    std::fs::rename(&partial, path)
}

//! Compiled components on disk, keyed by the component's blake3 digest and the engine's
//! fingerprint. `Component::deserialize` trusts its input (a compiled file is native code the
//! host runs), so every file has a MAC — blake3 keyed with a key derived from the master key —
//! over the component's digest and the payload, verified first. A corrupted file, a file
//! planted by someone without the master key, or another component's file copied under this
//! digest fails it: it is discarded and the component recompiled, never loaded. The
//! directory is created 0700.
//!
//! The payload is a file of its own (`.cwasm`, exactly what the engine compiled) and its MAC
//! sits beside it (`.mac`), so a verified file is mapped, not copied: the code is file-backed
//! memory the kernel pages in as it runs, and shares and drops under pressure. A JS or Python
//! component compiles to 40–50 MB of native code; copied into the heap, three of them made an
//! idle host's RSS 268 MB (BENCHMARKS.md).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Marks a MAC file of this format; a file without it is not ours and is discarded.
const MAGIC: &[u8; 8] = b"VFCWASM3";

/// The MAC key of tools that have no master key (the registry and template CLIs): such a
/// cache is checked for corruption only, and the server (keyed) never trusts its files.
const UNKEYED: &str = "vidfarm compiled cache: integrity only";

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
    /// Keys each file's MAC: without it nobody can make a file this host will load.
    key: [u8; 32],
    /// Compatibility fingerprint of the engine: settings that make artifacts incompatible.
    fingerprint: String,
    /// The serving engine's configuration, for the short-lived engines that compile.
    compiler: wasmtime::Config,
}

impl ComponentCache {
    pub fn new(
        engine: &Engine,
        compiler: wasmtime::Config,
        dir: Option<PathBuf>,
        key: Option<[u8; 32]>,
    ) -> Result<Self, CacheError> {
        if let Some(dir) = &dir {
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let key = key.unwrap_or_else(|| blake3::derive_key(UNKEYED, b""));
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        Ok(Self { dir, key, fingerprint: format!("{:016x}", hasher.finish()), compiler })
    }

    /// The cache file of a component with this digest.
    pub fn path_of(&self, digest: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.join(format!("{digest}-{}.cwasm", self.fingerprint)))
    }

    /// The compiled component for `bytes` (whose blake3 digest is `digest`): from a verified
    /// cache file, or compiled now and cached. Blocking: call from a blocking thread.
    pub fn load(&self, engine: &Engine, digest: &str, bytes: &[u8]) -> Result<(Component, CacheOutcome), CacheError> {
        let Some(path) = self.path_of(digest) else {
            let payload = self.compile(bytes)?;
            let component = deserialize(engine, &payload).map_err(compile_failed)?;
            return Ok((component, CacheOutcome::Disabled));
        };
        let mac_path = path.with_extension("mac");
        let mut outcome = CacheOutcome::Miss;
        if let Ok(file) = std::fs::File::open(&path) {
            // A payload without its MAC (or an older format's file) is a miss: rewritten.
            if let Ok(tag) = std::fs::read(&mac_path) {
                match load_verified(engine, &self.key, digest, &file, &tag) {
                    Ok(Ok(component)) => return Ok((component, CacheOutcome::Hit)),
                    _ => outcome = CacheOutcome::Corrupt,
                }
            }
        }
        // Nothing is deleted: a bad pair is replaced below, by renames. Processes sharing the
        // directory (an `api` and a `worker` on one data dir, the CLIs) may read or replace the
        // pair meanwhile; this load depends on none of it: the payload is written to a file
        // of its own, loaded from that open file, and only then renamed into place.
        let payload = self.compile(bytes)?;
        let mac_file = [MAGIC.as_slice(), mac(&self.key, digest, payload.as_slice())?.as_bytes()].concat();
        let partial = path.with_extension(format!("partial-{}", uuid::Uuid::new_v4().simple()));
        let written = std::fs::write(&partial, &payload).and_then(|()| std::fs::File::open(&partial));
        drop(payload);
        let loaded = written.map_err(CacheError::from).and_then(|file| {
            let component = load_verified(engine, &self.key, digest, &file, &mac_file)?.map_err(compile_failed)?;
            write_atomically(&mac_path, &mac_file)?;
            std::fs::rename(&partial, &path)?;
            Ok(component)
        });
        if loaded.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        Ok((loaded?, outcome))
    }
}

impl ComponentCache {
    /// Compile with a short-lived engine of the serving engine's configuration. Cranelift keeps its
    /// scratch buffers for every compiling thread as long as its engine lives (12–20 MB once
    /// anything was compiled): they go with the short-lived engine, not with the server.
    fn compile(&self, bytes: &[u8]) -> Result<Vec<u8>, CacheError> {
        let payload = Engine::new(&self.compiler).and_then(|compiling| compiling.precompile_component(bytes));
        let payload = payload.map_err(compile_failed)?;
        release_freed_memory();
        Ok(payload)
    }
}

/// Give the memory the compiler freed back to the system. glibc keeps what threads freed in
/// their arenas (the compiling threads' ~25 MB would stay in the server's RSS for good).
#[allow(unsafe_code)]
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free pages of the allocator's arenas to the kernel;
    // it takes the arenas' locks itself and touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn compile_failed(e: wasmtime::Error) -> CacheError {
    CacheError::Compile(format!("{e:#}"))
}

/// The MAC of a compiled payload, read from `payload`, for the component with `digest`.
fn mac(key: &[u8; 32], digest: &str, mut payload: impl std::io::Read) -> std::io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new_keyed(key);
    hasher.update(digest.as_bytes()).update(&[0]);
    std::io::copy(&mut payload, &mut hasher)?;
    Ok(hasher.finalize())
}

/// The component in the open cache `file`, if `mac_file` holds its MAC (compared in constant
/// time): read through once to check it, then mapped by the same open file, so the bytes
/// checked are the bytes loaded even if the path is replaced meanwhile. `Err`: it does not
/// verify; `Ok(Err)`: it verified and wasmtime refused it.
fn load_verified(
    engine: &Engine,
    key: &[u8; 32],
    digest: &str,
    file: &std::fs::File,
    mac_file: &[u8],
) -> Result<wasmtime::Result<Component>, std::io::Error> {
    use std::io::Seek;
    let refused = || std::io::Error::other("the compiled file does not match its MAC");
    let tag: [u8; 32] = mac_file.strip_prefix(MAGIC.as_slice()).and_then(|t| t.try_into().ok()).ok_or_else(refused)?;
    let mut reader = file;
    reader.rewind()?;
    if mac(key, digest, reader)? != blake3::Hash::from(tag) {
        return Err(refused());
    }
    Ok(map_file(engine, file))
}

/// `Component::deserialize_file` on an open cache file whose MAC just matched.
#[allow(unsafe_code)]
fn map_file(engine: &Engine, file: &std::fs::File) -> wasmtime::Result<Component> {
    use std::os::fd::AsRawFd;
    // The same open file, by its descriptor: the inode just verified, whatever the path
    // names now.
    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
    // SAFETY: the file is exactly what an engine of this configuration compiled for this
    // component (the fingerprint is in its name): its MAC, keyed by a key only this host has,
    // covers the digest and the bytes, so it is not corrupted, planted or swapped; wasmtime
    // checks compatibility too. Files are replaced by rename, never rewritten in place, so
    // the mapped bytes do not change under the component.
    unsafe { Component::deserialize_file(engine, path) }
}

/// `Component::deserialize` on bytes this process just compiled.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, payload: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `payload` is exactly what an engine of this configuration just compiled.
    unsafe { Component::deserialize(engine, payload) }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let partial = path.with_extension(format!("partial-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)
}

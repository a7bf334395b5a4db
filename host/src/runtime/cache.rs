//! Compiled components on disk, keyed by the component's blake3 digest and the engine's
//! fingerprint. `Component::deserialize` trusts its input (a compiled file is native code the
//! host runs), so every file carries a MAC — blake3 keyed with a key derived from the master
//! key — over the component's digest and the payload, verified first. A corrupted file, a
//! file planted by someone without the master key, or another component's file copied under
//! this digest fails it: it is discarded and the component recompiled, never loaded. The
//! directory is created 0700.
//!
//! The directory is bounded: every version ever published (and every engine upgrade) would
//! otherwise leave its file for good, 1 MB for a Rust template and 40–50 MB for a JS or Python
//! one. A hit marks its file used; after each write the least recently used files go until
//! the directory fits, files of another engine fingerprint first. The files of components this
//! process has loaded and still holds (the versions it serves) are never evicted: they were
//! loaded once, long ago, and are what its next start needs first. An evicted file costs only
//! a recompile at its next load.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Marks a cache file of this format; a file without it is not ours and is discarded.
const MAGIC: &[u8; 8] = b"VFCWASM2";

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
    /// Bytes the directory may hold after a write (the newest file stays even if alone larger).
    max_bytes: u64,
    /// Digests of the components this process holds loaded, by a handle each loaded template
    /// keeps: their files are not evicted.
    in_use: Mutex<HashMap<String, Weak<InUse>>>,
}

/// Held by a loaded template: while any is alive, its compiled file stays in the cache.
#[derive(Debug)]
pub struct InUse(());

impl ComponentCache {
    pub fn new(
        engine: &Engine,
        compiler: wasmtime::Config,
        dir: Option<PathBuf>,
        key: Option<[u8; 32]>,
        max_bytes: u64,
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
        let fingerprint = format!("{:016x}", hasher.finish());
        Ok(Self { dir, key, fingerprint, compiler, max_bytes, in_use: Mutex::default() })
    }

    /// The cache file of a component with this digest.
    pub fn path_of(&self, digest: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.join(format!("{digest}-{}.cwasm", self.fingerprint)))
    }

    /// The compiled component for `bytes` (whose blake3 digest is `digest`): from a verified
    /// cache file, or compiled now and cached. Blocking: call from a blocking thread.
    pub fn load(&self, engine: &Engine, digest: &str, bytes: &[u8]) -> Result<(Component, CacheOutcome), CacheError> {
        let Some(path) = self.path_of(digest) else {
            return Ok((self.compile(engine, bytes)?.0, CacheOutcome::Disabled));
        };
        let mut outcome = CacheOutcome::Miss;
        if let Ok(file) = std::fs::read(&path) {
            match verified_payload(&self.key, digest, &file) {
                Some(payload) => match deserialize(engine, payload) {
                    Ok(component) => {
                        mark_used(&path);
                        return Ok((component, CacheOutcome::Hit));
                    }
                    Err(_) => outcome = CacheOutcome::Corrupt,
                },
                None => outcome = CacheOutcome::Corrupt,
            }
            let _ = std::fs::remove_file(&path);
        }
        let (component, payload) = self.compile(engine, bytes)?;
        write_atomically(&path, &mac(&self.key, digest, &payload), &payload)?;
        self.evict_beyond_bound(&path);
        Ok((component, outcome))
    }

    /// The handle that keeps the compiled file of `digest` while a loaded template holds it.
    pub fn hold(&self, digest: &str) -> Arc<InUse> {
        let mut in_use = self.in_use.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = in_use.get(digest).and_then(Weak::upgrade) {
            return held;
        }
        in_use.retain(|_, held| held.strong_count() > 0);
        let held = Arc::new(InUse(()));
        in_use.insert(digest.to_string(), Arc::downgrade(&held));
        held
    }

    /// Remove the least recently used files (another fingerprint's first) until the directory
    /// holds at most `max_bytes`. `newest` and the files of components held loaded count towards
    /// the bound but are never removed. Best effort: a file another process removed or is
    /// writing is skipped, and a failure here never fails the load.
    fn evict_beyond_bound(&self, newest: &Path) {
        let Some(dir) = &self.dir else { return };
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mine = format!("-{}.cwasm", self.fingerprint);
        let held: Vec<String> = {
            let in_use = self.in_use.lock().unwrap_or_else(|p| p.into_inner());
            in_use.iter().filter(|(_, h)| h.strong_count() > 0).map(|(digest, _)| format!("{digest}{mine}")).collect()
        };
        let mut total = 0;
        let mut candidates: Vec<(bool, SystemTime, u64, PathBuf)> = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(meta) = entry.metadata().ok().filter(|m| m.is_file()) else { continue };
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            // A partial file is another writer's, unless a crash left it long ago.
            let stale_partial = name.contains(".partial-") && used.elapsed().is_ok_and(|age| age > STALE_PARTIAL);
            if !name.ends_with(".cwasm") && !stale_partial {
                continue;
            }
            total += meta.len();
            if entry.path() != newest && !held.contains(&name) {
                candidates.push((name.ends_with(&mine), used, meta.len(), entry.path()));
            }
        }
        if total <= self.max_bytes {
            return;
        }
        // Foreign fingerprints and stale partials (false) sort first, then the least recently used.
        candidates.sort_by_key(|c| (c.0, c.1));
        let mut evicted = 0;
        for (_, _, len, path) in candidates {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
                evicted += 1;
            }
        }
        tracing::info!(evicted, bytes_left = total, max_bytes = self.max_bytes, "compiled-component cache trimmed");
    }
}

/// A partial file older than this was left by a writer that died.
const STALE_PARTIAL: Duration = Duration::from_secs(3600);

/// Record a hit in the file's modification time, the order eviction goes by.
fn mark_used(path: &Path) {
    let _ = std::fs::File::options().write(true).open(path).and_then(|file| file.set_modified(SystemTime::now()));
}

impl ComponentCache {
    /// Compile with a short-lived engine of the serving engine's configuration and load the
    /// result into the serving engine; also returns the compiled bytes. Cranelift keeps its
    /// scratch buffers for every compiling thread as long as its engine lives (12–20 MB once
    /// anything was compiled): they go with the short-lived engine, not with the server.
    fn compile(&self, engine: &Engine, bytes: &[u8]) -> Result<(Component, Vec<u8>), CacheError> {
        let failed = |e: wasmtime::Error| CacheError::Compile(format!("{e:#}"));
        let payload = Engine::new(&self.compiler).and_then(|compiling| compiling.precompile_component(bytes));
        let payload = payload.map_err(failed)?;
        release_freed_memory();
        let component = deserialize(engine, &payload).map_err(failed)?;
        Ok((component, payload))
    }
}

/// Give the memory the compiler freed back to the system. glibc keeps what threads freed in
/// their arenas (the compiling threads' ~25 MB would stay in the server's RSS for good), and
/// after a freed buffer of tens of MB (a Remotion bundle) it raises its thresholds and keeps
/// the next ones too. The `vidfarm` binary allocates through jemalloc, whose background thread
/// returns freed pages by itself (allocator.rs); glibc's heap then holds what C code (SQLite)
/// allocated, and tests and embedders on the system allocator still need this.
#[allow(unsafe_code)]
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free pages of the allocator's arenas to the kernel;
    // it takes the arenas' locks itself and touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The MAC of a compiled `payload` for the component with `digest`.
fn mac(key: &[u8; 32], digest: &str, payload: &[u8]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(key);
    hasher.update(digest.as_bytes()).update(&[0]).update(payload);
    hasher.finalize()
}

/// The payload of a cache file if its magic and MAC hold (compared in constant time).
fn verified_payload<'a>(key: &[u8; 32], digest: &str, file: &'a [u8]) -> Option<&'a [u8]> {
    let rest = file.strip_prefix(MAGIC.as_slice())?;
    let (tag, payload) = rest.split_at_checked(32)?;
    let tag: [u8; 32] = tag.try_into().ok()?;
    (mac(key, digest, payload) == blake3::Hash::from(tag)).then_some(payload)
}

/// `Component::deserialize` on bytes we compiled, or wrote and whose checksum just matched.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, payload: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `payload` is exactly what an engine of this configuration compiled for this
    // component: just now in this process, or read from a cache file (the fingerprint is in
    // the file name) whose MAC, keyed by a key only this host has, covers the digest and the
    // bytes, so it is not corrupted, planted or swapped; wasmtime checks compatibility too.
    unsafe { Component::deserialize(engine, payload) }
}

fn write_atomically(path: &Path, tag: &blake3::Hash, payload: &[u8]) -> std::io::Result<()> {
    let mut file = Vec::with_capacity(MAGIC.len() + 32 + payload.len());
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(tag.as_bytes());
    file.extend_from_slice(payload);
    let partial = path.with_extension(format!("partial-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&partial, &file)?;
    std::fs::rename(&partial, path)
}

//! Where the registry's files live: a directory by default, or any object store (the host
//! adds S3) with the same layout. The registry needs only whole-object reads and writes and a
//! listing of one level.

use std::io;
use std::path::{Path, PathBuf};

/// Objects by `/`-separated keys.
pub trait Blobs: Send + Sync {
    /// The object's bytes, `None` when there is none.
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// Create or replace the object; readers see the old bytes or the new, never a part.
    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()>;
    /// The names one level under `prefix` (objects and "directories"), unsorted.
    fn children(&self, prefix: &str) -> io::Result<Vec<String>>;
    /// Where the objects are, for messages.
    fn location(&self) -> String;
}

/// A directory: keys are relative paths.
pub struct DirBlobs {
    root: PathBuf,
}

impl DirBlobs {
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    fn path(&self, key: &str) -> PathBuf {
        key.split('/').filter(|s| !s.is_empty()).fold(self.root.clone(), |p, s| p.join(s))
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// Written beside and renamed into place, so a reader in another process never sees half.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let partial = path.with_extension(format!("partial-{}-{}", std::process::id(), now_nanos()));
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)
}

impl Blobs for DirBlobs {
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        write_atomically(&self.path(key), bytes)
    }

    fn children(&self, prefix: &str) -> io::Result<Vec<String>> {
        let entries = match std::fs::read_dir(self.path(prefix)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| !name.contains(".partial-"))
            .collect())
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}

//! The local store with its small objects in the database. An object of at most
//! [`SMALL_OBJECT_BYTES`] is a row of `small_objects` (on SQLite written through the
//! group-commit queue that carries the job's journal entries and events); anything larger is a
//! file, as before.
//!
//! Why: a file is an inode for the object, usually another for its job's folder, and a rename,
//! all on the host's CPU. For `hello greet` (a 12-byte artifact) that was 18.6 % of the server's
//! CPU in a profile, most of it ext4 looking for free inodes (BENCHMARKS.md, session 23), while
//! the row costs a statement in a commit the job makes anyway. SQLite reads and writes blobs
//! of this size faster than the file system does (sqlite.org, "35% Faster Than The
//! Filesystem"). The bound keeps rows small and the writer's commits short; the storage quota
//! counts both kinds alike.
//!
//! A key is a row or a file, not both: written small, its row is stored and then any file it
//! had is removed; written large, its file is put in place and then its row forgotten. Reads
//! look for a row first, so in between they see the old object or the new one, never neither.
//! Unlike files, rows (like S3 keys) do not make folders: `a/b` and `a/b/c` may both be small
//! objects.

use super::LocalObjectStore;
use crate::capabilities::{ObjectReader, ObjectStore, StoreError, UploadUrl};
use crate::db::Db;
use async_trait::async_trait;

/// The largest object kept as a row.
pub const SMALL_OBJECT_BYTES: usize = 16 << 10;

pub struct SmallObjectsInDb {
    /// Where the rows live: the platform's database.
    db: Db,
    /// Where everything larger lives, and what checks every key.
    files: LocalObjectStore,
}

impl SmallObjectsInDb {
    pub fn new(db: Db, files: LocalObjectStore) -> Self {
        Self { db, files }
    }

    /// A larger object took `key`'s place: forget the row, if there is one.
    async fn forget_row(&self, key: &str) -> Result<(), StoreError> {
        if self.db.small_object(key).await.map_err(unavailable)?.is_some() {
            self.db.set_small_object(key, None).await.map_err(unavailable)?;
        }
        Ok(())
    }
}

/// What [`export`] did.
#[derive(Debug, Default)]
pub struct Exported {
    /// Rows written out as files.
    pub written: u64,
    /// Keys that could not be a file, with why: rows, like S3 keys, may hold both `a/b` and
    /// `a/b/c`, which a folder of files cannot. The rest were still written.
    pub failed: Vec<(String, String)>,
}

/// Write every object kept in `db` as a file under `dir`, at its key (what `vidfarm db
/// export-objects` does before the objects move to S3, where there are no rows), with the
/// hosts stopped: a host writing a key meanwhile could have its newer file overwritten. Rows
/// stay: the local store still reads them first, and they hold the same bytes.
pub async fn export(db: &Db, dir: &std::path::Path) -> Result<Exported, StoreError> {
    let files =
        LocalObjectStore::new(dir, None).map_err(|e| StoreError::Unavailable(format!("{}: {e}", dir.display())))?;
    let (mut exported, mut after) = (Exported::default(), None::<String>);
    loop {
        let page = db.small_objects_after(after.as_deref(), 256).await.map_err(unavailable)?;
        let Some((last, _)) = page.last() else { return Ok(exported) };
        after = Some(last.clone());
        for (key, body) in page {
            match files.put(&key, body, "application/octet-stream").await {
                Ok(_) => exported.written += 1,
                Err(e) => exported.failed.push((key, e.to_string())),
            }
        }
    }
}

fn unavailable(error: crate::db::DbError) -> StoreError {
    StoreError::Unavailable(format!("the object database: {error}"))
}

#[async_trait]
impl ObjectStore for SmallObjectsInDb {
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<u64, StoreError> {
        if bytes.len() > SMALL_OBJECT_BYTES {
            let size = self.files.put(key, bytes, content_type).await?;
            self.forget_row(key).await?;
            return Ok(size);
        }
        // The same keys as the files: a key the file store would refuse is refused here too.
        let relative = self.files.relative(key)?;
        let size = bytes.len() as u64;
        self.db.set_small_object(key, Some(bytes)).await.map_err(unavailable)?;
        // A file written at this key before (large) would stay on disk, shadowed and no longer
        // counted by the quota (which counts a key's latest size): remove it. Most keys never
        // had one, so a stat (a dentry lookup, no disk wait) decides first, on this thread;
        // the removal itself goes through the file store's rooted handle.
        if std::fs::symlink_metadata(self.files.root().join(relative)).is_ok() {
            self.files.delete(key).await?;
        }
        Ok(size)
    }

    async fn put_file(&self, key: &str, path: &std::path::Path, content_type: &str) -> Result<u64, StoreError> {
        let unreadable = |e: std::io::Error| StoreError::Unavailable(format!("reading {}: {e}", path.display()));
        let size = tokio::fs::metadata(path).await.map_err(unreadable)?.len();
        if size <= SMALL_OBJECT_BYTES as u64 {
            let bytes = tokio::fs::read(path).await.map_err(unreadable)?;
            // Grown since its size was read: store what is there now, by its size now.
            return self.put(key, bytes, content_type).await;
        }
        let size = self.files.put_file(key, path, content_type).await?;
        self.forget_row(key).await?;
        Ok(size)
    }

    async fn open(&self, key: &str) -> Result<ObjectReader, StoreError> {
        self.files.relative(key)?;
        match self.db.small_object(key).await.map_err(unavailable)? {
            Some(body) => Ok(ObjectReader { size: body.len() as u64, body: Box::pin(std::io::Cursor::new(body)) }),
            None => self.files.open(key).await,
        }
    }

    async fn public_url(&self, key: &str) -> Option<String> {
        self.files.public_url(key).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.files.relative(key)?;
        self.db.set_small_object(key, None).await.map_err(unavailable)?;
        self.files.delete(key).await
    }

    async fn upload_url(&self, key: &str, content_type: &str, size: Option<u64>) -> Option<UploadUrl> {
        self.files.upload_url(key, content_type, size).await
    }
}

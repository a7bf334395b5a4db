//! Turns: something several hosts, or several requests of one host, may try at once but only
//! one at a time should do, such as writing the template registry (publishing the built-ins
//! into a shared bucket at start, an operator's activation or rollback). On PostgreSQL a turn
//! is a session advisory lock on a connection of its own, so every host and every request
//! queue for it alike. A SQLite database has one host, but a CLI may run beside it on the same
//! file: there a turn is a lock inside the process (its requests queue in order) and then an
//! exclusive lock on a file beside the database, named after the turn, which the CLI takes too.
//! The system releases both kinds with the session or process that held them, even if it dies.

use super::{Backend, Db, DbError};
use std::collections::HashMap;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a wait for a turn's file looks again (file locks have no waiting with a deadline).
const FILE_RETRY: Duration = Duration::from_millis(20);

/// This host's turn, held until dropped.
pub struct Turn {
    /// The locked file beside the SQLite database: closing it releases the lock. Dropped
    /// before the lock in this process, so the next request here finds the file free.
    _file: Option<File>,
    /// The connection whose session holds the lock (PostgreSQL): dropping it closes the
    /// session, and the server releases the lock with it, even if this host dies holding it.
    _held: Option<super::pg::turns::Held>,
    /// The lock in this process (SQLite).
    _local: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// One lock per turn's name, for the turns of a SQLite database, and where its files go.
#[derive(Default)]
pub(crate) struct LocalTurns {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The SQLite file (none on PostgreSQL).
    database: Option<PathBuf>,
}

impl LocalTurns {
    pub(crate) fn beside(database: &Path) -> Self {
        Self { locks: Mutex::default(), database: Some(database.to_path_buf()) }
    }

    async fn take(&self, what: &str, wait: Duration) -> Option<Turn> {
        let deadline = Instant::now() + wait;
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(what.to_string()).or_default().clone()
        };
        let guard = tokio::time::timeout(wait, lock.lock_owned()).await.ok()?;
        let file = match &self.database {
            None => None,
            Some(database) => match lock_file(turn_file(database, what), deadline).await {
                Ok(Some(file)) => Some(file),
                Ok(None) => return None,
                // A folder this process may not write, a filesystem without locks: the turn
                // is what it was before files, this process's requests one at a time.
                Err(e) => {
                    tracing::warn!(error = %e, "the turn's file could not be locked: a CLI beside this host cannot take part in its turns");
                    None
                }
            },
        };
        Some(Turn { _file: file, _held: None, _local: Some(guard) })
    }
}

impl Db {
    /// Wait up to `wait` for this host's turn at `what` (any text; those asking for the same
    /// text take turns, others do not wait for each other); `None` if someone else held it
    /// all that time.
    pub async fn take_turn(&self, what: &str, wait: Duration) -> Result<Option<Turn>, DbError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(self.local_turns.take(what, wait).await),
            Backend::Postgres(pg) => Ok(pg.take_turn(what, wait).await?.map(postgres_turn)),
        }
    }
}

/// The same turn for a process without a [`Db`] (the CLI), by the database's URL. On SQLite,
/// the turn's file beside the database; an error names the file (or the missing folder) when
/// it cannot be made or locked.
pub async fn take_turn_at(url: &str, what: &str, wait: Duration) -> Result<Option<Turn>, DbError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let file = lock_file(turn_file(Path::new(path), what), Instant::now() + wait).await.map_err(DbError::Io)?;
        return Ok(file.map(|file| Turn { _file: Some(file), _held: None, _local: None }));
    }
    Ok(super::pg::turns::take_turn_at(url, what, wait).await?.map(postgres_turn))
}

/// `<database>.turn-<hash of what>`: the name of a turn, whatever text it is, as a file name
/// every release computes alike (FNV-1a, not the standard library's unspecified hasher).
fn turn_file(database: &Path, what: &str) -> PathBuf {
    let hash = what.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let mut name = database.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".turn-{hash:016x}"));
    database.with_file_name(name)
}

/// Lock `path` exclusively, trying until `deadline`; `None` if another process, or another
/// request of this one, held it all that time. The file is opened for reading (a lock needs
/// no more, so a file another user made serves every user who may read it) and made if
/// missing; an error names it.
async fn lock_file(path: PathBuf, deadline: Instant) -> Result<Option<File>, std::io::Error> {
    let named = |e: std::io::Error, path: &Path| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    tokio::task::spawn_blocking(move || {
        let file = match File::open(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                File::options().create(true).truncate(false).write(true).open(&path)
            }
            opened => opened,
        }
        .map_err(|e| named(e, &path))?;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Some(file)),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => std::thread::sleep(FILE_RETRY),
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(named(e, &path)),
            }
        }
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Whether `error` says the database does not exist (PostgreSQL's `invalid_catalog_name`).
pub fn no_such_database(error: &DbError) -> bool {
    error.as_database_error().and_then(|d| d.code()).as_deref() == Some("3D000")
}

fn postgres_turn(held: super::pg::turns::Held) -> Turn {
    Turn { _file: None, _held: Some(held), _local: None }
}

//! Turns: something several hosts, or several requests of one host, may try at once but only
//! one at a time should do, such as writing the template registry (publishing the built-ins
//! into a shared bucket at start, an operator's activation or rollback). On PostgreSQL a turn
//! is a session advisory lock on a connection of its own, so every host and every request
//! queue for it alike. A SQLite database has one host, so there a turn is a lock in this
//! process; a CLI beside it does not take part (see [`take_turn_at`]).

use super::{Backend, Db, DbError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// This host's turn, held until dropped.
pub struct Turn {
    /// The connection whose session holds the lock (PostgreSQL): dropping it closes the
    /// session, and the server releases the lock with it, even if this host dies holding it.
    _held: Option<super::pg::turns::Held>,
    /// The lock in this process (SQLite).
    _local: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// One lock per turn's name, for the turns of a SQLite database.
#[derive(Default)]
pub(crate) struct LocalTurns(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl LocalTurns {
    async fn take(&self, what: &str, wait: Duration) -> Option<Turn> {
        let lock = {
            let mut locks = self.0.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(what.to_string()).or_default().clone()
        };
        let guard = tokio::time::timeout(wait, lock.lock_owned()).await.ok()?;
        Some(Turn { _held: None, _local: Some(guard) })
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

/// The same turn for a process without a [`Db`] (the CLI), by the database's URL. It is free
/// on SQLite, whose serving host's turns are locks inside that host.
pub async fn take_turn_at(url: &str, what: &str, wait: Duration) -> Result<Option<Turn>, DbError> {
    if url.starts_with("sqlite://") {
        return Ok(Some(Turn { _held: None, _local: None }));
    }
    Ok(super::pg::turns::take_turn_at(url, what, wait).await?.map(postgres_turn))
}

/// Whether `error` says the database does not exist (PostgreSQL's `invalid_catalog_name`).
pub fn no_such_database(error: &DbError) -> bool {
    error.as_database_error().and_then(|d| d.code()).as_deref() == Some("3D000")
}

fn postgres_turn(held: super::pg::turns::Held) -> Turn {
    Turn { _held: Some(held), _local: None }
}

//! Turns between hosts that share one database: something each host may try at start but only
//! one at a time should do, such as publishing the built-in templates into a shared registry
//! bucket. On PostgreSQL a turn is a session advisory lock on a connection of its own; a SQLite
//! database has one host, so there a turn is always free.

use super::{Backend, Db, DbError};

/// This host's turn, held until dropped.
pub struct Turn {
    /// The connection whose session holds the lock (PostgreSQL): dropping it closes the
    /// session, and the server releases the lock with it, even if this host dies holding it.
    _held: Option<super::pg::turns::Held>,
}

impl Db {
    /// Wait up to `wait` for this host's turn at `what` (any text; hosts asking for the same
    /// text take turns, others do not wait for each other); `None` if another host held it
    /// all that time.
    pub async fn take_turn(&self, what: &str, wait: std::time::Duration) -> Result<Option<Turn>, DbError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(Some(Turn { _held: None })),
            Backend::Postgres(pg) => Ok(pg.take_turn(what, wait).await?.map(|held| Turn { _held: Some(held) })),
        }
    }
}

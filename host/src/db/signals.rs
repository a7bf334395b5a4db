//! Signals between hosts that share one database: a job became due, jobs were cancelled, the
//! registry changed. On PostgreSQL they travel as `NOTIFY` (see `pg/signals.rs`); a SQLite
//! database has one host, whose in-process bus already carries them, so there they go nowhere.
//! Every signal is only a hint that saves waiting for the next poll: the database stays the
//! truth, and a lost signal costs at most one poll interval.

use super::{Backend, Db};
use tokio::sync::mpsc;

/// What one host tells the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A job became due (created, re-queued, woken): idle workers should claim.
    JobDue,
    /// These jobs were cancelled: a host running one of them stops it now.
    Cancelled(Vec<String>),
    /// A template version was published or activated: hosts re-read the registry.
    Registry,
}

impl Db {
    /// Tell every other host (debounced: a burst of `JobDue` is one notification).
    pub fn announce(&self, signal: Signal) {
        if let Backend::Postgres(pg) = &self.backend {
            pg.announce(signal);
        }
    }

    /// Signals from the other hosts, for as long as the receiver is kept; `None` when there
    /// can be no other host (SQLite).
    pub async fn listen(&self) -> Option<mpsc::Receiver<Signal>> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pg) => Some(pg.listen()),
        }
    }
}

/// Tell the hosts sharing the database at `url` (PostgreSQL; nothing to do for SQLite's one
/// host), from a process that has no `Db` open: one plain connection, no pool, no migrations.
pub async fn notify_hosts(url: &str, signal: Signal) -> Result<(), super::DbError> {
    if url.starts_with("sqlite://") { Ok(()) } else { super::pg::signals::notify_once(url, signal).await }
}

//! [`Db::take_turn`](crate::db::Db::take_turn) on PostgreSQL: a session advisory lock, on a
//! connection taken out of the pool (or opened for it) for as long as the turn lasts. A
//! transaction-scoped lock would not do: a session kept in a transaction past
//! `idle_in_transaction_session_timeout` is ended. The wait is the session's `lock_timeout`,
//! so a host that gives up leaves no session queued behind the lock.

use super::Pg;
use crate::db::DbError;
use sqlx::Connection;
use std::time::Duration;

/// A connection whose session holds one advisory lock.
pub(crate) struct Held {
    _session: sqlx::PgConnection,
}

/// `lock_not_available`: the wait for a lock passed `lock_timeout`.
const LOCK_NOT_AVAILABLE: &str = "55P03";

impl Pg {
    pub(crate) async fn take_turn(&self, what: &str, wait: Duration) -> Result<Option<Held>, DbError> {
        // Detached: a connection given back to the pool would keep the lock for whoever took it
        // next. Dropped, it closes, and the session's locks go with it.
        lock_on(self.pool.acquire().await?.detach(), what, wait).await
    }
}

/// The turn on a connection of its own, for a process with no pool (the CLI).
pub(crate) async fn take_turn_at(url: &str, what: &str, wait: Duration) -> Result<Option<Held>, DbError> {
    lock_on(sqlx::PgConnection::connect(url).await?, what, wait).await
}

async fn lock_on(mut conn: sqlx::PgConnection, what: &str, wait: Duration) -> Result<Option<Held>, DbError> {
    let wait_ms = wait.as_millis().clamp(1, i32::MAX as u128);
    sqlx::query(&format!("SET lock_timeout = {wait_ms}")).execute(&mut conn).await?;
    let taken = sqlx::query("SELECT pg_advisory_lock(hashtextextended('vidfarm:turn:' || $1, 0))")
        .bind(what)
        .execute(&mut conn)
        .await;
    match taken {
        Ok(_) => Ok(Some(Held { _session: conn })),
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some(LOCK_NOT_AVAILABLE) => Ok(None),
        Err(e) => Err(e),
    }
}

//! [`Db::take_turn`](crate::db::Db::take_turn) on PostgreSQL: a session advisory lock, on a
//! connection taken out of the pool for as long as the turn lasts. A transaction-scoped lock
//! would not do: a turn may outlast `idle_in_transaction_session_timeout` (compiling templates
//! to publish them takes seconds), and a session kept in a transaction that long is ended.

use super::Pg;
use crate::db::DbError;

/// A connection out of the pool whose session holds one advisory lock.
pub(crate) struct Held {
    _session: sqlx::PgConnection,
}

impl Pg {
    pub(crate) async fn take_turn(&self, what: &str) -> Result<Held, DbError> {
        // Detached: a connection given back to the pool would keep the lock for whoever took it
        // next. Dropped, it closes, and the session's locks go with it.
        let mut conn = self.pool.acquire().await?.detach();
        sqlx::query("SELECT pg_advisory_lock(hashtextextended('vidfarm:turn:' || $1, 0))")
            .bind(what)
            .execute(&mut conn)
            .await?;
        Ok(Held { _session: conn })
    }
}

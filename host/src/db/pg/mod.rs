//! The PostgreSQL backend: the same methods and row types as the SQLite one (this folder's
//! parent), for many hosts sharing one database. Where SQLite relied on its single writer
//! (`BEGIN IMMEDIATE`), each transaction here takes the narrowest row lock that gives the same
//! guarantee; claims lock their rows `FOR UPDATE SKIP LOCKED`.

mod accounts;
mod admin_views;
mod billing;
pub(crate) mod clock;
mod customers;
mod events;
mod group_commit;
mod holds;
mod insert_batches;
mod job_list;
mod jobs;
mod journal;
mod key_leases;
mod limits;
mod provider_keys;
mod rate_buckets;
mod renders;
mod run_ends;
pub(super) mod signals;
mod small_objects;
mod storage_quota;
pub(super) mod turns;
mod webhooks;

use super::DbError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// `BEGIN` for the batched transactions (claims, group commits, insert batches), in one round
/// trip. Their statements take arrays whose lengths change from call to call, so PostgreSQL's
/// plan cache, comparing each custom plan with the generic one, planned them afresh nearly
/// every time (a claim's plan took about 1 ms): that was a fifth of its CPU per job
/// (BENCHMARKS.md, "Session 21"). Their plans do not depend on the values: one generic plan
/// per connection serves every batch.
///
/// A batch reaches its rows by key (`id = ANY($1)`, a join on `unnest`): sequential scans are
/// off for it. That one plan is made when the connection first runs the statement, and a
/// platform starts with empty tables; while the table was small a scan of it, filtering
/// every row against the whole array, looked cheapest, and the plan stayed after the table had
/// grown, until an auto-analyze replanned it. Those filters were a seventh of PostgreSQL's
/// CPU in a benchmark from empty (BENCHMARKS.md, "Session 31"). A statement with no index to
/// use still scans (the setting only prices a scan out); results never depend on it.
///
/// The `SET`s cannot fail on a supported server (see [`MIN_SERVER_VERSION`]); if one did after
/// the `BEGIN` took, sqlx would not roll back and the pooled connection would stay in an
/// aborted transaction.
pub(super) const BEGIN_GENERIC: &str =
    "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off";

/// PostgreSQL 13 (`server_version_num`): claims use `MATERIALIZED` CTEs (12) and `FETCH FIRST
/// … WITH TIES` (13), and batches set `plan_cache_mode` (12). An older server is refused at
/// start, by name (12 reached its end of life in November 2024).
const MIN_SERVER_VERSION: i32 = 130_000;

/// How long the server lets a session of ours sit idle inside a transaction before it ends the
/// session. A host that freezes mid-transaction (SIGSTOP, a paused VM, a partition that drops
/// no connection) would otherwise hold the claim lock or a customer's row for as long as it
/// is frozen, and every other host's claims and run ends would wait behind it. Ours never
/// pause inside a transaction (its statements follow each other), so this only ever ends a
/// stuck one; its rollback frees the locks and the host, once back, reconnects, and finds its
/// leases taken. An operator can choose another value in the URL
/// (`options[idle_in_transaction_session_timeout]=…`).
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "5s";

/// A pool of connections to one PostgreSQL database.
#[derive(Clone)]
pub(crate) struct Pg {
    pub(super) pool: PgPool,
    /// Signals to the other hosts, sent by one task, which also sends the "job due" notices
    /// the writes owe (see `signals`).
    announcer: tokio::sync::mpsc::UnboundedSender<crate::db::signals::Signal>,
    /// Stops the task following the server's clock when the last clone goes (see `clock`).
    _clock: std::sync::Arc<tokio_util::sync::DropGuard>,
    /// Journal entries and run ends, committed in batches by one task (see `group_commit`).
    writes: group_commit::Queue,
    /// Events, committed in batches by another task: they lock no customer, so they need not
    /// wait for the batches that do.
    event_writes: group_commit::Queue,
    /// Job inserts, committed in batches by a third task (see `insert_batches`).
    inserts: insert_batches::Inserts,
}

impl Pg {
    /// Connect (creating the database if the server has none of that name, as SQLite creates
    /// its file) and run the migrations (`migrations-pg/`). sqlx holds a session advisory lock
    /// while it migrates, so many hosts starting at once migrate once.
    pub(super) async fn connect(url: &str, pool: u32) -> Result<Self, DbError> {
        use sqlx::migrate::MigrateDatabase;
        if !sqlx::Postgres::database_exists(url).await? {
            // Hosts starting together may race to create it: one wins, the others find it.
            if let Err(e) = sqlx::Postgres::create_database(url).await
                && !sqlx::Postgres::database_exists(url).await?
            {
                return Err(e);
            }
        }
        let options = session_options(PgConnectOptions::from_str(url)?);
        let pool = PgPoolOptions::new()
            .max_connections(pool.max(2))
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        let version: i32 =
            sqlx::query_scalar("SELECT current_setting('server_version_num')::INT").fetch_one(&pool).await?;
        if version < MIN_SERVER_VERSION {
            let too_old = format!("PostgreSQL {version} is too old: Vidfarm needs PostgreSQL 13 or newer");
            return Err(DbError::Configuration(too_old.into()));
        }
        sqlx::migrate!("../migrations-pg").run(&pool).await?;
        let clock = std::sync::Arc::new(clock::follow(pool.clone()).await);
        let (announcer, job_due) = signals::spawn_announcer(pool.clone());
        let writes = group_commit::spawn(pool.clone(), Some(job_due.clone()));
        // Events make no job due.
        let event_writes = group_commit::spawn(pool.clone(), None);
        let inserts = insert_batches::spawn(pool.clone(), job_due.clone());
        Ok(Self { pool, announcer, _clock: clock, writes, event_writes, inserts })
    }

    pub(super) async fn inspect(&self, sql: &str, params: &[&str]) -> Result<Vec<Option<String>>, DbError> {
        let mut query = sqlx::query_scalar(sql);
        for param in params {
            query = query.bind(*param);
        }
        // A read-only transaction: what `inspect` promises.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await?;
        let rows = query.fetch_all(&mut *tx).await?;
        tx.rollback().await?;
        Ok(rows)
    }

    pub(super) async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }

    /// See `Sqlite::measure_commit_rate`.
    pub(super) async fn measure_commit_rate(&self, commits: u32) -> Result<f64, DbError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS commit_probe (id BIGSERIAL PRIMARY KEY, at BIGINT)")
            .execute(&self.pool)
            .await?;
        let started = std::time::Instant::now();
        for i in 0..commits {
            sqlx::query("INSERT INTO commit_probe (at) VALUES ($1)").bind(i64::from(i)).execute(&self.pool).await?;
        }
        let rate = f64::from(commits) / started.elapsed().as_secs_f64();
        sqlx::query("DROP TABLE commit_probe").execute(&self.pool).await?;
        Ok(rate)
    }
}

/// Our defaults for each session, where the URL does not choose: the idle-in-transaction
/// timeout above, and an `application_name` naming the process, so that `pg_stat_activity`
/// (and a lock wait in it) says which host a session belongs to.
fn session_options(options: PgConnectOptions) -> PgConnectOptions {
    let chosen = options.get_options().is_some_and(|o| o.contains("idle_in_transaction_session_timeout"));
    let options = if chosen {
        options
    } else {
        options.options([("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_TIMEOUT)])
    };
    match options.get_application_name() {
        Some(_) => options,
        None => options.application_name(&format!("vidfarm {}", std::process::id())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options_of(url: &str) -> PgConnectOptions {
        session_options(PgConnectOptions::from_str(url).expect("a URL"))
    }

    #[test]
    fn sessions_end_when_idle_in_a_transaction_and_name_their_process_unless_the_url_says_otherwise() {
        let ours = options_of("postgres://u@db/vidfarm");
        let timeout = format!("-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT}");
        assert_eq!(ours.get_options(), Some(timeout.as_str()));
        assert_eq!(ours.get_application_name(), Some(format!("vidfarm {}", std::process::id()).as_str()));

        let theirs = options_of(
            "postgres://u@db/vidfarm?application_name=api-7&options[idle_in_transaction_session_timeout]=1min",
        );
        assert_eq!(theirs.get_options(), Some("-c idle_in_transaction_session_timeout=1min"));
        assert_eq!(theirs.get_application_name(), Some("api-7"));

        let other_options = options_of("postgres://u@db/vidfarm?options[statement_timeout]=30s");
        assert_eq!(other_options.get_options(), Some(format!("-c statement_timeout=30s {timeout}").as_str()));
    }
}

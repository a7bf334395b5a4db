//! All SQL of the host lives here, for two backends behind one handle ([`Db`]) whose callers
//! do not see which one runs:
//! - SQLite, the embedded default: WAL mode, `synchronous=NORMAL`, a busy timeout, foreign
//!   keys on, and `BEGIN IMMEDIATE` for every transaction that reads before it writes. Its SQL
//!   is in this folder's modules (`impl Sqlite`).
//! - PostgreSQL, for many hosts sharing one database (`pg/`, the same methods and row types,
//!   with row locks where SQLite relied on its single writer).

pub mod accounts;
pub mod admin_views;
mod batch;
pub mod billing;
mod checkpoints;
pub mod copy;
pub mod customers;
mod direct;
mod dispatch;
pub mod events;
pub mod holds;
pub mod job_list;
pub mod jobs;
pub mod journal;
pub mod key_leases;
mod limits;
mod pg;
pub mod provider_keys;
pub mod rate_buckets;
pub mod renders;
pub mod signals;
mod small_objects;
pub mod storage_quota;
mod turns;
pub mod webhooks;

pub(crate) use checkpoints::WalStats;
pub use limits::month_start_ms;
pub use turns::{Turn, no_such_database, take_turn_at};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

pub use sqlx::Error as DbError;

/// The database handle every caller uses: SQLite or PostgreSQL, chosen at start by
/// [`Db::connect`]. Its methods (see `dispatch`) run the chosen backend's SQL.
#[derive(Clone)]
pub struct Db {
    backend: Backend,
    /// This process's turns (see `turns`): on SQLite the only ones there are.
    local_turns: std::sync::Arc<turns::LocalTurns>,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Sqlite),
    Postgres(pg::Pg),
}

/// The SQLite backend: readers run in parallel under WAL on their own pool; every write goes
/// through one connection, so writers of this process queue in memory instead of spinning on
/// SQLite's busy lock (other processes still meet the busy timeout).
#[derive(Clone)]
pub(crate) struct Sqlite {
    pool: SqlitePool,
    writer: SqlitePool,
    /// Group-commit queue for the hottest writes: job inserts, claims, lease renewals, run
    /// ends and the rest (see `batch`).
    batch: tokio::sync::mpsc::UnboundedSender<batch::Queued>,
    /// The thread that owns the batch's writing connection (see `direct`).
    direct: std::sync::Arc<direct::WriterThread>,
    /// Connections for point reads on the caller's thread (see `direct`).
    readers: std::sync::Arc<direct::Readers>,
}

impl Db {
    /// Open (creating if needed) the SQLite database file and run the migrations.
    pub async fn open(path: &Path) -> Result<Self, DbError> {
        Ok(Self {
            backend: Backend::Sqlite(Sqlite::open(path).await?),
            local_turns: std::sync::Arc::new(turns::LocalTurns::beside(path)),
        })
    }

    /// Connect to the database a URL names (`postgres://…` or `sqlite://…`), running the
    /// migrations (under an advisory lock on PostgreSQL, so hosts starting together migrate once).
    /// `pool` is how many connections this host opens to PostgreSQL.
    pub async fn connect(url: &str, pool: u32) -> Result<Self, DbError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            return Self::open(Path::new(path)).await;
        }
        Ok(Self { backend: Backend::Postgres(pg::Pg::connect(url, pool).await?), local_turns: Default::default() })
    }

    /// Which backend runs: "sqlite" or "postgres".
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The SQLite backend, for tests of what only it has.
    #[cfg(test)]
    pub(crate) fn sqlite(&self) -> Option<&Sqlite> {
        match &self.backend {
            Backend::Sqlite(db) => Some(db),
            Backend::Postgres(_) => None,
        }
    }

    /// This process's commits and what the background WAL checkpoints did so far (SQLite;
    /// `None` on PostgreSQL).
    pub(crate) fn wal_stats(&self) -> Option<&checkpoints::WalStats> {
        match &self.backend {
            Backend::Sqlite(db) => Some(db.direct.wal_stats()),
            Backend::Postgres(_) => None,
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        match &self.backend {
            Backend::Sqlite(db) => sqlx::query("SELECT 1").execute(&db.pool).await.map(drop),
            Backend::Postgres(db) => db.ping().await,
        }
    }

    /// Rows of a read-only query in SQL both backends accept (parameters `$1`, `$2`… bound as
    /// text), each row's first column as text (`CAST(… AS TEXT)` for numbers): for tests and
    /// diagnostics that look at the tables themselves.
    pub async fn inspect(&self, sql: &str, params: &[&str]) -> Result<Vec<Option<String>>, DbError> {
        match &self.backend {
            Backend::Sqlite(db) => {
                let mut query = sqlx::query_scalar(sql);
                for param in params {
                    query = query.bind(*param);
                }
                query.fetch_all(&db.pool).await
            }
            Backend::Postgres(db) => db.inspect(sql, params).await,
        }
    }

    /// The latest migration applied to this database (`_sqlx_migrations`), 0 when none is:
    /// what `vidfarm db migrate` reports after opening (and so migrating) it.
    pub async fn schema_version(&self) -> Result<i64, DbError> {
        // The same SQL on both: sqlx keeps the same table on each (`success` is a boolean).
        const SQL: &str = "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success";
        match &self.backend {
            Backend::Sqlite(db) => sqlx::query_scalar::<_, i64>(SQL).fetch_one(&db.pool).await,
            Backend::Postgres(db) => sqlx::query_scalar::<_, i64>(SQL).fetch_one(&db.pool).await,
        }
    }

    /// A consistent online copy of the database (readers and writers keep going). SQLite
    /// only: a PostgreSQL server is backed up with its own tools (`pg_dump`).
    pub async fn backup(&self, to: &Path) -> Result<(), DbError> {
        match &self.backend {
            Backend::Sqlite(db) => db.backup(to).await,
            Backend::Postgres(_) => Err(DbError::Configuration(
                "`vidfarm db backup` copies a SQLite file; back PostgreSQL up with pg_dump (docs/operations.md)".into(),
            )),
        }
    }

    /// Commits per second this machine sustains for one-row write transactions, measured
    /// on a scratch table: the physical limit the engine's throughput is compared against.
    pub async fn measure_commit_rate(&self, commits: u32) -> Result<f64, DbError> {
        match &self.backend {
            Backend::Sqlite(db) => db.measure_commit_rate(commits).await,
            Backend::Postgres(db) => db.measure_commit_rate(commits).await,
        }
    }
}

impl Sqlite {
    async fn open(path: &Path) -> Result<Self, DbError> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            // 64 MiB of page cache per connection (the default is 2 MiB: the hot tables and
            // their indexes did not fit) and reads through mmap instead of read() copies.
            .pragma("cache_size", "-65536")
            .pragma("mmap_size", "268435456")
            // Checkpoints run on their own thread; the writing connections' own is a backstop.
            .pragma("wal_autocheckpoint", checkpoints::BACKSTOP_PAGES.to_string())
            .pragma("journal_size_limit", checkpoints::WAL_FILE_LIMIT_BYTES.to_string());
        // Both writing connections count their commits into it (`/metrics`).
        let stats = std::sync::Arc::new(checkpoints::WalStats::default());
        let commits = stats.clone();
        // No health check on acquire: it is a statement (a thread hop) per use, and the writer
        // thread acquires this connection as its write lock whenever it starts writing.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                let commits = commits.clone();
                Box::pin(async move {
                    // (sqlx's hook: `false` would turn the commit into a rollback.)
                    conn.lock_handle().await?.set_commit_hook(move || {
                        commits.commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        true
                    });
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("../migrations").run(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await?;
        let (direct, batch) = direct::WriterThread::spawn(path, stats, Some(writer.clone()))?;
        let direct = std::sync::Arc::new(direct);
        let readers = std::sync::Arc::new(direct::Readers::new(path));
        Ok(Self { pool, writer, batch, direct, readers })
    }

    /// Run a short indexed read on this thread (see `direct`).
    pub(super) fn read_direct<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T, DbError> {
        self.readers.read(read)
    }

    /// The readers' pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The one writing connection.
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    async fn backup(&self, to: &Path) -> Result<(), DbError> {
        sqlx::query("VACUUM INTO ?").bind(to.display().to_string()).execute(&self.writer).await?;
        Ok(())
    }

    async fn measure_commit_rate(&self, commits: u32) -> Result<f64, DbError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS commit_probe (id INTEGER PRIMARY KEY, at INTEGER)")
            .execute(&self.writer)
            .await?;
        let started = std::time::Instant::now();
        for i in 0..commits {
            let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::query("INSERT INTO commit_probe (at) VALUES (?)").bind(i64::from(i)).execute(&mut *tx).await?;
            tx.commit().await?;
        }
        let rate = f64::from(commits) / started.elapsed().as_secs_f64();
        sqlx::query("DROP TABLE commit_probe").execute(&self.writer).await?;
        Ok(rate)
    }
}

/// Now, in unix milliseconds (the unit of every time column), on the database's clock: hosts
/// sharing a PostgreSQL database compare each other's leases and bill by one month, so each
/// follows the server's clock (`pg::clock`); on SQLite the offset stays 0.
pub fn now_ms() -> i64 {
    local_now_ms().saturating_add(pg::clock::offset_ms())
}

/// Now on this host's own clock, in unix milliseconds.
pub(crate) fn local_now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Whether an error is a UNIQUE constraint violation (a duplicate idempotency key, say).
pub fn is_unique_violation(error: &DbError) -> bool {
    error.as_database_error().is_some_and(|e| e.is_unique_violation())
}

/// Whether `error` says the database could not answer now, rather than that the request or
/// the host is wrong, so that another attempt may succeed: the connection broke or the pool
/// had none free in time; PostgreSQL lost or refused the connection (08000, 08001, 08003,
/// 08004, 08006), is shutting down or starting (57P01–57P03), or failed a serializable
/// transaction (40001); SQLite stayed busy past its timeout (primary code 5, any extended one).
/// A deadlock (40P01) is not: it means a lock order was broken, a host bug.
pub fn is_transient(error: &DbError) -> bool {
    match error {
        // Not `PoolClosed`: besides a pool closed at shutdown, it is what a writer thread that
        // stopped (a host bug) answers, and that would be a 503 forever.
        DbError::Io(_) | DbError::PoolTimedOut => true,
        DbError::Database(e) => {
            let Some(code) = e.code() else { return false };
            let sqlite = e.try_downcast_ref::<direct::DirectError>().is_some()
                || e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some();
            if sqlite {
                code.parse::<i32>().is_ok_and(|c| c & 0xff == rusqlite::ffi::SQLITE_BUSY)
            } else {
                matches!(
                    &*code,
                    "08000" | "08001" | "08003" | "08004" | "08006" | "57P01" | "57P02" | "57P03" | "40001"
                )
            }
        }
        _ => false,
    }
}

/// The same error again, for each of many writes that one failure stopped (`sqlx::Error` is no
/// `Clone`): what [`is_transient`] sees in it is kept.
pub(crate) fn copy_of(error: &DbError) -> DbError {
    match error {
        DbError::PoolTimedOut => DbError::PoolTimedOut,
        DbError::PoolClosed => DbError::PoolClosed,
        DbError::Io(e) => DbError::Io(std::io::Error::new(e.kind(), e.to_string())),
        other if is_transient(other) => DbError::Io(std::io::Error::other(other.to_string())),
        other => DbError::Protocol(other.to_string()),
    }
}

/// A rusqlite error as the writer thread reports it, for tests of what callers make of it.
#[cfg(test)]
pub(crate) fn direct_error(e: rusqlite::Error) -> DbError {
    direct::error(e)
}

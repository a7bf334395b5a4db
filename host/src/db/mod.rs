//! All SQL of the host lives here (so a Postgres backend can be added without touching
//! callers). SQLite in WAL mode, `synchronous=NORMAL`, a busy timeout, foreign keys on, and
//! `BEGIN IMMEDIATE` for every transaction that reads before it writes.

pub mod accounts;
pub mod admin_views;
mod batch;
pub mod billing;
pub mod customers;
mod direct;
pub mod events;
pub mod holds;
pub mod job_list;
pub mod jobs;
pub mod journal;
pub mod key_leases;
mod limits;
pub mod provider_keys;
pub mod renders;
pub mod storage_quota;
pub mod webhooks;

pub use limits::month_start_ms;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

pub use sqlx::Error as DbError;

/// The database handle: readers run in parallel under WAL on their own pool; every write goes
/// through one connection, so writers of this process queue in memory instead of spinning on
/// SQLite's busy lock (other processes still meet the busy timeout).
#[derive(Clone)]
pub struct Db {
    pool: SqlitePool,
    writer: SqlitePool,
    /// Group-commit queue for job inserts and run finishes (see `batch`).
    batch: tokio::sync::mpsc::UnboundedSender<batch::Queued>,
    /// The thread that owns the batch's writing connection (see `direct`).
    direct: std::sync::Arc<direct::WriterThread>,
    /// Connections for point reads on the caller's thread (see `direct`).
    readers: std::sync::Arc<direct::Readers>,
}

impl Db {
    /// Open (creating if needed) the database file and run the migrations.
    pub async fn open(path: &Path) -> Result<Self, DbError> {
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
            .pragma("mmap_size", "268435456");
        // No health check on acquire: it is a statement (a thread hop) per use, and the batch
        // acquires this connection for every commit.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("../migrations").run(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await?;
        let direct = std::sync::Arc::new(direct::WriterThread::spawn(path)?);
        let readers = std::sync::Arc::new(direct::Readers::new(path));
        let batch = batch::spawn(writer.clone(), direct.clone());
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

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }

    /// A consistent online copy of the database (readers and writers keep going).
    pub async fn backup(&self, to: &Path) -> Result<(), DbError> {
        sqlx::query("VACUUM INTO ?").bind(to.display().to_string()).execute(&self.writer).await?;
        Ok(())
    }

    /// Commits per second this machine sustains for one-row write transactions, measured
    /// on a scratch table: the physical limit the engine's throughput is compared against.
    pub async fn measure_commit_rate(&self, commits: u32) -> Result<f64, DbError> {
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

/// Now, in unix milliseconds (the unit of every time column).
pub fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Whether an error is a UNIQUE constraint violation (a duplicate idempotency key, say).
pub fn is_unique_violation(error: &DbError) -> bool {
    error.as_database_error().is_some_and(|e| e.is_unique_violation())
}

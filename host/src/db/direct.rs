//! SQLite without a thread hop per statement, for the hottest paths (issue #16).
//! sqlx's SQLite driver runs every statement on a worker thread of its connection and sends
//! each result back through a channel: a context switch per statement, which a profile showed
//! to be most of a job's CPU. Here the writer's own thread takes the group-commit batches from
//! their queue and commits each in one synchronous call (no hop per statement, nor per batch),
//! and point reads (a status poll, a run's journal) run on the calling thread: they are index
//! lookups of a few microseconds, shorter than the hop they replace.
//! Both use the same file, pragmas and migrations as the sqlx pools beside them.

use super::DbError;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Statements kept prepared per connection (the hot set is a few dozen).
const STATEMENT_CACHE: usize = 128;

/// Open a connection with the settings of the sqlx pools (`Db::open`).
pub(super) fn open(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA temp_store = memory;
         PRAGMA cache_size = -65536; PRAGMA mmap_size = 268435456; PRAGMA wal_autocheckpoint = {};
         PRAGMA journal_size_limit = {};",
        super::checkpoints::BACKSTOP_PAGES,
        super::checkpoints::WAL_FILE_LIMIT_BYTES
    ))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Read-only connections used on the calling thread, one at a time each.
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Idle readers kept open; more are opened under load and closed when returned past this.
const IDLE_READERS: usize = 8;

impl Readers {
    pub(super) fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf(), idle: Mutex::new(Vec::new()) }
    }

    /// Run `read` on an idle reader (opened if none is idle). Only for short indexed reads: it
    /// runs on the caller's thread.
    pub(super) fn read<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, DbError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open(&self.path, true).map_err(error)?,
        };
        let result = read(&conn).map_err(error);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

/// Work for the writer thread: run on its connection, answered once.
type Work = Box<dyn FnOnce(&mut Connection) + Send>;

/// The thread that owns the writing connection: it takes the group-commit batches from their
/// queue itself and commits them (see `batch`), and runs other writes given to it ([`run`]),
/// one at a time, holding the sqlx writing connection as the process's write lock. The
/// batches went through a task of the runtime before, handed to this thread and back:
/// queued behind the few hundred runs a commit had woken, and two thread wake-ups per batch,
/// the writer sat idle half the time under load (BENCHMARKS.md, "Session 31").
///
/// [`run`]: WriterThread::run
pub(super) struct WriterThread {
    work: tokio::sync::mpsc::UnboundedSender<Work>,
    /// What this process's commits and the WAL checkpoints behind them did (see `checkpoints`).
    stats: Arc<super::checkpoints::WalStats>,
}

impl WriterThread {
    /// The writer thread for the database at `path`, and the queue of its batches; its commits
    /// and checkpoints count into `stats`. `lock`: the sqlx writing connection it holds while
    /// it writes (none in tests of the thread alone).
    pub(super) fn spawn(
        path: &Path,
        stats: Arc<super::checkpoints::WalStats>,
        lock: Option<sqlx::SqlitePool>,
    ) -> Result<(Self, super::batch::Queue), DbError> {
        let mut conn = open(path, false).map_err(error)?;
        let commits = stats.clone();
        conn.commit_hook(Some(move || {
            commits.commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            false // (rusqlite's hook: `true` would turn the commit into a rollback)
        }));
        let checkpointer = super::checkpoints::spawn(path, stats.clone())?;
        let (work, mut works) = tokio::sync::mpsc::unbounded_channel::<Work>();
        let (queue, mut batches) = tokio::sync::mpsc::unbounded_channel::<super::batch::Queued>();
        // The thread's runtime is built on the thread (a runtime must not be dropped in an
        // async context, as it would be here if the thread failed to start); it says whether
        // it could.
        let (started, start) = std::sync::mpsc::sync_channel::<std::io::Result<()>>(1);
        std::thread::Builder::new()
            .name("vidfarm-db-writer".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = started.send(Err(e));
                        return;
                    }
                };
                let _ = started.send(Ok(()));
                runtime.block_on(async move {
                    let mut lock = WriterLock { pool: lock, held: None };
                    let mut batcher = super::batch::Batcher::default();
                    let (mut works_open, mut batches_open) = (true, true);
                    while works_open || batches_open {
                        if works.is_empty() && batches.is_empty() {
                            // A lull: the lock goes back, for this process's other writes.
                            lock.release();
                        }
                        tokio::select! {
                            work = works.recv(), if works_open => match work {
                                Some(work) => {
                                    // Without the lock (the pool closed, or held past its
                                    // acquire timeout by a long write on sqlx's connection, a
                                    // backup say) SQLite's own lock still keeps the writes
                                    // apart, by its busy timeout.
                                    let _ = lock.hold().await;
                                    let changes = conn.total_changes();
                                    run_caught(&mut conn, work);
                                    if conn.total_changes() != changes {
                                        checkpointer.commit_happened();
                                    }
                                }
                                None => works_open = false,
                            },
                            taken = batches.recv_many(batcher.queued(), super::batch::MAX_BATCH), if batches_open => {
                                if taken == 0 {
                                    batches_open = false;
                                    continue;
                                }
                                let held = lock.hold().await;
                                let changes = conn.total_changes();
                                batcher.commit(&mut conn, held);
                                // An idle worker's empty claim changes nothing: no checkpoint
                                // for it.
                                if conn.total_changes() != changes {
                                    checkpointer.commit_happened();
                                }
                            }
                        }
                    }
                    checkpointer.stop();
                })
            })
            .map_err(|e| DbError::Protocol(format!("starting the writer thread: {e}")))?;
        start
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("the writer thread stopped as it started")))
            .map_err(|e| DbError::Protocol(format!("starting the writer thread's runtime: {e}")))?;
        Ok((Self { work, stats }, queue))
    }

    /// What this process's commits and the WAL checkpoints behind them did so far.
    pub(super) fn wal_stats(&self) -> &super::checkpoints::WalStats {
        &self.stats
    }

    /// Run `work` on the writing connection and wait for its answer.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> T + Send + 'static,
    ) -> Result<T, DbError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Work = Box::new(move |conn| {
            let _ = reply.send(work(conn));
        });
        self.work.send(job).map_err(|_| DbError::PoolClosed)?;
        // No answer: the work panicked (the thread lives on) or the thread is gone.
        answer.await.map_err(|_| DbError::Protocol("the database write failed on a host bug; see the log".into()))
    }
}

/// Run `work`; a host bug that panics in it fails that work (its caller gets an error, its
/// open transaction is rolled back), not every later write.
fn run_caught(conn: &mut Connection, work: Work) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn))) {
        roll_back_after(conn, panic.as_ref());
    }
}

/// After a panic in a write: log it and roll back what it left open.
pub(super) fn roll_back_after(conn: &Connection, panic: &(dyn std::any::Any + Send)) {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "a database write panicked: it failed and was rolled back");
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

/// The sqlx writing connection, held as the process's write lock while the writer thread
/// writes, so this process's writes on sqlx's connection wait in memory rather than on
/// SQLite's busy lock. Kept from one write to the next while writes keep coming: taking it
/// again for every batch cost a fifth of the batches' time under load (BENCHMARKS.md,
/// "Session 31"). It goes back when both queues are empty, and after [`HOLD_AT_MOST`] at the
/// latest: the pool hands it to the writes waiting for it first (its queue is fair), so a
/// write on sqlx's connection waits at most that long plus the batch in progress, under any
/// load. Lease renewals, which a worker makes one after another, are queued with the batches
/// instead (`Sqlite::heartbeat`).
struct WriterLock {
    pool: Option<sqlx::SqlitePool>,
    held: Option<(sqlx::pool::PoolConnection<sqlx::Sqlite>, std::time::Instant)>,
}

/// Longest the writer thread keeps the lock without handing it over.
const HOLD_AT_MOST: std::time::Duration = std::time::Duration::from_millis(20);

impl WriterLock {
    /// Hold the lock; the error if it could not be had (the pool closed or timed out).
    async fn hold(&mut self) -> Result<(), DbError> {
        let Some(pool) = &self.pool else { return Ok(()) };
        if self.held.as_ref().is_some_and(|(_, since)| since.elapsed() >= HOLD_AT_MOST) {
            self.held = None;
        }
        if self.held.is_none() {
            self.held = Some((pool.acquire().await?, std::time::Instant::now()));
        }
        Ok(())
    }

    fn release(&mut self) {
        self.held = None;
    }
}

/// A rusqlite error as the database error every caller already handles (unique violations
/// stay recognisable to `is_unique_violation`).
pub(super) fn error(e: rusqlite::Error) -> DbError {
    DbError::Database(Box::new(DirectError { message: e.to_string(), source: e }))
}

#[derive(Debug)]
pub(super) struct DirectError {
    message: String,
    source: rusqlite::Error,
}

impl std::fmt::Display for DirectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DirectError {}

impl sqlx::error::DatabaseError for DirectError {
    fn message(&self) -> &str {
        &self.message
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    /// The extended result code in decimal, as sqlx's own SQLite errors give it.
    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        let rusqlite::Error::SqliteFailure(failure, _) = &self.source else { return None };
        Some(failure.extended_code.to_string().into())
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi::ErrorCode::ConstraintViolation;
        use sqlx::error::ErrorKind;
        let rusqlite::Error::SqliteFailure(failure, _) = &self.source else { return ErrorKind::Other };
        if failure.code != ConstraintViolation {
            return ErrorKind::Other;
        }
        match failure.extended_code {
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            rusqlite::ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::db::Db;
    use crate::db::batch::Write;
    use crate::db::jobs::{Inserted, NewJob};

    /// A fresh database with customer `cus_1` and its job `job_1` (the folder lives as long).
    async fn a_database_with_job_1() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = Db::open(&dir.path().join("db.sqlite")).await.expect("the database opens");
        db.create_customer("cus_1", "one").await.expect("a customer");
        db.insert_job(&new_job("job_1")).await.expect("a job");
        (dir, db)
    }

    fn an_event(message: &str) -> crate::db::events::NewEvent<'_> {
        crate::db::events::NewEvent { level: "info", message, metadata: "{}", progress: None, artifact: None }
    }

    fn new_job(id: &str) -> NewJob {
        NewJob {
            id: id.into(),
            customer_id: "cus_1".into(),
            template_id: "hello".into(),
            template_version: "1.0.0".into(),
            template_digest: "sha256:0".into(),
            operation: "greet".into(),
            workflow: "greet".into(),
            tracer: "t-1".into(),
            payload: r#"{"name":"Ada"}"#.into(),
            config: None,
            webhook_url: Some("https://example.com/hook".into()),
            parent_job_id: None,
            idempotency_key: Some("key-1".into()),
            max_retries: 3,
            reserve_nusd: 0,
            request_id: Some("req-1".into()),
            traceparent: None,
            retry_of: None,
        }
    }

    #[tokio::test]
    async fn the_direct_paths_select_every_column_of_the_jobs_table() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = Db::open(&dir.path().join("db.sqlite")).await.expect("the database opens");
        let table: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info('jobs')")
            .fetch_all(db.sqlite().expect("the SQLite backend").pool())
            .await
            .expect("the columns");
        let mut selected: Vec<&str> = super::super::jobs::JOB_COLUMNS.split(", ").collect();
        let mut table: Vec<&str> = table.iter().map(String::as_str).collect();
        selected.sort_unstable();
        table.sort_unstable();
        assert_eq!(selected, table);
    }

    #[tokio::test]
    async fn a_job_read_directly_is_the_job_sqlx_reads() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = Db::open(&dir.path().join("db.sqlite")).await.expect("the database opens");
        db.create_customer("cus_1", "one").await.expect("a customer");
        let Inserted::Created(created) = db.insert_job(&new_job("job_1")).await.expect("the insert") else {
            panic!("the job is created")
        };
        let through_sqlx = db.customer_job("cus_1", "hello", "job_1").await.expect("the read").expect("sqlx reads it");
        let (direct, charges, holds) =
            db.customer_job_with_billing("cus_1", "hello", "job_1").await.expect("the read").expect("read directly");
        assert_eq!(format!("{direct:?}"), format!("{through_sqlx:?}"));
        assert_eq!(format!("{created:?}"), format!("{through_sqlx:?}"));
        assert!(charges.is_empty() && holds.is_empty());
        // The same idempotency key finds the original, through the direct path too.
        let Inserted::Existing(again) = db.insert_job(&new_job("job_2")).await.expect("the insert") else {
            panic!("the idempotency key finds the first job")
        };
        assert_eq!(again.id, "job_1");
    }

    #[tokio::test]
    async fn the_writers_commits_reach_the_database_file_through_the_checkpoint_thread() {
        use crate::db::checkpoints::BACKSTOP_PAGES;
        use std::sync::atomic::Ordering::Relaxed;
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = Db::open(&dir.path().join("db.sqlite")).await.expect("the database opens");
        db.create_customer("cus_1", "one").await.expect("a customer");
        for i in 0..20 {
            let job = NewJob { idempotency_key: None, ..new_job(&format!("job_{i}")) };
            db.insert_job(&job).await.expect("the insert");
        }
        let sqlite = db.sqlite().expect("the SQLite backend");
        let stats = sqlite.direct.wal_stats();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while stats.runs.load(Relaxed) == 0 || stats.last_copied_frames.load(Relaxed) == 0 {
            assert!(std::time::Instant::now() < deadline, "no background checkpoint within 10 s: {stats:?}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // Both writing connections checkpoint by themselves only at the backstop's size.
        let batches: i64 = sqlite
            .direct
            .run(|conn| conn.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0)))
            .await
            .expect("the writer answers")
            .expect("the setting");
        let others: i64 =
            sqlx::query_scalar("PRAGMA wal_autocheckpoint").fetch_one(sqlite.writer()).await.expect("the setting");
        assert_eq!((batches, others), (i64::from(BACKSTOP_PAGES), i64::from(BACKSTOP_PAGES)));
    }

    #[tokio::test]
    async fn every_write_transaction_is_counted_once_on_either_writing_connection_and_reads_are_not() {
        use std::sync::atomic::Ordering::Relaxed;
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = Db::open(&dir.path().join("db.sqlite")).await.expect("the database opens");
        let sqlite = db.sqlite().expect("the SQLite backend");
        let commits = || sqlite.direct.wal_stats().commits.load(Relaxed);
        let before = commits();
        // sqlx's writing connection: one autocommit write.
        db.create_customer("cus_1", "one").await.expect("a customer");
        assert_eq!(commits(), before + 1, "the customer's insert");
        // The writer thread's: a lone insert, then a batch of five in one transaction.
        db.insert_job(&NewJob { idempotency_key: None, ..new_job("job_0") }).await.expect("the insert");
        assert_eq!(commits(), before + 2, "the job's insert");
        let batch: Vec<_> = (1..6)
            .map(|i| {
                sqlite.enqueue(Write::InsertJob(Box::new(NewJob {
                    idempotency_key: None,
                    ..new_job(&format!("job_{i}"))
                })))
            })
            .collect::<Result<_, _>>()
            .expect("queued");
        for answer in batch {
            answer.await.expect("answered").expect("inserted");
        }
        let after = commits();
        assert!(
            (before + 3..=before + 7).contains(&after),
            "one commit or fewer per queued insert: {}",
            after - before - 2
        );
        // Reads, on either connection, commit nothing.
        db.job("job_1").await.expect("a read");
        sqlx::query("SELECT COUNT(*) FROM jobs").execute(sqlite.writer()).await.expect("a read on the writer");
        sqlite.direct.run(|conn| conn.execute_batch("SELECT 1 FROM jobs")).await.expect("answered").expect("read");
        assert_eq!(commits(), after, "a read is no commit");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_on_sqlx_connection_gets_its_turn_while_batches_keep_coming() {
        let (_dir, db) = a_database_with_job_1().await;
        let event = an_event("flood");
        // Events queued without a pause for up to 5 s: the writer thread always has a batch.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flood = {
            let (db, stop) = (db.clone(), stop.clone());
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && started.elapsed().as_secs() < 5 {
                    for _ in 0..64 {
                        n += 1;
                        db.queue_event("job_1", None, (n, 0), &event, |_| {});
                    }
                    tokio::task::yield_now().await;
                }
                started.elapsed()
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let sqlite = db.sqlite().expect("the SQLite backend");
        let asked = std::time::Instant::now();
        sqlx::query("UPDATE customers SET name = 'renamed' WHERE id = 'cus_1'")
            .execute(sqlite.writer())
            .await
            .expect("the write on sqlx's connection");
        let waited = asked.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let flooded = flood.await.expect("the flood ran");
        assert!(
            waited < std::time::Duration::from_secs(2),
            "the write waited {waited:?} for the writer thread's lock, the batches came for {flooded:?}"
        );
    }

    #[tokio::test]
    async fn a_panic_in_one_write_fails_that_write_and_rolls_it_back_and_later_writes_go_on() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("db.sqlite");
        rusqlite::Connection::open(&path).expect("a file").execute_batch("CREATE TABLE t (k TEXT)").expect("a table");
        let (writer, _batches) =
            super::WriterThread::spawn(&path, Default::default(), None).expect("the writer starts");
        let failed = writer
            .run(|conn| {
                conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES ('half-written')").expect("written");
                panic!("a host bug in the middle of a batch")
            })
            .await;
        assert!(failed.is_err(), "the panicking write reports an error");
        let count = writer
            .run(|conn| {
                conn.execute("INSERT INTO t VALUES ('next')", []).expect("the next write goes through");
                conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0)).expect("a count")
            })
            .await
            .expect("the writer lives on");
        assert_eq!(count, 1, "the half-written row was rolled back, the next one stored");
    }

    #[tokio::test]
    async fn a_panicking_event_callback_costs_its_own_outcome_and_the_writer_goes_on() {
        let (_dir, db) = a_database_with_job_1().await;
        let event = an_event("hello");
        // Both queued before either commits: likely one batch, the panic before the second answer.
        db.queue_event("job_1", None, (0, 0), &event, |_| panic!("a bug in a callback"));
        let (told, outcome) = tokio::sync::oneshot::channel();
        db.queue_event("job_1", None, (0, 1), &event, move |written| {
            let _ = told.send(written);
        });
        let stored = outcome.await.expect("the later event's callback runs").expect("no database error");
        assert!(stored, "the later event is stored");
        let second = NewJob { idempotency_key: None, ..new_job("job_2") };
        let Inserted::Created(_) = db.insert_job(&second).await.expect("later writes go on") else {
            panic!("a new job is created")
        };
        assert_eq!(db.event_keys("job_1").await.expect("the keys").len(), 2, "both events were stored");
    }

    #[tokio::test]
    async fn a_unique_violation_on_the_direct_paths_is_recognised() {
        let conn = rusqlite::Connection::open_in_memory().expect("a database");
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY); INSERT INTO t VALUES ('a');").expect("a table");
        let e = conn.execute("INSERT INTO t VALUES ('a')", []).expect_err("a duplicate");
        assert!(crate::db::is_unique_violation(&super::error(e)));
        let e = conn.execute("INSERT INTO nowhere VALUES ('a')", []).expect_err("no table");
        assert!(!crate::db::is_unique_violation(&super::error(e)));
    }

    /// `.cargo/config.toml` builds the bundled SQLite without memory statistics: with them,
    /// every allocation of every connection takes one process-wide mutex (a profile of the
    /// writer thread showed it). A build that lost the setting fails here, not in a bench.
    #[test]
    fn the_bundled_sqlite_is_built_without_a_lock_on_every_allocation() {
        let conn = rusqlite::Connection::open_in_memory().expect("an in-memory database");
        let used = |option: &str| -> bool {
            conn.query_row("SELECT sqlite_compileoption_used(?1)", [option], |row| row.get(0)).expect("asked")
        };
        assert!(used("DEFAULT_MEMSTATUS=0"), "SQLite keeps memory statistics");
        assert!(used("USE_ALLOCA"), "SQLite's scratch buffers come from the heap");
        assert!(used("THREADSAFE=1"), "the bundled build's own options are kept");
    }
}

//! SQLite's WAL checkpoints on a thread of their own, off the writer's path (issue #16).
//!
//! By default the connection whose commit takes the WAL past 1,000 pages copies them back into
//! the database file on the spot, two `fsync`s included: here that is the batch writer, and
//! every run waiting on its next commit waited for the disk too (about 25 times per 5,000
//! `greet` jobs). This thread copies the WAL back instead, a short while after the writer's
//! commits, with a `PASSIVE` checkpoint: it never blocks the writer or the readers, and a page
//! a reader still needs stays in the WAL for the next round.
//!
//! A checkpoint never restarts the WAL itself: the next writer does, at its `BEGIN`, when every
//! frame was copied and no reader still reads an older snapshot. While commits keep coming that
//! moment may not arrive, so the writing connections keep SQLite's own checkpoint as a backstop
//! at [`BACKSTOP_PAGES`]: past it the writer checkpoints right after its commit (finding nearly
//! every frame already copied), and its next `BEGIN` restarts the WAL. A reader that holds an
//! old snapshot for long (a backup, `db copy`) keeps the WAL growing until it ends, as before;
//! `journal_size_limit` then gives the file back once the WAL restarts.

use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// The WAL size (in pages) at which a writing connection checkpoints by itself: the backstop
/// for when this thread falls behind or commits never pause. 4 Ki pages of 4 KiB = 16 MiB.
pub(super) const BACKSTOP_PAGES: u32 = 4_096;

/// The size the WAL file is cut back to when it restarts (`journal_size_limit`): after a burst
/// it does not keep the disk it grew to.
pub(super) const WAL_FILE_LIMIT_BYTES: u64 = 16 << 20;

/// How long the thread lets commits gather after the first one it hears of: one checkpoint
/// (and its two `fsync`s) then covers many batches.
const GATHER: Duration = Duration::from_millis(200);

/// What the WAL saw so far: this process's commits and the checkpoints behind them (for tests
/// and `/metrics`). Separate counters: a scrape may see two checkpoints' values mixed, which is
/// good enough for a gauge.
#[derive(Default, Debug)]
pub(crate) struct WalStats {
    /// Checkpoints run to the end.
    pub runs: AtomicU64,
    /// Checkpoints skipped because another was running (the backstop, or another process's
    /// checkpoint thread on the same file).
    pub busy: AtomicU64,
    /// Frames in the WAL at the last checkpoint run.
    pub last_wal_frames: AtomicU64,
    /// Of those, the frames already in the database file after it (copied by any connection;
    /// the rest wait for a reader still on an older snapshot).
    pub last_copied_frames: AtomicU64,
    /// Write transactions this process committed, on either writing connection (counted by
    /// SQLite's commit hook, so nothing that commits is missed): each appends to the WAL, and
    /// per job it is the number to compare with PostgreSQL's (issue #17).
    pub commits: AtomicU64,
}

/// The writer's side of the checkpoint thread.
pub(super) struct Checkpointer {
    nudge: mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    /// Tells the thread that a commit grew the WAL. Never blocks and never allocates: one
    /// pending nudge is as good as many.
    pub(super) fn commit_happened(&self) {
        let _ = self.nudge.try_send(());
    }

    /// Stops the thread and waits for it (at most one checkpoint's time: a passive checkpoint
    /// never waits for a lock), so that no checkpoint outlives the writer.
    pub(super) fn stop(self) {
        drop(self.nudge);
        let _ = self.thread.join();
    }
}

/// Start the checkpoint thread for the database at `path`, counting into `stats`.
pub(super) fn spawn(path: &Path, stats: Arc<WalStats>) -> Result<Checkpointer, super::DbError> {
    let conn = super::direct::open(path, false).map_err(super::direct::error)?;
    // A checkpoint copies frames from the WAL to the file with its own buffer: this connection
    // needs neither the 64 MiB page cache nor the mapping the others keep (idle RSS counts both).
    conn.execute_batch("PRAGMA cache_size = -256; PRAGMA mmap_size = 0;").map_err(super::direct::error)?;
    let (nudge, nudges) = mpsc::sync_channel::<()>(1);
    let thread = std::thread::Builder::new()
        .name("vidfarm-db-checkpoint".into())
        .stack_size(256 << 10)
        .spawn(move || {
            while nudges.recv().is_ok() {
                if !gathered(&nudges) {
                    return;
                }
                match checkpoint(&conn) {
                    Ok(None) => {
                        stats.busy.fetch_add(1, Relaxed);
                    }
                    Ok(Some((wal, copied))) => {
                        stats.runs.fetch_add(1, Relaxed);
                        stats.last_wal_frames.store(wal, Relaxed);
                        stats.last_copied_frames.store(copied, Relaxed);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "a background WAL checkpoint failed; the writer's backstop remains")
                    }
                }
            }
        })
        .map_err(|e| super::DbError::Protocol(format!("starting the checkpoint thread: {e}")))?;
    Ok(Checkpointer { nudge, thread })
}

/// Lets commits gather for [`GATHER`], swallowing their nudges; false if the writer is gone.
fn gathered(nudges: &mpsc::Receiver<()>) -> bool {
    let until = std::time::Instant::now() + GATHER;
    loop {
        match nudges.recv_timeout(until.saturating_duration_since(std::time::Instant::now())) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => return true,
            Err(mpsc::RecvTimeoutError::Disconnected) => return false,
        }
    }
}

/// One passive checkpoint: (frames in the WAL, frames of it now in the database file), or
/// `None` if another checkpoint was running (SQLite answers `1, -1, -1` then).
fn checkpoint(conn: &Connection) -> rusqlite::Result<Option<(u64, u64)>> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        if row.get::<_, i64>(0)? != 0 {
            return Ok(None);
        }
        let frames = |i| row.get::<_, i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
        Ok(Some((frames(1)?, frames(2)?)))
    })
}

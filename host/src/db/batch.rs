//! Group commit for the hottest writes — creating a job, claiming jobs, holding a run's fuel
//! and recording how a run ended.
//! Callers queue their write; the writer thread (`direct`) takes everything queued so far and
//! commits it in one `BEGIN IMMEDIATE` transaction, so under load many jobs share a commit,
//! and when idle a write is one autocommit statement as before. No thread hop per statement,
//! nor per batch: the thread that owns the connection takes the batch. While it writes it
//! holds the sqlx writing connection, so this process's other writes wait in memory rather
//! than on SQLite's busy lock.

use super::billing::{LedgerInsert, LedgerWrite, insert_ledger_on};
use super::direct;
use super::events::{OwnedEvent, insert_event_on};
use super::holds::{HoldOutcome, RunFuelHold, hold_run_fuel_on};
use super::jobs::{
    Claim, CpuCharge, Finish, Inserted, JobRow, LeaseRenewal, NewJob, claim_on, finish_run_on, heartbeat_on,
    insert_job_on,
};
use super::journal::{Appended, Journaled, append_journal_on};
use super::small_objects::{SmallObject, set_small_object_on};
use super::storage_quota::{Recorded, StoredObject, record_object_on};
use super::{DbError, Sqlite};
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

/// Most writes one transaction carries.
pub(super) const MAX_BATCH: usize = 256;

pub(crate) enum Write {
    InsertJob(Box<NewJob>),
    Claim(Box<Claim>),
    Heartbeat(Box<LeaseRenewal>),
    FinishRun { job_id: String, lease_token: String, fuel: u64, finish: Finish, cpu: Option<CpuCharge> },
    HoldRunFuel(Box<RunFuelHold>),
    RecordObject(Box<StoredObject>),
    SmallObject(Box<SmallObject>),
    Event(Box<OwnedEvent>),
    Journal(Box<Appended>),
    Ledger(Box<LedgerInsert>),
}

pub(crate) enum Written {
    Job(Box<Inserted>),
    Claimed(Vec<JobRow>),
    Heartbeat(Option<bool>),
    Finished(bool),
    Held(HoldOutcome),
    Object(Recorded),
    SmallObject,
    Event(bool),
    Journaled(Journaled),
    Ledger(LedgerWrite),
}

pub(crate) type Queued = (Write, Reply);

/// Where a write's outcome goes.
pub(crate) enum Reply {
    /// To a caller waiting for it.
    Wait(oneshot::Sender<Result<Written, DbError>>),
    /// To a callback the writer thread runs right after the commit, for a caller that does not
    /// wait (a run's events): no task spawned and no channel per write just to pass it on.
    /// It must be short and must not block: the next batch waits for it.
    Then(Box<dyn FnOnce(Result<Written, DbError>) + Send>),
}

impl Reply {
    fn send(self, result: Result<Written, DbError>) {
        match self {
            Self::Wait(waiting) => {
                let _ = waiting.send(result);
            }
            // A panicking callback must not take the writer thread (and every later write)
            // down with it: it costs its own write's outcome only.
            Self::Then(then) => {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| then(result))).is_err() {
                    tracing::error!("a queued write's callback panicked; the writer goes on");
                }
            }
        }
    }
}

/// The queue in front of the writing connection: the writer thread takes from it
/// (`direct::WriterThread`).
pub(super) type Queue = mpsc::UnboundedSender<Queued>;

/// What the writer thread commits: the writes taken from the queue, batch after batch.
#[derive(Default)]
pub(super) struct Batcher {
    batch: Vec<Queued>,
    /// Runs (by job and lease) one of whose events could not be stored: runs do not wait for
    /// their events, so the writer refuses their later journal entries and their end
    /// instead. The run then ends as a host fault and its replay emits the event again; a
    /// job never finishes without an event its run emitted.
    lost_events: std::collections::HashSet<(String, String)>,
}

impl Batcher {
    /// Where the writer thread takes the next batch into.
    pub(super) fn queued(&mut self) -> &mut Vec<Queued> {
        &mut self.batch
    }

    /// Commit the batch taken (`held`: whether the writer holds the write lock; if it could
    /// not, the batch fails) and answer every write of it.
    pub(super) fn commit(&mut self, conn: &mut Connection, held: Result<(), DbError>) {
        if !self.lost_events.is_empty() {
            refuse_runs_that_lost_events(&mut self.batch, &mut self.lost_events);
        }
        let events: Vec<Option<(String, String)>> = self.batch.iter().map(|(write, _)| run_of_event(write)).collect();
        let (writes, replies): (Vec<Write>, Vec<_>) = self.batch.drain(..).unzip();
        let results = held.and_then(|()| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit_on(conn, &writes))).map_err(|panic| {
                direct::roll_back_after(conn, panic.as_ref());
                DbError::Protocol("the database write failed on a host bug; see the log".into())
            })
        });
        let replies = match results {
            Ok(results) => replies.into_iter().zip(results).collect(),
            Err(e) => fail_all(replies, &e),
        };
        for ((reply, result), event) in replies.into_iter().zip(events) {
            if let (Err(_), Some(run)) = (&result, event) {
                self.lost_events.insert(run);
            }
            reply.send(result);
        }
    }
}

/// The run (job, lease) an event write belongs to; none for the host's own events.
fn run_of_event(write: &Write) -> Option<(String, String)> {
    match write {
        Write::Event(e) => e.lease_token.clone().map(|lease| (e.job_id.clone(), lease)),
        _ => None,
    }
}

/// Answer the journal entries and ends of runs that lost an event with an error, out of the
/// batch; a refused end also forgets the run (its replay runs under a new lease).
fn refuse_runs_that_lost_events(batch: &mut Vec<Queued>, lost: &mut std::collections::HashSet<(String, String)>) {
    let refused = |write: &Write| match write {
        Write::Journal(a) => lost.contains(&(a.job_id.clone(), a.lease_token.clone())),
        Write::FinishRun { job_id, lease_token, .. } => lost.contains(&(job_id.clone(), lease_token.clone())),
        _ => false,
    };
    let (out, kept): (Vec<Queued>, Vec<Queued>) = batch.drain(..).partition(|(write, _)| refused(write));
    batch.extend(kept);
    for (write, reply) in out {
        if let Write::FinishRun { job_id, lease_token, .. } = &write {
            lost.remove(&(job_id.clone(), lease_token.clone()));
        }
        reply.send(Err(DbError::Protocol("an event of this run was not stored: the run will be replayed".into())));
    }
}

fn apply(conn: &Connection, write: &Write) -> rusqlite::Result<Written> {
    match write {
        Write::InsertJob(job) => insert_job_on(conn, job).map(|inserted| Written::Job(Box::new(inserted))),
        Write::Claim(claim) => claim_on(conn, claim).map(Written::Claimed),
        Write::Heartbeat(renewal) => heartbeat_on(conn, renewal).map(Written::Heartbeat),
        Write::FinishRun { job_id, lease_token, fuel, finish, cpu } => {
            finish_run_on(conn, job_id, lease_token, *fuel, finish, cpu.as_ref()).map(Written::Finished)
        }
        Write::HoldRunFuel(hold) => hold_run_fuel_on(conn, hold).map(Written::Held),
        Write::RecordObject(object) => record_object_on(conn, object).map(Written::Object),
        Write::SmallObject(object) => set_small_object_on(conn, object).map(|()| Written::SmallObject),
        Write::Event(event) => insert_event_on(conn, event).map(Written::Event),
        Write::Journal(write) => append_journal_on(conn, write).map(Written::Journaled),
        Write::Ledger(write) => insert_ledger_on(conn, write).map(Written::Ledger),
    }
}

/// Commit `writes` on the writing connection: one result per write, in order.
fn commit_on(conn: &mut Connection, writes: &[Write]) -> Vec<Result<Written, DbError>> {
    // A lone one-statement write commits on its own; anything with more statements (a run's
    // end, a hold, an event with its progress) goes in a transaction, so it is all or nothing.
    if let [write @ Write::InsertJob(_)] = writes {
        return vec![apply(conn, write).map_err(direct::error)];
    }
    match in_one_transaction(conn, writes) {
        Ok(results) => results.into_iter().map(Ok).collect(),
        // A write failed (a database error, not an outcome such as "over the limit"): nothing
        // of the batch was kept, and each write runs again in a transaction of its own, so
        // one bad write neither half-happens nor takes the others down with it.
        Err(_) => writes
            .iter()
            .map(|write| {
                in_one_transaction(conn, std::slice::from_ref(write)).map(|mut r| r.remove(0)).map_err(direct::error)
            })
            .collect(),
    }
}

/// Apply `writes` in one `BEGIN IMMEDIATE` transaction: all their outcomes, or the first
/// error with the transaction rolled back.
fn in_one_transaction(conn: &mut Connection, writes: &[Write]) -> rusqlite::Result<Vec<Written>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let results = writes.iter().map(|write| apply(&tx, write)).collect::<rusqlite::Result<Vec<_>>>()?;
    tx.commit()?;
    Ok(results)
}

fn fail_all(replies: impl IntoIterator<Item = Reply>, e: &DbError) -> Vec<(Reply, Result<Written, DbError>)> {
    replies.into_iter().map(|reply| (reply, Err(super::copy_of(e)))).collect()
}

impl Sqlite {
    /// Run `work` in one `BEGIN IMMEDIATE` transaction on the writer thread (for writes that
    /// share statements with the batch), which holds the sqlx writer as for a batch.
    pub(super) async fn write_direct<T: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, DbError> {
        self.direct
            .run(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let done = work(&tx)?;
                tx.commit()?;
                Ok(done)
            })
            .await?
            .map_err(direct::error)
    }

    pub(crate) async fn batched(&self, write: Write) -> Result<Written, DbError> {
        self.enqueue(write)?.await.map_err(|_| DbError::PoolClosed)?
    }

    /// Put `write` in the queue now (behind everything queued before it, ahead of everything
    /// queued after) and return the answer to wait for, or not.
    pub(crate) fn enqueue(&self, write: Write) -> Result<oneshot::Receiver<Result<Written, DbError>>, DbError> {
        let (reply, answer) = oneshot::channel();
        self.batch.send((write, Reply::Wait(reply))).map_err(|_| DbError::PoolClosed)?;
        Ok(answer)
    }

    /// Put `write` in the queue now and have the writer thread call `then` with its outcome
    /// (see [`Reply::Then`]); with the writer gone, `then` is called here with the error.
    pub(crate) fn enqueue_then(&self, write: Write, then: impl FnOnce(Result<Written, DbError>) + Send + 'static) {
        if let Err(unsent) = self.batch.send((write, Reply::Then(Box::new(then)))) {
            (unsent.0).1.send(Err(DbError::PoolClosed));
        }
    }
}

//! Group commit on PostgreSQL: a run's events, its journal entries and its end, from every run
//! on this host, committed together. One transaction per write made each job pay two or three
//! WAL flushes, and made all of a customer's run ends pass through the customer's row one
//! flush at a time (every end charges CPU and updates the running totals), whatever the number
//! of workers (BENCHMARKS.md, "PostgreSQL and many worker processes"). Here one task per host
//! takes every write queued so far and commits them in one transaction, as SQLite's batch
//! does: one flush, and one turn on each customer's row, per batch.
//!
//! Lock order is the rule of `jobs` (customers, then jobs, then holds): the batch first locks
//! every customer its run ends and captures touch, in id order, so two hosts' batches never
//! wait on each other in a cycle over customers. A batch any of whose writes fails (an error,
//! a deadlock victim, a failed commit) is rolled back and written again one write per
//! transaction, which is what each write always was: the failing one fails alone. Failures
//! are rare (a lost lease is an answer, not an error), so no savepoint is paid per write.
//!
//! Order: a job's writes reach a queue one at a time (each waits for the one before it to be
//! stored, see `events`), so a batch holds at most one write per run and keeps their order.
//! Each host has two queues: events (a batch of them is one INSERT) and the rest.

use super::events::{insert_event_on, insert_events_on};
use super::journal::append_journal_on;
use super::run_ends::{finish_run_on, finish_runs_on};
use super::signals::JobDueNotices;
use crate::db::DbError;
use crate::db::events::OwnedEvent;
use crate::db::jobs::{CpuCharge, Finish};
use crate::db::journal::{Appended, Journaled};
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most writes one transaction carries (a batch holds its customers' rows until it commits).
const MAX_BATCH: usize = 128;

/// One write, as the `Pg` method that queued it was asked for it.
pub(super) enum Write {
    RunEnd(RunEnd),
    Event(OwnedEvent),
    Journal(Appended),
}

/// One run's end, as `Pg::finish_run` was asked for it.
pub(super) struct RunEnd {
    pub job_id: String,
    pub lease_token: String,
    pub fuel: u64,
    pub finish: Finish,
    pub cpu: Option<CpuCharge>,
}

/// What one write did.
#[derive(Debug)]
pub(super) enum Outcome {
    /// A run's end or an event: whether it was written (false: its lease was lost, or the
    /// event was there already).
    Written(bool),
    /// A journal entry: see [`Journaled`].
    Journaled(Journaled),
}

impl Outcome {
    /// Whether the write was made.
    pub(super) fn written(&self) -> bool {
        match self {
            Self::Written(written) => *written,
            Self::Journaled(journaled) => *journaled == Journaled::Appended,
        }
    }
}

/// Where the outcome of one write goes.
pub(super) type Reply = oneshot::Sender<Result<Outcome, DbError>>;
/// The queue the committing task reads.
#[derive(Clone)]
pub(super) struct Queue(mpsc::UnboundedSender<(Write, Reply)>);

impl Queue {
    /// Queue `write` and wait until the batch that carries it has committed.
    pub(super) async fn write(&self, write: Write) -> Result<Outcome, DbError> {
        let (reply, answer) = oneshot::channel();
        self.0.send((write, reply)).map_err(|_| DbError::PoolClosed)?;
        answer.await.map_err(|_| DbError::PoolClosed)?
    }
}

/// The queue; its task ends when the last clone goes. With `job_due`, a batch that ends runs
/// tells every host that jobs may be due (a slot came free, a parent woke, a job was
/// re-queued): in its own transaction when a notification may be sent, or owed after it.
pub(super) fn spawn(pool: PgPool, job_due: Option<Arc<JobDueNotices>>) -> Queue {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Write, Reply)>();
    tokio::spawn(async move {
        let mut queued = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut queued, MAX_BATCH).await > 0 {
            let batch = std::mem::take(&mut queued);
            let job_due =
                job_due.as_deref().filter(|_| batch.iter().any(|(write, _)| matches!(write, Write::RunEnd(_))));
            let outcomes = match in_one_transaction(&pool, &batch, job_due).await {
                Ok((written, carried)) => {
                    if let Some(notices) = job_due.filter(|_| !carried) {
                        notices.owe();
                    }
                    written.into_iter().map(Ok).collect()
                }
                Err(e) => {
                    // A notification it took is lost with it: owed at once, not after the
                    // writes alone, which may take a while.
                    if let Some(notices) = job_due {
                        notices.owe();
                    }
                    if batch.len() > 1 {
                        tracing::debug!(error = %e, writes = batch.len(), "a batch failed; each write goes alone");
                    }
                    let mut outcomes = Vec::with_capacity(batch.len());
                    for (write, _) in &batch {
                        outcomes.push(alone(&pool, write).await);
                    }
                    if let Some(notices) = job_due {
                        notices.owe();
                    }
                    outcomes
                }
            };
            for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
    });
    Queue(tx)
}

/// One write in a transaction of its own.
async fn alone(pool: &PgPool, write: &Write) -> Result<Outcome, DbError> {
    let mut tx = pool.begin().await?;
    let written = apply(&mut tx, write, false).await?;
    tx.commit().await?;
    Ok(written)
}

/// `customers_locked`: the transaction holds every customer this write touches.
async fn apply(conn: &mut PgConnection, write: &Write, customers_locked: bool) -> Result<Outcome, DbError> {
    match write {
        Write::RunEnd(end) => {
            let RunEnd { job_id, lease_token, fuel, finish, cpu } = end;
            finish_run_on(conn, job_id, lease_token, *fuel, finish, cpu.as_ref(), customers_locked)
                .await
                .map(Outcome::Written)
        }
        Write::Event(event) => insert_event_on(conn, event).await.map(Outcome::Written),
        Write::Journal(entry) => append_journal_on(conn, entry).await.map(Outcome::Journaled),
    }
}

/// Every write of `batch` in one transaction, or the first error (the transaction is then
/// rolled back as it is dropped). With `job_due`, the transaction carries a "job due"
/// notification if one may be sent now; the flag says whether it did.
async fn in_one_transaction(
    pool: &PgPool,
    batch: &[(Write, Reply)],
    job_due: Option<&JobDueNotices>,
) -> Result<(Vec<Outcome>, bool), DbError> {
    let mut tx = pool.begin_with(super::BEGIN_GENERIC).await?;
    let (mut ended_jobs, mut captures, mut reserving) = (Vec::new(), Vec::new(), Vec::new());
    for (write, _) in batch {
        match write {
            Write::RunEnd(end) => ended_jobs.push(end.job_id.as_str()),
            Write::Journal(Appended { job_id, entry, child, .. }) => {
                captures.push(format!("{job_id}:{}", entry.seq));
                if let Some(child) = child.as_deref().filter(|c| c.reserve_nusd > 0) {
                    reserving.push(child.customer_id.as_str());
                }
            }
            Write::Event(_) => {}
        }
    }
    if !ended_jobs.is_empty() || !captures.is_empty() {
        // Customers first, in id order (locks are taken in the sorted output's order): those
        // of the ending runs, those with a hold an entry captures, and those a child created
        // with an entry reserves for.
        sqlx::query(
            "SELECT 1 FROM customers WHERE id IN (
                SELECT customer_id FROM jobs WHERE id = ANY($1)
                UNION SELECT customer_id FROM billing_holds WHERE effect_key = ANY($2) AND status = 'open'
                UNION SELECT unnest($3::TEXT[]))
             ORDER BY id FOR NO KEY UPDATE",
        )
        .bind(&ended_jobs)
        .bind(&captures)
        .bind(&reserving)
        .execute(&mut *tx)
        .await?;
    }
    let events: Vec<&OwnedEvent> =
        batch.iter().filter_map(|(write, _)| if let Write::Event(e) = write { Some(e) } else { None }).collect();
    let written = if events.len() == batch.len() {
        // The runs' job rows first, in the order cancels lock jobs (id descending): the lease
        // checks of the INSERT then wait for nothing, and no cycle forms with a cancel that
        // holds some of them.
        let leased: Vec<&str> = events.iter().filter(|e| e.lease_token.is_some()).map(|e| e.job_id.as_str()).collect();
        if !leased.is_empty() {
            sqlx::query("SELECT 1 FROM jobs WHERE id = ANY($1) ORDER BY id DESC FOR NO KEY UPDATE")
                .bind(&leased)
                .execute(&mut *tx)
                .await?;
        }
        insert_events_on(&mut tx, &events).await?.into_iter().map(Outcome::Written).collect()
    } else {
        // The run ends first, most of them in a few statements for all (see `finish_runs_on`),
        // then the journal entries one by one: a batch holds one write per run, so no run's
        // order changes.
        let ends: Vec<&RunEnd> =
            batch.iter().filter_map(|(write, _)| if let Write::RunEnd(e) = write { Some(e) } else { None }).collect();
        let mut ended = finish_runs_on(&mut tx, &ends).await?.into_iter();
        let mut written = Vec::with_capacity(batch.len());
        for (write, _) in batch {
            written.push(match write {
                Write::RunEnd(_) => Outcome::Written(ended.next().unwrap_or(false)),
                other => apply(&mut tx, other, true).await?,
            });
        }
        written
    };
    let carried = match job_due {
        Some(notices) => notices.carry_in(&mut tx).await?,
        None => false,
    };
    tx.commit().await?;
    Ok((written, carried))
}

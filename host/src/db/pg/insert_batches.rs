//! Job inserts on PostgreSQL, committed in batches, as SQLite's batch writer commits them: one
//! task per host takes every insert queued so far and writes them in one transaction. Alone,
//! each create paid `BEGIN`, its `INSERT` and `COMMIT` (three round trips) and a WAL flush of
//! its own; in a batch the flush and the two round trips are shared.
//!
//! Only inserts that lock nothing are batched: a job that reserves money locks its customer
//! (customers first, the rule of `jobs`), and a batch holding a busy customer's row would make
//! every create of this host wait for that customer's run ends. Those go alone, as before.
//! A batch inserts in the order of the unique keys (customer, template, idempotency key, id),
//! so two hosts' batches cannot wait on each other's uncommitted keys in a cycle. A batch any
//! of whose inserts fails is rolled back and each insert is written again in a transaction of
//! its own, which is what each insert always was: the failing one fails alone (a batch that
//! could not even start fails as a whole: alone, each would wait as long again). Two creates
//! with one idempotency key in one batch behave as one after the other: the second finds the
//! first's row (its own transaction's) and returns it.

use super::jobs::insert_job_on;
use crate::db::DbError;
use crate::db::jobs::{Inserted, NewJob};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

/// Most inserts one transaction carries.
const MAX_BATCH: usize = 128;

type Reply = oneshot::Sender<Result<Inserted, DbError>>;

/// The queue the inserting task reads.
#[derive(Clone)]
pub(super) struct Inserts(mpsc::UnboundedSender<(NewJob, Reply)>);

impl Inserts {
    /// Queue `job` and wait until the batch that carries it has committed (a job that
    /// reserves money is inserted alone).
    pub(super) async fn insert(&self, pool: &PgPool, job: NewJob) -> Result<Inserted, DbError> {
        if job.reserve_nusd > 0 {
            return alone(pool, &job).await;
        }
        let (reply, answer) = oneshot::channel();
        self.0.send((job, reply)).map_err(|_| DbError::PoolClosed)?;
        answer.await.map_err(|_| DbError::PoolClosed)?
    }
}

/// The queue; its task ends when the last clone goes.
pub(super) fn spawn(pool: PgPool) -> Inserts {
    let (tx, mut rx) = mpsc::unbounded_channel::<(NewJob, Reply)>();
    tokio::spawn(async move {
        let mut queued = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut queued, MAX_BATCH).await > 0 {
            let mut batch = std::mem::take(&mut queued);
            batch.sort_by(|(a, _), (b, _)| {
                (&a.customer_id, &a.template_id, &a.idempotency_key, &a.id).cmp(&(
                    &b.customer_id,
                    &b.template_id,
                    &b.idempotency_key,
                    &b.id,
                ))
            });
            let outcomes = match in_one_transaction(&pool, &batch).await {
                Ok(inserted) => inserted.into_iter().map(Ok).collect(),
                Err(Unstarted(e)) => batch.iter().map(|_| Err(copy_of(&e))).collect(),
                Err(Failed(e)) => {
                    if batch.len() > 1 {
                        tracing::debug!(error = %e, inserts = batch.len(), "a batch of inserts failed; each goes alone");
                    }
                    let mut outcomes = Vec::with_capacity(batch.len());
                    for (job, _) in &batch {
                        outcomes.push(alone(&pool, job).await);
                    }
                    outcomes
                }
            };
            for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
    });
    Inserts(tx)
}

/// One insert in a transaction of its own.
async fn alone(pool: &PgPool, job: &NewJob) -> Result<Inserted, DbError> {
    let mut tx = pool.begin().await?;
    let inserted = insert_job_on(&mut tx, job).await?;
    tx.commit().await?;
    Ok(inserted)
}

/// Why a batch was not written.
enum BatchError {
    /// No transaction could be begun (no connection within the pool's timeout): each insert
    /// alone would wait as long again.
    Unstarted(DbError),
    /// A statement or the commit failed: the transaction is rolled back as it is dropped.
    Failed(DbError),
}
use BatchError::{Failed, Unstarted};

/// The same error for every insert of a batch that did not start (`sqlx::Error` is no `Clone`).
fn copy_of(e: &DbError) -> DbError {
    match e {
        DbError::PoolTimedOut => DbError::PoolTimedOut,
        DbError::PoolClosed => DbError::PoolClosed,
        other => DbError::Protocol(other.to_string()),
    }
}

/// Every insert of `batch` in one transaction.
async fn in_one_transaction(pool: &PgPool, batch: &[(NewJob, Reply)]) -> Result<Vec<Inserted>, BatchError> {
    let mut tx = pool.begin().await.map_err(Unstarted)?;
    let mut inserted = Vec::with_capacity(batch.len());
    for (job, _) in batch {
        inserted.push(insert_job_on(&mut tx, job).await.map_err(Failed)?);
    }
    tx.commit().await.map_err(Failed)?;
    Ok(inserted)
}

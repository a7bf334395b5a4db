//! Job inserts on PostgreSQL, committed in batches, as SQLite's batch writer commits them: one
//! task per host takes every insert queued so far and writes them in one transaction. Alone,
//! each create paid `BEGIN`, its `INSERT` and `COMMIT` (three round trips) and a WAL flush of
//! its own; in a batch the flush and the two round trips are shared.
//!
//! Lock order is the rule of `jobs` (customers first): a batch locks the customers of its
//! reserving jobs in id order before any insert (an insert without a reservation locks no
//! customer). A batch any of whose inserts fails is rolled back and each insert is written
//! again in a transaction of its own, which is what each insert always was: the failing one
//! fails alone. Two creates with one idempotency key in one batch behave as one after the
//! other: the second finds the first's row (its own transaction's) and returns it.

use super::jobs::{insert_job_on, lock_customers};
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
    /// Queue `job` and wait until the batch that carries it has committed.
    pub(super) async fn insert(&self, job: NewJob) -> Result<Inserted, DbError> {
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
            let batch = std::mem::take(&mut queued);
            let outcomes = match in_one_transaction(&pool, &batch).await {
                Ok(inserted) => inserted.into_iter().map(Ok).collect(),
                Err(e) => {
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

/// Every insert of `batch` in one transaction, or the first error (the transaction is then
/// rolled back as it is dropped).
async fn in_one_transaction(pool: &PgPool, batch: &[(NewJob, Reply)]) -> Result<Vec<Inserted>, DbError> {
    let mut tx = pool.begin().await?;
    let mut reserving: Vec<String> =
        batch.iter().filter(|(job, _)| job.reserve_nusd > 0).map(|(job, _)| job.customer_id.clone()).collect();
    reserving.sort();
    reserving.dedup();
    if !reserving.is_empty() {
        lock_customers(&mut tx, &reserving).await?;
    }
    let mut inserted = Vec::with_capacity(batch.len());
    for (job, _) in batch {
        inserted.push(insert_job_on(&mut tx, job).await?);
    }
    tx.commit().await?;
    Ok(inserted)
}

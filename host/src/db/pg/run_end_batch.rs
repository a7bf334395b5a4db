//! Group commit of run ends on PostgreSQL. Every run end charges the run's CPU and so updates
//! its customer's running totals: one row per customer that every end of that customer's jobs
//! locks until it commits. One transaction per end made a customer's jobs end at one WAL flush
//! each, whatever the number of workers (BENCHMARKS.md, "PostgreSQL and many worker
//! processes"). Here one task per host takes every run end queued so far and commits them in
//! one transaction, as SQLite's batch does: one flush, and one turn on each customer's row, per
//! batch.
//!
//! Lock order is the rule of `jobs` (customers, then jobs, then holds): the batch locks every
//! customer it touches first, in id order, so two hosts' batches never wait on each other in
//! a cycle. Each end runs inside a savepoint: an end that fails takes none of the others down.
//! A batch whose commit fails, or that PostgreSQL chose as a deadlock victim anyway, is retried
//! one end per transaction, which is what a lone end always was.

use super::run_ends::finish_run_on;
use crate::db::DbError;
use crate::db::jobs::{CpuCharge, Finish};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::{mpsc, oneshot};

/// Most run ends one transaction carries (a batch holds its customers' rows until it commits).
const MAX_BATCH: usize = 64;

/// One run's end, as `Pg::finish_run` was asked for it.
pub(super) struct RunEnd {
    pub job_id: String,
    pub lease_token: String,
    pub fuel: u64,
    pub finish: Finish,
    pub cpu: Option<CpuCharge>,
}

/// Where the outcome of one run end goes.
pub(super) type Reply = oneshot::Sender<Result<bool, DbError>>;
/// The queue of run ends the batching task reads.
pub(super) type Queue = mpsc::UnboundedSender<(RunEnd, Reply)>;

/// The sending side; the task ends when the last sender goes.
pub(super) fn spawn(pool: PgPool) -> Queue {
    let (tx, mut rx) = mpsc::unbounded_channel::<(RunEnd, Reply)>();
    tokio::spawn(async move {
        let mut queued = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut queued, MAX_BATCH).await > 0 {
            let batch = std::mem::take(&mut queued);
            if batch.len() == 1 {
                let (end, reply) = batch.into_iter().next().expect("one");
                let _ = reply.send(alone(&pool, &end).await);
                continue;
            }
            commit_batch(&pool, batch).await;
        }
    });
    tx
}

/// One end in a transaction of its own.
async fn alone(pool: &PgPool, end: &RunEnd) -> Result<bool, DbError> {
    let mut tx = pool.begin().await?;
    let owned = finish(&mut tx, end).await?;
    tx.commit().await?;
    Ok(owned)
}

async fn finish(tx: &mut Transaction<'_, Postgres>, end: &RunEnd) -> Result<bool, DbError> {
    finish_run_on(tx, &end.job_id, &end.lease_token, end.fuel, &end.finish, end.cpu.as_ref()).await
}

async fn commit_batch(pool: &PgPool, batch: Vec<(RunEnd, Reply)>) {
    let ids: Vec<&str> = batch.iter().map(|(end, _)| end.job_id.as_str()).collect();
    let outcomes = match in_one_transaction(pool, &batch, &ids).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::debug!(error = %e, ends = batch.len(), "a batch of run ends failed; each goes alone");
            let mut outcomes = Vec::with_capacity(batch.len());
            for (end, _) in &batch {
                outcomes.push(alone(pool, end).await);
            }
            outcomes
        }
    };
    for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
        let _ = reply.send(outcome);
    }
}

/// Every end of `batch` in one transaction: per end its outcome (an end that failed was rolled
/// back to its savepoint), or an error if the transaction itself failed.
async fn in_one_transaction(
    pool: &PgPool,
    batch: &[(RunEnd, Reply)],
    ids: &[&str],
) -> Result<Vec<Result<bool, DbError>>, DbError> {
    let mut tx = pool.begin().await?;
    // Customers first, in id order (the lock is taken in the sorted output's order).
    sqlx::query(
        "SELECT 1 FROM customers WHERE id IN (SELECT customer_id FROM jobs WHERE id = ANY($1))
         ORDER BY id FOR NO KEY UPDATE",
    )
    .bind(ids)
    .execute(&mut *tx)
    .await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for (end, _) in batch {
        sqlx::query("SAVEPOINT run_end").execute(&mut *tx).await?;
        match finish(&mut tx, end).await {
            Ok(owned) => {
                sqlx::query("RELEASE SAVEPOINT run_end").execute(&mut *tx).await?;
                outcomes.push(Ok(owned));
            }
            Err(e) if is_deadlock(&e) => return Err(e),
            Err(e) => {
                sqlx::query("ROLLBACK TO SAVEPOINT run_end").execute(&mut *tx).await?;
                outcomes.push(Err(e));
            }
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// PostgreSQL's deadlock victim (`40P01`) or serialisation failure (`40001`): the whole
/// batch goes again, one end at a time.
fn is_deadlock(error: &DbError) -> bool {
    error.as_database_error().and_then(|e| e.code()).is_some_and(|code| code == "40P01" || code == "40001")
}

//! Job inserts on PostgreSQL, committed in batches, as SQLite's batch writer commits them: one
//! task per host takes every insert queued so far and writes them in one transaction. Alone,
//! each create paid `BEGIN`, its `INSERT` and `COMMIT` (three round trips) and a WAL flush of
//! its own; in a batch the flush and the two round trips are shared, and the rows go in one
//! `INSERT … SELECT FROM unnest(…)` (one statement to parse, plan and answer, not one per job).
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

use super::jobs::{insert_job_on, not_inserted};
use super::signals::JobDueNotices;
use crate::db::jobs::{Inserted, JobRow, NewJob};
use crate::db::{DbError, now_ms};
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most inserts one transaction carries.
const MAX_BATCH: usize = 128;

type Reply = oneshot::Sender<Result<Inserted, DbError>>;

/// The queue the inserting task reads, and the host's "job due" notifications, which every
/// insert carries or owes (see `signals::JobDueNotices`).
#[derive(Clone)]
pub(super) struct Inserts(mpsc::UnboundedSender<(NewJob, Reply)>, Arc<JobDueNotices>);

impl Inserts {
    /// Queue `job` and wait until the batch that carries it has committed (a job that
    /// reserves money is inserted alone).
    pub(super) async fn insert(&self, pool: &PgPool, job: NewJob) -> Result<Inserted, DbError> {
        if job.reserve_nusd > 0 {
            // Owed however this ends: the request may be dropped once the insert has committed.
            let _owed = OweWhenDropped(&self.1);
            return alone(pool, &job).await;
        }
        let (reply, answer) = oneshot::channel();
        self.0.send((job, reply)).map_err(|_| DbError::PoolClosed)?;
        answer.await.map_err(|_| DbError::PoolClosed)?
    }
}

/// Owes a notification when dropped, whether the future holding it ran to its end or not.
struct OweWhenDropped<'a>(&'a JobDueNotices);

impl Drop for OweWhenDropped<'_> {
    fn drop(&mut self) {
        self.0.owe();
    }
}

/// The queue; its task ends when the last clone goes.
pub(super) fn spawn(pool: PgPool, job_due: Arc<JobDueNotices>) -> Inserts {
    let notices = job_due.clone();
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
            let outcomes = match in_one_transaction(&pool, &batch, &notices).await {
                Ok((inserted, carried)) => {
                    if !carried {
                        notices.owe();
                    }
                    inserted.into_iter().map(Ok).collect()
                }
                Err(Unstarted(e)) => batch.iter().map(|_| Err(crate::db::copy_of(&e))).collect(),
                Err(Failed(e)) => {
                    // A notification it took is lost with it: owed at once, not after the
                    // inserts alone, which may take a while.
                    notices.owe();
                    if batch.len() > 1 {
                        tracing::debug!(error = %e, inserts = batch.len(), "a batch of inserts failed; each goes alone");
                    }
                    let mut outcomes = Vec::with_capacity(batch.len());
                    for (job, _) in &batch {
                        outcomes.push(alone(&pool, job).await);
                    }
                    notices.owe();
                    outcomes
                }
            };
            for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
    });
    Inserts(tx, job_due)
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

/// Every insert of `batch` in one transaction: one `INSERT … SELECT FROM unnest(…)` for all
/// (in the batch's order, which is the unique keys' order), then, for each job it did not
/// insert, what `insert_job_on` answers then (the row that conflicted, in this transaction or
/// committed). Batched jobs reserve nothing, so none is refused for its limit. The transaction
/// carries a "job due" notification if one may be sent now; the flag says whether it did.
async fn in_one_transaction(
    pool: &PgPool,
    batch: &[(NewJob, Reply)],
    job_due: &JobDueNotices,
) -> Result<(Vec<Inserted>, bool), BatchError> {
    let mut tx = pool.begin_with(super::BEGIN_GENERIC).await.map_err(Unstarted)?;
    let jobs: Vec<&NewJob> = batch.iter().map(|(job, _)| job).collect();
    let mut created: HashMap<String, JobRow> =
        insert_all(&mut tx, &jobs).await.map_err(Failed)?.into_iter().map(|row| (row.id.clone(), row)).collect();
    let mut inserted = Vec::with_capacity(batch.len());
    for job in jobs {
        // The first job of an id gets the row; a second one of that id (or of its
        // idempotency key) finds it, as one insert after the other would.
        inserted.push(match created.remove(&job.id) {
            Some(row) => Inserted::Created(row),
            None => not_inserted(&mut tx, job).await.map_err(Failed)?,
        });
    }
    let carried = job_due.carry_in(&mut tx).await.map_err(Failed)?;
    tx.commit().await.map_err(Failed)?;
    Ok((inserted, carried))
}

/// Insert `jobs` (none reserving money) in one statement; the rows inserted.
async fn insert_all(conn: &mut PgConnection, jobs: &[&NewJob]) -> Result<Vec<JobRow>, DbError> {
    let text = |f: fn(&NewJob) -> &str| jobs.iter().map(|j| f(j)).collect::<Vec<&str>>();
    let optional = |f: fn(&NewJob) -> Option<&str>| jobs.iter().map(|j| f(j)).collect::<Vec<Option<&str>>>();
    let rows = sqlx::query_as(
        "INSERT INTO jobs (id, customer_id, template_id, template_version, template_digest, operation, workflow,
            tracer, status, payload, config, webhook_url, parent_job_id, idempotency_key, max_retries, run_after,
            start_ms, created_at, updated_at, reserved_nusd, request_id, traceparent, retry_of)
         SELECT u.id, u.customer_id, u.template_id, u.template_version, u.template_digest, u.operation, u.workflow,
            u.tracer, 'queued', u.payload,
            COALESCE(u.config, (SELECT c.config FROM template_configs c
                                WHERE c.customer_id = u.customer_id AND c.template_id = u.template_id), '{}'),
            u.webhook_url, u.parent_job_id, u.idempotency_key, u.max_retries, $18, $18, $18, $18, 0,
            u.request_id, u.traceparent, u.retry_of
         FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[],
                     $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $13::TEXT[], $14::BIGINT[], $15::TEXT[],
                     $16::TEXT[], $17::TEXT[])
              WITH ORDINALITY AS u(id, customer_id, template_id, template_version, template_digest, operation,
                                   workflow, tracer, payload, config, webhook_url, parent_job_id, idempotency_key,
                                   max_retries, request_id, traceparent, retry_of, ord)
         ORDER BY u.ord
         ON CONFLICT DO NOTHING RETURNING *",
    )
    .bind(text(|j| &j.id))
    .bind(text(|j| &j.customer_id))
    .bind(text(|j| &j.template_id))
    .bind(text(|j| &j.template_version))
    .bind(text(|j| &j.template_digest))
    .bind(text(|j| &j.operation))
    .bind(text(|j| &j.workflow))
    .bind(text(|j| &j.tracer))
    .bind(text(|j| &j.payload))
    .bind(optional(|j| j.config.as_deref()))
    .bind(optional(|j| j.webhook_url.as_deref()))
    .bind(optional(|j| j.parent_job_id.as_deref()))
    .bind(optional(|j| j.idempotency_key.as_deref()))
    .bind(jobs.iter().map(|j| i64::from(j.max_retries)).collect::<Vec<i64>>())
    .bind(optional(|j| j.request_id.as_deref()))
    .bind(optional(|j| j.traceparent.as_deref()))
    .bind(optional(|j| j.retry_of.as_deref()))
    .bind(now_ms())
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows)
}

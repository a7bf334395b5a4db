//! Group commit for the hottest writes — creating a job, holding a run's fuel and recording
//! how a run ended.
//! Callers queue their write; one task takes everything queued so far and commits it in one
//! `BEGIN IMMEDIATE` transaction, so under load many jobs share a commit, and when idle a
//! write is one autocommit statement as before.

use super::holds::{HoldOutcome, RunFuelHold, hold_run_fuel_on};
use super::jobs::{CpuCharge, Finish, Inserted, NewJob, finish_run_on, insert_job_on};
use super::storage_quota::{Recorded, StoredObject, record_object_on};
use super::{Db, DbError};
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

/// Most writes one transaction carries.
const MAX_BATCH: usize = 256;

pub(crate) enum Write {
    InsertJob(Box<NewJob>),
    FinishRun { job_id: String, lease_token: String, fuel: u64, finish: Finish, cpu: Option<CpuCharge> },
    HoldRunFuel(Box<RunFuelHold>),
    RecordObject(Box<StoredObject>),
}

pub(crate) enum Written {
    Job(Box<Inserted>),
    Finished(bool),
    Held(HoldOutcome),
    Object(Recorded),
}

pub(crate) type Queued = (Write, oneshot::Sender<Result<Written, DbError>>);

/// The queue in front of the writing connection.
pub(crate) fn spawn(writer: SqlitePool) -> mpsc::UnboundedSender<Queued> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Queued>();
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let replies = commit(&writer, &mut batch).await;
            for (reply, result) in replies {
                let _ = reply.send(result);
            }
        }
    });
    tx
}

async fn apply(conn: &mut sqlx::SqliteConnection, write: &Write) -> Result<Written, DbError> {
    match write {
        Write::InsertJob(job) => insert_job_on(conn, job).await.map(|inserted| Written::Job(Box::new(inserted))),
        Write::FinishRun { job_id, lease_token, fuel, finish, cpu } => {
            finish_run_on(conn, job_id, lease_token, *fuel, finish, cpu.as_ref()).await.map(Written::Finished)
        }
        Write::HoldRunFuel(hold) => hold_run_fuel_on(conn, hold).await.map(Written::Held),
        Write::RecordObject(object) => record_object_on(conn, object).await.map(Written::Object),
    }
}

type Reply = (oneshot::Sender<Result<Written, DbError>>, Result<Written, DbError>);

async fn commit(writer: &SqlitePool, batch: &mut Vec<Queued>) -> Vec<Reply> {
    let mut replies = Vec::with_capacity(batch.len());
    let mut conn = match writer.acquire().await {
        Ok(conn) => conn,
        Err(e) => return fail_all(batch, &e),
    };
    if batch.len() == 1 {
        let (write, reply) = batch.remove(0);
        let result = apply(&mut conn, &write).await;
        return vec![(reply, result)];
    }
    if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        return fail_all(batch, &e);
    }
    for (write, reply) in batch.drain(..) {
        // A failed statement is undone on its own; the others still commit.
        let result = apply(&mut conn, &write).await;
        replies.push((reply, result));
    }
    if let Err(e) = sqlx::query("COMMIT").execute(&mut *conn).await {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        let message = e.to_string();
        return replies
            .into_iter()
            .map(|(reply, _)| (reply, Err(DbError::Protocol(format!("commit failed: {message}")))))
            .collect();
    }
    replies
}

fn fail_all(batch: &mut Vec<Queued>, e: &DbError) -> Vec<Reply> {
    let message = e.to_string();
    batch.drain(..).map(|(_, reply)| (reply, Err(DbError::Protocol(format!("write failed: {message}"))))).collect()
}

impl Db {
    pub(crate) async fn batched(&self, write: Write) -> Result<Written, DbError> {
        let (reply, answer) = oneshot::channel();
        self.batch.send((write, reply)).map_err(|_| DbError::PoolClosed)?;
        answer.await.map_err(|_| DbError::PoolClosed)?
    }
}

//! The jobs table: creation (idempotent), reads for the API, and the worker's lifecycle —
//! claim, heartbeat, finish, retry, suspend, wake — where every worker write checks the
//! lease token so a stale run can never overwrite the current one.

use super::{DbError, Sqlite, now_ms};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// A job as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct JobRow {
    pub id: String,
    pub customer_id: String,
    pub template_id: String,
    pub template_version: String,
    pub template_digest: String,
    pub operation: String,
    pub workflow: String,
    pub tracer: String,
    pub status: String,
    pub payload: String,
    pub config: String,
    pub result: Option<String>,
    pub error: Option<String>,
    pub progress: f64,
    pub progress_message: Option<String>,
    pub webhook_url: Option<String>,
    pub parent_job_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub reservation_id: Option<String>,
    pub attempt: i64,
    pub retries: i64,
    pub max_retries: i64,
    pub run_after: i64,
    pub lease_token: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub waiting_on: Option<String>,
    pub human_answer: Option<String>,
    pub cancel_requested: i64,
    pub start_ms: i64,
    pub fuel_consumed: i64,
    /// The job's reservation (nano-USD), named by `reservation_id`.
    pub reserved_nusd: i64,
    /// The `x-request-id` of the request that created it (none for child jobs).
    pub request_id: Option<String>,
    /// The W3C `traceparent` of the span that created it (see `NewJob::traceparent`).
    pub traceparent: Option<String>,
    /// The job this one retries.
    pub retry_of: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Whether the job had journal entries when it was claimed: only a claim reads it (other
    /// reads leave `None`, "not known"). A run of a claim that says `false` has nothing to
    /// replay and skips reading its journal; only the lease holder appends to it, and an
    /// earlier holder's appends are in before the claim (see `claim_jobs`).
    #[sqlx(default)]
    #[serde(skip)]
    pub journaled: Option<bool>,
}

impl JobRow {
    /// A row read by the direct (rusqlite) paths, selected as [`JOB_COLUMNS`] from column 0:
    /// by position (a lookup by name compares strings for every column of every row).
    pub(super) fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            customer_id: row.get(1)?,
            template_id: row.get(2)?,
            template_version: row.get(3)?,
            template_digest: row.get(4)?,
            operation: row.get(5)?,
            workflow: row.get(6)?,
            tracer: row.get(7)?,
            status: row.get(8)?,
            payload: row.get(9)?,
            config: row.get(10)?,
            result: row.get(11)?,
            error: row.get(12)?,
            progress: row.get(13)?,
            progress_message: row.get(14)?,
            webhook_url: row.get(15)?,
            parent_job_id: row.get(16)?,
            idempotency_key: row.get(17)?,
            reservation_id: row.get(18)?,
            attempt: row.get(19)?,
            retries: row.get(20)?,
            max_retries: row.get(21)?,
            run_after: row.get(22)?,
            lease_token: row.get(23)?,
            lease_expires_at: row.get(24)?,
            waiting_on: row.get(25)?,
            human_answer: row.get(26)?,
            cancel_requested: row.get(27)?,
            start_ms: row.get(28)?,
            fuel_consumed: row.get(29)?,
            reserved_nusd: row.get(30)?,
            request_id: row.get(31)?,
            traceparent: row.get(32)?,
            retry_of: row.get(33)?,
            created_at: row.get(34)?,
            updated_at: row.get(35)?,
            started_at: row.get(36)?,
            finished_at: row.get(37)?,
            journaled: None,
        })
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "cancelled")
    }
}

/// The columns of [`JobRow`] in its field order, for the direct paths' `SELECT`s.
pub(super) const JOB_COLUMNS: &str = "id, customer_id, template_id, template_version, template_digest, operation, workflow, tracer, status, payload, config, result, error, progress, progress_message, webhook_url, parent_job_id, idempotency_key, reservation_id, attempt, retries, max_retries, run_after, lease_token, lease_expires_at, waiting_on, human_answer, cancel_requested, start_ms, fuel_consumed, reserved_nusd, request_id, traceparent, retry_of, created_at, updated_at, started_at, finished_at";

/// How many columns [`JOB_COLUMNS`] names.
const JOB_FIELDS: usize = 38;

/// What creating a job needs.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub customer_id: String,
    pub template_id: String,
    pub template_version: String,
    pub template_digest: String,
    pub operation: String,
    pub workflow: String,
    pub tracer: String,
    pub payload: String,
    /// The template config the job runs with; `None`: the customer's current config.
    pub config: Option<String>,
    pub webhook_url: Option<String>,
    pub parent_job_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub max_retries: u32,
    /// The estimated charge set aside from the customer's limit while the job is unfinished
    /// (nano-USD; 0: none, and the job has no `reservation_id`).
    pub reserve_nusd: i64,
    /// The `x-request-id` of the creating request, carried by the job's log lines.
    pub request_id: Option<String>,
    /// The creating span as a W3C `traceparent`: the job's spans continue its trace.
    pub traceparent: Option<String>,
    /// The job this one retries (`POST …/retry`).
    pub retry_of: Option<String>,
}

/// What inserting a job did.
#[derive(Debug)]
pub enum Inserted {
    Created(JobRow),
    /// The id or idempotency key exists: the original job.
    Existing(JobRow),
    /// The reservation does not fit what the customer may still be charged.
    OverLimit {
        headroom_nusd: i64,
    },
}

/// How a run ended, as the worker writes it.
#[derive(Debug, Clone)]
pub enum Finish {
    Succeeded {
        result: String,
    },
    Failed {
        error: String,
    },
    Cancelled {
        error: String,
    },
    /// Back to the queue at `run_after` (a retry, a deferral, or a wait already satisfied).
    Requeue {
        run_after: i64,
        error: Option<String>,
        counts_as_retry: bool,
    },
    /// Release a lease without using up an attempt (shutdown).
    Release,
    WaitForChildren {
        ids: Vec<String>,
    },
    WaitForHuman {
        prompt: String,
    },
    /// Wait in `waiting_for_child` for a render the host runs (unless it has already ended).
    WaitForRender {
        render_id: String,
    },
}

const FINISHED: &str = "('succeeded', 'failed', 'cancelled')";

impl Sqlite {
    /// Insert a job; with an idempotency key already used, return the original job instead.
    /// Concurrent inserts share one transaction (group commit, see `batch`).
    pub async fn insert_job(&self, job: &NewJob) -> Result<Inserted, DbError> {
        match self.batched(super::batch::Write::InsertJob(Box::new(job.clone()))).await? {
            super::batch::Written::Job(inserted) => Ok(*inserted),
            _ => Err(DbError::Protocol("the batch writer answered out of turn".into())),
        }
    }

    pub async fn job(&self, id: &str) -> Result<Option<JobRow>, DbError> {
        sqlx::query_as("SELECT * FROM jobs WHERE id = ?").bind(id).fetch_optional(self.pool()).await
    }

    /// A customer's job of a template; `None` for anyone else's.
    pub async fn customer_job(
        &self,
        customer_id: &str,
        template_id: &str,
        id: &str,
    ) -> Result<Option<JobRow>, DbError> {
        sqlx::query_as("SELECT * FROM jobs WHERE id = ? AND customer_id = ? AND template_id = ?")
            .bind(id)
            .bind(customer_id)
            .bind(template_id)
            .fetch_optional(self.pool())
            .await
    }

    /// A customer's job with its charges and holds, in one read (a status poll's whole cost).
    #[allow(clippy::type_complexity)]
    pub async fn customer_job_with_billing(
        &self,
        customer_id: &str,
        template_id: &str,
        id: &str,
    ) -> Result<Option<(JobRow, Vec<super::billing::LedgerRow>, Vec<super::holds::HoldRow>)>, DbError> {
        struct WithBilling {
            job: JobRow,
            ledger_json: String,
            holds_json: String,
        }
        // A point read on this thread (a status poll is the most frequent request; see `direct`).
        let found = self.read_direct(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {JOB_COLUMNS},
                    (SELECT json_group_array(json_object('id', id, 'customer_id', customer_id, 'job_id', job_id,
                            'template_id', template_id, 'event_type', event_type, 'provider', provider, 'model', model,
                            'metadata', metadata, 'created_at', created_at, 'effect_key', effect_key,
                            'cost_nusd', cost_nusd, 'charge_nusd', charge_nusd))
                     FROM (SELECT * FROM billing_events b WHERE b.job_id = jobs.id ORDER BY b.id)) AS ledger_json,
                    (SELECT json_group_array(json_object('effect_key', effect_key, 'kind', kind, 'status', status,
                            'held_nusd', held_nusd, 'captured_nusd', captured_nusd, 'created_at', created_at,
                            'settled_at', settled_at))
                     FROM (SELECT * FROM billing_holds h WHERE h.job_id = jobs.id ORDER BY h.id)) AS holds_json
                 FROM jobs WHERE id = ? AND customer_id = ? AND template_id = ?"
            ))?
            .query_row([id, customer_id, template_id], |r| {
                Ok(WithBilling {
                    job: JobRow::from_direct(r)?,
                    ledger_json: r.get(JOB_FIELDS)?,
                    holds_json: r.get(JOB_FIELDS + 1)?,
                })
            })
            .optional()
        })?;
        let Some(found) = found else { return Ok(None) };
        let parse = |what: &str, e: serde_json::Error| DbError::Protocol(format!("the job's {what}: {e}"));
        let ledger = serde_json::from_str(&found.ledger_json).map_err(|e| parse("charges", e))?;
        let holds = serde_json::from_str(&found.holds_json).map_err(|e| parse("holds", e))?;
        Ok(Some((found.job, ledger, holds)))
    }

    /// A customer's jobs of a template, newest first, paged by id (`before`).
    pub async fn list_jobs(
        &self,
        customer_id: &str,
        template_id: &str,
        status: Option<&str>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<JobRow>, DbError> {
        sqlx::query_as(
            "SELECT * FROM jobs WHERE customer_id = ? AND template_id = ? AND (?3 IS NULL OR status = ?3)
               AND (?4 IS NULL OR id < ?4) ORDER BY id DESC LIMIT ?5",
        )
        .bind(customer_id)
        .bind(template_id)
        .bind(status)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
    }

    /// Claim up to `max` due jobs for one worker: one `UPDATE … RETURNING`, round-robin across
    /// customers, oldest `run_after` first within each, never taking a customer past its
    /// concurrency cap (`customers.max_concurrent_jobs`, else `default_cap`). Each row says
    /// whether the job has journal entries ([`JobRow::journaled`]): the one writer has
    /// committed every earlier lease holder's appends, and a new holder's come later.
    pub async fn claim_jobs(
        &self,
        max: u32,
        lease_token: &str,
        lease_ms: i64,
        default_cap: u32,
    ) -> Result<Vec<JobRow>, DbError> {
        let now = now_ms();
        // Round-robin across customers: every customer with queued jobs offers its oldest due
        // ones, up to what its cap leaves free; a job's turn is its customer's running jobs
        // plus its place in that customer's queue, and the lowest turns are claimed first (on
        // a tie, the customer whose last job started longest ago).
        // So a customer with 1,000 queued jobs never delays another customer who has fewer jobs
        // running: the next free slot is theirs.
        // `shares` is MATERIALIZED: inlined, its three sub-selects ran again for every offered
        // job, not once per customer. And no customer offers more jobs than the most any
        // customer has free (a later one's turn would pass its cap; SQLite's LIMIT cannot name
        // the customer's own row, so the largest is the bound): with 500 customers waiting, each
        // 2 below a cap of 4, a claim read 1,000 queued rows instead of 19,000, and took 13 ms
        // instead of 66–68 (BENCHMARKS.md, "Session 22").
        // Queued with the batches and committed in one of them, on the writer thread: the
        // claim's statement is a write, and on sqlx's writing connection (a second connection
        // to the file) every claim first threw away that connection's page cache, changed by
        // the batches since, and read the pages again, and every batch after it did the same
        // (BENCHMARKS.md, "Session 24"). Taking the writer's lock for a transaction of its
        // own, a claim and the batches handed the lock back and forth, and each hand-over
        // waited for the holder's task to be scheduled again (BENCHMARKS.md, "Session 31").
        let claim = Claim { now, max, lease_token: lease_token.to_string(), lease_ms, default_cap };
        match self.batched(super::batch::Write::Claim(Box::new(claim))).await? {
            super::batch::Written::Claimed(rows) => Ok(rows),
            _ => Err(DbError::Protocol("the batch writer answered out of turn".into())),
        }
    }

    /// Extend a lease. `None`: the lease is lost (expired and re-claimed, or the job ended).
    /// `Some(true)`: cancellation was requested.
    /// Queued with the batches: on sqlx's writing connection it waited for the writer thread's
    /// lock, which it keeps for up to 20 ms under load (see `direct::WriterLock`), and a
    /// worker renews its leases one after another.
    pub async fn heartbeat(&self, job_id: &str, lease_token: &str, lease_ms: i64) -> Result<Option<bool>, DbError> {
        let renewal = LeaseRenewal {
            job_id: job_id.to_string(),
            lease_token: lease_token.to_string(),
            expires_at: now_ms().saturating_add(lease_ms),
        };
        match self.batched(super::batch::Write::Heartbeat(Box::new(renewal))).await? {
            super::batch::Written::Heartbeat(cancel) => Ok(cancel),
            _ => Err(DbError::Protocol("the batch writer answered out of turn".into())),
        }
    }

    /// Write how a run ended, if the lease is still ours (false otherwise: a stale run), in
    /// one statement. A job that ends wakes a parent waiting on it (the `jobs_wake_parent`
    /// trigger, atomic with the update); a wait already satisfied requeues at once.
    /// Concurrent finishes share one transaction (group commit, see `batch`).
    pub async fn finish_run(
        &self,
        job_id: &str,
        lease_token: &str,
        fuel: u64,
        finish: &Finish,
        cpu: Option<CpuCharge>,
    ) -> Result<bool, DbError> {
        let write = super::batch::Write::FinishRun {
            job_id: job_id.to_string(),
            lease_token: lease_token.to_string(),
            fuel,
            finish: finish.clone(),
            cpu,
        };
        match self.batched(write).await? {
            super::batch::Written::Finished(owned) => Ok(owned),
            _ => Err(DbError::Protocol("the batch writer answered out of turn".into())),
        }
    }

    /// Cancel a job and its unfinished descendants: waiting and queued ones at once, running
    /// ones by request (their worker stops them at the next yield or host call). Returns the
    /// job after the change, or `None` if it was already finished.
    pub async fn cancel_job(&self, job_id: &str) -> Result<Option<JobRow>, DbError> {
        let job_id = job_id.to_string();
        self.write_direct(move |tx| cancel_job_on(tx, &job_id)).await
    }

    /// Answer a job waiting for a human; `None` if it is not waiting for one.
    pub async fn resume_job(&self, job_id: &str, answer: &str) -> Result<Option<JobRow>, DbError> {
        let now = now_ms();
        sqlx::query_as(
            "UPDATE jobs SET human_answer = ?, status = 'queued', run_after = ?, waiting_on = NULL, updated_at = ?
             WHERE id = ? AND status = 'waiting_for_human' RETURNING *",
        )
        .bind(answer)
        .bind(now)
        .bind(now)
        .bind(job_id)
        .fetch_optional(self.writer())
        .await
    }

    /// Re-queue running jobs whose lease expired (their worker died); fail those that have
    /// already lost more workers than their retries allow. Returns how many were touched.
    pub async fn sweep_orphans(&self) -> Result<u64, DbError> {
        let now = now_ms();
        let error = r#"{"code":"worker_lost","message":"the worker running this job stopped too many times"}"#;
        // Failing a job settles its holds in the same transaction, like any other end.
        let failed = self
            .write_direct(move |tx| {
                let failed = tx
                    .prepare_cached(
                        "UPDATE jobs SET status = 'failed', error = ?, lease_token = NULL, lease_expires_at = NULL,
                         finished_at = ?, updated_at = ? WHERE status = 'running' AND lease_expires_at < ?
                           AND retries >= max_retries
                         RETURNING id",
                    )?
                    .query_map(params![error, now, now, now], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                for id in &failed {
                    super::holds::settle_job_on(tx, id)?;
                }
                Ok(failed)
            })
            .await?;
        let requeued = sqlx::query(
            "UPDATE jobs SET status = 'queued', lease_token = NULL, lease_expires_at = NULL, retries = retries + 1,
             run_after = ?, updated_at = ? WHERE status = 'running' AND lease_expires_at < ?",
        )
        .bind(now)
        .bind(now)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(failed.len() as u64 + requeued.rows_affected())
    }

    /// Delete jobs (with their events and journals) finished before `cutoff_ms`.
    pub async fn sweep_finished(&self, cutoff_ms: i64) -> Result<u64, DbError> {
        let done = sqlx::query(&format!(
            "DELETE FROM jobs WHERE finished_at < ? AND status IN {FINISHED}
             AND NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent_job_id = jobs.id)"
        ))
        .bind(cutoff_ms)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// Job counts by status (for /metrics).
    pub async fn job_counts(&self) -> Result<Vec<(String, i64)>, DbError> {
        sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetch_all(self.pool()).await
    }
}

impl Sqlite {
    /// A job and all its descendants' ids.
    pub async fn job_tree(&self, job_id: &str) -> Result<Vec<String>, DbError> {
        sqlx::query_scalar(
            "WITH RECURSIVE tree(id) AS (SELECT ? UNION ALL SELECT j.id FROM jobs j JOIN tree t ON j.parent_job_id = t.id)
             SELECT id FROM tree",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await
    }
}

/// [`Db::cancel_job`] in the writer's transaction.
fn cancel_job_on(conn: &Connection, job_id: &str) -> rusqlite::Result<Option<JobRow>> {
    let now = now_ms();
    let tree = conn
        .prepare_cached(&format!(
            "WITH RECURSIVE tree(id) AS (SELECT ? UNION ALL SELECT j.id FROM jobs j JOIN tree t ON j.parent_job_id = t.id)
             SELECT id, status FROM jobs WHERE id IN (SELECT id FROM tree) AND status NOT IN {FINISHED}"
        ))?
        .query_map([job_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if !tree.iter().any(|(id, _)| id == job_id) {
        return Ok(None);
    }
    let error = r#"{"code":"cancelled","message":"the job was cancelled"}"#;
    for (id, status) in &tree {
        if status == "running" {
            conn.prepare_cached("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?")?
                .execute(params![now, id])?;
        } else {
            conn.prepare_cached(
                "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, error = ?, waiting_on = NULL,
                 finished_at = ?, updated_at = ? WHERE id = ?",
            )?
            .execute(params![error, now, now, id])?;
            super::holds::settle_job_on(conn, id)?;
        }
    }
    conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))?
        .query_row([job_id], JobRow::from_direct)
        .map(Some)
}

/// The insert of [`Db::insert_job`] on the writing connection (inside a batch).
pub(super) fn insert_job_on(conn: &Connection, job: &NewJob) -> rusqlite::Result<Inserted> {
    let now = now_ms();
    let headroom = super::limits::headroom("?2", "NULL", "?20");
    let inserted = conn
        .prepare_cached(&format!(
            "INSERT INTO jobs (id, customer_id, template_id, template_version, template_digest, operation, workflow,
                tracer, status, payload, config, webhook_url, parent_job_id, idempotency_key, max_retries, run_after,
                start_ms, created_at, updated_at, reserved_nusd, reservation_id, request_id, traceparent, retry_of)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?9,
                COALESCE(?10, (SELECT config FROM template_configs WHERE customer_id = ?2 AND template_id = ?3), '{{}}'),
                ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, CASE WHEN ?19 > 0 THEN 'res_' || ?1 END, ?21, ?22, ?23
             WHERE ?19 <= 0 OR ?19 <= {headroom}
             ON CONFLICT DO NOTHING RETURNING {JOB_COLUMNS}"
        ))?
        .query_row(
            params![
                job.id,
                job.customer_id,
                job.template_id,
                job.template_version,
                job.template_digest,
                job.operation,
                job.workflow,
                job.tracer,
                job.payload,
                job.config,
                job.webhook_url,
                job.parent_job_id,
                job.idempotency_key,
                i64::from(job.max_retries),
                now,
                now,
                now,
                now,
                job.reserve_nusd,
                super::limits::month_start_ms(),
                job.request_id,
                job.traceparent,
                job.retry_of,
            ],
            JobRow::from_direct,
        )
        .optional()?;
    if let Some(row) = inserted {
        return Ok(Inserted::Created(row));
    }
    // A conflict (the same id: a replayed child enqueue; or the same idempotency key), or
    // the reservation did not fit the customer's limit.
    let existing = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs
             WHERE id = ? OR (customer_id = ? AND template_id = ? AND idempotency_key = ?)"
        ))?
        .query_row(params![job.id, job.customer_id, job.template_id, job.idempotency_key], JobRow::from_direct)
        .optional()?;
    if let Some(row) = existing {
        return Ok(Inserted::Existing(row));
    }
    let headroom: i64 = conn
        .prepare_cached(&format!("SELECT {}", super::limits::headroom("?1", "NULL", "?2")))?
        .query_row(params![job.customer_id, super::limits::month_start_ms()], |r| r.get(0))?;
    Ok(Inserted::OverLimit { headroom_nusd: headroom.max(0) })
}

/// The update of [`Db::finish_run`] on the writing connection (inside a batch).
/// The host's `cpu_estimate` charge of a run, written with the run's outcome (same batched
/// transaction: no extra commit per job), once per run attempt.
#[derive(Debug, Clone, Copy)]
pub struct CpuCharge {
    /// The fuel's cost to the platform, nano-USD.
    pub cost_nusd: i64,
    /// The margin of customers without their own.
    pub default_margin: f64,
}

/// Whether the run holding `lease_token` still holds the job, on the writing connection: the
/// check before a run's event or journal entry is inserted (the batch's transaction keeps it
/// true until then). A statement of its own, so the insert after it is one row of `VALUES`:
/// SQLite counts an `INSERT … SELECT` as a write of many rows and copies every page it touches
/// into a statement journal first (in case a later row broke a foreign key), which a profile of
/// `greet` put at 2.5 % of the host.
pub(super) fn holds_lease_on(conn: &Connection, job_id: &str, lease_token: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM jobs WHERE id = ?1 AND lease_token = ?2")?.exists(params![job_id, lease_token])
}

pub(super) fn finish_run_on(
    conn: &Connection,
    job_id: &str,
    lease_token: &str,
    fuel: u64,
    finish: &Finish,
    cpu: Option<&CpuCharge>,
) -> rusqlite::Result<bool> {
    let now = now_ms();
    let fuel = i64::try_from(fuel).unwrap_or(i64::MAX);
    if let Some(cpu) = cpu {
        // A run that held its fuel (a customer with a limit): the fuel burned is charged
        // within the hold and captured; the rest of the hold is released.
        let hold_key = super::holds::RunFuelHold::effect_key(job_id, lease_token);
        let noted = conn
            .prepare_cached(
                "UPDATE billing_holds SET cost_nusd = ?2,
                    charge_nusd = MIN(held_nusd, CAST(?2 * COALESCE((SELECT margin FROM customers c
                                      WHERE c.id = billing_holds.customer_id), ?3) + 0.999999 AS INTEGER)),
                    metadata = json_object('fuel', ?4, 'recorded_by', 'host')
                 WHERE effect_key = ?1 AND status = 'open'
                   AND EXISTS (SELECT 1 FROM jobs WHERE id = ?5 AND lease_token = ?6)",
            )?
            .execute(params![hold_key, cpu.cost_nusd, cpu.default_margin, fuel, job_id, lease_token])?;
        if noted > 0 {
            super::holds::capture_on(conn, &hold_key)?;
        }
        // The CPU is spent whatever the limit says: charged up to what the customer may still
        // be charged (the rest is the platform's), so a limit is never crossed. Keyed by the
        // run's lease token: written once per run (a released run's attempt number is reused).
        let headroom = super::limits::headroom("jobs.customer_id", "jobs.id", "?7");
        conn.prepare_cached(&format!(
            "INSERT OR IGNORE INTO billing_events (customer_id, job_id, template_id, event_type, cost_nusd, charge_nusd,
                metadata, created_at, effect_key)
             SELECT customer_id, id, template_id, 'cpu_estimate', ?1,
                    MAX(0, MIN(CAST(?1 * COALESCE((SELECT margin FROM customers c WHERE c.id = jobs.customer_id), ?2)
                                    + 0.999999 AS INTEGER), {headroom})),
                    json_object('fuel', ?3, 'attempt', attempt, 'recorded_by', 'host'), ?4, id || ':cpu:' || ?6
             FROM jobs WHERE id = ?5 AND lease_token = ?6"
        ))?
        .execute(params![
            cpu.cost_nusd,
            cpu.default_margin,
            fuel,
            now,
            job_id,
            lease_token,
            super::limits::month_start_ms()
        ])?;
    }
    let (set, value) = finish_set(finish);
    let done = conn
        .prepare_cached(&format!(
            "UPDATE jobs SET lease_token = NULL, lease_expires_at = NULL, fuel_consumed = fuel_consumed + ?2, updated_at = ?3, {set}
             WHERE id = ?1 AND lease_token = ?4 AND status = 'running'"
        ))?
        .execute(params![job_id, fuel, now, lease_token, value])?;
    let ended = matches!(finish, Finish::Succeeded { .. } | Finish::Failed { .. } | Finish::Cancelled { .. });
    if ended && done == 1 {
        super::holds::settle_job_on(conn, job_id)?;
    }
    Ok(done == 1)
}

/// The `SET` of a run's end (`?1` the job, `?3` now, `?5` the value) and the value.
fn finish_set(finish: &Finish) -> (String, Option<String>) {
    match finish {
        Finish::Succeeded { result } => (
            "status = 'succeeded', result = ?5, progress = 1, waiting_on = NULL, finished_at = ?3".into(),
            Some(result.clone()),
        ),
        Finish::Failed { error } => {
            ("status = 'failed', error = ?5, waiting_on = NULL, finished_at = ?3".into(), Some(error.clone()))
        }
        Finish::Cancelled { error } => {
            ("status = 'cancelled', error = ?5, waiting_on = NULL, finished_at = ?3".into(), Some(error.clone()))
        }
        Finish::Requeue { run_after, error, counts_as_retry } => (
            format!(
                "status = 'queued', run_after = {run_after}, error = COALESCE(?5, error), retries = retries + {}",
                i64::from(*counts_as_retry)
            ),
            error.clone(),
        ),
        // `?5` (NULL) keeps the error: every variant binds the same five parameters.
        Finish::Release => {
            ("status = 'queued', run_after = ?3, attempt = MAX(attempt - 1, 0), error = COALESCE(?5, error)".into(), None)
        }
        Finish::WaitForChildren { ids } => (
            format!(
                "waiting_on = ?5, run_after = ?3, status = CASE WHEN EXISTS (SELECT 1 FROM jobs c WHERE c.parent_job_id = ?1
                   AND c.id IN (SELECT value FROM json_each(?5)) AND c.status NOT IN {FINISHED})
                 THEN 'waiting_for_child' ELSE 'queued' END"
            ),
            Some(serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())),
        ),
        Finish::WaitForRender { render_id } => (
            "waiting_on = json_object('render', ?5), run_after = ?3, status = CASE WHEN EXISTS
               (SELECT 1 FROM renders r WHERE r.id = ?5 AND r.status IN ('queued', 'running'))
             THEN 'waiting_for_child' ELSE 'queued' END"
                .into(),
            Some(render_id.clone()),
        ),
        Finish::WaitForHuman { prompt } => (
            "waiting_on = ?5, run_after = ?3, status = CASE WHEN human_answer IS NULL THEN 'waiting_for_human' ELSE 'queued' END"
                .into(),
            Some(prompt.clone()),
        ),
    }
}

/// A claim queued for the writer (see [`Sqlite::claim_jobs`]).
pub(crate) struct Claim {
    now: i64,
    max: u32,
    lease_token: String,
    lease_ms: i64,
    default_cap: u32,
}

/// [`Sqlite::claim_jobs`] on the writer's connection, inside the batch's transaction.
pub(super) fn claim_on(conn: &Connection, claim: &Claim) -> rusqlite::Result<Vec<JobRow>> {
    let mut statement = conn.prepare_cached(&format!(
                "WITH RECURSIVE waiting(customer_id) AS (
                    SELECT MIN(customer_id) FROM jobs WHERE status = 'queued'
                    UNION ALL
                    SELECT (SELECT MIN(customer_id) FROM jobs WHERE status = 'queued' AND customer_id > w.customer_id)
                    FROM waiting w WHERE w.customer_id IS NOT NULL
                 ), shares AS MATERIALIZED (
                    SELECT w.customer_id,
                           (SELECT COUNT(*) FROM jobs r WHERE r.customer_id = w.customer_id AND r.status = 'running') AS running,
                           COALESCE((SELECT max_concurrent_jobs FROM customers c WHERE c.id = w.customer_id), ?3) AS cap,
                           COALESCE((SELECT MAX(l.started_at) FROM jobs l WHERE l.customer_id = w.customer_id), 0) AS served
                    FROM waiting w WHERE w.customer_id IS NOT NULL
                 ), offered AS (
                    SELECT j.id, j.run_after, s.cap, s.served,
                           s.running + ROW_NUMBER() OVER (PARTITION BY j.customer_id ORDER BY j.run_after, j.id) AS turn
                    FROM shares s JOIN jobs j ON j.id IN (
                        SELECT q.id FROM jobs q WHERE q.customer_id = s.customer_id AND q.status = 'queued' AND q.run_after <= ?1
                        ORDER BY q.run_after, q.id
                        LIMIT (SELECT CAST(COALESCE(MAX(0, MIN(?2, MAX(cap - running))), 0) AS INTEGER) FROM shares))
                    WHERE s.running < s.cap
                 )
                 UPDATE jobs SET status = 'running', lease_token = ?4, lease_expires_at = ?1 + ?5, attempt = attempt + 1,
                        started_at = COALESCE(started_at, ?1), updated_at = ?1
                 WHERE id IN (SELECT id FROM offered WHERE turn <= cap ORDER BY turn, served, run_after LIMIT ?2)
                 RETURNING {JOB_COLUMNS}, EXISTS (SELECT 1 FROM job_journal WHERE job_id = jobs.id) AS journaled"
            ))?;
    let rows = statement.query_map(
        params![claim.now, i64::from(claim.max), i64::from(claim.default_cap), claim.lease_token, claim.lease_ms],
        |row| Ok(JobRow { journaled: Some(row.get(JOB_FIELDS)?), ..JobRow::from_direct(row)? }),
    )?;
    rows.collect()
}

/// A lease renewal queued for the writer (see [`Sqlite::heartbeat`]).
pub(crate) struct LeaseRenewal {
    job_id: String,
    lease_token: String,
    expires_at: i64,
}

/// [`Sqlite::heartbeat`] on the writer's connection: `None` if the lease is gone, else whether
/// cancellation was requested.
pub(super) fn heartbeat_on(conn: &Connection, renewal: &LeaseRenewal) -> rusqlite::Result<Option<bool>> {
    conn.prepare_cached(
        "UPDATE jobs SET lease_expires_at = ?1 WHERE id = ?2 AND lease_token = ?3 AND status = 'running'
         RETURNING cancel_requested",
    )?
    .query_row(params![renewal.expires_at, renewal.job_id, renewal.lease_token], |r| r.get::<_, i64>(0))
    .optional()
    .map(|cancel| cancel.map(|c| c != 0))
}

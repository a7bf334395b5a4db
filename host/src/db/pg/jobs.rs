//! Postgres twin of the SQLite `jobs`: creation (idempotent), reads for the API, and the
//! worker's lifecycle — claim, heartbeat, finish, retry, suspend, wake. Every worker write
//! still checks the lease token in its own statement (Postgres re-checks the WHERE after a row
//! wait, so a stale run never overwrites the current one). Where SQLite's single writer made a
//! read-then-write atomic, a lock does here, always in one order: customers, then jobs
//! (descendants before ancestors: a child's id extends its parent's, so `ORDER BY id DESC`),
//! then holds and renders. Job rows are locked `NO KEY UPDATE` (what an UPDATE of them takes):
//! inserts that reference a job (events, holds, children) are never held up by it.

use crate::db::billing::LedgerRow;
use crate::db::holds::HoldRow;
use crate::db::jobs::{CpuCharge, Finish, Inserted, JobRow, NewJob};
use crate::db::{DbError, month_start_ms, now_ms};
use sqlx::{FromRow, PgConnection, Row};

pub(super) const FINISHED: &str = "('succeeded', 'failed', 'cancelled')";

/// A job (`$1`) and all its descendants: the head of a statement on the tree. `$1` takes the
/// collation of the id columns (`COLLATE "C"`, as SQLite compares), which a recursive query
/// needs on both of its terms.
const TREE: &str = "WITH RECURSIVE tree(id) AS (SELECT $1::TEXT COLLATE \"C\" UNION ALL SELECT j.id FROM jobs j JOIN tree t ON j.parent_job_id = t.id)";

impl super::Pg {
    /// Postgres twin of `Sqlite::insert_job`: insert a job; with an idempotency key already
    /// used, return the original job instead. Committed with the other inserts queued on this
    /// host meanwhile (see `insert_batches`), which tell every host a job is due (see
    /// `signals::JobDueNotices`): the caller wakes only its own process.
    pub async fn insert_job(&self, job: &NewJob) -> Result<Inserted, DbError> {
        self.inserts.insert(&self.pool, job.clone()).await
    }

    pub async fn job(&self, id: &str) -> Result<Option<JobRow>, DbError> {
        sqlx::query_as("SELECT * FROM jobs WHERE id = $1").bind(id).fetch_optional(&self.pool).await
    }

    /// Postgres twin of `Sqlite::customer_job`: a customer's job of a template; `None` for
    /// anyone else's.
    pub async fn customer_job(
        &self,
        customer_id: &str,
        template_id: &str,
        id: &str,
    ) -> Result<Option<JobRow>, DbError> {
        sqlx::query_as("SELECT * FROM jobs WHERE id = $1 AND customer_id = $2 AND template_id = $3")
            .bind(id)
            .bind(customer_id)
            .bind(template_id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Postgres twin of `Sqlite::customer_job_with_billing`: a customer's job with its charges
    /// and holds, in one round trip (a status poll's whole cost): the two lists come back as
    /// JSON text beside the job's columns, one statement, so one snapshot.
    #[allow(clippy::type_complexity)]
    pub async fn customer_job_with_billing(
        &self,
        customer_id: &str,
        template_id: &str,
        id: &str,
    ) -> Result<Option<(JobRow, Vec<LedgerRow>, Vec<HoldRow>)>, DbError> {
        let found = sqlx::query(
            "SELECT j.*,
                (SELECT COALESCE(json_agg(json_build_object('id', b.id, 'customer_id', b.customer_id,
                        'job_id', b.job_id, 'template_id', b.template_id, 'event_type', b.event_type,
                        'provider', b.provider, 'model', b.model, 'metadata', b.metadata, 'created_at', b.created_at,
                        'effect_key', b.effect_key, 'cost_nusd', b.cost_nusd, 'charge_nusd', b.charge_nusd)
                        ORDER BY b.id), '[]')::TEXT
                 FROM billing_events b WHERE b.job_id = j.id) AS ledger_json,
                (SELECT COALESCE(json_agg(json_build_object('effect_key', h.effect_key, 'kind', h.kind,
                        'status', h.status, 'held_nusd', h.held_nusd, 'captured_nusd', h.captured_nusd,
                        'created_at', h.created_at, 'settled_at', h.settled_at) ORDER BY h.id), '[]')::TEXT
                 FROM billing_holds h WHERE h.job_id = j.id) AS holds_json
             FROM jobs j WHERE j.id = $1 AND j.customer_id = $2 AND j.template_id = $3",
        )
        .bind(id)
        .bind(customer_id)
        .bind(template_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = found else { return Ok(None) };
        let job = JobRow::from_row(&row)?;
        let ledger_json: String = row.try_get("ledger_json")?;
        let holds_json: String = row.try_get("holds_json")?;
        let parse = |what: &str, e: serde_json::Error| DbError::Protocol(format!("the job's {what}: {e}"));
        let ledger = serde_json::from_str(&ledger_json).map_err(|e| parse("charges", e))?;
        let holds = serde_json::from_str(&holds_json).map_err(|e| parse("holds", e))?;
        Ok(Some((job, ledger, holds)))
    }

    /// Postgres twin of `Sqlite::list_jobs`: a customer's jobs of a template, newest first,
    /// paged by id (`before`).
    pub async fn list_jobs(
        &self,
        customer_id: &str,
        template_id: &str,
        status: Option<&str>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<JobRow>, DbError> {
        sqlx::query_as(
            "SELECT * FROM jobs WHERE customer_id = $1 AND template_id = $2 AND ($3::TEXT IS NULL OR status = $3)
               AND ($4::TEXT IS NULL OR id < $4) ORDER BY id DESC LIMIT $5",
        )
        .bind(customer_id)
        .bind(template_id)
        .bind(status)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
    }

    /// Postgres twin of `Sqlite::claim_jobs`: claim up to `max` due jobs for one worker,
    /// round-robin across customers, oldest `run_after` first within each, never taking a
    /// customer past its concurrency cap (`customers.max_concurrent_jobs`, else `default_cap`).
    pub async fn claim_jobs(
        &self,
        max: u32,
        lease_token: &str,
        lease_ms: i64,
        default_cap: u32,
    ) -> Result<Vec<JobRow>, DbError> {
        let now = now_ms();
        // Nothing due (an idle host's poll, or a wake-up another worker answered first): no
        // turn on the claim lock. One indexed probe.
        let due: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'queued' AND run_after <= $1)")
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
        if !due {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin_with(super::BEGIN_GENERIC).await?;
        // Caps count running jobs, and only a claim makes a job running: claims of every host
        // take turns on this one lock (held to the commit), and the claim statement below
        // starts after it is granted, so its snapshot sees every earlier claim. A claim is one
        // short statement; that keeps "never past the cap" true across hosts, as SQLite's
        // single writer did. Finishes that free a slot meanwhile only make the count high
        // (one claim too few, never one too many).
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('vidfarm:claim_jobs', 0))")
            .execute(&mut *tx)
            .await?;
        // The fair order is the SQLite query's, unchanged: every customer with queued jobs
        // (a skip scan over `jobs_queue_by_customer`) offers its oldest due ones, up to what its
        // cap leaves free; a job's turn is its customer's running jobs plus its place in that
        // customer's queue, the lowest turns go first, and on a tie the customer whose last job
        // started longest ago (then the older job, then the id: only to make ties
        // deterministic). So a customer with 1,000 queued jobs never delays another customer
        // who has fewer jobs running: the next free slot is theirs.
        // Postgres allows no row lock beside a window function: the order is computed in the
        // CTEs, and the chosen rows are locked in a CTE of their own, `SKIP LOCKED` (a row
        // being cancelled, say, is left for the next claim) with `status` re-checked on the
        // row's latest version. `NO KEY UPDATE` is the lock the UPDATE takes anyway; a plain
        // `FOR UPDATE` would also skip jobs that an insert referencing them holds `KEY SHARE`.
        // Both `shares` and `locked` are MATERIALIZED, and the UPDATE joins `locked`: written
        // as `id IN (SELECT … SKIP LOCKED)`, a planner that believed the queue nearly empty
        // (statistics lag a burst of creates) re-ran the locking sub-select for every queued
        // row, and one claim took 54 s with 1,700 jobs queued, holding the claim lock.
        // Two more shapes keep a claim's reads to the rows it takes, whatever the statistics
        // say: a customer's queue is read in the order of `jobs_queue_by_customer`
        // (`run_after`, then the index's own order: sorting by id too made the planner read and
        // sort the whole queue, 3,000 rows for 64), and the picked rows are locked by their ids
        // (`= ANY`: a join let it hash every queued row). A customer offers no more jobs than
        // its cap leaves free (a later one's turn would pass the cap and never be picked): with
        // 500 customers waiting, each 2 below a cap of 4, a claim read 1,000 queued rows
        // instead of 19,000, and took 15–16 ms instead of 37–50 (BENCHMARKS.md, "Session 22"). `WITH TIES`
        // (PostgreSQL 13) offers every job that shares the last `run_after`, so the turns still
        // go by id among them, as `ROW_NUMBER` orders them.
        // `journaled` reads the statement's snapshot, and it holds every append an earlier
        // lease holder made: an append locks the job row `FOR SHARE` under its lease check, so
        // the update that took the lease away (and queued the job) committed after it.
        let claimed = sqlx::query_as(
            "WITH RECURSIVE waiting(customer_id) AS (
                SELECT MIN(customer_id) FROM jobs WHERE status = 'queued'
                UNION ALL
                SELECT (SELECT MIN(customer_id) FROM jobs WHERE status = 'queued' AND customer_id > w.customer_id)
                FROM waiting w WHERE w.customer_id IS NOT NULL
             ), shares AS MATERIALIZED (
                SELECT w.customer_id,
                       (SELECT COUNT(*) FROM jobs r WHERE r.customer_id = w.customer_id AND r.status = 'running') AS running,
                       COALESCE((SELECT max_concurrent_jobs FROM customers c WHERE c.id = w.customer_id), $3::BIGINT) AS cap,
                       COALESCE((SELECT MAX(l.started_at) FROM jobs l WHERE l.customer_id = w.customer_id), 0) AS served
                FROM waiting w WHERE w.customer_id IS NOT NULL
             ), offered AS (
                SELECT q.id, q.run_after, s.cap, s.served,
                       s.running + ROW_NUMBER() OVER (PARTITION BY s.customer_id ORDER BY q.run_after, q.id) AS turn
                FROM shares s CROSS JOIN LATERAL (
                    SELECT j.id, j.run_after FROM jobs j
                    WHERE j.customer_id = s.customer_id AND j.status = 'queued' AND j.run_after <= $1::BIGINT
                    ORDER BY j.run_after FETCH FIRST (GREATEST(0, LEAST($2::BIGINT, s.cap - s.running))) ROWS WITH TIES) q
                WHERE s.running < s.cap
             ), picked AS (
                SELECT id FROM offered WHERE turn <= cap ORDER BY turn, served, run_after, id LIMIT $2::BIGINT
             ), locked AS MATERIALIZED (
                SELECT k.id FROM jobs k WHERE k.id = ANY(ARRAY(SELECT id FROM picked)) AND k.status = 'queued'
                FOR NO KEY UPDATE OF k SKIP LOCKED
             )
             UPDATE jobs SET status = 'running', lease_token = $4, lease_expires_at = $1 + $5::BIGINT,
                    attempt = attempt + 1, started_at = COALESCE(started_at, $1), updated_at = $1
             FROM locked WHERE jobs.id = locked.id AND jobs.status = 'queued'
             RETURNING jobs.*, EXISTS (SELECT 1 FROM job_journal l WHERE l.job_id = jobs.id) AS journaled",
        )
        .bind(now)
        .bind(i64::from(max))
        .bind(i64::from(default_cap))
        .bind(lease_token)
        .bind(lease_ms)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Postgres twin of `Sqlite::heartbeat`: extend a lease. `None`: the lease is lost
    /// (expired and re-claimed, or the job ended). `Some(true)`: cancellation was requested.
    /// One statement guarded by the lease token: safe as it is.
    pub async fn heartbeat(&self, job_id: &str, lease_token: &str, lease_ms: i64) -> Result<Option<bool>, DbError> {
        let cancel: Option<i64> = sqlx::query_scalar(
            "UPDATE jobs SET lease_expires_at = $1 WHERE id = $2 AND lease_token = $3 AND status = 'running'
             RETURNING cancel_requested",
        )
        .bind(now_ms() + lease_ms)
        .bind(job_id)
        .bind(lease_token)
        .fetch_optional(&self.pool)
        .await?;
        Ok(cancel.map(|c| c != 0))
    }

    /// Postgres twin of `Sqlite::finish_run`: write how a run ended, if the lease is still
    /// ours (false otherwise: a stale run), in one transaction with its holds' settlement and
    /// its CPU charge; committed with the other run ends queued at the same time (see
    /// `group_commit`). The batch tells every host that jobs may be due (see
    /// `signals::JobDueNotices`): the caller wakes only its own process.
    pub async fn finish_run(
        &self,
        job_id: &str,
        lease_token: &str,
        fuel: u64,
        finish: &Finish,
        cpu: Option<CpuCharge>,
    ) -> Result<bool, DbError> {
        // A run never ends before its events are stored (see `events::events_settled`).
        super::events::events_settled(job_id, lease_token, true).await?;
        let end = super::group_commit::RunEnd {
            job_id: job_id.to_string(),
            lease_token: lease_token.to_string(),
            fuel,
            finish: finish.clone(),
            cpu,
        };
        self.writes.write(super::group_commit::Write::RunEnd(end)).await.map(|outcome| outcome.written())
    }

    /// Postgres twin of `Sqlite::cancel_job`: cancel a job and its unfinished descendants:
    /// waiting and queued ones at once, running ones by request (their worker stops them at
    /// the next yield or host call). Returns the job after the change, or `None` if it was
    /// already finished.
    pub async fn cancel_job(&self, job_id: &str) -> Result<Option<JobRow>, DbError> {
        let mut tx = self.pool.begin().await?;
        let job = cancel_job_on(&mut tx, job_id).await?;
        tx.commit().await?;
        Ok(job)
    }

    /// Postgres twin of `Sqlite::resume_job`: answer a job waiting for a human; `None` if it
    /// is not waiting for one. One statement: the status check is re-done after any row wait.
    pub async fn resume_job(&self, job_id: &str, answer: &str) -> Result<Option<JobRow>, DbError> {
        sqlx::query_as(
            "UPDATE jobs SET human_answer = $1, status = 'queued', run_after = $2, waiting_on = NULL, updated_at = $2
             WHERE id = $3 AND status = 'waiting_for_human' RETURNING *",
        )
        .bind(answer)
        .bind(now_ms())
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Postgres twin of `Sqlite::sweep_orphans`: re-queue running jobs whose lease expired
    /// (their worker died); fail those that have already lost more workers than their retries
    /// allow. Returns how many were touched. Many hosts may sweep at once: each sweep locks
    /// the jobs it changes `SKIP LOCKED` and re-checks them on their latest version, so a job
    /// is failed or re-queued (and its `retries` counted) once, and no sweep waits on another.
    pub async fn sweep_orphans(&self) -> Result<u64, DbError> {
        let now = now_ms();
        let error = r#"{"code":"worker_lost","message":"the worker running this job stopped too many times"}"#;
        // Failing a job settles its holds in the same transaction, like any other end. The
        // candidates are read first without a lock (usually there are none: one indexed read),
        // so their customers can be locked before the jobs (customers before jobs).
        let worn_out: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, customer_id FROM jobs WHERE status = 'running' AND lease_expires_at < $1
               AND retries >= max_retries",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut failed = 0;
        if !worn_out.is_empty() {
            let (ids, customers): (Vec<String>, Vec<String>) = worn_out.into_iter().unzip();
            let mut tx = self.pool.begin().await?;
            lock_customers(&mut tx, &customers).await?;
            // Locked in a MATERIALIZED CTE and joined (see `claim_jobs`: a locking sub-select
            // under `IN` may be re-run for every candidate row).
            let ended: Vec<String> = sqlx::query_scalar(
                "WITH locked AS MATERIALIZED (
                    SELECT k.id FROM jobs k WHERE k.id = ANY($3) AND k.status = 'running' AND k.lease_expires_at < $2
                      AND k.retries >= k.max_retries
                    ORDER BY k.id DESC FOR NO KEY UPDATE SKIP LOCKED)
                 UPDATE jobs SET status = 'failed', error = $1, lease_token = NULL, lease_expires_at = NULL,
                    finished_at = $2, updated_at = $2
                 FROM locked
                 WHERE jobs.id = locked.id AND status = 'running' AND lease_expires_at < $2 AND retries >= max_retries
                 RETURNING jobs.id",
            )
            .bind(error)
            .bind(now)
            .bind(ids.as_slice())
            .fetch_all(&mut *tx)
            .await?;
            for id in &ended {
                super::holds::settle_job_on(&mut tx, id).await?;
            }
            tx.commit().await?;
            failed = ended.len() as u64;
        }
        // `retries < max_retries`: a worn-out job skipped above (locked at that moment) waits
        // for the next sweep to fail it instead of being re-queued past its retries here.
        let requeued = sqlx::query(
            "WITH locked AS MATERIALIZED (
                SELECT k.id FROM jobs k WHERE k.status = 'running' AND k.lease_expires_at < $1
                  AND k.retries < k.max_retries
                FOR NO KEY UPDATE SKIP LOCKED)
             UPDATE jobs SET status = 'queued', lease_token = NULL, lease_expires_at = NULL, retries = retries + 1,
                run_after = $1, updated_at = $1
             FROM locked
             WHERE jobs.id = locked.id AND status = 'running' AND lease_expires_at < $1 AND retries < max_retries",
        )
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(failed + requeued.rows_affected())
    }

    /// Postgres twin of `Sqlite::sweep_finished`: delete jobs (with their events and journals)
    /// finished before `cutoff_ms`. One statement; rows another sweep is deleting are skipped,
    /// not waited for.
    pub async fn sweep_finished(&self, cutoff_ms: i64) -> Result<u64, DbError> {
        let done = sqlx::query(&format!(
            "WITH gone AS MATERIALIZED (
                SELECT j.id FROM jobs j WHERE j.finished_at < $1 AND j.status IN {FINISHED}
                  AND NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent_job_id = j.id)
                FOR UPDATE OF j SKIP LOCKED)
             DELETE FROM jobs USING gone WHERE jobs.id = gone.id"
        ))
        .bind(cutoff_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Job counts by status (for /metrics).
    pub async fn job_counts(&self) -> Result<Vec<(String, i64)>, DbError> {
        sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetch_all(&self.pool).await
    }

    /// A job and all its descendants' ids.
    pub async fn job_tree(&self, job_id: &str) -> Result<Vec<String>, DbError> {
        sqlx::query_scalar(&format!("{TREE} SELECT id FROM tree")).bind(job_id).fetch_all(&self.pool).await
    }
}

/// Lock customer rows for the rest of the transaction: every money decision of a customer
/// (a reservation, a charge against the limit, a settlement) waits for the one before it, on
/// any host. In id order, so transactions locking several never deadlock. `NO KEY UPDATE`
/// excludes every other `FOR UPDATE`/`NO KEY UPDATE` of the row just the same, but lets
/// foreign-key checks (`KEY SHARE`) through: a job ending elsewhere inserts a webhook delivery
/// that references the customer while it holds its job row, which we may be waiting for.
pub(super) async fn lock_customers(conn: &mut PgConnection, ids: &[String]) -> Result<(), DbError> {
    sqlx::query("SELECT 1 FROM customers WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(ids)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// [`Pg::cancel_job`](super::Pg) on the caller's transaction.
pub(super) async fn cancel_job_on(conn: &mut PgConnection, job_id: &str) -> Result<Option<JobRow>, DbError> {
    let now = now_ms();
    // Relies on the tree not changing under us while each job is cancelled and its holds
    // settled: the customers first (settling writes ledger rows), then the unfinished jobs of
    // the tree, descendants first (the order in which a child's end locks its parent through
    // the wake-up trigger). The status returned is each row's latest, re-checked once locked.
    sqlx::query(&format!(
        "{TREE} SELECT 1 FROM customers c WHERE c.id IN (SELECT j.customer_id FROM jobs j WHERE j.id IN (SELECT id FROM tree))
         ORDER BY c.id FOR NO KEY UPDATE OF c"
    ))
    .bind(job_id)
    .execute(&mut *conn)
    .await?;
    let tree: Vec<(String, String)> = sqlx::query_as(&format!(
        "{TREE} SELECT j.id, j.status FROM jobs j WHERE j.id IN (SELECT id FROM tree) AND j.status NOT IN {FINISHED}
         ORDER BY j.id DESC FOR NO KEY UPDATE OF j"
    ))
    .bind(job_id)
    .fetch_all(&mut *conn)
    .await?;
    if !tree.iter().any(|(id, _)| id == job_id) {
        return Ok(None);
    }
    let error = r#"{"code":"cancelled","message":"the job was cancelled"}"#;
    for (id, status) in &tree {
        if status == "running" {
            sqlx::query("UPDATE jobs SET cancel_requested = 1, updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut *conn)
                .await?;
        } else {
            sqlx::query(
                "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, error = $1, waiting_on = NULL,
                 finished_at = $2, updated_at = $2 WHERE id = $3",
            )
            .bind(error)
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            super::holds::settle_job_on(&mut *conn, id).await?;
        }
    }
    sqlx::query_as("SELECT * FROM jobs WHERE id = $1").bind(job_id).fetch_one(&mut *conn).await.map(Some)
}

/// [`Pg::insert_job`](super::Pg) on the caller's transaction.
pub(super) async fn insert_job_on(conn: &mut PgConnection, job: &NewJob) -> Result<Inserted, DbError> {
    let now = now_ms();
    let month = month_start_ms();
    // A reservation is checked against what the customer may still be charged and written in
    // one statement, which relies on no other money decision of the customer committing in
    // between: lock the customer first. A job without a reservation checks nothing: no lock.
    if job.reserve_nusd > 0 {
        lock_customers(&mut *conn, std::slice::from_ref(&job.customer_id)).await?;
    }
    // `ON CONFLICT DO NOTHING` covers the id and the partial idempotency index; a conflicting
    // insert still uncommitted elsewhere is waited for, then found below.
    let headroom = super::limits::headroom("$2", "NULL", "$17");
    let inserted: Option<JobRow> = sqlx::query_as(&format!(
        "INSERT INTO jobs (id, customer_id, template_id, template_version, template_digest, operation, workflow,
            tracer, status, payload, config, webhook_url, parent_job_id, idempotency_key, max_retries, run_after,
            start_ms, created_at, updated_at, reserved_nusd, reservation_id, request_id, traceparent, retry_of)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9,
            COALESCE($10::TEXT, (SELECT config FROM template_configs WHERE customer_id = $2 AND template_id = $3), '{{}}'),
            $11, $12, $13, $14, $15, $15, $15, $15, $16, CASE WHEN $16 > 0 THEN 'res_' || $1 END, $18, $19, $20
         WHERE $16::BIGINT <= 0 OR $16 <= {headroom}
         ON CONFLICT DO NOTHING RETURNING *"
    ))
    .bind(&job.id)
    .bind(&job.customer_id)
    .bind(&job.template_id)
    .bind(&job.template_version)
    .bind(&job.template_digest)
    .bind(&job.operation)
    .bind(&job.workflow)
    .bind(&job.tracer)
    .bind(&job.payload)
    .bind(&job.config)
    .bind(&job.webhook_url)
    .bind(&job.parent_job_id)
    .bind(&job.idempotency_key)
    .bind(i64::from(job.max_retries))
    .bind(now)
    .bind(job.reserve_nusd)
    .bind(month)
    .bind(&job.request_id)
    .bind(&job.traceparent)
    .bind(&job.retry_of)
    .fetch_optional(&mut *conn)
    .await?;
    match inserted {
        Some(row) => Ok(Inserted::Created(row)),
        None => not_inserted(conn, job).await,
    }
}

/// Why `job` was not inserted: a conflict (the same id: a replayed child enqueue; or the same
/// idempotency key), or its reservation did not fit the customer's limit. A new statement: a
/// new snapshot, which sees the conflicting row once its insert has committed.
pub(super) async fn not_inserted(conn: &mut PgConnection, job: &NewJob) -> Result<Inserted, DbError> {
    let month = month_start_ms();
    let existing: Option<JobRow> = sqlx::query_as(
        "SELECT * FROM jobs WHERE id = $1 OR (customer_id = $2 AND template_id = $3 AND idempotency_key = $4)",
    )
    .bind(&job.id)
    .bind(&job.customer_id)
    .bind(&job.template_id)
    .bind(&job.idempotency_key)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = existing {
        return Ok(Inserted::Existing(row));
    }
    let headroom: Option<i64> =
        sqlx::query_scalar(&format!("SELECT {}::BIGINT", super::limits::headroom("$1", "NULL", "$2")))
            .bind(&job.customer_id)
            .bind(month)
            .fetch_one(&mut *conn)
            .await?;
    Ok(Inserted::OverLimit { headroom_nusd: headroom.unwrap_or(0).max(0) })
}

//! Postgres twin of `db/renders.rs`. Ending a render wakes its job and ending a job cancels its
//! unfinished renders through the PL/pgSQL twins of the triggers `renders_wake_job` and
//! `jobs_cancel_renders`: nothing here writes what they write.
//!
//! Lock order, as everywhere: a customer's row, then a job's, then its renders and holds. A
//! job's end (cancel) locks the job, then its renders (trigger), then its holds (settlement);
//! a render's end locks the same rows in the same order before it writes.

use crate::db::renders::{NewRender, RenderEnd, RenderRow};
use crate::db::{DbError, now_ms};

/// Serialises render claims across hosts (see `claim_render`).
const CLAIM_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended('vidfarm:renders:claim', 0))";

/// The render `r` is due at `$1`: queued, or running under a lease that expired.
fn due(r: &str) -> String {
    format!("({r}.status = 'queued' OR ({r}.status = 'running' AND {r}.lease_expires_at < $1))")
}

impl super::Pg {
    /// The render of the job's effect `seq`, created (queued) when there is none yet. A racing
    /// create of the same render waits for the other's commit, then does nothing.
    pub async fn create_render(&self, render: &NewRender<'_>) -> Result<RenderRow, DbError> {
        let now = now_ms();
        let id = format!("{}_r{}", render.job_id, render.seq);
        sqlx::query(
            "INSERT INTO renders (id, job_id, seq, customer_id, template_id, kind, backend, request,
                output_key, status, created_at, updated_at, cost_nusd_per_second, margin)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', $10, $10, $11, $12)
             ON CONFLICT DO NOTHING",
        )
        .bind(&id)
        .bind(render.job_id)
        .bind(i64::from(render.seq))
        .bind(render.customer_id)
        .bind(render.template_id)
        .bind(render.kind)
        .bind(render.backend)
        .bind(render.request)
        .bind(render.output_key)
        .bind(now)
        .bind(render.cost_nusd_per_second)
        .bind(render.margin)
        .execute(&self.pool)
        .await?;
        sqlx::query_as("SELECT * FROM renders WHERE id = $1").bind(&id).fetch_one(&self.pool).await
    }

    /// Postgres twin of `Sqlite::claim_render`: the same order (fewest renders running, then
    /// served least recently, then oldest), caps and attempt limit.
    ///
    /// The caps count renders running as of the claim's snapshot, true only if no other claim
    /// commits meanwhile: claims are serialised across hosts by a transaction-scoped advisory
    /// lock (its own statement, so the next statements' snapshots see the previous claimer's
    /// commit; released at commit, two short statements later). The order uses only scalar
    /// subqueries, so the candidate is locked in the same `SELECT … FOR UPDATE SKIP LOCKED`:
    /// the first render in fair order no other writer holds, re-checked as it is now.
    pub async fn claim_render(
        &self,
        token: &str,
        lease_ms: i64,
        max_attempts: i64,
        default_cap: i64,
        generations: bool,
    ) -> Result<Option<RenderRow>, DbError> {
        let now = now_ms();
        // Nothing due (every worker polls several times a second): no transaction and no turn
        // on the claim lock. One probe of `renders_due`.
        let any_due: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM renders WHERE renders.status IN ('queued', 'running') AND {})",
            due("renders")
        ))
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        if !any_due {
            return Ok(None);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(CLAIM_LOCK).execute(&mut *tx).await?;
        // Failing a render wakes its job (trigger): its job's row first (jobs before renders),
        // children before parents as everywhere, and never waited for while this claim holds
        // the queue's lock: a job another transaction holds (a cancel of its tree, say) keeps
        // its render for the next claim.
        let exhausted = format!("{} AND renders.attempts >= $2", due("renders"));
        let locked: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT id FROM jobs WHERE id IN (SELECT renders.job_id FROM renders WHERE {exhausted})
             ORDER BY id DESC FOR NO KEY UPDATE SKIP LOCKED"
        ))
        .bind(now)
        .bind(max_attempts)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "UPDATE renders SET status = 'failed', lease_token = NULL, updated_at = $1, finished_at = $1,
                error = json_build_object('kind', 'failed',
                                          'message', 'the render was interrupted ' || attempts::TEXT || ' times')::TEXT
             WHERE {exhausted} AND renders.job_id = ANY($3)"
        ))
        .bind(now)
        .bind(max_attempts)
        .bind(&locked)
        .execute(&mut *tx)
        .await?;
        // Renders and generations are claimed apart, each into its own slots (see SQLite's).
        let running = "(SELECT COUNT(*) FROM renders x WHERE x.customer_id = r.customer_id
                          AND x.status = 'running' AND x.lease_expires_at >= $1
                          AND (x.kind = 'generation') = $5)";
        let claimed = sqlx::query_as(&format!(
            "UPDATE renders SET status = 'running', lease_token = $2, lease_expires_at = $1 + $3,
                attempts = attempts + 1, started_at = COALESCE(started_at, $1), updated_at = $1
             WHERE id = (SELECT r.id FROM renders r WHERE {due_r} AND (r.kind = 'generation') = $5
                           AND {running} < CASE WHEN $5 THEN $4
                                                ELSE COALESCE((SELECT c.max_concurrent_renders FROM customers c
                                                               WHERE c.id = r.customer_id), $4) END
                         ORDER BY {running},
                                  (SELECT MAX(y.started_at) FROM renders y WHERE y.customer_id = r.customer_id
                                     AND (y.kind = 'generation') = $5)
                                    NULLS FIRST,
                                  r.created_at
                         LIMIT 1
                         FOR UPDATE OF r SKIP LOCKED)
             RETURNING *",
            due_r = due("r"),
        ))
        .bind(now)
        .bind(token)
        .bind(lease_ms)
        .bind(default_cap)
        .bind(generations)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Extend a render's lease and record its progress; false when the render is no longer
    /// this worker's to run (cancelled with its job, or re-claimed). One statement: the lease
    /// check is re-done on the row as it is when its lock is ours.
    pub async fn heartbeat_render(
        &self,
        id: &str,
        token: &str,
        lease_ms: i64,
        progress: f64,
        output_seconds: f64,
    ) -> Result<bool, DbError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE renders SET lease_expires_at = $1, progress = GREATEST(progress, $2),
                expected_seconds = GREATEST(expected_seconds, $3), updated_at = $4
             WHERE id = $5 AND lease_token = $6 AND status = 'running'",
        )
        .bind(now + lease_ms)
        .bind(progress)
        .bind(output_seconds)
        .bind(now)
        .bind(id)
        .bind(token)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Show a render's progress on its waiting job.
    pub async fn set_render_progress(&self, job_id: &str, progress: f64, message: &str) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE jobs SET progress = GREATEST(progress, $1), progress_message = $2, updated_at = $3
             WHERE id = $4 AND status = 'waiting_for_child'",
        )
        .bind(progress)
        .bind(message)
        .bind(now_ms())
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Remember the remote render's id (Lambda) while the lease is ours.
    pub async fn set_render_external_id(&self, id: &str, token: &str, external_id: &str) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE renders SET external_id = $1 WHERE id = $2 AND lease_token = $3 AND status = 'running'",
        )
        .bind(external_id)
        .bind(id)
        .bind(token)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Postgres twin of `Sqlite::release_render`: give a render back to the queue at once.
    pub async fn release_render(&self, id: &str, token: &str) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE renders SET lease_expires_at = $1, updated_at = $2
             WHERE id = $3 AND lease_token = $4 AND status = 'running'",
        )
        .bind(now_ms() - 1)
        .bind(now_ms())
        .bind(id)
        .bind(token)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Postgres twin of `Sqlite::finish_render`: record how a render ended (and its charge,
    /// keyed by the job's effect so it is written once), if it is still this worker's; false
    /// otherwise.
    pub async fn finish_render(&self, render: &RenderRow, token: &str, end: RenderEnd<'_>) -> Result<bool, DbError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let effect_key = format!("{}:{}", render.job_id, render.seq);
        // Relies on three row locks, taken in the global order before anything is written: the
        // customer's (a charge written without a hold is checked against their limit), the
        // job's (its end settles this render's hold; this render's end wakes it), the render's
        // (the lease checks of the hold updates and the final update see the same row).
        if matches!(end, RenderEnd::Succeeded { .. }) {
            super::limits::lock_customer(&mut tx, &render.customer_id).await?;
        }
        sqlx::query("SELECT 1 FROM jobs WHERE id = $1 FOR NO KEY UPDATE")
            .bind(&render.job_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT 1 FROM renders WHERE id = $1 FOR UPDATE").bind(&render.id).execute(&mut *tx).await?;
        let (status, result, error) = match &end {
            RenderEnd::Succeeded { result, cost_nusd, metadata, default_margin, provider_model } => {
                // `trunc`: SQLite's CAST truncates a REAL, Postgres's rounds (a charge rounds up).
                sqlx::query(
                    "UPDATE billing_holds SET cost_nusd = $2, metadata = $3,
                        provider = COALESCE($7, provider), model = COALESCE($8, model),
                        charge_nusd = LEAST(held_nusd, trunc($2::DOUBLE PRECISION
                            * COALESCE((SELECT c.margin FROM customers c WHERE c.id = billing_holds.customer_id), $4)
                            + 0.999999)::BIGINT)
                     WHERE effect_key = $1 AND status = 'open'
                       AND EXISTS (SELECT 1 FROM renders WHERE id = $5 AND lease_token = $6 AND status = 'running')",
                )
                .bind(&effect_key)
                .bind(cost_nusd)
                .bind(metadata)
                .bind(default_margin)
                .bind(&render.id)
                .bind(token)
                .bind(provider_model.map(|(p, _)| p))
                .bind(provider_model.map(|(_, m)| m))
                .execute(&mut *tx)
                .await?;
                // A render queued before holds existed (an upgrade mid-render) has none: its
                // charge is written directly, capped at what the customer may still be charged.
                let headroom = super::limits::headroom("$1", "$2", "$9");
                sqlx::query(&format!(
                    "INSERT INTO billing_events (customer_id, job_id, template_id, event_type, cost_nusd,
                        charge_nusd, metadata, created_at, effect_key)
                     SELECT $1, $2, $3, 'render', $4,
                            GREATEST(0, LEAST(trunc($4::DOUBLE PRECISION
                                                    * COALESCE((SELECT margin FROM customers WHERE id = $1), $5)
                                                    + 0.999999)::BIGINT,
                                              {headroom})),
                            $6, $7, $8
                     WHERE NOT EXISTS (SELECT 1 FROM billing_holds WHERE effect_key = $8)
                     ON CONFLICT DO NOTHING"
                ))
                .bind(&render.customer_id)
                .bind(&render.job_id)
                .bind(&render.template_id)
                .bind(cost_nusd)
                .bind(default_margin)
                .bind(metadata)
                .bind(now)
                .bind(&effect_key)
                .bind(crate::db::month_start_ms())
                .execute(&mut *tx)
                .await?;
                ("succeeded", Some(*result), None)
            }
            RenderEnd::Failed { error, metadata, keep_noted_cost } => {
                let share = if *keep_noted_cost {
                    String::new()
                } else {
                    format!(", {}", super::holds::render_share_sql("$3"))
                };
                sqlx::query(&format!(
                    "UPDATE billing_holds SET metadata = $2{share}
                     WHERE effect_key = $1 AND status = 'open'
                       AND EXISTS (SELECT 1 FROM renders WHERE id = $3 AND lease_token = $4 AND status = 'running')",
                ))
                .bind(&effect_key)
                .bind(metadata)
                .bind(&render.id)
                .bind(token)
                .execute(&mut *tx)
                .await?;
                ("failed", None, Some(*error))
            }
        };
        let done = sqlx::query(
            "UPDATE renders SET status = $1, result = $2, error = $3,
                progress = CASE WHEN $1::TEXT = 'succeeded' THEN 1.0 ELSE progress END,
                lease_token = NULL, lease_expires_at = NULL, updated_at = $4, finished_at = $4
             WHERE id = $5 AND lease_token = $6 AND status = 'running'",
        )
        .bind(status)
        .bind(result)
        .bind(error)
        .bind(now)
        .bind(&render.id)
        .bind(token)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// A render by id.
    pub async fn render(&self, id: &str) -> Result<Option<RenderRow>, DbError> {
        sqlx::query_as("SELECT * FROM renders WHERE id = $1").bind(id).fetch_optional(&self.pool).await
    }
}

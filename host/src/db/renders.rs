//! Renders: created by a job's run (idempotent per effect), claimed by the render worker
//! under a lease, heartbeated, finished with the host's `render` charge noted on the render's
//! hold in one transaction (captured when the job journals the render's outcome).
//! Ending a render wakes its job (trigger `renders_wake_job`); ending a job cancels its
//! unfinished renders (trigger `jobs_cancel_renders`).

use super::{DbError, Sqlite, now_ms};

/// A render as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RenderRow {
    pub id: String,
    pub job_id: String,
    pub seq: i64,
    pub customer_id: String,
    pub template_id: String,
    pub kind: String,
    pub backend: String,
    pub request: String,
    pub output_key: String,
    pub status: String,
    pub progress: f64,
    pub attempts: i64,
    pub lease_token: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub external_id: Option<String>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub expected_seconds: f64,
    pub cost_nusd_per_second: f64,
    pub margin: f64,
}

/// What a run asks to render.
pub struct NewRender<'a> {
    pub job_id: &'a str,
    pub seq: u32,
    pub customer_id: &'a str,
    pub template_id: &'a str,
    pub kind: &'a str,
    pub backend: &'a str,
    pub request: &'a str,
    pub output_key: &'a str,
    /// The platform's cost per second of output, nano-USD, and the customer's margin, as the
    /// render's hold was placed with.
    pub cost_nusd_per_second: f64,
    pub margin: f64,
}

/// How a render ended. Either way the render's cost is noted on its hold (placed before it
/// was queued) and captured when the job journals the outcome: failed and timed-out renders
/// cost the share of the hold their progress reached.
pub enum RenderEnd<'a> {
    /// The WIT render-result as JSON, and the host's charge for it (cost in nano-USD,
    /// metadata; a generation's charge also names its provider and model).
    Succeeded {
        result: &'a str,
        cost_nusd: i64,
        metadata: &'a str,
        default_margin: f64,
        provider_model: Option<(&'a str, &'a str)>,
    },
    /// `{kind, message}`. A render cut short is charged the share its progress reached; a
    /// generation keeps the cost noted on its hold (`keep_noted_cost`): the clip's price once
    /// the provider accepted it, nothing if the provider failed it.
    Failed { error: &'a str, metadata: &'a str, keep_noted_cost: bool },
}

impl Sqlite {
    /// The render of the job's effect `seq`, created (queued) when there is none yet.
    pub async fn create_render(&self, render: &NewRender<'_>) -> Result<RenderRow, DbError> {
        let now = now_ms();
        let id = format!("{}_r{}", render.job_id, render.seq);
        sqlx::query(
            "INSERT OR IGNORE INTO renders (id, job_id, seq, customer_id, template_id, kind, backend, request,
                output_key, status, created_at, updated_at, cost_nusd_per_second, margin)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
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
        .bind(now)
        .bind(render.cost_nusd_per_second)
        .bind(render.margin)
        .execute(self.writer())
        .await?;
        sqlx::query_as("SELECT * FROM renders WHERE id = ?").bind(&id).fetch_one(self.writer()).await
    }

    /// Claim a due render: queued, or running under a lease that expired (its worker died).
    /// Round-robin across customers: the customer with the fewest renders running goes first,
    /// then the one served least recently (so with one slot, customers take turns), then the
    /// oldest render; none past its cap (`customers.max_concurrent_renders`,
    /// else `default_cap`). One already started `max_attempts` times fails instead.
    pub async fn claim_render(
        &self,
        token: &str,
        lease_ms: i64,
        max_attempts: i64,
        default_cap: i64,
        generations: bool,
    ) -> Result<Option<RenderRow>, DbError> {
        let now = now_ms();
        let due = "(status = 'queued' OR (status = 'running' AND lease_expires_at < ?1))";
        sqlx::query(&format!(
            "UPDATE renders SET status = 'failed', lease_token = NULL, updated_at = ?1, finished_at = ?1,
                error = json_object('kind', 'failed', 'message', 'the render was interrupted ' || attempts || ' times')
             WHERE {due} AND attempts >= ?2"
        ))
        .bind(now)
        .bind(max_attempts)
        .execute(self.writer())
        .await?;
        // Renders and generations are claimed apart, each into slots of its own: a generation
        // waits minutes on a provider and must not hold an FFmpeg or Chromium slot.
        let running = "(SELECT COUNT(*) FROM renders x WHERE x.customer_id = r.customer_id
                          AND x.status = 'running' AND x.lease_expires_at >= ?1
                          AND (x.kind = 'generation') = ?5)";
        sqlx::query_as(&format!(
            "UPDATE renders SET status = 'running', lease_token = ?2, lease_expires_at = ?1 + ?3,
                attempts = attempts + 1, started_at = COALESCE(started_at, ?1), updated_at = ?1
             WHERE id = (SELECT r.id FROM renders r WHERE {due} AND (r.kind = 'generation') = ?5
                           AND {running} < CASE WHEN ?5 THEN ?4
                                                ELSE COALESCE((SELECT max_concurrent_renders FROM customers c
                                                               WHERE c.id = r.customer_id), ?4) END
                         ORDER BY {running},
                                  (SELECT MAX(y.started_at) FROM renders y WHERE y.customer_id = r.customer_id
                                     AND (y.kind = 'generation') = ?5) NULLS FIRST,
                                  r.created_at
                         LIMIT 1)
             RETURNING *"
        ))
        .bind(now)
        .bind(token)
        .bind(lease_ms)
        .bind(default_cap)
        .bind(generations)
        .fetch_optional(self.writer())
        .await
    }

    /// Extend a render's lease and record its progress; false when the render is no longer
    /// this worker's to run (cancelled with its job, or re-claimed).
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
            "UPDATE renders SET lease_expires_at = ?, progress = MAX(progress, ?),
                expected_seconds = MAX(expected_seconds, ?), updated_at = ?
             WHERE id = ? AND lease_token = ? AND status = 'running'",
        )
        .bind(now + lease_ms)
        .bind(progress)
        .bind(output_seconds)
        .bind(now)
        .bind(id)
        .bind(token)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Show a render's progress on its waiting job.
    pub async fn set_render_progress(&self, job_id: &str, progress: f64, message: &str) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE jobs SET progress = MAX(progress, ?), progress_message = ?, updated_at = ?
             WHERE id = ? AND status = 'waiting_for_child'",
        )
        .bind(progress)
        .bind(message)
        .bind(now_ms())
        .bind(job_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Remember the remote render's id (Lambda) while the lease is ours.
    pub async fn set_render_external_id(&self, id: &str, token: &str, external_id: &str) -> Result<bool, DbError> {
        let done =
            sqlx::query("UPDATE renders SET external_id = ? WHERE id = ? AND lease_token = ? AND status = 'running'")
                .bind(external_id)
                .bind(id)
                .bind(token)
                .execute(self.writer())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Give a render back to the queue at once (this host is shutting down with it unfinished):
    /// the next attempt, here after a restart or on another host, starts without waiting for
    /// the lease to run out. It resumes from what the row says (`external_id`).
    pub async fn release_render(&self, id: &str, token: &str) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE renders SET lease_expires_at = ?, updated_at = ?
             WHERE id = ? AND lease_token = ? AND status = 'running'",
        )
        .bind(now_ms() - 1)
        .bind(now_ms())
        .bind(id)
        .bind(token)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Record how a render ended (and its charge, keyed by the job's effect so it is written
    /// once), if it is still this worker's; false otherwise.
    pub async fn finish_render(&self, render: &RenderRow, token: &str, end: RenderEnd<'_>) -> Result<bool, DbError> {
        let now = now_ms();
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let effect_key = format!("{}:{}", render.job_id, render.seq);
        let (status, result, error) = match &end {
            RenderEnd::Succeeded { result, cost_nusd, metadata, default_margin, provider_model } => {
                sqlx::query(
                    "UPDATE billing_holds SET cost_nusd = ?2, metadata = ?3,
                        provider = COALESCE(?7, provider), model = COALESCE(?8, model),
                        charge_nusd = MIN(held_nusd, CAST(?2 * COALESCE((SELECT margin FROM customers c
                                          WHERE c.id = billing_holds.customer_id), ?4) + 0.999999 AS INTEGER))
                     WHERE effect_key = ?1 AND status = 'open'
                       AND EXISTS (SELECT 1 FROM renders WHERE id = ?5 AND lease_token = ?6 AND status = 'running')",
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
                let headroom = super::limits::headroom("?1", "?2", "?9");
                sqlx::query(&format!(
                    "INSERT OR IGNORE INTO billing_events (customer_id, job_id, template_id, event_type, cost_nusd,
                        charge_nusd, metadata, created_at, effect_key)
                     SELECT ?1, ?2, ?3, 'render', ?4,
                            MAX(0, MIN(CAST(?4 * COALESCE((SELECT margin FROM customers WHERE id = ?1), ?5) + 0.999999
                                            AS INTEGER), {headroom})),
                            ?6, ?7, ?8
                     WHERE NOT EXISTS (SELECT 1 FROM billing_holds WHERE effect_key = ?8)"
                ))
                .bind(&render.customer_id)
                .bind(&render.job_id)
                .bind(&render.template_id)
                .bind(cost_nusd)
                .bind(default_margin)
                .bind(metadata)
                .bind(now)
                .bind(&effect_key)
                .bind(super::limits::month_start_ms())
                .execute(&mut *tx)
                .await?;
                ("succeeded", Some(*result), None)
            }
            RenderEnd::Failed { error, metadata, keep_noted_cost } => {
                let share = if *keep_noted_cost {
                    String::new()
                } else {
                    format!(", {}", super::holds::render_share_sql("?3"))
                };
                sqlx::query(&format!(
                    "UPDATE billing_holds SET metadata = ?2{share}
                     WHERE effect_key = ?1 AND status = 'open'
                       AND EXISTS (SELECT 1 FROM renders WHERE id = ?3 AND lease_token = ?4 AND status = 'running')",
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
            "UPDATE renders SET status = ?, result = ?, error = ?, progress = CASE WHEN ? = 'succeeded' THEN 1 ELSE progress END,
                lease_token = NULL, lease_expires_at = NULL, updated_at = ?, finished_at = ?
             WHERE id = ? AND lease_token = ? AND status = 'running'",
        )
        .bind(status)
        .bind(result)
        .bind(error)
        .bind(status)
        .bind(now)
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
        sqlx::query_as("SELECT * FROM renders WHERE id = ?").bind(id).fetch_optional(self.pool()).await
    }
}

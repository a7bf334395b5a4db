//! Postgres twin of `db/webhooks.rs`: destinations, the delivery outbox and attempts. The
//! outbox rows of job changes are written by the PL/pgSQL triggers of `migrations-pg/`, not here.
//!
//! Lock order (no deadlocks between these and the triggers): a destination's row before its
//! deliveries' rows.

use crate::db::webhooks::{AttemptOutcome, AttemptRow, DeliveryRow, DestinationRow};
use crate::db::{DbError, now_ms};

const DELIVERY_COLUMNS: &str = "id, customer_id, job_id, target, destination_id, url, event_type, payload, status,
    attempts, next_attempt_at, last_status, last_error, created_at, delivered_at";

/// Serialises delivery claims across hosts (see `claim_deliveries`).
const CLAIM_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended('vidfarm:webhook_deliveries:claim', 0))";

/// The delivery `d` is due at `now` (an SQL expression): pending, its next attempt's time come,
/// and not held by a host that claimed it.
fn due(d: &str, now: &str) -> String {
    format!(
        "({d}.status = 'pending' AND {d}.next_attempt_at <= {now} AND ({d}.locked_until IS NULL OR {d}.locked_until < {now}))"
    )
}

/// A delivery's place among its job's deliveries to one URL. SQLite sends them in `rowid`
/// (insertion) order, which Postgres has not: a job's events happen in this order of types
/// (`job.progress` at most one per 2 s), so the type orders them even when two share a
/// millisecond or hosts' clocks disagree; then time, then id.
fn send_order(d: &str) -> String {
    format!(
        "(CASE {d}.event_type WHEN 'job.queued' THEN 0 WHEN 'job.running' THEN 1 WHEN 'job.progress' THEN 2 ELSE 3 END,
          {d}.created_at, {d}.id)"
    )
}

impl super::Pg {
    /// Postgres twin of `Sqlite::insert_destination`.
    pub async fn insert_destination(
        &self,
        id: &str,
        customer_id: &str,
        url: &str,
        description: Option<&str>,
        encrypted_secret: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO webhook_destinations (id, customer_id, url, description, encrypted_secret, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(customer_id)
        .bind(url)
        .bind(description)
        .bind(encrypted_secret)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map(drop)
    }

    pub async fn destinations(&self, customer_id: &str) -> Result<Vec<DestinationRow>, DbError> {
        sqlx::query_as("SELECT * FROM webhook_destinations WHERE customer_id = $1 ORDER BY created_at, id")
            .bind(customer_id)
            .fetch_all(&self.pool)
            .await
    }

    pub async fn destination(&self, id: &str) -> Result<Option<DestinationRow>, DbError> {
        sqlx::query_as("SELECT * FROM webhook_destinations WHERE id = $1").bind(id).fetch_optional(&self.pool).await
    }

    /// Postgres twin of `Sqlite::delete_destination`: delete one of the customer's
    /// destinations; its pending deliveries fail (nothing is sent after a delete).
    pub async fn delete_destination(&self, customer_id: &str, id: &str) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        // Relies on the destination's row lock: a delivery being queued for it (its foreign key
        // key-share-locks the row) commits before we fail the pending ones, none is queued after.
        let theirs = sqlx::query("SELECT 1 FROM webhook_destinations WHERE id = $1 AND customer_id = $2 FOR UPDATE")
            .bind(id)
            .bind(customer_id)
            .fetch_optional(&mut *tx)
            .await?;
        if theirs.is_none() {
            return Ok(false); // not theirs (or gone): the transaction rolls back
        }
        // Before the delete: deleting sets the deliveries' `destination_id` to NULL.
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = 'the destination was deleted'
             WHERE destination_id = $1 AND customer_id = $2 AND status = 'pending'",
        )
        .bind(id)
        .bind(customer_id)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("DELETE FROM webhook_destinations WHERE id = $1 AND customer_id = $2")
            .bind(id)
            .bind(customer_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The encrypted secret signing a customer's per-job webhooks.
    pub async fn customer_webhook_secret(&self, customer_id: &str) -> Result<Option<String>, DbError> {
        sqlx::query_scalar("SELECT webhook_secret FROM customers WHERE id = $1")
            .bind(customer_id)
            .fetch_optional(&self.pool)
            .await
            .map(Option::flatten)
    }

    /// Postgres twin of `Sqlite::set_customer_webhook_secret`. One statement: a racing "only if
    /// none yet" waits for the row and re-checks `webhook_secret IS NULL`, so only one sets it.
    pub async fn set_customer_webhook_secret(
        &self,
        customer_id: &str,
        encrypted: &str,
        replace: bool,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE customers SET webhook_secret = $1 WHERE id = $2 AND ($3::BOOLEAN OR webhook_secret IS NULL)",
        )
        .bind(encrypted)
        .bind(customer_id)
        .bind(replace)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Postgres twin of `Sqlite::claim_deliveries`: the same turns (in-flight deliveries plus
    /// place among the customer's due ones), caps and per-job order.
    ///
    /// The fair order needs a window function, which Postgres does not allow beside `FOR
    /// UPDATE`: it is computed in a CTE, then its rows are locked `SKIP LOCKED` (one another
    /// writer holds is left for the next claim; the due conditions are re-checked on the row
    /// as it is now). The caps count deliveries in flight as of the claim's snapshot, true
    /// only if no other claim commits meanwhile: the claim statement is serialised across hosts
    /// by a transaction-scoped advisory lock (taken in its own statement, so the claim's snapshot
    /// sees the previous claimer's commit; released at commit, right after the one statement).
    pub async fn claim_deliveries(
        &self,
        max: u32,
        hold_ms: i64,
        default_cap: u32,
    ) -> Result<Vec<DeliveryRow>, DbError> {
        let now = now_ms();
        // Nothing due (every host polls several times a second): no transaction and no turn on
        // the claim lock. One probe of `webhook_deliveries_due`.
        let any_due: bool =
            sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM webhook_deliveries w WHERE {})", due("w", "$1")))
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
        if !any_due {
            return Ok(Vec::new());
        }
        let (earlier, this) = (send_order("e"), send_order("d"));
        let (due_d, due_w) = (due("d", "$2"), due("w", "$2"));
        let mut tx = self.pool.begin().await?;
        sqlx::query(CLAIM_LOCK).execute(&mut *tx).await?;
        let claimed = sqlx::query_as(&format!(
            "WITH fair AS (
                SELECT id FROM (
                    SELECT d.id, d.next_attempt_at,
                           COALESCE((SELECT c.max_concurrent_deliveries FROM customers c WHERE c.id = d.customer_id),
                                    $4::BIGINT) AS cap,
                           ROW_NUMBER() OVER (PARTITION BY d.customer_id ORDER BY d.next_attempt_at, d.created_at, d.id)
                             + (SELECT COUNT(*) FROM webhook_deliveries f WHERE f.customer_id = d.customer_id
                                AND f.status = 'pending' AND f.locked_until >= $2::BIGINT) AS turn
                    FROM webhook_deliveries d
                    WHERE {due_d}
                      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.job_id = d.job_id AND e.url = d.url
                                      AND e.status = 'pending' AND {earlier} < {this})) t
                WHERE turn <= cap ORDER BY turn, next_attempt_at LIMIT $3::BIGINT)
             , locked AS MATERIALIZED (
                SELECT w.id AS locked_id FROM webhook_deliveries w JOIN fair ON fair.id = w.id
                WHERE {due_w}
                FOR UPDATE OF w SKIP LOCKED)
             UPDATE webhook_deliveries SET locked_until = $1::BIGINT
             FROM locked WHERE webhook_deliveries.id = locked.locked_id
             RETURNING {DELIVERY_COLUMNS},
                 (SELECT j.traceparent FROM jobs j WHERE j.id = webhook_deliveries.job_id) AS traceparent"
        ))
        .bind(now + hold_ms)
        .bind(now)
        .bind(i64::from(max))
        .bind(i64::from(default_cap))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Record an attempt and its consequence in one transaction.
    pub async fn record_attempt(&self, delivery: &DeliveryRow, outcome: &AttemptOutcome<'_>) -> Result<(), DbError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // Relies on the sender's hold (`locked_until`) making it this delivery's only writer. A
        // 410 locks the destination before any delivery (the order `delete_destination` takes):
        // two senders disabling it, or a delete, wait instead of deadlocking.
        if outcome.disable_destination
            && let Some(destination) = &delivery.destination_id
        {
            sqlx::query("SELECT 1 FROM webhook_destinations WHERE id = $1 FOR UPDATE")
                .bind(destination)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, latency_ms, error)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&delivery.id)
        .bind(delivery.attempts + 1)
        .bind(now)
        .bind(outcome.status_code.map(i64::from))
        .bind(outcome.latency_ms)
        .bind(outcome.error)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, status = $1, next_attempt_at = $2,
                locked_until = NULL, last_status = $3, last_error = $4,
                delivered_at = CASE WHEN $1::TEXT = 'delivered' THEN $5::BIGINT ELSE delivered_at END
             WHERE id = $6 AND status = 'pending'",
        )
        .bind(outcome.next_status)
        .bind(outcome.next_attempt_at)
        .bind(outcome.status_code.map(i64::from))
        .bind(outcome.error)
        .bind(now)
        .bind(&delivery.id)
        .execute(&mut *tx)
        .await?;
        if outcome.disable_destination
            && let Some(destination) = &delivery.destination_id
        {
            sqlx::query(
                "UPDATE webhook_destinations SET status = 'disabled',
                    disabled_reason = 'the receiver answered 410 Gone' WHERE id = $1",
            )
            .bind(destination)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'failed', last_error = 'the destination is disabled (410 Gone)'
                 WHERE destination_id = $1 AND status = 'pending'",
            )
            .bind(destination)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// A customer's deliveries, newest first; optionally one job's, or one status.
    pub async fn deliveries(
        &self,
        customer_id: &str,
        job_id: Option<&str>,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, DbError> {
        sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
             WHERE customer_id = $1 AND ($2::TEXT IS NULL OR job_id = $2) AND ($3::TEXT IS NULL OR status = $3)
             ORDER BY created_at DESC, id LIMIT $4"
        ))
        .bind(customer_id)
        .bind(job_id)
        .bind(status)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
    }

    pub async fn delivery(&self, customer_id: &str, id: &str) -> Result<Option<DeliveryRow>, DbError> {
        sqlx::query_as(&format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE customer_id = $1 AND id = $2"))
            .bind(customer_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn attempts(&self, delivery_id: &str) -> Result<Vec<AttemptRow>, DbError> {
        sqlx::query_as(
            "SELECT attempt, at, status_code, latency_ms, error FROM webhook_attempts WHERE delivery_id = $1
             ORDER BY attempt",
        )
        .bind(delivery_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Postgres twin of `Sqlite::insert_test_delivery`: queue a `webhook.test` delivery to one
    /// of the customer's active destinations; its id, or `None` when there is no such one.
    /// `FOR SHARE` waits for a delete or a disable of the destination under way and re-checks
    /// it: otherwise the new delivery, unseen by their update, would stay pending.
    pub async fn insert_test_delivery(
        &self,
        customer_id: &str,
        destination_id: &str,
    ) -> Result<Option<String>, DbError> {
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let done = sqlx::query(
            r#"INSERT INTO webhook_deliveries (id, customer_id, job_id, target, destination_id, url, event_type,
                                               payload, next_attempt_at, created_at)
               SELECT $1, d.customer_id, NULL, 'destination', d.id, d.url, 'webhook.test',
                      json_build_object('type', 'webhook.test',
                                        'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                                        'data', json_build_object(
                                            'destination_id', d.id,
                                            'message', 'A test event from the Vidfarm dashboard'))::TEXT,
                      $3, $3
               FROM webhook_destinations d WHERE d.id = $2 AND d.customer_id = $4 AND d.status = 'active'
               FOR SHARE"#,
        )
        .bind(&id)
        .bind(destination_id)
        .bind(now_ms())
        .bind(customer_id)
        .execute(&self.pool)
        .await?;
        Ok((done.rows_affected() == 1).then_some(id))
    }

    /// Send a delivery again now (same `webhook-id`); false if it is not the customer's.
    pub async fn redeliver(&self, customer_id: &str, id: &str) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1, locked_until = NULL
             WHERE id = $2 AND customer_id = $3",
        )
        .bind(now_ms())
        .bind(id)
        .bind(customer_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

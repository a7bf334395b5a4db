//! Webhook destinations, the delivery outbox (filled by triggers, see migration 0004) and
//! delivery attempts.

use super::{DbError, Sqlite, now_ms};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DestinationRow {
    pub id: String,
    pub customer_id: String,
    pub url: String,
    pub description: Option<String>,
    #[serde(skip)]
    pub encrypted_secret: String,
    pub status: String,
    pub disabled_reason: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub customer_id: String,
    pub job_id: Option<String>,
    pub target: String,
    pub destination_id: Option<String>,
    pub url: String,
    pub event_type: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    /// The job's `traceparent` (claimed deliveries only): the delivery joins the job's trace.
    #[sqlx(default)]
    #[serde(skip)]
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AttemptRow {
    pub attempt: i64,
    pub at: i64,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// How one attempt went, and what happens next.
pub struct AttemptOutcome<'a> {
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<&'a str>,
    /// `delivered`, `failed` (no more tries) or `pending` (retry at `next_attempt_at`).
    pub next_status: &'a str,
    pub next_attempt_at: i64,
    /// The receiver said 410 Gone: disable the destination.
    pub disable_destination: bool,
}

const DELIVERY_COLUMNS: &str = "id, customer_id, job_id, target, destination_id, url, event_type, payload, status,
    attempts, next_attempt_at, last_status, last_error, created_at, delivered_at";

impl Sqlite {
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
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(customer_id)
        .bind(url)
        .bind(description)
        .bind(encrypted_secret)
        .bind(now_ms())
        .execute(self.writer())
        .await
        .map(drop)
    }

    pub async fn destinations(&self, customer_id: &str) -> Result<Vec<DestinationRow>, DbError> {
        sqlx::query_as("SELECT * FROM webhook_destinations WHERE customer_id = ? ORDER BY created_at, id")
            .bind(customer_id)
            .fetch_all(self.pool())
            .await
    }

    pub async fn destination(&self, id: &str) -> Result<Option<DestinationRow>, DbError> {
        sqlx::query_as("SELECT * FROM webhook_destinations WHERE id = ?").bind(id).fetch_optional(self.pool()).await
    }

    /// Delete one of the customer's destinations; its pending deliveries fail (nothing is
    /// sent after a delete). Another customer's destination is untouched: both statements
    /// name the owner, so an id guessed by someone else changes nothing.
    pub async fn delete_destination(&self, customer_id: &str, id: &str) -> Result<bool, DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        // Before the delete: deleting sets the deliveries' `destination_id` to NULL.
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = 'the destination was deleted'
             WHERE destination_id = ? AND customer_id = ? AND status = 'pending'",
        )
        .bind(id)
        .bind(customer_id)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("DELETE FROM webhook_destinations WHERE id = ? AND customer_id = ?")
            .bind(id)
            .bind(customer_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false); // not theirs (or gone): the transaction rolls back
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The encrypted secret signing a customer's per-job webhooks.
    pub async fn customer_webhook_secret(&self, customer_id: &str) -> Result<Option<String>, DbError> {
        sqlx::query_scalar("SELECT webhook_secret FROM customers WHERE id = ?")
            .bind(customer_id)
            .fetch_optional(self.pool())
            .await
            .map(Option::flatten)
    }

    /// Set the per-job webhook secret: always (`replace`, a rotation) or only if there is none
    /// yet. Returns whether it was set.
    pub async fn set_customer_webhook_secret(
        &self,
        customer_id: &str,
        encrypted: &str,
        replace: bool,
    ) -> Result<bool, DbError> {
        let done =
            sqlx::query("UPDATE customers SET webhook_secret = ? WHERE id = ? AND (? OR webhook_secret IS NULL)")
                .bind(encrypted)
                .bind(customer_id)
                .bind(replace)
                .execute(self.writer())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Take up to `max` due deliveries for `hold_ms` (another sender skips them meanwhile),
    /// each the oldest pending one of its job to its URL (so events arrive in order).
    /// Round-robin across customers: a delivery's turn is its customer's deliveries in flight
    /// plus its place among that customer's due ones; lowest turns first, and no customer
    /// past its cap (`customers.max_concurrent_deliveries`, else `default_cap`) — so one
    /// customer's slow endpoints never hold up another's.
    pub async fn claim_deliveries(
        &self,
        max: u32,
        hold_ms: i64,
        default_cap: u32,
    ) -> Result<Vec<DeliveryRow>, DbError> {
        let now = now_ms();
        sqlx::query_as(&format!(
            "UPDATE webhook_deliveries SET locked_until = ?1
             WHERE id IN (
                SELECT id FROM (
                    SELECT d.id, d.next_attempt_at,
                           COALESCE((SELECT max_concurrent_deliveries FROM customers c WHERE c.id = d.customer_id), ?4) AS cap,
                           ROW_NUMBER() OVER (PARTITION BY d.customer_id ORDER BY d.next_attempt_at, d.rowid)
                             + (SELECT COUNT(*) FROM webhook_deliveries f WHERE f.customer_id = d.customer_id
                                AND f.status = 'pending' AND f.locked_until >= ?2) AS turn
                    FROM webhook_deliveries d
                    WHERE d.status = 'pending' AND d.next_attempt_at <= ?2 AND (d.locked_until IS NULL OR d.locked_until < ?2)
                      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.job_id = d.job_id AND e.url = d.url
                                      AND e.status = 'pending' AND e.rowid < d.rowid))
                WHERE turn <= cap ORDER BY turn, next_attempt_at LIMIT ?3)
             RETURNING {DELIVERY_COLUMNS},
                 (SELECT j.traceparent FROM jobs j WHERE j.id = webhook_deliveries.job_id) AS traceparent"
        ))
        .bind(now + hold_ms)
        .bind(now)
        .bind(max)
        .bind(default_cap)
        .fetch_all(self.writer())
        .await
    }

    /// Record an attempt and its consequence in one transaction.
    pub async fn record_attempt(&self, delivery: &DeliveryRow, outcome: &AttemptOutcome<'_>) -> Result<(), DbError> {
        let now = now_ms();
        let mut tx = self.writer().begin().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, latency_ms, error)
             VALUES (?, ?, ?, ?, ?, ?)",
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
            "UPDATE webhook_deliveries SET attempts = attempts + 1, status = ?, next_attempt_at = ?, locked_until = NULL,
                last_status = ?, last_error = ?, delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END
             WHERE id = ? AND status = 'pending'",
        )
        .bind(outcome.next_status)
        .bind(outcome.next_attempt_at)
        .bind(outcome.status_code.map(i64::from))
        .bind(outcome.error)
        .bind(outcome.next_status)
        .bind(now)
        .bind(&delivery.id)
        .execute(&mut *tx)
        .await?;
        if outcome.disable_destination
            && let Some(destination) = &delivery.destination_id
        {
            sqlx::query(
                "UPDATE webhook_destinations SET status = 'disabled',
                    disabled_reason = 'the receiver answered 410 Gone' WHERE id = ?",
            )
            .bind(destination)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'failed', last_error = 'the destination is disabled (410 Gone)'
                 WHERE destination_id = ? AND status = 'pending'",
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
             WHERE customer_id = ? AND (? IS NULL OR job_id = ?) AND (? IS NULL OR status = ?)
             ORDER BY created_at DESC, id LIMIT ?"
        ))
        .bind(customer_id)
        .bind(job_id)
        .bind(job_id)
        .bind(status)
        .bind(status)
        .bind(limit)
        .fetch_all(self.pool())
        .await
    }

    pub async fn delivery(&self, customer_id: &str, id: &str) -> Result<Option<DeliveryRow>, DbError> {
        sqlx::query_as(&format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE customer_id = ? AND id = ?"))
            .bind(customer_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await
    }

    pub async fn attempts(&self, delivery_id: &str) -> Result<Vec<AttemptRow>, DbError> {
        sqlx::query_as(
            "SELECT attempt, at, status_code, latency_ms, error FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt",
        )
        .bind(delivery_id)
        .fetch_all(self.pool())
        .await
    }

    /// Queue a `webhook.test` delivery to one of the customer's active destinations; its id,
    /// or `None` when the customer has no such destination.
    pub async fn insert_test_delivery(
        &self,
        customer_id: &str,
        destination_id: &str,
    ) -> Result<Option<String>, DbError> {
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let now = super::now_ms();
        let done = sqlx::query(
            "INSERT INTO webhook_deliveries (id, customer_id, job_id, target, destination_id, url, event_type, payload,
                                             next_attempt_at, created_at)
             SELECT ?1, d.customer_id, NULL, 'destination', d.id, d.url, 'webhook.test',
                    json_object('type', 'webhook.test', 'timestamp', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                                'data', json_object('destination_id', d.id, 'message', 'A test event from the Vidfarm dashboard')),
                    ?3, ?3
             FROM webhook_destinations d WHERE d.id = ?2 AND d.customer_id = ?4 AND d.status = 'active'",
        )
        .bind(&id)
        .bind(destination_id)
        .bind(now)
        .bind(customer_id)
        .execute(self.writer())
        .await?;
        Ok((done.rows_affected() == 1).then_some(id))
    }

    /// Send a delivery again now (same `webhook-id`); false if it is not the customer's.
    pub async fn redeliver(&self, customer_id: &str, id: &str) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?, locked_until = NULL
             WHERE id = ? AND customer_id = ?",
        )
        .bind(now_ms())
        .bind(id)
        .bind(customer_id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

//! Postgres twin of the SQLite `key_leases`: the key queue (spec "Lease Acquisition").
//! SQLite decides and leases in one `BEGIN IMMEDIATE` transaction, so nobody interleaves.
//! Here many workers on many hosts lease at once, so the choice is made on a snapshot and then
//! made safe per key: the chosen key's row is locked `FOR UPDATE SKIP LOCKED` (a key another
//! transaction is leasing, finishing or editing is passed over, never waited for), its
//! eligibility is checked again by a statement started after the lock (so it sees every commit
//! of the transactions that held the lock before), and the lease row is written only if no live
//! lease holds the key (`ON CONFLICT … WHERE`, judged on the newest row version). Two hosts can
//! never both hold a key's one slot. Lock order: the key row, then its lease row (as in
//! `finish_key_lease`), so leasing and finishing never deadlock.

use super::provider_keys::owner_is;
use crate::db::key_leases::{KeyLease, KeyOutcome, LeaseOutcome, LeaseRequest};
use crate::db::{DbError, now_ms};
use sqlx::PgConnection;

#[derive(sqlx::FromRow)]
struct Candidate {
    id: String,
    cooldown_until: Option<i64>,
    leased_until: Option<i64>,
}

/// The SQLite module's `CANDIDATES`, ordered outside a subquery (Postgres cannot order by an
/// expression over an output column): free keys first, then least recently used, then heaviest.
/// `$1` the owner (see [`owner_is`]), `$2` provider, `$3` now, `$4` model.
fn candidates_sql(customer_id: Option<&str>) -> String {
    let owner = owner_is("k.customer_id", 1, customer_id);
    format!(
        "SELECT id, cooldown_until, leased_until FROM (
            SELECT k.id, k.cooldown_until, k.last_used_at, k.weight,
                (SELECT l.expires_at FROM provider_key_leases l
                 WHERE l.key_id = k.id AND l.expires_at > $3::BIGINT) AS leased_until
            FROM customer_provider_keys k
            WHERE {owner} AND k.provider = $2::TEXT AND k.status = 'active'
              AND (NOT EXISTS (SELECT 1 FROM provider_key_capabilities c WHERE c.key_id = k.id)
                   OR EXISTS (SELECT 1 FROM provider_key_capabilities c WHERE c.key_id = k.id AND c.model = $4::TEXT))
         ) pool
         ORDER BY (pool.cooldown_until IS NOT NULL AND pool.cooldown_until > $3::BIGINT)
                      OR pool.leased_until IS NOT NULL,
                  pool.last_used_at ASC NULLS FIRST, pool.weight DESC, pool.id"
    )
}

/// Write the lease if the key (locked by the caller) is still eligible: active, not cooling,
/// still serving the model, and without a live lease. The `SELECT` runs on a snapshot taken
/// after the lock; the conflict branch re-reads the lease row at its newest version (an
/// expired lease its holder is extending right now is not taken over).
const TAKE: &str = "INSERT INTO provider_key_leases (key_id, lease_token, worker_id, job_id, leased_at, expires_at)
    SELECT k.id, $2::TEXT, $3::TEXT, $4::TEXT, $5::BIGINT, $6::BIGINT FROM customer_provider_keys k
    WHERE k.id = $1::TEXT AND k.status = 'active' AND (k.cooldown_until IS NULL OR k.cooldown_until <= $5::BIGINT)
      AND (NOT EXISTS (SELECT 1 FROM provider_key_capabilities c WHERE c.key_id = k.id)
           OR EXISTS (SELECT 1 FROM provider_key_capabilities c WHERE c.key_id = k.id AND c.model = $7::TEXT))
    ON CONFLICT (key_id) DO UPDATE SET lease_token = excluded.lease_token, worker_id = excluded.worker_id,
        job_id = excluded.job_id, leased_at = excluded.leased_at, expires_at = excluded.expires_at
    WHERE provider_key_leases.expires_at <= excluded.leased_at";

impl super::Pg {
    /// Postgres twin of `Sqlite::lease_provider_key`: lease the least recently used eligible
    /// key (then the heaviest), or say why none. A free key another worker takes at the same
    /// instant is passed over for the next free one; when every free key was taken that way,
    /// the answer is `Unavailable` (in use by other jobs, not cooling), as if this call had come
    /// just after theirs.
    pub async fn lease_provider_key(&self, request: &LeaseRequest<'_>) -> Result<LeaseOutcome, DbError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let mut pool = candidates(&mut tx, Some(request.customer_id), request, now).await?;
        if pool.is_empty() && request.platform_fallback {
            pool = candidates(&mut tx, None, request, now).await?;
        }
        let busy_until = |c: &Candidate| c.cooldown_until.filter(|t| *t > now).max(c.leased_until);
        let untried: Vec<&Candidate> = pool.iter().filter(|c| !request.exclude.contains(&c.id)).collect();
        let mut contended = false;
        for free in untried.iter().filter(|c| busy_until(c).is_none()) {
            if let Some(lease) = take(&mut tx, &free.id, request, now).await? {
                tx.commit().await?;
                return Ok(LeaseOutcome::Granted(lease));
            }
            contended = true;
        }
        // Nothing written: ending the transaction releases the rows locked for nothing.
        tx.commit().await?;
        // A key just taken by another worker is busy for about one lease (the caller retries
        // sooner when no key is cooling).
        let taken = contended.then(|| now.saturating_add(request.lease_ms));
        if let Some(next) = untried.iter().filter_map(|c| busy_until(c)).chain(taken).min() {
            let cooling = !contended && untried.iter().all(|c| c.cooldown_until.is_some_and(|t| t > now));
            return Ok(LeaseOutcome::Unavailable { retry_at_ms: next, cooling });
        }
        if !pool.is_empty() {
            return Ok(LeaseOutcome::Exhausted);
        }
        let (invalid, paused, active): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE status = 'invalid'), COUNT(*) FILTER (WHERE status = 'paused'),
                    COUNT(*) FILTER (WHERE status = 'active')
             FROM customer_provider_keys WHERE customer_id = $1 AND provider = $2",
        )
        .bind(request.customer_id)
        .bind(request.provider)
        .fetch_one(&self.pool)
        .await?;
        Ok(LeaseOutcome::NoUsableKey { invalid, paused, other_models: active })
    }

    /// Postgres twin of `Sqlite::extend_key_lease`: extend a live lease (a long call's
    /// heartbeat); false if the token no longer holds it. One statement guarded by the token:
    /// a lease taken over meanwhile is re-read after its row lock and does not match.
    pub async fn extend_key_lease(&self, key_id: &str, token: &str, lease_ms: i64) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE provider_key_leases SET expires_at = $1 WHERE key_id = $2 AND lease_token = $3")
            .bind(now_ms().saturating_add(lease_ms))
            .bind(key_id)
            .bind(token)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Postgres twin of `Sqlite::finish_key_lease`: record how the leased call went, update
    /// the key, and release the lease (only with its own token: one worker never releases
    /// another's). No read decides anything; the transaction makes the three writes atomic, and
    /// it locks the key row before the lease row, the leaser's order.
    pub async fn finish_key_lease(
        &self,
        lease: &KeyLease,
        job_id: &str,
        provider: &str,
        model: &str,
        outcome: &KeyOutcome,
    ) -> Result<(), DbError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let (tokens_in, tokens_out, cost, status, detail) = match outcome {
            KeyOutcome::Success { input_tokens, output_tokens, cost_usd } => {
                (Some(*input_tokens), Some(*output_tokens), Some(*cost_usd), Some(200), None)
            }
            KeyOutcome::RateLimited { detail, .. } => (None, None, None, Some(429), Some(detail.as_str())),
            KeyOutcome::Invalid { status, detail } | KeyOutcome::Rejected { status, detail } => {
                (None, None, None, Some(i64::from(*status)), Some(detail.as_str()))
            }
            KeyOutcome::Failed { status, detail } => (None, None, None, status.map(i64::from), Some(detail.as_str())),
        };
        sqlx::query(
            "INSERT INTO provider_key_usage_events (key_id, job_id, provider, model, event_type, input_tokens,
                output_tokens, cost_usd, status_code, detail, created_at)
             VALUES ($1, $2, $3, $4, $5, $6::BIGINT, $7::BIGINT, $8::DOUBLE PRECISION, $9::BIGINT, $10::TEXT, $11)",
        )
        .bind(&lease.key_id)
        .bind(job_id)
        .bind(provider)
        .bind(model)
        .bind(outcome.event_type())
        .bind(tokens_in)
        .bind(tokens_out)
        .bind(cost)
        .bind(status)
        .bind(detail)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // One statement per outcome, each binding exactly the parameters it uses (Postgres
        // refuses extra ones).
        let key = lease.key_id.as_str();
        let update = match outcome {
            KeyOutcome::Success { .. } => {
                sqlx::query("UPDATE customer_provider_keys SET last_used_at = $2, cooldown_until = NULL WHERE id = $1")
                    .bind(key)
                    .bind(now)
            }
            KeyOutcome::RateLimited { until_ms, .. } => sqlx::query(
                "UPDATE customer_provider_keys SET last_used_at = $2, cooldown_until = $3, updated_at = $2 WHERE id = $1",
            )
            .bind(key)
            .bind(now)
            .bind(*until_ms),
            KeyOutcome::Invalid { detail, .. } => sqlx::query(
                "UPDATE customer_provider_keys SET status = 'invalid', disabled_reason = $3, updated_at = $2 WHERE id = $1",
            )
            .bind(key)
            .bind(now)
            .bind(detail.as_str()),
            KeyOutcome::Failed { .. } | KeyOutcome::Rejected { .. } => {
                sqlx::query("UPDATE customer_provider_keys SET last_used_at = $2 WHERE id = $1").bind(key).bind(now)
            }
        };
        update.execute(&mut *tx).await?;
        sqlx::query("DELETE FROM provider_key_leases WHERE key_id = $1 AND lease_token = $2")
            .bind(&lease.key_id)
            .bind(&lease.lease_token)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Postgres twin of `Sqlite::release_key_lease`: release without an outcome (the call
    /// never reached the provider). One statement guarded by the token.
    pub async fn release_key_lease(&self, key_id: &str, token: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM provider_key_leases WHERE key_id = $1 AND lease_token = $2")
            .bind(key_id)
            .bind(token)
            .execute(&self.pool)
            .await
            .map(drop)
    }

    /// Postgres twin of `Sqlite::key_usage_events`: a key's usage and error events, newest
    /// last: `(event_type, status_code, created_at)`.
    pub async fn key_usage_events(&self, key_id: &str) -> Result<Vec<(String, Option<i64>, i64)>, DbError> {
        sqlx::query_as(
            "SELECT event_type, status_code, created_at FROM provider_key_usage_events WHERE key_id = $1 ORDER BY id",
        )
        .bind(key_id)
        .fetch_all(&self.pool)
        .await
    }
}

/// The keys that could serve the call, on the statement's snapshot (not locked: [`take`]
/// makes the choice safe).
async fn candidates(
    conn: &mut PgConnection,
    customer_id: Option<&str>,
    request: &LeaseRequest<'_>,
    now: i64,
) -> Result<Vec<Candidate>, DbError> {
    sqlx::query_as(&candidates_sql(customer_id))
        .bind(customer_id)
        .bind(request.provider)
        .bind(now)
        .bind(request.model)
        .fetch_all(&mut *conn)
        .await
}

/// Lease `key_id` if no other transaction holds its row and it is still eligible once locked;
/// `None` otherwise. The row stays locked until the caller's transaction ends.
async fn take(
    conn: &mut PgConnection,
    key_id: &str,
    request: &LeaseRequest<'_>,
    now: i64,
) -> Result<Option<KeyLease>, DbError> {
    // The locked row at its newest version: a secret rotated since the snapshot is the one used.
    let locked: Option<(String, String)> = sqlx::query_as(
        "SELECT encrypted_secret, source FROM customer_provider_keys WHERE id = $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(key_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((encrypted_secret, source)) = locked else { return Ok(None) };
    let token = uuid::Uuid::new_v4().simple().to_string();
    let written = sqlx::query(TAKE)
        .bind(key_id)
        .bind(&token)
        .bind(request.worker_id)
        .bind(request.job_id)
        .bind(now)
        .bind(now.saturating_add(request.lease_ms))
        .bind(request.model)
        .execute(&mut *conn)
        .await?;
    Ok((written.rows_affected() == 1).then(|| KeyLease {
        key_id: key_id.to_string(),
        lease_token: token,
        encrypted_secret,
        source,
    }))
}

//! The key queue (spec "Lease Acquisition"): a worker leases one eligible key in a
//! `BEGIN IMMEDIATE` transaction, calls the provider with it, then records the outcome and
//! releases the lease with its token. Eligibility is derived from the rows at lease time.

use super::{DbError, Sqlite, now_ms};

/// What a worker asks for.
pub struct LeaseRequest<'a> {
    pub customer_id: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
    pub job_id: &'a str,
    pub worker_id: &'a str,
    pub lease_ms: i64,
    /// Keys this call already tried (a 5xx on them): skipped while another is eligible.
    pub exclude: &'a [String],
    /// Whether platform keys may serve a customer without a usable key of their own.
    pub platform_fallback: bool,
}

/// A granted lease: the key's ciphertext and the token that releases it.
#[derive(Debug, Clone)]
pub struct KeyLease {
    pub key_id: String,
    pub lease_token: String,
    pub encrypted_secret: String,
    /// `customer`, `environment` or `platform`: recorded with every charge.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LeaseOutcome {
    Granted(KeyLease),
    /// Usable keys exist but none is free: the earliest instant one may be, and whether
    /// that is a cooldown (rather than another job's lease) ending.
    Unavailable {
        retry_at_ms: i64,
        cooling: bool,
    },
    /// Every usable key was already tried by this call.
    Exhausted,
    /// No key can serve the call: how many are invalid, paused, or limited to other models.
    NoUsableKey {
        invalid: i64,
        paused: i64,
        other_models: i64,
    },
}

impl PartialEq for KeyLease {
    fn eq(&self, other: &Self) -> bool {
        self.key_id == other.key_id && self.lease_token == other.lease_token
    }
}

/// How a leased call went; recorded as a usage event, then the lease is released.
#[derive(Debug, Clone)]
pub enum KeyOutcome {
    Success {
        input_tokens: i64,
        output_tokens: i64,
        cost_usd: f64,
    },
    /// 429: the key cools down until `until_ms`; `quota` when the provider said the quota
    /// (not the rate) is exhausted.
    RateLimited {
        until_ms: i64,
        quota: bool,
        detail: String,
    },
    /// 401/403: the key is marked invalid and never leased again.
    Invalid {
        status: u16,
        detail: String,
    },
    /// 5xx, timeout, connection error: the key stays usable (moved to the back of the queue).
    Failed {
        status: Option<u16>,
        detail: String,
    },
    /// 4xx other than the above: the request, not the key, was wrong.
    Rejected {
        status: u16,
        detail: String,
    },
}

impl KeyOutcome {
    /// The usage event's type (both backends write it).
    pub(crate) fn event_type(&self) -> &'static str {
        match self {
            Self::Success { .. } => "success",
            Self::RateLimited { quota: false, .. } => "rate_limit",
            Self::RateLimited { quota: true, .. } => "quota_exhausted",
            Self::Invalid { .. } => "auth_error",
            Self::Failed { .. } => "upstream_error",
            Self::Rejected { .. } => "bad_request",
        }
    }
}

#[derive(sqlx::FromRow)]
struct Candidate {
    id: String,
    encrypted_secret: String,
    source: String,
    cooldown_until: Option<i64>,
    leased_until: Option<i64>,
}

const CANDIDATES: &str = "SELECT k.id, k.encrypted_secret, k.source, k.cooldown_until,
        (SELECT l.expires_at FROM provider_key_leases l WHERE l.key_id = k.id AND l.expires_at > ?4) AS leased_until
    FROM customer_provider_keys k
    WHERE k.customer_id IS ?1 AND k.provider = ?2 AND k.status = 'active'
      AND (NOT EXISTS (SELECT 1 FROM provider_key_capabilities c WHERE c.key_id = k.id)
           OR EXISTS (SELECT 1 FROM provider_key_capabilities c WHERE c.key_id = k.id AND c.model = ?3))
    ORDER BY (k.cooldown_until IS NOT NULL AND k.cooldown_until > ?4) OR leased_until IS NOT NULL,
             k.last_used_at ASC NULLS FIRST, k.weight DESC, k.id";

impl Sqlite {
    /// Lease the least recently used eligible key (then the heaviest), or say why none.
    pub async fn lease_provider_key(&self, request: &LeaseRequest<'_>) -> Result<LeaseOutcome, DbError> {
        let now = now_ms();
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let mut pool = candidates(&mut tx, Some(request.customer_id), request, now).await?;
        if pool.is_empty() && request.platform_fallback {
            pool = candidates(&mut tx, None, request, now).await?;
        }
        let busy_until = |c: &Candidate| c.cooldown_until.filter(|t| *t > now).max(c.leased_until);
        let untried: Vec<&Candidate> = pool.iter().filter(|c| !request.exclude.contains(&c.id)).collect();
        if let Some(free) = untried.iter().find(|c| busy_until(c).is_none()) {
            let token = uuid::Uuid::new_v4().simple().to_string();
            sqlx::query(
                "INSERT OR REPLACE INTO provider_key_leases (key_id, lease_token, worker_id, job_id, leased_at, expires_at)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&free.id)
            .bind(&token)
            .bind(request.worker_id)
            .bind(request.job_id)
            .bind(now)
            .bind(now.saturating_add(request.lease_ms))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(LeaseOutcome::Granted(KeyLease {
                key_id: free.id.clone(),
                lease_token: token,
                encrypted_secret: free.encrypted_secret.clone(),
                source: free.source.clone(),
            }));
        }
        if let Some(next) = untried.iter().filter_map(|c| busy_until(c)).min() {
            let cooling = untried.iter().all(|c| c.cooldown_until.is_some_and(|t| t > now));
            return Ok(LeaseOutcome::Unavailable { retry_at_ms: next, cooling });
        }
        if !pool.is_empty() {
            return Ok(LeaseOutcome::Exhausted);
        }
        let (invalid, paused, active): (i64, i64, i64) = sqlx::query_as(
            "SELECT TOTAL(status = 'invalid'), TOTAL(status = 'paused'), TOTAL(status = 'active')
             FROM customer_provider_keys WHERE customer_id = ? AND provider = ?",
        )
        .bind(request.customer_id)
        .bind(request.provider)
        .fetch_one(&mut *tx)
        .await
        .map(|(i, p, a): (f64, f64, f64)| (i as i64, p as i64, a as i64))?;
        Ok(LeaseOutcome::NoUsableKey { invalid, paused, other_models: active })
    }

    /// Extend a live lease (a long call's heartbeat); false if the token no longer holds it.
    pub async fn extend_key_lease(&self, key_id: &str, token: &str, lease_ms: i64) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE provider_key_leases SET expires_at = ? WHERE key_id = ? AND lease_token = ?")
            .bind(now_ms().saturating_add(lease_ms))
            .bind(key_id)
            .bind(token)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Record how the leased call went, update the key, and release the lease (only with
    /// its own token: one worker never releases another's).
    pub async fn finish_key_lease(
        &self,
        lease: &KeyLease,
        job_id: &str,
        provider: &str,
        model: &str,
        outcome: &KeyOutcome,
    ) -> Result<(), DbError> {
        let now = now_ms();
        let mut tx = self.writer().begin().await?;
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
                output_tokens, cost_usd, status_code, detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        let update = match outcome {
            KeyOutcome::Success { .. } => {
                "UPDATE customer_provider_keys SET last_used_at = ?2, cooldown_until = NULL WHERE id = ?1"
            }
            KeyOutcome::RateLimited { .. } => {
                "UPDATE customer_provider_keys SET last_used_at = ?2, cooldown_until = ?3, updated_at = ?2 WHERE id = ?1"
            }
            KeyOutcome::Invalid { .. } => {
                "UPDATE customer_provider_keys SET status = 'invalid', disabled_reason = ?4, updated_at = ?2 WHERE id = ?1"
            }
            KeyOutcome::Failed { .. } | KeyOutcome::Rejected { .. } => {
                "UPDATE customer_provider_keys SET last_used_at = ?2 WHERE id = ?1"
            }
        };
        let until = match outcome {
            KeyOutcome::RateLimited { until_ms, .. } => Some(*until_ms),
            _ => None,
        };
        sqlx::query(update).bind(&lease.key_id).bind(now).bind(until).bind(detail).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM provider_key_leases WHERE key_id = ? AND lease_token = ?")
            .bind(&lease.key_id)
            .bind(&lease.lease_token)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Release without an outcome (the call never reached the provider).
    pub async fn release_key_lease(&self, key_id: &str, token: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM provider_key_leases WHERE key_id = ? AND lease_token = ?")
            .bind(key_id)
            .bind(token)
            .execute(self.writer())
            .await
            .map(drop)
    }

    /// A key's usage and error events, newest last: `(event_type, status_code, created_at)`.
    pub async fn key_usage_events(&self, key_id: &str) -> Result<Vec<(String, Option<i64>, i64)>, DbError> {
        sqlx::query_as(
            "SELECT event_type, status_code, created_at FROM provider_key_usage_events WHERE key_id = ? ORDER BY id",
        )
        .bind(key_id)
        .fetch_all(self.pool())
        .await
    }
}

async fn candidates(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    customer_id: Option<&str>,
    request: &LeaseRequest<'_>,
    now: i64,
) -> Result<Vec<Candidate>, DbError> {
    sqlx::query_as(CANDIDATES)
        .bind(customer_id)
        .bind(request.provider)
        .bind(request.model)
        .bind(now)
        .fetch_all(&mut **tx)
        .await
}

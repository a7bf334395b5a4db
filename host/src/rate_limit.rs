//! Per-key rate limits (a customer's job creations, sign-in attempts, test webhooks): a token
//! bucket per key, refilled continuously, holding at most one minute's allowance. The API
//! (jobs created over HTTP) and the engine (child jobs a template enqueues) count against the
//! same allowance.
//!
//! On SQLite there is one host, so the buckets live in this process's memory. On PostgreSQL
//! every host shares them in the database (`db::rate_buckets`): N API hosts still allow one
//! rate, not N. Each process also counts its own takes, and if the database cannot answer it
//! goes by that count until it can again (the request that asked would most likely fail on the
//! database anyway).

use crate::db::Db;
use crate::db::rate_buckets::Take;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Default)]
pub struct RateLimiter {
    /// The buckets counted in this process: all of them on SQLite, and a fallback on
    /// PostgreSQL while it does not answer.
    buckets: Mutex<HashMap<String, Bucket>>,
    /// The database whose buckets every host shares (PostgreSQL only).
    shared: Option<Db>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// Buckets shared through `db` where other hosts may share it, else in this process.
    pub fn for_database(db: &Db) -> Self {
        let shared = (db.backend_name() == "postgres").then(|| db.clone());
        Self { buckets: Mutex::default(), shared }
    }

    /// Take one token for `key` allowed `per_minute`; `Err(seconds)` to wait if none.
    pub async fn take(&self, key: &str, per_minute: u32) -> Result<(), u64> {
        let Some(db) = &self.shared else { return self.take_here(key, per_minute) };
        // This process's bucket counts every take too, so that if the database stops
        // answering, the fallback starts from this host's own use, not a full minute.
        let here = self.take_here(key, per_minute);
        match db.take_rate_token(key, per_minute).await {
            Some(Ok(Take::Granted)) => Ok(()),
            Some(Ok(Take::RetryAfter(seconds))) => Err(seconds),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "shared rate limit unavailable; counting in this process");
                here
            }
            None => here,
        }
    }

    /// The tokens `key` has now (a full minute's allowance when it has no bucket), taking none.
    pub async fn peek(&self, key: &str, per_minute: u32) -> f64 {
        if let Some(db) = &self.shared
            && let Some(Ok(tokens)) = db.rate_tokens(key, per_minute).await
        {
            return tokens;
        }
        let capacity = f64::from(per_minute.max(1));
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets.get(key).map_or(capacity, |b| (b.tokens + b.at.elapsed().as_secs_f64() * capacity / 60.0).min(capacity))
    }

    fn take_here(&self, key: &str, per_minute: u32) -> Result<(), u64> {
        let capacity = f64::from(per_minute.max(1));
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        // A bucket untouched for a minute is full again: forgetting it changes nothing, so
        // keys nobody uses (random emails at sign-in, say) cannot grow the map for ever.
        if buckets.len() >= 10_000 {
            buckets.retain(|_, b| now.duration_since(b.at).as_secs() < 60);
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket { tokens: capacity, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_second).min(capacity);
        bucket.at = now;
        match Take::from_bucket(bucket.tokens >= 1.0, bucket.tokens, capacity) {
            Take::Granted => {
                bucket.tokens -= 1.0;
                Ok(())
            }
            Take::RetryAfter(seconds) => Err(seconds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RateLimiter;

    #[tokio::test]
    async fn a_customer_gets_its_allowance_then_a_retry_after() {
        let limiter = RateLimiter::default();
        for _ in 0..3 {
            assert_eq!(limiter.take("a", 3).await, Ok(()));
        }
        assert_eq!(limiter.take("a", 3).await, Err(20), "one token per 20 s at 3/min");
        assert_eq!(limiter.take("b", 3).await, Ok(()), "customers do not share buckets");
        assert!(limiter.peek("a", 3).await < 1.0);
        assert_eq!(limiter.peek("c", 3).await, 3.0, "an unknown key has a full minute");
    }
}

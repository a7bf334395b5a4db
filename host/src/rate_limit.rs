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
//!
//! A large allowance is taken from the shared bucket in chunks of up to a tenth of a second's
//! worth ([`chunk`]), held by this process and spent from memory: one statement per chunk, not
//! one per create (a row every create of a customer updated, one after the other). Every token
//! spent was taken from the shared bucket first, so the hosts together still never pass the
//! rate; a host holds at most one chunk per key ahead of use, and what it holds when it stops
//! is lost to the customer (at most a tenth of a second's allowance). Small allowances (under
//! 1,200 a minute: sign-in attempts, most customers' creations) are taken one token at a time.

use crate::db::Db;
use crate::db::rate_buckets::Take;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The most tokens one statement takes for a host to spend later.
const MAX_CHUNK: u32 = 100;

/// How many tokens a host takes from the shared bucket at once for an allowance of
/// `per_minute`: a tenth of a second's worth, from 1 up to [`MAX_CHUNK`].
pub fn chunk(per_minute: u32) -> u32 {
    (per_minute / 600).clamp(1, MAX_CHUNK)
}

#[derive(Default)]
pub struct RateLimiter {
    /// The buckets counted in this process: all of them on SQLite, and a fallback on
    /// PostgreSQL while it does not answer.
    buckets: Mutex<HashMap<String, Bucket>>,
    /// The database whose buckets every host shares (PostgreSQL only).
    shared: Option<Db>,
    /// Tokens taken from the shared bucket and not spent yet, per key whose chunk is more
    /// than one. An async lock per key: a customer's creates wait for their own chunk's
    /// statement, never for another customer's.
    held: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Held>>>>,
    /// Takes that went to the database (the rest were spent from `held`).
    asked: AtomicU64,
}

/// One key's chunk on this host.
#[derive(Default)]
struct Held {
    tokens: u32,
    /// Until then the database is not asked again for this key: it just failed to answer, and
    /// the creates queued behind that take go by this process's count at once instead of each
    /// waiting out the pool's timeout in turn.
    unanswered_until: Option<Instant>,
}

/// How long a key's creates go by this process's count after the database failed to answer.
const UNANSWERED_FOR: std::time::Duration = std::time::Duration::from_secs(1);

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// Buckets shared through `db` where other hosts may share it, else in this process.
    pub fn for_database(db: &Db) -> Self {
        let shared = (db.backend_name() == "postgres").then(|| db.clone());
        Self { shared, ..Self::default() }
    }

    /// Take one token for `key` allowed `per_minute`; `Err(seconds)` to wait if none.
    pub async fn take(&self, key: &str, per_minute: u32) -> Result<(), u64> {
        let Some(db) = &self.shared else { return self.take_here(key, per_minute) };
        // This process's bucket counts every take too, so that if the database stops
        // answering, the fallback starts from this host's own use, not a full minute.
        let here = self.take_here(key, per_minute);
        let want = chunk(per_minute);
        let lease = (want > 1).then(|| self.held_for(key));
        let mut held = match &lease {
            Some(lease) => Some(lease.lock().await),
            None => None,
        };
        if let Some(held) = held.as_deref_mut() {
            if held.tokens > 0 {
                held.tokens -= 1;
                return Ok(());
            }
            if held.unanswered_until.is_some_and(|until| Instant::now() < until) {
                return here;
            }
        }
        self.asked.fetch_add(1, Ordering::Relaxed);
        match db.take_rate_tokens(key, per_minute, want).await {
            Some(Ok(Take::Granted(taken))) => {
                if let Some(held) = held.as_deref_mut() {
                    *held = Held { tokens: taken - 1, unanswered_until: None };
                }
                Ok(())
            }
            Some(Ok(Take::RetryAfter(seconds))) => Err(seconds),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "shared rate limit unavailable; counting in this process");
                if let Some(held) = held.as_deref_mut() {
                    held.unanswered_until = Some(Instant::now() + UNANSWERED_FOR);
                }
                here
            }
            None => here,
        }
    }

    /// How many takes went to the shared database so far (none on SQLite).
    pub fn database_takes(&self) -> u64 {
        self.asked.load(Ordering::Relaxed)
    }

    /// The tokens `key` holds for this process, keeping the map bounded: keys with nothing
    /// held are forgotten once there are many (a lock still in use keeps its tokens for its
    /// holder; the next take makes a new one).
    fn held_for(&self, key: &str) -> Arc<tokio::sync::Mutex<Held>> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.len() >= 10_000 {
            held.retain(|_, chunk| chunk.try_lock().map_or(true, |c| c.tokens > 0));
        }
        held.entry(key.to_string()).or_default().clone()
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
        match Take::from_bucket(u32::from(bucket.tokens >= 1.0), bucket.tokens, capacity) {
            Take::Granted(_) => {
                bucket.tokens -= 1.0;
                Ok(())
            }
            Take::RetryAfter(seconds) => Err(seconds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{RateLimiter, chunk};

    #[test]
    fn a_host_takes_a_tenth_of_a_seconds_allowance_at_once_and_small_ones_one_by_one() {
        assert_eq!(chunk(10), 1, "sign-in attempts");
        assert_eq!(chunk(1_199), 1);
        assert_eq!(chunk(6_000), 10);
        assert_eq!(chunk(u32::MAX), 100, "never more than a hundred");
    }

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

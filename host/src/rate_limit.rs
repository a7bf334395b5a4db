//! Per-customer job-creation rate limit: a token bucket per customer, refilled continuously,
//! holding at most one minute's allowance. One per process, shared by the API (jobs created
//! over HTTP) and the engine (child jobs a template enqueues): both count against the same
//! allowance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// Take one token for `customer` allowed `per_minute`; `Err(seconds)` to wait if none.
    /// The tokens `key` has now (a full minute's allowance when it has no bucket), taking none.
    pub fn peek(&self, key: &str, per_minute: u32) -> f64 {
        let capacity = f64::from(per_minute.max(1));
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets.get(key).map_or(capacity, |b| (b.tokens + b.at.elapsed().as_secs_f64() * capacity / 60.0).min(capacity))
    }

    pub fn take(&self, customer: &str, per_minute: u32) -> Result<(), u64> {
        let capacity = f64::from(per_minute.max(1));
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        // A bucket untouched for a minute is full again: forgetting it changes nothing, so
        // keys nobody uses (random emails at sign-in, say) cannot grow the map for ever.
        if buckets.len() >= 10_000 {
            buckets.retain(|_, b| now.duration_since(b.at).as_secs() < 60);
        }
        let bucket = buckets.entry(customer.to_string()).or_insert(Bucket { tokens: capacity, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_second).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RateLimiter;

    #[test]
    fn a_customer_gets_its_allowance_then_a_retry_after() {
        let limiter = RateLimiter::default();
        for _ in 0..3 {
            assert_eq!(limiter.take("a", 3), Ok(()));
        }
        assert_eq!(limiter.take("a", 3), Err(20), "one token per 20 s at 3/min");
        assert_eq!(limiter.take("b", 3), Ok(()), "customers do not share buckets");
    }
}

//! Rate-limit buckets in the database, for hosts that share one (PostgreSQL): each API host
//! counting alone would let a customer create N times their rate through N hosts, and try N
//! times as many passwords. A SQLite database has one host, whose process counts in memory
//! (`crate::rate_limit`), so there these answer `None`.

use super::{Backend, Db, DbError};

/// The answer to one take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// This many tokens were taken (at least one).
    Granted(u32),
    /// No token: one comes in this many seconds.
    RetryAfter(u64),
}

impl Take {
    /// From a bucket of `capacity` tokens a minute that has `tokens` left after `taken` were
    /// taken (none: the bucket had less than one).
    pub fn from_bucket(taken: u32, tokens: f64, capacity: f64) -> Self {
        if taken > 0 {
            Take::Granted(taken)
        } else {
            let per_second = capacity.max(1.0) / 60.0;
            Take::RetryAfter(((1.0 - tokens) / per_second).ceil().max(1.0) as u64)
        }
    }
}

impl Db {
    /// Take up to `want` tokens, at least one, from `key`'s bucket (`per_minute` tokens a
    /// minute, at most a minute's worth saved up); `None` where the process counts alone (SQLite).
    pub async fn take_rate_tokens(&self, key: &str, per_minute: u32, want: u32) -> Option<Result<Take, DbError>> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pg) => Some(pg.take_rate_tokens(key, per_minute, want).await),
        }
    }

    /// The tokens `key` has now, taking none; `None` where the process counts alone.
    pub async fn rate_tokens(&self, key: &str, per_minute: u32) -> Option<Result<f64, DbError>> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pg) => Some(pg.rate_tokens(key, per_minute).await),
        }
    }

    /// Delete buckets untouched for a minute (full again, so forgetting them changes nothing):
    /// keys nobody uses again, random emails tried at sign-in say, cannot grow the table.
    pub async fn forget_full_rate_buckets(&self) -> Result<u64, DbError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(0),
            Backend::Postgres(pg) => pg.forget_full_rate_buckets().await,
        }
    }
}

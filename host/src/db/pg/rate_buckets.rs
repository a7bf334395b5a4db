//! Rate-limit token buckets shared by every host, each take one statement: the bucket is
//! refilled on the database's clock, up to the tokens asked for taken if there is one, and the
//! answer returned,
//! under the row lock `ON CONFLICT DO UPDATE` holds. See `crate::rate_limit`.

use crate::db::DbError;
use crate::db::rate_buckets::Take;

/// Now on the database's clock, in microseconds (`clock_timestamp`, not the transaction's
/// start: the statement runs alone).
const NOW_US: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT";

impl super::Pg {
    /// Take up to `want` tokens (at least one, or none and when one comes) in one statement.
    pub async fn take_rate_tokens(&self, key: &str, per_minute: u32, want: u32) -> Result<Take, DbError> {
        let capacity = f64::from(per_minute.max(1));
        // `refilled`: the old tokens plus what flowed in since, never above one minute's worth.
        // If the server's clock stepped back, nothing flowed in, and the bucket's time follows
        // the clock back (kept in the future, it would refill nothing until the clock caught up).
        // Every SET reads the old row, so `refilled` is the same in each.
        let refilled = "LEAST($2, b.tokens + GREATEST(0, EXCLUDED.at_us - b.at_us) * $2 / 60000000.0)";
        let taken = format!("CASE WHEN {refilled} >= 1 THEN LEAST($3, floor({refilled}))::INTEGER ELSE 0 END");
        let sql = format!(
            "INSERT INTO rate_buckets AS b (key, tokens, at_us, granted, taken)
             VALUES ($1, $2 - LEAST($3, floor($2)), {NOW_US}, TRUE, LEAST($3, floor($2))::INTEGER)
             ON CONFLICT (key) DO UPDATE SET
                 tokens = {refilled} - {taken},
                 taken = {taken},
                 granted = {refilled} >= 1,
                 at_us = EXCLUDED.at_us
             RETURNING taken, tokens"
        );
        let (taken, tokens): (i32, f64) = sqlx::query_as(&sql)
            .bind(key)
            .bind(capacity)
            .bind(i32::try_from(want.max(1)).unwrap_or(i32::MAX))
            .fetch_one(&self.pool)
            .await?;
        Ok(Take::from_bucket(u32::try_from(taken).unwrap_or(0), tokens, capacity))
    }

    pub async fn rate_tokens(&self, key: &str, per_minute: u32) -> Result<f64, DbError> {
        let capacity = f64::from(per_minute.max(1));
        let sql = format!(
            "SELECT LEAST($2, tokens + GREATEST(0, {NOW_US} - at_us) * $2 / 60000000.0) FROM rate_buckets WHERE key = $1"
        );
        let tokens: Option<f64> = sqlx::query_scalar(&sql).bind(key).bind(capacity).fetch_optional(&self.pool).await?;
        Ok(tokens.unwrap_or(capacity))
    }

    pub async fn forget_full_rate_buckets(&self) -> Result<u64, DbError> {
        let sql = format!("DELETE FROM rate_buckets WHERE at_us < {NOW_US} - 60000000");
        Ok(sqlx::query(&sql).execute(&self.pool).await?.rows_affected())
    }
}

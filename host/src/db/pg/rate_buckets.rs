//! Rate-limit token buckets shared by every host, each take one statement: the bucket is
//! refilled on the database's clock, a token taken if there is one, and the answer returned,
//! under the row lock `ON CONFLICT DO UPDATE` holds. See `crate::rate_limit`.

use crate::db::DbError;
use crate::db::rate_buckets::Take;

/// Now on the database's clock, in microseconds (`clock_timestamp`, not the transaction's
/// start: the statement runs alone).
const NOW_US: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT";

impl super::Pg {
    pub async fn take_rate_token(&self, key: &str, per_minute: u32) -> Result<Take, DbError> {
        let capacity = f64::from(per_minute.max(1));
        // `refilled`: the old tokens plus what flowed in since, never above one minute's worth.
        // If the server's clock stepped back, nothing flowed in, and the bucket's time follows
        // the clock back (kept in the future, it would refill nothing until the clock caught up).
        let refilled = "LEAST($2, b.tokens + GREATEST(0, EXCLUDED.at_us - b.at_us) * $2 / 60000000.0)";
        let sql = format!(
            "INSERT INTO rate_buckets AS b (key, tokens, at_us, granted) VALUES ($1, $2 - 1, {NOW_US}, TRUE)
             ON CONFLICT (key) DO UPDATE SET
                 tokens = {refilled} - CASE WHEN {refilled} >= 1 THEN 1 ELSE 0 END,
                 granted = {refilled} >= 1,
                 at_us = EXCLUDED.at_us
             RETURNING granted, tokens"
        );
        let (granted, tokens): (bool, f64) =
            sqlx::query_as(&sql).bind(key).bind(capacity).fetch_one(&self.pool).await?;
        Ok(Take::from_bucket(granted, tokens, capacity))
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

//! Postgres twin of the SQLite `small_objects`: small objects of the local object store as rows.

use crate::db::{DbError, now_ms};

impl super::Pg {
    /// Store `body` at `key`, replacing what was there; `None` forgets the key.
    pub async fn set_small_object(&self, key: &str, body: Option<Vec<u8>>) -> Result<(), DbError> {
        let query = match body {
            Some(body) => sqlx::query(
                "INSERT INTO small_objects (key, body, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
            )
            .bind(key)
            .bind(body)
            .bind(now_ms()),
            None => sqlx::query("DELETE FROM small_objects WHERE key = $1").bind(key),
        };
        query.execute(&self.pool).await?;
        Ok(())
    }

    /// The object at `key`, if it is a small one.
    pub async fn small_object(&self, key: &str) -> Result<Option<Vec<u8>>, DbError> {
        sqlx::query_scalar("SELECT body FROM small_objects WHERE key = $1").bind(key).fetch_optional(&self.pool).await
    }

    /// Up to `limit` small objects, keys with their bodies, in key order after `after`.
    pub async fn small_objects_after(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, DbError> {
        sqlx::query_as("SELECT key, body FROM small_objects WHERE $1::TEXT IS NULL OR key > $1 ORDER BY key LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
    }
}

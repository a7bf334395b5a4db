//! Stored bytes against each customer's quota: every object a customer's jobs or uploads
//! write is recorded with its size (its latest size, for a key written again), and a trigger
//! keeps the customer's total (`customers.stored_bytes`). Recording checks the quota in the
//! same statement, so concurrent writers cannot pass it together.

use super::{DbError, Sqlite, now_ms};

/// An object to record for a customer.
pub struct StoredObject {
    pub key: String,
    pub customer_id: String,
    pub bytes: u64,
    /// The host's default quota, for customers without their own.
    pub default_quota: u64,
    /// Record it even past the quota (the bytes are already stored: a render's output).
    pub force: bool,
    /// A presigned upload's size, counted before anything arrives: it may raise the key's
    /// count but never lower it. An earlier URL signed for more may still be used, or the
    /// larger object it uploaded may still be there; only a delete (or the host's own PUT,
    /// which counts what arrived) lowers it.
    pub keep_larger: bool,
}

/// What recording did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Fits,
    /// The object would take the customer past their quota: nothing was recorded.
    OverQuota {
        stored: u64,
        quota: u64,
    },
}

/// A customer's storage as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageUsage {
    pub stored_bytes: u64,
    pub quota_bytes: u64,
}

impl Sqlite {
    /// Record `object` (queued with the other hot writes: it shares their commit).
    pub async fn record_stored_object(&self, object: StoredObject) -> Result<Recorded, DbError> {
        match self.batched(super::batch::Write::RecordObject(Box::new(object))).await? {
            super::batch::Written::Object(recorded) => Ok(recorded),
            _ => Err(DbError::Protocol("the batch writer answered out of turn".into())),
        }
    }

    pub async fn storage_usage(&self, customer_id: &str, default_quota: u64) -> Result<Option<StorageUsage>, DbError> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT stored_bytes, COALESCE(storage_quota_bytes, ?2) FROM customers WHERE id = ?1")
                .bind(customer_id)
                .bind(i64::try_from(default_quota).unwrap_or(i64::MAX))
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(stored, quota)| StorageUsage {
            stored_bytes: u64::try_from(stored).unwrap_or(0),
            quota_bytes: u64::try_from(quota).unwrap_or(0),
        }))
    }
}

/// An object as the workspace list shows it.
#[derive(Debug, sqlx::FromRow)]
pub struct StoredObjectRow {
    pub key: String,
    pub bytes: i64,
    pub updated_at: i64,
}

impl Sqlite {
    /// Objects whose keys start with `prefix` (which ends with `/`), in key order, after `after`.
    pub async fn stored_objects_under(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredObjectRow>, DbError> {
        // `prefix/` .. `prefix0`: the keys under the prefix, as a range of the primary key.
        let end = format!("{}0", prefix.trim_end_matches('/'));
        sqlx::query_as(
            "SELECT key, bytes, updated_at FROM stored_objects
             WHERE key >= ?1 AND key < ?2 AND (?3 IS NULL OR key > ?3) ORDER BY key LIMIT ?4",
        )
        .bind(prefix)
        .bind(end)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
    }

    /// A customer's recorded object.
    pub async fn stored_object(&self, customer_id: &str, key: &str) -> Result<Option<StoredObjectRow>, DbError> {
        sqlx::query_as("SELECT key, bytes, updated_at FROM stored_objects WHERE key = ? AND customer_id = ?")
            .bind(key)
            .bind(customer_id)
            .fetch_optional(self.pool())
            .await
    }

    /// The object is gone: its bytes leave the customer's total (a trigger).
    pub async fn forget_stored_object(&self, customer_id: &str, key: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM stored_objects WHERE key = ? AND customer_id = ?")
            .bind(key)
            .bind(customer_id)
            .execute(self.writer())
            .await
            .map(drop)
    }
}

/// [`Db::record_stored_object`] on the writing connection (inside a batch).
pub(super) fn record_object_on(conn: &rusqlite::Connection, object: &StoredObject) -> rusqlite::Result<Recorded> {
    use rusqlite::{OptionalExtension, params};
    let bytes = i64::try_from(object.bytes).unwrap_or(i64::MAX);
    let quota = i64::try_from(object.default_quota).unwrap_or(i64::MAX);
    let written = conn
        .prepare_cached(
            "INSERT INTO stored_objects (key, customer_id, bytes, updated_at)
             SELECT ?1, ?2, ?3, ?4
             WHERE ?6 OR (SELECT stored_bytes FROM customers WHERE id = ?2)
                         - COALESCE((SELECT bytes FROM stored_objects WHERE key = ?1), 0) + ?3
                         <= COALESCE((SELECT storage_quota_bytes FROM customers WHERE id = ?2), ?5)
             ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at,
                bytes = CASE WHEN ?7 THEN MAX(stored_objects.bytes, excluded.bytes) ELSE excluded.bytes END",
        )?
        .execute(params![object.key, object.customer_id, bytes, now_ms(), quota, object.force, object.keep_larger])?;
    if written > 0 {
        return Ok(Recorded::Fits);
    }
    let (stored, quota): (i64, i64) = conn
        .prepare_cached("SELECT stored_bytes, COALESCE(storage_quota_bytes, ?2) FROM customers WHERE id = ?1")?
        .query_row(params![object.customer_id, quota], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, 0));
    Ok(Recorded::OverQuota { stored: u64::try_from(stored).unwrap_or(0), quota: u64::try_from(quota).unwrap_or(0) })
}

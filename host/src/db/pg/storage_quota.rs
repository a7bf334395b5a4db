//! Postgres twin of the SQLite `storage_quota`: stored bytes against each customer's quota. A
//! trigger keeps `customers.stored_bytes`; recording checks the quota in the statement that
//! records, after locking the customer row, so writers on any host pass the quota one at a
//! time (the check alone is not atomic under READ COMMITTED).

use super::limits::lock_customer;
use crate::db::storage_quota::{Recorded, StorageUsage, StoredObject, StoredObjectRow};
use crate::db::{DbError, now_ms};
use sqlx::PgConnection;

impl super::Pg {
    /// Postgres twin of `Sqlite::record_stored_object`: record `object`, in a transaction of
    /// its own for now (the body is [`record_object_on`], for a later group commit).
    pub async fn record_stored_object(&self, object: StoredObject) -> Result<Recorded, DbError> {
        let mut tx = self.pool.begin().await?;
        let recorded = record_object_on(&mut tx, &object).await?;
        tx.commit().await?;
        Ok(recorded)
    }

    pub async fn storage_usage(&self, customer_id: &str, default_quota: u64) -> Result<Option<StorageUsage>, DbError> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT stored_bytes, COALESCE(storage_quota_bytes, $2) FROM customers WHERE id = $1")
                .bind(customer_id)
                .bind(i64::try_from(default_quota).unwrap_or(i64::MAX))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(stored, quota)| StorageUsage {
            stored_bytes: u64::try_from(stored).unwrap_or(0),
            quota_bytes: u64::try_from(quota).unwrap_or(0),
        }))
    }

    /// Objects whose keys start with `prefix` (which ends with `/`), in key order, after `after`.
    /// Keys compare bytewise (`COLLATE "C"`), as SQLite's do: under a language collation the
    /// range `prefix/` .. `prefix0` would not be the keys under the prefix.
    pub async fn stored_objects_under(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredObjectRow>, DbError> {
        // `prefix/` .. `prefix0`: the keys under the prefix, as a range of the primary key.
        let end = format!("{}0", prefix.trim_end_matches('/'));
        sqlx::query_as(
            r#"SELECT key, bytes, updated_at FROM stored_objects
             WHERE key COLLATE "C" >= $1 AND key COLLATE "C" < $2
               AND ($3::TEXT IS NULL OR key COLLATE "C" > $3)
             ORDER BY key COLLATE "C" LIMIT $4"#,
        )
        .bind(prefix)
        .bind(end)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
    }

    /// A customer's recorded object.
    pub async fn stored_object(&self, customer_id: &str, key: &str) -> Result<Option<StoredObjectRow>, DbError> {
        sqlx::query_as("SELECT key, bytes, updated_at FROM stored_objects WHERE key = $1 AND customer_id = $2")
            .bind(key)
            .bind(customer_id)
            .fetch_optional(&self.pool)
            .await
    }

    /// The object is gone: its bytes leave the customer's total (a trigger).
    pub async fn forget_stored_object(&self, customer_id: &str, key: &str) -> Result<(), DbError> {
        // The trigger updates the customer row after the delete locked the object's row; a
        // record of the same key locks the customer first, then the object. Lock the customer
        // first here too (customers before other rows), or the two could deadlock.
        let mut tx = self.pool.begin().await?;
        lock_customer(&mut tx, customer_id).await?;
        sqlx::query("DELETE FROM stored_objects WHERE key = $1 AND customer_id = $2")
            .bind(key)
            .bind(customer_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Postgres twin of the SQLite `record_object_on`, on the caller's transaction.
///
/// Relies on: the customer row locked first, so the quota read inside the insert sees every
/// earlier record of this customer committed and none can commit before this one does (every
/// change of `stored_bytes` is the trigger's UPDATE of that row). A customer without a row
/// locks nothing, but then the check fails (NULL) and only a forced record is written, as on
/// SQLite. The same key is always the same customer's, so its old size is read under the lock.
pub(super) async fn record_object_on(conn: &mut PgConnection, object: &StoredObject) -> Result<Recorded, DbError> {
    let bytes = i64::try_from(object.bytes).unwrap_or(i64::MAX);
    let quota = i64::try_from(object.default_quota).unwrap_or(i64::MAX);
    lock_customer(conn, &object.customer_id).await?;
    let written = sqlx::query(
        "INSERT INTO stored_objects (key, customer_id, bytes, updated_at)
         SELECT $1::TEXT, $2::TEXT, $3::BIGINT, $4::BIGINT
         WHERE $6::BOOLEAN OR (SELECT stored_bytes FROM customers WHERE id = $2)
                     - COALESCE((SELECT bytes FROM stored_objects WHERE key = $1), 0) + $3
                     <= COALESCE((SELECT storage_quota_bytes FROM customers WHERE id = $2), $5::BIGINT)
         ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at,
            bytes = CASE WHEN $7::BOOLEAN THEN GREATEST(stored_objects.bytes, excluded.bytes) ELSE excluded.bytes END",
    )
    .bind(&object.key)
    .bind(&object.customer_id)
    .bind(bytes)
    .bind(now_ms())
    .bind(quota)
    .bind(object.force)
    .bind(object.keep_larger)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if written > 0 {
        return Ok(Recorded::Fits);
    }
    let (stored, quota): (i64, i64) =
        sqlx::query_as("SELECT stored_bytes, COALESCE(storage_quota_bytes, $2) FROM customers WHERE id = $1")
            .bind(&object.customer_id)
            .bind(quota)
            .fetch_optional(&mut *conn)
            .await?
            .unwrap_or((0, 0));
    Ok(Recorded::OverQuota { stored: u64::try_from(stored).unwrap_or(0), quota: u64::try_from(quota).unwrap_or(0) })
}

//! Small objects of the local object store, kept as rows (`storage::SmallObjectsInDb` says
//! why). A write is queued with the other hot writes, so a job's small artifact often shares a
//! commit with its journal entries and events; a read is a point read on the caller's thread.

use super::batch::{Write, Written};
use super::{DbError, Sqlite, now_ms};
use rusqlite::{Connection, OptionalExtension, params};

/// A small object to store at `key`, or (`None`) the key to forget.
pub(crate) struct SmallObject {
    pub key: String,
    pub body: Option<Vec<u8>>,
}

impl Sqlite {
    /// Store `body` at `key`, replacing what was there; `None` forgets the key.
    pub async fn set_small_object(&self, key: &str, body: Option<Vec<u8>>) -> Result<(), DbError> {
        match self.batched(Write::SmallObject(Box::new(SmallObject { key: key.to_string(), body }))).await? {
            Written::SmallObject => Ok(()),
            _ => Err(DbError::Protocol("the batch writer answered out of turn".into())),
        }
    }

    /// The object at `key`, if it is a small one.
    pub async fn small_object(&self, key: &str) -> Result<Option<Vec<u8>>, DbError> {
        self.read_direct(|conn| {
            conn.prepare_cached("SELECT body FROM small_objects WHERE key = ?")?
                .query_row([key], |r| r.get(0))
                .optional()
        })
    }

    /// Up to `limit` small objects, keys with their bodies, in key order after `after`.
    pub async fn small_objects_after(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, DbError> {
        sqlx::query_as("SELECT key, body FROM small_objects WHERE ?1 IS NULL OR key > ?1 ORDER BY key LIMIT ?2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
    }
}

/// [`Sqlite::set_small_object`] on the writing connection (inside a batch).
pub(super) fn set_small_object_on(conn: &Connection, object: &SmallObject) -> rusqlite::Result<()> {
    match &object.body {
        Some(body) => conn
            .prepare_cached(
                "INSERT INTO small_objects (key, body, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
            )?
            .execute(params![object.key, body, now_ms()])?,
        None => conn.prepare_cached("DELETE FROM small_objects WHERE key = ?1")?.execute([&object.key])?,
    };
    Ok(())
}

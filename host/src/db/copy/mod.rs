//! `vidfarm db copy`: every row of a SQLite Vidfarm database into a new PostgreSQL one, to move
//! a platform from one host to many.
//!
//! The source is read in one read transaction: under WAL that is a snapshot, consistent even
//! while a host still writes (it also keeps the WAL from being checkpointed past it until the
//! copy ends). The target gets every row in one transaction with its user triggers disabled:
//! the copied rows already hold what those triggers derive (customers' running totals and
//! stored bytes, webhook outbox rows), so they must not fire again. Either everything is
//! copied or nothing is.

mod rows;

use super::DbError;
use super::pg::Pg;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// Rows per INSERT: big enough that round trips do not dominate, small enough for the
/// statement (its parameters are capped below).
const CHUNK_ROWS: usize = 500;
/// PostgreSQL's limit of parameters in one statement.
const MAX_PARAMETERS: usize = 65_535;

/// What a copy wrote.
#[derive(Debug, Default)]
pub struct CopyReport {
    /// Rows copied, per table.
    pub copied: BTreeMap<String, u64>,
    /// Tables of the source the target does not have, left behind (a scratch table, say).
    pub skipped: Vec<String>,
}

/// Why a copy did not happen. Whatever the error, nothing was committed to the target.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The copy would be wrong: not a migrated Vidfarm database, a target that already holds
    /// data, a value the target's column cannot hold (the message names table and column).
    #[error("{0}")]
    Refused(String),
    /// A database failed at the step `what` names.
    #[error("{what}: {source}")]
    Db { what: String, source: DbError },
}

/// Wraps a database error with the step it failed at.
fn at(what: impl Into<String>) -> impl FnOnce(DbError) -> CopyError {
    let what = what.into();
    move |source| CopyError::Db { what, source }
}

/// A SQL identifier, quoted (the names come from the schemas, but a quote costs nothing).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Copy every row of the SQLite database at `from` into the PostgreSQL database `to_url`
/// (created and migrated if needed), which must hold no customer and no job.
pub async fn copy_sqlite_to_postgres(from: &Path, to_url: &str) -> Result<CopyReport, CopyError> {
    let options = SqliteConnectOptions::new().filename(from).read_only(true).busy_timeout(Duration::from_secs(10));
    let mut source = SqliteConnection::connect_with(&options).await.map_err(at("opening the source"))?;
    // `BEGIN` reads nothing yet: the snapshot is taken by the first SELECT (in `tables_in_order`).
    let mut snapshot = source.begin().await.map_err(at("starting the read of the source"))?;
    let order = tables_in_order(&mut snapshot).await?;

    let target = Pg::connect(to_url, 4).await.map_err(at("connecting to the target (and migrating it)"))?;
    let mut tx = target.pool.begin().await.map_err(at("starting the write to the target"))?;
    // The copy reads the source between its statements: a slow source must not have the
    // server end the session as a stuck one (see `pg::IDLE_IN_TRANSACTION_TIMEOUT`).
    sqlx::query("SET LOCAL idle_in_transaction_session_timeout = 0")
        .execute(&mut *tx)
        .await
        .map_err(at("starting the write to the target"))?;
    let result = copy_tables(&mut snapshot, &mut tx, order).await;
    // The source was only read; ending its transaction lets the WAL be checkpointed again.
    let _ = snapshot.rollback().await;
    match result {
        Ok(report) => {
            tx.commit().await.map_err(at("committing the copy"))?;
            Ok(report)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// The source's tables, each after the tables it references, once the source is known to be a
/// Vidfarm database with exactly the migrations this binary carries.
async fn tables_in_order(source: &mut SqliteConnection) -> Result<Vec<String>, CopyError> {
    let migrated: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
            .fetch_one(&mut *source)
            .await
            .map_err(at("reading the source's schema"))?;
    if migrated == 0 {
        return Err(CopyError::Refused("the source is not a Vidfarm database (it has no _sqlx_migrations)".into()));
    }
    let applied: BTreeSet<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(&mut *source)
        .await
        .map_err(at("reading the source's migrations"))?
        .into_iter()
        .collect();
    let carried: BTreeSet<i64> = sqlx::migrate!("../migrations")
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    let list = |versions: Vec<&i64>| versions.iter().map(|v| format!("{v:04}")).collect::<Vec<_>>().join(", ");
    let missing: Vec<&i64> = carried.difference(&applied).collect();
    if !missing.is_empty() {
        return Err(CopyError::Refused(format!(
            "the source lacks migration(s) {} of this vidfarm: run `vidfarm db migrate --data-dir <its data dir>` \
             (or start its host once) with this binary, then copy",
            list(missing)
        )));
    }
    let unknown: Vec<&i64> = applied.difference(&carried).collect();
    if !unknown.is_empty() {
        return Err(CopyError::Refused(format!(
            "the source has migration(s) {} this vidfarm does not know: copy with the vidfarm that wrote it",
            list(unknown)
        )));
    }

    // `substr`, not LIKE: `_` is a LIKE wildcard.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, 7) <> 'sqlite_'
           AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut *source)
    .await
    .map_err(at("listing the source's tables"))?;
    let mut references = BTreeMap::new();
    for table in &tables {
        let referenced: Vec<String> = sqlx::query_scalar("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1)")
            .bind(table)
            .fetch_all(&mut *source)
            .await
            .map_err(at(format!("reading the foreign keys of {table}")))?;
        // A table's references to itself (a job's parent) are met by row order instead (see
        // `copy_table`); references to tables that do not exist constrain nothing.
        let set: BTreeSet<String> = referenced.into_iter().filter(|r| r != table && tables.contains(r)).collect();
        references.insert(table.clone(), set);
    }
    dependency_order(references)
}

/// Kahn's algorithm, each round in name order so the order is the same on every run.
fn dependency_order(mut references: BTreeMap<String, BTreeSet<String>>) -> Result<Vec<String>, CopyError> {
    let mut order: Vec<String> = Vec::with_capacity(references.len());
    while !references.is_empty() {
        let ready: Vec<String> = references
            .iter()
            .filter(|(_, refs)| refs.iter().all(|r| order.contains(r)))
            .map(|(table, _)| table.clone())
            .collect();
        if ready.is_empty() {
            let stuck: Vec<&str> = references.keys().map(String::as_str).collect();
            return Err(CopyError::Refused(format!(
                "the foreign keys of {} form a cycle: no order copies them",
                stuck.join(", ")
            )));
        }
        for table in ready {
            references.remove(&table);
            order.push(table);
        }
    }
    Ok(order)
}

/// Everything the transaction `target` writes: triggers off, the emptiness check (under the
/// locks that disabling took, so no host writes in between), the rows, the identities moved
/// past them, triggers on.
async fn copy_tables(
    source: &mut SqliteConnection,
    target: &mut PgConnection,
    order: Vec<String>,
) -> Result<CopyReport, CopyError> {
    let present: BTreeSet<String> = sqlx::query_scalar(
        "SELECT table_name::TEXT FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&mut *target)
    .await
    .map_err(at("listing the target's tables"))?
    .into_iter()
    .collect();
    let mut report = CopyReport::default();
    let (copied, skipped): (Vec<String>, Vec<String>) = order.into_iter().partition(|t| present.contains(t));
    report.skipped = skipped;

    for table in &copied {
        sqlx::query(&format!("ALTER TABLE {} DISABLE TRIGGER USER", quoted(table)))
            .execute(&mut *target)
            .await
            .map_err(at(format!("disabling the triggers of {table} in the target")))?;
    }
    let holds_data: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM customers) OR EXISTS (SELECT 1 FROM jobs)")
        .fetch_one(&mut *target)
        .await
        .map_err(at("checking that the target is empty"))?;
    if holds_data {
        return Err(CopyError::Refused(
            "the target already holds customers or jobs; `vidfarm db copy` never merges: copy into a new, empty database"
                .into(),
        ));
    }

    for table in &copied {
        let count = rows::copy_table(source, target, table).await?;
        report.copied.insert(table.clone(), count);
    }
    move_identities(target, &copied).await?;
    for table in &copied {
        sqlx::query(&format!("ALTER TABLE {} ENABLE TRIGGER USER", quoted(table)))
            .execute(&mut *target)
            .await
            .map_err(at(format!("enabling the triggers of {table} in the target")))?;
    }
    Ok(report)
}

/// Each identity column's sequence continues after the largest copied id (else the next
/// insert would take id 1 and collide).
/// Sequences are not transactional: were the commit to fail after this, the target is left
/// empty with sequences further on, which costs nothing.
async fn move_identities(target: &mut PgConnection, copied: &[String]) -> Result<(), CopyError> {
    let identities: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::TEXT, column_name::TEXT FROM information_schema.columns
         WHERE table_schema = current_schema() AND is_identity = 'YES'",
    )
    .fetch_all(&mut *target)
    .await
    .map_err(at("listing the target's identity columns"))?;
    for (table, column) in identities.iter().filter(|(table, _)| copied.contains(table)) {
        // `false`: the next id is exactly MAX + 1 (1 in an empty table).
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence($1, $2), COALESCE(MAX({}), 0) + 1, false) FROM {}",
            quoted(column),
            quoted(table)
        );
        sqlx::query(&sql)
            .bind(quoted(table))
            .bind(column)
            .execute(&mut *target)
            .await
            .map_err(at(format!("moving the identity of {table}.{column} past the copied rows")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(table, "referenced tables, space-separated")`.
    fn refs(pairs: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
        pairs.iter().map(|(t, r)| (t.to_string(), r.split_whitespace().map(String::from).collect())).collect()
    }

    #[test]
    fn tables_come_after_the_tables_they_reference_and_cycles_are_refused() {
        let order = dependency_order(refs(&[
            ("billing_events", "customers jobs"),
            ("customers", ""),
            ("jobs", "customers"),
            ("webhook_attempts", "webhook_deliveries"),
            ("webhook_deliveries", "customers jobs webhook_destinations"),
            ("webhook_destinations", "customers"),
        ]))
        .expect("an order");
        let position = |t: &str| order.iter().position(|o| o == t).expect("listed");
        assert_eq!(order[0], "customers");
        assert!(position("jobs") < position("billing_events"));
        assert!(position("webhook_destinations") < position("webhook_deliveries"));
        assert!(position("webhook_deliveries") < position("webhook_attempts"));
        let cycle = dependency_order(refs(&[("a", "b"), ("b", "a"), ("c", "")]));
        assert!(matches!(cycle, Err(CopyError::Refused(why)) if why.contains("a, b")));
    }
}

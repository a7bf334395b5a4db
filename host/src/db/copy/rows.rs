//! One table's rows, from SQLite into PostgreSQL. SQLite keeps whatever a value is (an INTEGER
//! column may hold a REAL); PostgreSQL binds by type, so each value is converted to its TARGET
//! column's type, exactly or not at all (the refusal names the table, column and row).

use super::{CHUNK_ROWS, CopyError, MAX_PARAMETERS, at, quoted};
use futures::TryStreamExt;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Row, TypeInfo, ValueRef};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A target column's type, as the copy binds it.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Real,
    Text,
    Bytes,
}

impl Kind {
    /// From `information_schema.columns.data_type`; None: a type the copy does not bind.
    fn of(data_type: &str) -> Option<Self> {
        match data_type {
            "bigint" | "integer" | "smallint" => Some(Self::Int),
            "double precision" | "real" => Some(Self::Real),
            "text" | "character varying" => Some(Self::Text),
            "bytea" => Some(Self::Bytes),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Int => "bigint",
            Self::Real => "double precision",
            Self::Text => "text",
            Self::Bytes => "bytea",
        }
    }
}

/// What SQLite stored (its storage class).
#[derive(Clone, Copy)]
enum Stored {
    Integer,
    Real,
    Text,
    Blob,
}

/// One value, typed for its target column; None is a NULL of that type.
enum Cell {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

impl Cell {
    fn null(kind: Kind) -> Self {
        match kind {
            Kind::Int => Self::Int(None),
            Kind::Real => Self::Real(None),
            Kind::Text => Self::Text(None),
            Kind::Bytes => Self::Bytes(None),
        }
    }
}

/// Copy `table`'s rows, streamed in rowid order and written in multi-row INSERTs; returns how
/// many. Rowid order is insertion order (VACUUM renumbers but keeps it), so a job comes after
/// the parent that created it: the self-reference is met without sorting. Rows of one INSERT
/// may reference each other (PostgreSQL checks foreign keys at the end of the statement).
pub(super) async fn copy_table(
    source: &mut SqliteConnection,
    target: &mut PgConnection,
    table: &str,
) -> Result<u64, CopyError> {
    let columns = columns(source, target, table).await?;
    if columns.is_empty() {
        return Ok(0);
    }
    let names: Vec<String> = columns.iter().map(|(name, _)| quoted(name)).collect();
    let select = format!("SELECT rowid, {} FROM {} ORDER BY rowid", names.join(", "), quoted(table));
    let head = format!("INSERT INTO {} ({}) VALUES ", quoted(table), names.join(", "));
    let per_insert = CHUNK_ROWS.min(MAX_PARAMETERS / columns.len());
    let mut rows = sqlx::query(&select).fetch(&mut *source);
    let mut chunk = Vec::with_capacity(per_insert);
    let mut copied = 0;
    // Lazily formatted, like every message of a per-row error: millions of rows may pass here.
    while let Some(row) = rows.try_next().await.map_err(|e| at(format!("reading {table} from the source"))(e))? {
        chunk.push(cells(&row, table, &columns)?);
        if chunk.len() == per_insert {
            copied += insert(target, table, &head, columns.len(), std::mem::take(&mut chunk)).await?;
        }
    }
    if !chunk.is_empty() {
        copied += insert(target, table, &head, columns.len(), chunk).await?;
    }
    Ok(copied)
}

/// The source's columns of `table` with the type each is bound as, by NAME (so the two
/// schemas' column orders may differ). A source column the target lacks is refused: copying
/// would silently lose it. Target columns the source lacks take their defaults.
async fn columns(
    source: &mut SqliteConnection,
    target: &mut PgConnection,
    table: &str,
) -> Result<Vec<(String, Kind)>, CopyError> {
    let in_source: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .bind(table)
        .fetch_all(&mut *source)
        .await
        .map_err(at(format!("reading the columns of {table} in the source")))?;
    let in_target: BTreeMap<String, String> = sqlx::query_as::<_, (String, String)>(
        "SELECT column_name::TEXT, data_type::TEXT FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1",
    )
    .bind(table)
    .fetch_all(&mut *target)
    .await
    .map_err(at(format!("reading the columns of {table} in the target")))?
    .into_iter()
    .collect();
    in_source
        .into_iter()
        .map(|name| {
            let Some(data_type) = in_target.get(&name) else {
                return Err(CopyError::Refused(format!(
                    "{table}.{name} is in the source but not in the target: copying would lose it"
                )));
            };
            match Kind::of(data_type) {
                Some(kind) => Ok((name, kind)),
                None => Err(CopyError::Refused(format!(
                    "{table}.{name} is {data_type} in the target, a type `vidfarm db copy` does not write"
                ))),
            }
        })
        .collect()
}

/// A source row (its rowid first) as the target's values.
fn cells(row: &SqliteRow, table: &str, columns: &[(String, Kind)]) -> Result<Vec<Cell>, CopyError> {
    let rowid: i64 = row.try_get(0).map_err(|e| at(format!("reading a rowid of {table}"))(e))?;
    columns
        .iter()
        .enumerate()
        .map(|(i, (name, kind))| {
            cell(row, i + 1, *kind)
                .map_err(|why| CopyError::Refused(format!("{table}.{name} (the row with rowid {rowid}) {why}")))
        })
        .collect()
}

/// One value converted to `kind`, or why it cannot be without changing it.
fn cell(row: &SqliteRow, index: usize, kind: Kind) -> Result<Cell, String> {
    let raw = row.try_get_raw(index).map_err(|e| format!("cannot be read: {e}"))?;
    if raw.is_null() {
        return Ok(Cell::null(kind));
    }
    // The value's own storage class (a NULL's would be the declared type: handled above).
    let stored = match raw.type_info().name() {
        "INTEGER" => Stored::Integer,
        "REAL" => Stored::Real,
        "TEXT" => Stored::Text,
        "BLOB" => Stored::Blob,
        other => return Err(format!("holds a SQLite {other} value")),
    };
    // Unchecked: the storage class was just read, and sqlx's check would compare the
    // declared type instead.
    let unreadable = |e: sqlx::Error| format!("cannot be read: {e}");
    Ok(match (kind, stored) {
        (Kind::Int, Stored::Integer) => Cell::Int(Some(row.try_get_unchecked::<i64, _>(index).map_err(unreadable)?)),
        (Kind::Int, Stored::Real) => {
            let x = row.try_get_unchecked::<f64, _>(index).map_err(unreadable)?;
            // A whole number within i64 converts exactly; anything else would be changed.
            if x.fract() != 0.0 || !(-(i64::MAX as f64)..i64::MAX as f64).contains(&x) {
                return Err(format!("holds {x}, not a whole number, where the target column is bigint"));
            }
            Cell::Int(Some(x as i64))
        }
        (Kind::Real, Stored::Integer) => {
            Cell::Real(Some(row.try_get_unchecked::<i64, _>(index).map_err(unreadable)? as f64))
        }
        (Kind::Real, Stored::Real) => Cell::Real(Some(row.try_get_unchecked::<f64, _>(index).map_err(unreadable)?)),
        (Kind::Text, Stored::Text) => {
            let text = row.try_get_unchecked::<String, _>(index).map_err(unreadable)?;
            if text.contains('\0') {
                return Err("holds text with a NUL character, which PostgreSQL text cannot store".into());
            }
            Cell::Text(Some(text))
        }
        (Kind::Bytes, Stored::Blob) => {
            Cell::Bytes(Some(row.try_get_unchecked::<Vec<u8>, _>(index).map_err(unreadable)?))
        }
        (Kind::Bytes, Stored::Text) => {
            Cell::Bytes(Some(row.try_get_unchecked::<String, _>(index).map_err(unreadable)?.into_bytes()))
        }
        (kind, stored) => {
            let stored = match stored {
                Stored::Integer => "INTEGER",
                Stored::Real => "REAL",
                Stored::Text => "TEXT",
                Stored::Blob => "BLOB",
            };
            return Err(format!("holds a SQLite {stored} value where the target column is {}", kind.name()));
        }
    })
}

/// One multi-row INSERT of `rows` (each `width` values); returns how many rows it wrote.
async fn insert(
    target: &mut PgConnection,
    table: &str,
    head: &str,
    width: usize,
    rows: Vec<Vec<Cell>>,
) -> Result<u64, CopyError> {
    let count = rows.len();
    let mut sql = String::with_capacity(head.len() + count * width * 8);
    sql.push_str(head);
    for r in 0..count {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            let _ = write!(sql, "{}${}", if c == 0 { "" } else { ", " }, r * width + c + 1);
        }
        sql.push(')');
    }
    let mut query = sqlx::query::<sqlx::Postgres>(&sql);
    for cell in rows.into_iter().flatten() {
        query = match cell {
            Cell::Int(v) => query.bind(v),
            Cell::Real(v) => query.bind(v),
            Cell::Text(v) => query.bind(v),
            Cell::Bytes(v) => query.bind(v),
        };
    }
    query.execute(&mut *target).await.map_err(at(format!("writing {table} to the target")))?;
    Ok(count as u64)
}

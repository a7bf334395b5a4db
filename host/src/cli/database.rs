//! `vidfarm db migrate`, `vidfarm db copy` and `vidfarm db export-objects`: bring a database to
//! this binary's schema, move a SQLite platform's rows into PostgreSQL, and write the objects
//! kept in the database out as files (docs/operations.md, "Moving from SQLite to PostgreSQL").

use super::{failure, usage};
use crate::db::copy::{CopyError, copy_sqlite_to_postgres};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Open the configured database (which migrates it) and print the schema version it is at.
pub(super) async fn migrate(data_dir: Option<PathBuf>) -> ExitCode {
    let db = match super::admin::open(data_dir).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    match db.schema_version().await {
        Ok(version) => {
            println!("{}", json!({ "database": db.backend_name(), "migrated": true, "version": version }));
            ExitCode::SUCCESS
        }
        Err(e) => failure(format!("reading the schema version: {e}")),
    }
}

/// Copy the SQLite database `from` (`sqlite://PATH`) into the PostgreSQL database `to`
/// (`postgres://…`) and print what was copied.
pub(super) async fn copy(from: &str, to: &str) -> ExitCode {
    let Some(path) = from.strip_prefix("sqlite://").filter(|p| !p.is_empty()) else {
        return usage(format!(
            "--from must be sqlite://PATH (the SQLite file, e.g. sqlite://data/vidfarm.sqlite), not `{from}`"
        ));
    };
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return usage(format!("--to must be a postgres:// URL, not `{}`", without_password(to)));
    }
    let path = Path::new(path);
    if !path.is_file() {
        return usage(format!("--from: {} is not a file", path.display()));
    }
    match copy_sqlite_to_postgres(path, to).await {
        Ok(report) => {
            println!(
                "{}",
                json!({ "copied": report.copied, "skipped": report.skipped, "from": from, "to": without_password(to) })
            );
            ExitCode::SUCCESS
        }
        Err(e @ CopyError::Refused(_)) => failure(format!("nothing was copied: {e}")),
        Err(e) => failure(format!("nothing was copied (the target's transaction was rolled back): {e}")),
    }
}

/// Write the objects kept in the configured database as files under `to` (default: the data
/// dir's `objects/`) and print how many, and each key that could not be a file (exit 1).
pub(super) async fn export_objects(to: Option<PathBuf>, data_dir: Option<PathBuf>) -> ExitCode {
    let config = match super::platform::config(data_dir.clone(), None) {
        Ok(config) => config,
        Err(e) => return usage(e),
    };
    let to = to.unwrap_or_else(|| config.data_dir.join("objects"));
    if to.exists() && !to.is_dir() {
        return usage(format!("--to: {} is not a directory", to.display()));
    }
    let db = match super::admin::open(data_dir).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    match crate::storage::small_objects::export(&db, &to).await {
        Ok(exported) => {
            let failed: Vec<_> = exported.failed.iter().map(|(key, why)| json!({ "key": key, "error": why })).collect();
            println!("{}", json!({ "exported": exported.written, "failed": failed, "to": to }));
            if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => failure(format!("exporting the objects kept in the database: {e}")),
    }
}

/// `url` as it may be printed: without the password of its user info
/// (`postgres://user:secret@host/db` → `postgres://user@host/db`) or a `password=` parameter.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (before_query, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    // The last `@` ends the user info (a password may hold `/`, so the host is not found first).
    let authority = match before_query.rfind('@') {
        Some(at) => {
            let user = before_query[..at].split(':').next().unwrap_or_default();
            format!("{user}{}", &before_query[at..])
        }
        None => before_query.to_string(),
    };
    let kept: Vec<&str> = query
        .trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty() && !p.to_ascii_lowercase().starts_with("password="))
        .collect();
    let query = if kept.is_empty() { String::new() } else { format!("?{}", kept.join("&")) };
    format!("{scheme}://{authority}{query}")
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn printed_urls_keep_everything_but_the_password() {
        assert_eq!(without_password("postgres://vidfarm:s3cr/t@db:5432/vidfarm"), "postgres://vidfarm@db:5432/vidfarm");
        assert_eq!(
            without_password("postgres://vidfarm@127.0.0.1:5432/postgres"),
            "postgres://vidfarm@127.0.0.1:5432/postgres"
        );
        assert_eq!(
            without_password("postgresql://db/vidfarm?sslmode=disable&password=x&user=v"),
            "postgresql://db/vidfarm?sslmode=disable&user=v"
        );
        assert_eq!(without_password("postgres://db/vidfarm?password=x"), "postgres://db/vidfarm");
    }
}

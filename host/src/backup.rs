//! Online backups of the SQLite database: `VACUUM INTO` a scratch file while readers and
//! writers go on, verified by opening the copy and running `PRAGMA integrity_check` before it
//! counts, then kept in a directory or an S3 bucket, the newest `keep` of them. `vidfarm db
//! restore` puts one back into an empty data dir, after the same check.

use crate::db::Db;
use crate::storage::S3Settings;
use aws_sdk_s3::primitives::ByteStream;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where backups go and how many stay.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// `VIDFARM_BACKUP_EVERY` (e.g. `6h`): how often a backup is taken.
    pub every: Duration,
    /// `VIDFARM_BACKUP_KEEP`: the newest this many are kept, older ones deleted.
    pub keep: usize,
    pub target: BackupTarget,
}

#[derive(Debug, Clone)]
pub enum BackupTarget {
    /// `VIDFARM_BACKUP_DIR` (default `<data dir>/backups`).
    Dir(PathBuf),
    /// `VIDFARM_BACKUP_S3_PREFIX` in the `VIDFARM_S3_*` bucket.
    S3 { settings: S3Settings, prefix: String },
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the backup {0} failed its integrity check: {1}")]
    Corrupt(String, String),
    #[error("S3: {0}")]
    S3(String),
    #[error("{0}")]
    Refused(String),
}

/// What one backup holds, as verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    pub jobs: i64,
    pub finished_jobs: i64,
}

/// Backups are named by the instant they were taken, so names sort by age.
fn name_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "vidfarm-{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z.sqlite",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    )
}

fn is_backup(name: &str) -> bool {
    name.starts_with("vidfarm-") && name.ends_with(".sqlite")
}

/// Open `path` read-only and check it: `PRAGMA integrity_check` must say `ok`.
pub async fn verify(path: &Path) -> Result<Verified, BackupError> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?.read_only(true);
    let mut conn = SqliteConnection::connect_with(&options).await?;
    let check: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&mut conn).await?;
    if check != ["ok"] {
        return Err(BackupError::Corrupt(path.display().to_string(), check.join("; ")));
    }
    let (jobs, finished_jobs): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(status IN ('succeeded', 'failed', 'cancelled')), 0) FROM jobs")
            .fetch_one(&mut conn)
            .await?;
    conn.close().await?;
    Ok(Verified { jobs, finished_jobs })
}

/// Take one backup into `target` (through `scratch`, a directory on the database's disk),
/// verify it, and prune to the newest `keep`. Returns its name and what it holds.
pub async fn take(
    db: &Db,
    scratch: &Path,
    target: &BackupTarget,
    keep: usize,
) -> Result<(String, Verified), BackupError> {
    std::fs::create_dir_all(scratch)?;
    let name = name_now();
    let partial = scratch.join(format!("{name}.partial"));
    let _ = std::fs::remove_file(&partial);
    let result = async {
        db.backup(&partial).await?;
        let verified = verify(&partial).await?;
        match target {
            BackupTarget::Dir(dir) => {
                std::fs::create_dir_all(dir)?;
                std::fs::rename(&partial, dir.join(&name)).or_else(|_| {
                    std::fs::copy(&partial, dir.join(&name)).map(drop) // another file system
                })?;
            }
            BackupTarget::S3 { settings, prefix } => {
                let body = ByteStream::from_path(&partial).await.map_err(|e| BackupError::S3(e.to_string()))?;
                let client = crate::storage::s3_client(settings);
                let key = format!("{prefix}{name}");
                let put = client.put_object().bucket(&settings.bucket).key(&key).body(body).send().await;
                put.map_err(|e| BackupError::S3(aws_sdk_s3::error::DisplayErrorContext(e).to_string()))?;
            }
        }
        prune(target, keep).await?;
        Ok::<_, BackupError>(verified)
    }
    .await;
    let _ = std::fs::remove_file(&partial);
    result.map(|verified| (name, verified))
}

/// Delete all but the newest `keep` backups.
async fn prune(target: &BackupTarget, keep: usize) -> Result<(), BackupError> {
    let mut names = list(target).await?;
    names.sort();
    let old = names.len().saturating_sub(keep.max(1));
    for name in &names[..old] {
        match target {
            BackupTarget::Dir(dir) => std::fs::remove_file(dir.join(name))?,
            BackupTarget::S3 { settings, prefix } => {
                let client = crate::storage::s3_client(settings);
                let deleted =
                    client.delete_object().bucket(&settings.bucket).key(format!("{prefix}{name}")).send().await;
                deleted.map_err(|e| BackupError::S3(aws_sdk_s3::error::DisplayErrorContext(e).to_string()))?;
            }
        }
    }
    Ok(())
}

/// The backups in `target`, by name.
pub async fn list(target: &BackupTarget) -> Result<Vec<String>, BackupError> {
    match target {
        BackupTarget::Dir(dir) => {
            let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
            Ok(entries.flatten().filter_map(|e| e.file_name().into_string().ok()).filter(|n| is_backup(n)).collect())
        }
        BackupTarget::S3 { settings, prefix } => {
            let client = crate::storage::s3_client(settings);
            let mut names = Vec::new();
            let mut pages = client.list_objects_v2().bucket(&settings.bucket).prefix(prefix).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| BackupError::S3(aws_sdk_s3::error::DisplayErrorContext(e).to_string()))?;
                for object in page.contents() {
                    if let Some(name) = object.key().and_then(|k| k.strip_prefix(prefix.as_str()))
                        && is_backup(name)
                    {
                        names.push(name.to_string());
                    }
                }
            }
            Ok(names)
        }
    }
}

/// Put the backup at `file` into `data_dir` as its database, after checking it. Refused when
/// the data dir already has a database: a restore never overwrites one.
pub async fn restore(file: &Path, database: &Path) -> Result<Verified, BackupError> {
    let verified = verify(file).await?;
    for existing in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{existing}", database.display()));
        if path.exists() {
            return Err(BackupError::Refused(format!(
                "{} exists; restore into an empty data dir (move the old one aside first)",
                path.display()
            )));
        }
    }
    if let Some(dir) = database.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let partial = database.with_extension("sqlite.restoring");
    std::fs::copy(file, &partial)?;
    std::fs::rename(&partial, database)?;
    Ok(verified)
}

/// Take a backup every `settings.every` until `shutdown`; a failure is logged and retried at
/// the next turn (the previous backups stay).
pub async fn run_schedule(db: Db, scratch: PathBuf, settings: BackupSettings, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(settings.every);
    ticker.tick().await; // the first backup one period after start, not at start
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match take(&db, &scratch, &settings.target, settings.keep).await {
            Ok((name, verified)) => {
                tracing::info!(backup = %name, jobs = verified.jobs, "database backed up and verified")
            }
            Err(e) => tracing::error!(error = %e, "the scheduled backup failed; the earlier backups remain"),
        }
    }
}

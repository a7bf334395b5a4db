//! Which database the end-to-end tests run on: a SQLite file in each test's data dir (the
//! default), or with `VIDFARM_TEST_DB=postgres` a database of its own per data dir on the
//! server `VIDFARM_TEST_PG` names (`tests/run-all.sh` starts one with
//! `scripts/pg-test-server.sh`; the host creates the database on first connect).

use std::hash::{Hash, Hasher};
use std::path::Path;

/// The `VIDFARM_DATABASE_URL` of the host whose data dir is `data_dir`, if the tests run on
/// PostgreSQL. The same data dir always names the same database, so the processes and CLI
/// calls of one test share it, and no two tests do.
pub fn database_url(data_dir: &Path) -> Option<String> {
    if std::env::var("VIDFARM_TEST_DB").ok().as_deref() != Some("postgres") {
        return None;
    }
    let server = std::env::var("VIDFARM_TEST_PG")
        .expect("VIDFARM_TEST_DB=postgres needs VIDFARM_TEST_PG (eval \"$(scripts/pg-test-server.sh start)\")");
    let (base, _) = server.rsplit_once('/').expect("VIDFARM_TEST_PG is a postgres:// URL with a database");
    let mut hasher = std::hash::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    Some(format!("{base}/vidfarm_t_{:016x}", hasher.finish()))
}

/// Everything the host's database holds, as bytes to search for what must never be stored
/// (a plaintext secret, say): the SQLite file and its WAL, or a `pg_dump` of the database.
pub fn stored_bytes(data_dir: &Path) -> Vec<u8> {
    match database_url(data_dir) {
        Some(url) => pg_dump(&url),
        None => ["vidfarm.sqlite", "vidfarm.sqlite-wal"]
            .iter()
            .flat_map(|name| std::fs::read(data_dir.join(name)).unwrap_or_default())
            .collect(),
    }
}

/// A plain-text dump of a PostgreSQL database, by the server's own `pg_dump`.
pub fn pg_dump(url: &str) -> Vec<u8> {
    let server_bin = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|version| version.path().join("bin/pg_dump"))
        .filter(|path| path.exists())
        .max();
    let pg_dump = server_bin.unwrap_or_else(|| "pg_dump".into());
    let out = std::process::Command::new(pg_dump).arg(url).output().expect("pg_dump runs");
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

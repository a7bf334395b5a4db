//! The recovery drill: back up under load, restore into a fresh data dir, and every job that
//! had finished before the backup is there; retention keeps the newest; a damaged backup or a
//! restore over a live database is refused.

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use vidfarm::backup::{self, BackupTarget};
use vidfarm_tests::server::{TestServer, test_config};

#[tokio::test]
async fn a_backup_taken_under_load_restores_every_finished_job_into_a_fresh_data_dir() {
    // Backups copy the SQLite file, on either test pass (PostgreSQL is backed up by pg_dump).
    let server = TestServer::start_with(|config| config.database_url = None, true).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (http, url, who, stop) = (
            server.http.clone(),
            server.url("/templates/sandbox-probe/operations/echo"),
            server.customer.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut created = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let body = json!({ "tracer": "load", "payload": { "n": created } });
                let sent = http
                    .post(&url)
                    .header("vidfarm-user-id", &who.id)
                    .header("vidfarm-api-key", &who.key)
                    .json(&body)
                    .send()
                    .await
                    .expect("sent");
                assert_eq!(sent.status(), 202);
                created += 1;
            }
            created
        })
    };
    let db = &server.platform.db;
    let finished = |db: &vidfarm::db::Db| {
        let db = db.clone();
        async move {
            let ids = db.inspect("SELECT id FROM jobs WHERE status = 'succeeded'", &[]).await.expect("finished jobs");
            ids.into_iter().flatten().collect::<Vec<String>>()
        }
    };
    while finished(db).await.len() < 50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before_backup = finished(db).await;
    let target = BackupTarget::Dir(server.dir.path().join("backups"));
    let scratch = server.dir.path().join("scratch");
    let (first, verified) = backup::take(db, &scratch, &target, 1).await.expect("backed up while jobs run");
    assert!(verified.finished_jobs >= before_backup.len() as i64, "{verified:?}");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (second, _) = backup::take(db, &scratch, &target, 1).await.expect("backed up again");
    stop.store(true, Ordering::SeqCst);
    let created = load.await.expect("the load ran");
    assert!(created > 50, "jobs kept coming during the backups ({created})");
    assert_eq!(backup::list(&target).await.expect("listed"), vec![second.clone()], "keep 1: {first} was pruned");

    let fresh = tempfile::tempdir().expect("a fresh data dir");
    let mut config = test_config(fresh.path());
    config.database_url = None;
    let backup_file = server.dir.path().join("backups").join(&second);
    backup::restore(&backup_file, &config.database_path()).await.expect("restored");
    let again = backup::restore(&backup_file, &config.database_path()).await.expect_err("never over a database");
    assert!(again.to_string().contains("exists"), "{again}");
    let restored = vidfarm::engine::Platform::start(config).await.expect("the restored platform starts");
    for id in &before_backup {
        let job = restored.db.job(id).await.expect("read").unwrap_or_else(|| panic!("{id} is missing"));
        assert_eq!(job.status, "succeeded", "{id}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_damaged_backup_fails_its_check_and_is_not_restored() {
    let server = TestServer::start_with(|config| config.database_url = None, false).await;
    for _ in 0..20 {
        server.create_job("sandbox-probe", "echo", json!({ "pad": "z".repeat(2000) })).await;
    }
    let target = BackupTarget::Dir(server.dir.path().join("backups"));
    let (name, _) =
        backup::take(&server.platform.db, &server.dir.path().join("scratch"), &target, 3).await.expect("backed up");
    let file = server.dir.path().join("backups").join(name);
    let mut bytes = std::fs::read(&file).expect("read");
    let len = bytes.len();
    for at in (len / 2..len).step_by(997) {
        bytes[at] ^= 0x5a;
    }
    std::fs::write(&file, bytes).expect("damaged");
    let fresh = tempfile::tempdir().expect("a temp dir");
    let refused = backup::restore(&file, &fresh.path().join("vidfarm.sqlite")).await.expect_err("refused");
    assert!(!fresh.path().join("vidfarm.sqlite").exists(), "nothing restored: {refused}");
    server.stop().await;
}

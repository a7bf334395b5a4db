//! Operator maintenance: online backups and the retention sweep.

use serde_json::json;
use std::time::Duration;
use vidfarm::db::Db;
use vidfarm_tests::server::TestServer;

#[tokio::test]
async fn a_backup_taken_while_the_server_runs_holds_the_jobs() {
    // Backups copy the SQLite file, on either test pass (PostgreSQL is backed up by pg_dump).
    let server = TestServer::start_with(|config| config.database_url = None, true).await;
    let job_id = server.create_job("hello", "greet", json!({ "name": "Ada" })).await;
    server.wait_for("hello", &job_id, &["succeeded"], Duration::from_secs(20)).await;
    let backup = server.dir.path().join("backup.sqlite");
    server.platform.db.backup(&backup).await.expect("the backup is taken");
    let copy = Db::open(&backup).await.expect("the backup opens");
    let job = copy.job(&job_id).await.expect("readable").expect("the job is in the backup");
    assert_eq!(job.status, "succeeded");
    assert!(!copy.events_after(&job_id, 0, 100).await.expect("events").is_empty());
    server.stop().await;
}

#[tokio::test]
async fn finished_jobs_past_retention_are_deleted_with_their_events_and_journals() {
    let server = TestServer::start_with(|_| {}, true).await;
    let done = server.create_job("hello", "greet", json!({ "name": "Ada" })).await;
    server.wait_for("hello", &done, &["succeeded"], Duration::from_secs(20)).await;
    let waiting = server.create_job("hello", "greet-after-approval", json!({ "name": "Bo" })).await;
    server.wait_for("hello", &waiting, &["waiting_for_human"], Duration::from_secs(20)).await;
    let db = &server.platform.db;
    let deleted = db.sweep_finished(vidfarm::db::now_ms() + 1).await.expect("sweep");
    assert_eq!(deleted, 1);
    assert!(db.job(&done).await.expect("query").is_none(), "the finished job is gone");
    assert!(db.events_after(&done, 0, 10).await.expect("query").is_empty(), "its events too");
    assert!(db.journal(&done).await.expect("query").is_empty(), "and its journal");
    assert!(db.job(&waiting).await.expect("query").is_some(), "unfinished jobs stay");
    server.stop().await;
}

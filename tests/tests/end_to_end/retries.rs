//! Retries: a run that fails for a host fault is retried with backoff up to the operation's
//! maximum; a template's own error or a limit hit fails the job at once.

use async_trait::async_trait;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use vidfarm::capabilities::{BackendResult, EventKey, EventSink, HostTrap, JobEvent, JobScope};
use vidfarm::runtime::RunError;
use vidfarm_tests::server::TestServer;

/// An event sink whose first `failures` writes fail like a database outage would.
struct FlakyEvents {
    inner: Arc<dyn EventSink>,
    failures: u32,
    calls: AtomicU32,
}

#[async_trait]
impl EventSink for FlakyEvents {
    async fn emit(&self, job: &JobScope, key: EventKey, event: JobEvent) -> BackendResult<()> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err(HostTrap::Fail(RunError::HostFault { message: "the event store is down".into() }));
        }
        self.inner.emit(job, key, event).await
    }
    async fn stored_keys(&self, job_id: &str) -> BackendResult<Vec<EventKey>> {
        self.inner.stored_keys(job_id).await
    }
}

async fn server_with_flaky_events(failures: u32) -> TestServer {
    TestServer::start_custom(
        |_| {},
        true,
        |platform| {
            let mut caps = (*platform.caps).clone();
            caps.events = Arc::new(FlakyEvents { inner: caps.events.clone(), failures, calls: AtomicU32::new(0) });
            platform.caps = Arc::new(caps);
        },
    )
    .await
}

#[tokio::test]
async fn a_host_fault_is_retried_and_the_job_then_succeeds() {
    let server = server_with_flaky_events(1).await;
    let job_id = server.create_job("hello", "greet", json!({ "name": "Ada" })).await;
    let job = server.wait_for("hello", &job_id, &["succeeded", "failed"], Duration::from_secs(20)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!((job["attempt"].as_i64(), job["retries"].as_i64()), (Some(2), Some(1)), "{job}");
    server.stop().await;
}

#[tokio::test]
async fn a_host_fault_that_persists_fails_the_job_after_its_retries() {
    let server = server_with_flaky_events(u32::MAX).await;
    let job_id = server.create_job("hello", "greet", json!({ "name": "Ada" })).await;
    let job = server.wait_for("hello", &job_id, &["succeeded", "failed"], Duration::from_secs(20)).await;
    assert_eq!(job["error"]["code"], "host_fault", "{job}");
    assert_eq!((job["attempt"].as_i64(), job["retries"].as_i64()), (Some(4), Some(3)), "three retries: {job}");
    server.stop().await;
}

#[tokio::test]
async fn a_templates_own_error_or_a_limit_hit_is_not_retried() {
    let server = TestServer::start().await;
    let panics = server.create_job("sandbox-probe", "panic", json!({ "message": "no" })).await;
    let spins = server.create_job("sandbox-probe", "spin", json!({})).await;
    for (job_id, code) in [(panics, "guest_panic"), (spins, "out_of_fuel")] {
        let job = server.wait_for("sandbox-probe", &job_id, &["succeeded", "failed"], Duration::from_secs(30)).await;
        assert_eq!((job["error"]["code"].as_str(), job["attempt"].as_i64()), (Some(code), Some(1)), "{job}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_claim_says_whether_the_job_has_a_journal_to_replay() {
    // No workers: the test claims, journals and loses the lease itself.
    let server = TestServer::start_with(|_| {}, false).await;
    let db = &server.platform.db;
    let job_id = server.create_job("hello", "greet", json!({ "name": "Ada" })).await;
    let first = db.claim_jobs(1, "run-1", 0, 10).await.expect("claimed");
    assert_eq!(first.iter().map(|j| j.journaled).collect::<Vec<_>>(), [Some(false)], "a new job: nothing to replay");
    let entry = vidfarm::capabilities::JournalEntry {
        seq: 1,
        kind: "storage.put".into(),
        request_digest: "d".into(),
        result: "{}".into(),
    };
    assert!(db.append_journal(&job_id, "run-1", &entry).await.expect("journaled"));
    // The worker dies: its lease (0 ms) runs out and the sweep queues the job again.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(db.sweep_orphans().await.expect("swept"), 1);
    let again = db.claim_jobs(1, "run-2", 60_000, 10).await.expect("claimed");
    assert_eq!(again.iter().map(|j| j.journaled).collect::<Vec<_>>(), [Some(true)], "the next run must replay");
    let read = db.job(&job_id).await.expect("read").expect("the job");
    assert_eq!(read.journaled, None, "only a claim knows");
    server.stop().await;
}

//! An effect's rows commit with its journal entry (DESIGN.md §4). A child job is created in
//! the transaction that journals the effect creating it, so a run cut short leaves both or
//! neither, never a child its parent's journal does not know of; a run that lost its lease
//! creates nothing, and a child over the customer's limit leaves no entry. On both backends.

use serde_json::json;
use vidfarm::capabilities::JournalEntry;
use vidfarm::db::jobs::{JobRow, NewJob};
use vidfarm::db::journal::Journaled;
use vidfarm_tests::server::TestServer;

const DOLLAR: i64 = 1_000_000_000;

fn entry_of_child(seq: u32, child_id: &str) -> JournalEntry {
    JournalEntry {
        seq,
        kind: "jobs.enqueue-child".into(),
        request_digest: format!("child-{seq}"),
        result: json!({ "ok": child_id }).to_string(),
    }
}

/// The row of `parent`'s `ordinal`th child, reserving `reserve_nusd`.
fn child_of(parent: &JobRow, ordinal: u32, reserve_nusd: i64) -> NewJob {
    NewJob {
        id: format!("{}_c{ordinal}", parent.id),
        customer_id: parent.customer_id.clone(),
        template_id: parent.template_id.clone(),
        template_version: parent.template_version.clone(),
        template_digest: parent.template_digest.clone(),
        operation: "greet".into(),
        workflow: parent.workflow.clone(),
        tracer: format!("child-of:{}", parent.id),
        payload: json!({ "name": "Child" }).to_string(),
        config: None,
        webhook_url: None,
        parent_job_id: Some(parent.id.clone()),
        idempotency_key: None,
        max_retries: 0,
        reserve_nusd,
        request_id: None,
        traceparent: None,
        retry_of: None,
    }
}

#[tokio::test]
async fn a_child_job_is_created_with_its_parents_journal_entry_or_not_at_all() {
    // No workers: the test claims and journals as a run would.
    let server = TestServer::start_with(|_| {}, false).await;
    let db = &server.platform.db;
    let parent_id = server.create_job("hello", "greet", json!({ "name": "Ada" })).await;
    assert_eq!(db.claim_jobs(1, "run-1", 60_000, 10).await.expect("claimed").len(), 1);
    let parent = db.job(&parent_id).await.expect("read").expect("the parent");
    let exists = |id: String| async move { db.job(&id).await.expect("read").is_some() };

    // A run that lost its lease: no child, no entry.
    let first = child_of(&parent, 1, 0);
    let stale = db.append_journal_creating(&parent_id, "run-0", &entry_of_child(1, &first.id), Some(&first)).await;
    assert_eq!(stale.expect("answered"), Journaled::LeaseLost);
    assert!(!exists(first.id.clone()).await, "a run without the lease created a child");

    // A child whose reservation does not fit what the customer may still be charged: no
    // child, no entry.
    assert!(db.set_billing_terms(&parent.customer_id, Some(Some(DOLLAR)), None).await.expect("a cap"));
    let costly = child_of(&parent, 1, 5 * DOLLAR);
    let over = db.append_journal_creating(&parent_id, "run-1", &entry_of_child(1, &costly.id), Some(&costly)).await;
    assert!(matches!(over.expect("answered"), Journaled::ChildOverLimit { .. }));
    assert!(!exists(costly.id.clone()).await, "a child over the limit was created");
    assert!(db.journal(&parent_id).await.expect("read").is_empty(), "an entry without its child");

    // The run holding the lease: the child and the entry, together.
    let journaled = db.append_journal_creating(&parent_id, "run-1", &entry_of_child(1, &first.id), Some(&first)).await;
    assert_eq!(journaled.expect("answered"), Journaled::Appended);
    let child = db.job(&first.id).await.expect("read").expect("the child");
    assert_eq!((child.parent_job_id.as_deref(), child.status.as_str()), (Some(parent_id.as_str()), "queued"));
    let journal = db.journal(&parent_id).await.expect("read");
    assert_eq!(journal.iter().map(|e| e.seq).collect::<Vec<_>>(), [1]);
    server.stop().await;
}

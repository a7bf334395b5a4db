//! PostgreSQL, where many hosts decide on one customer's money: a host's run ends wait for a
//! money decision of the same customer in flight on another host (its row lock), so a charge
//! is never decided on a headroom that another host is changing. On SQLite one writer does
//! every write in turn, and this test has nothing to check.
//!
//! "Another host" is a second connection doing what a host's transaction does: placing a hold
//! locks the customer `FOR NO KEY UPDATE`, then writes.

use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};
use std::time::Duration;
use vidfarm::db::jobs::{CpuCharge, Finish};
use vidfarm_tests::server::TestServer;

const CPU: CpuCharge = CpuCharge { cost_nusd: 1_000_000, default_margin: 1.0 };

/// The server and a connection of "another host", or `None` on SQLite.
async fn server_and_another_host() -> Option<(TestServer, PgPool)> {
    let server = TestServer::start_with(|_| {}, false).await;
    let Some(url) = server.platform.config.database_url.clone() else {
        server.stop().await;
        return None;
    };
    let other = PgPool::connect(&url).await.expect("another host's connection");
    Some((server, other))
}

/// A ledger row written on `tx`, now.
async fn charge_on(tx: &mut Transaction<'_, Postgres>, customer_id: &str, key: &str, nusd: i64) {
    sqlx::query(
        "INSERT INTO billing_events (customer_id, event_type, cost_nusd, charge_nusd, metadata, created_at, effect_key)
         VALUES ($1, 'cpu_estimate', $2, $2, '{}', $3, $4)",
    )
    .bind(customer_id)
    .bind(nusd)
    .bind(vidfarm::db::now_ms())
    .bind(key)
    .execute(&mut **tx)
    .await
    .expect("a ledger row");
}

fn succeeded() -> Finish {
    Finish::Succeeded { result: "{}".into() }
}

#[tokio::test]
async fn a_run_end_waits_for_a_money_decision_of_its_customer_on_another_host() {
    let Some((server, other_host)) = server_and_another_host().await else { return };
    let (db, customer) = (server.platform.db.clone(), server.customer.id.clone());
    assert!(db.add_credit(&customer, 1_000_000_000).await.expect("credited"));
    server.create_job("sandbox-probe", "echo", json!({})).await;
    let claimed = db.claim_jobs(1, "lease-here", 60_000, 100).await.expect("claimed");

    // Another host placing a hold: it locks the customer, then reads what they may still spend.
    let mut other = other_host.begin().await.expect("a transaction");
    sqlx::query("SELECT 1 FROM customers WHERE id = $1 FOR NO KEY UPDATE")
        .bind(&customer)
        .execute(&mut *other)
        .await
        .expect("locked");
    let job_id = claimed[0].id.clone();
    let end = {
        let db = db.clone();
        tokio::spawn(async move { db.finish_run(&job_id, "lease-here", 10, &succeeded(), Some(CPU)).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!end.is_finished(), "the run end waits while another host decides on the customer's money");
    charge_on(&mut other, &customer, "other-host:hold", 7).await;
    other.commit().await.expect("committed");
    let ended = tokio::time::timeout(Duration::from_secs(20), end).await.expect("ended after it").expect("joined");
    assert!(ended.expect("no error"));

    let summary = db.billing_summary(&customer).await.expect("summary").expect("a customer");
    assert_eq!(summary.charged_nusd, 1_000_007);
    assert_eq!(summary.available_nusd, 1_000_000_000 - 1_000_007, "both charges count against the credit");
    server.stop().await;
}

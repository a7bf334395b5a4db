//! PostgreSQL, where many hosts write one customer's money: the running totals live in stripes
//! (migration 0007), so hosts' run ends of a customer without limits commit side by side, while
//! a customer with a limit still has one money decision at a time. On SQLite one writer does
//! every write in turn, and these tests have nothing to check.
//!
//! "Another host" is a second connection that does what a host's transaction does: a batch of
//! run ends holds its customers `FOR SHARE` and writes ledger rows; placing a hold locks the
//! customer `FOR NO KEY UPDATE`.

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

/// A ledger row written on `tx`, `created_at` unix ms.
async fn charge_on(tx: &mut Transaction<'_, Postgres>, customer_id: &str, key: &str, nusd: i64, created_at: i64) {
    sqlx::query(
        "INSERT INTO billing_events (customer_id, event_type, cost_nusd, charge_nusd, metadata, created_at, effect_key)
         VALUES ($1, 'cpu_estimate', $2, $2, '{}', $3, $4)",
    )
    .bind(customer_id)
    .bind(nusd)
    .bind(created_at)
    .bind(key)
    .execute(&mut **tx)
    .await
    .expect("a ledger row");
}

fn succeeded() -> Finish {
    Finish::Succeeded { result: "{}".into() }
}

#[tokio::test]
async fn a_run_end_does_not_wait_for_another_hosts_run_ends_of_a_customer_without_limits() {
    let Some((server, other_host)) = server_and_another_host().await else { return };
    let (db, customer) = (&server.platform.db, server.customer.id.as_str());
    server.create_job("sandbox-probe", "echo", json!({})).await;
    let claimed = db.claim_jobs(1, "lease-here", 60_000, 100).await.expect("claimed");

    // Another host's batch of this customer's run ends, charged and not yet committed.
    let mut other = other_host.begin().await.expect("a transaction");
    sqlx::query("SELECT 1 FROM customers WHERE id = $1 FOR SHARE")
        .bind(customer)
        .execute(&mut *other)
        .await
        .expect("held");
    charge_on(&mut other, customer, "other-host:1", 5, vidfarm::db::now_ms()).await;

    let finish = succeeded();
    let end = db.finish_run(&claimed[0].id, "lease-here", 10, &finish, Some(CPU));
    let ended = tokio::time::timeout(Duration::from_secs(20), end)
        .await
        .expect("the run end committed while the other host's batch was open")
        .expect("no error");
    assert!(ended);
    other.commit().await.expect("committed");

    let summary = db.billing_summary(customer).await.expect("summary").expect("a customer");
    assert_eq!((summary.charged_nusd, summary.charged_this_month_nusd), (1_000_005, 1_000_005), "both charges count");
    let stripes = db
        .inspect("SELECT CAST(COUNT(*) AS TEXT) FROM customer_charge_stripes WHERE customer_id = $1", &[customer])
        .await
        .expect("read");
    assert_eq!(stripes, vec![Some("2".to_string())], "each transaction added to a stripe of its own");
    server.stop().await;
}

#[tokio::test]
async fn a_run_end_of_a_customer_with_a_limit_waits_for_their_money_decision_on_another_host() {
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
    charge_on(&mut other, &customer, "other-host:hold", 7, vidfarm::db::now_ms()).await;
    other.commit().await.expect("committed");
    let ended = tokio::time::timeout(Duration::from_secs(20), end).await.expect("ended after it").expect("joined");
    assert!(ended.expect("no error"));

    let summary = db.billing_summary(&customer).await.expect("summary").expect("a customer");
    assert_eq!(summary.charged_nusd, 1_000_007);
    assert_eq!(summary.available_nusd, 1_000_000_000 - 1_000_007, "the headroom counts every stripe");
    server.stop().await;
}

#[tokio::test]
async fn a_customers_month_counts_each_stripes_charges_of_this_month_only() {
    let Some((server, other_host)) = server_and_another_host().await else { return };
    let (db, customer) = (&server.platform.db, server.customer.id.as_str());
    let now = vidfarm::db::now_ms();
    let last_month = vidfarm::db::month_start_ms() - 1;

    // Two transactions open at once: two stripes. The first takes a charge of this month and
    // then a late one of last month; the second only one of last month.
    let mut first = other_host.begin().await.expect("a transaction");
    let mut second = other_host.begin().await.expect("a transaction");
    charge_on(&mut first, customer, "this-month", 7, now).await;
    charge_on(&mut first, customer, "late", 3, last_month).await;
    charge_on(&mut second, customer, "last-month", 2, last_month).await;
    first.commit().await.expect("committed");
    second.commit().await.expect("committed");

    let summary = db.billing_summary(customer).await.expect("summary").expect("a customer");
    assert_eq!(summary.charged_nusd, 12, "every charge counts in all");
    assert_eq!(summary.charged_this_month_nusd, 7, "only this month's counts in the month");
    assert!(db.add_credit(customer, 100).await.expect("credited"));
    let summary = db.billing_summary(customer).await.expect("summary").expect("a customer");
    assert_eq!(summary.available_nusd, 100 - 12);
    server.stop().await;
}

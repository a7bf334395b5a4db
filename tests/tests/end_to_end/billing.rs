//! Billing limits: a job that would not fit is refused with 402; a job that overspends stops
//! with `billing_limit_reached` before the charge; racing jobs never push a balance below zero.

use serde_json::{Value, json};
use std::time::Duration;
use vidfarm_tests::server::TestServer;

const WITHIN: Duration = Duration::from_secs(30);

const DOLLAR: i64 = 1_000_000_000;

async fn with_credit(nusd: i64) -> TestServer {
    let server = TestServer::start_with(|c| c.max_concurrent_jobs = 64, true).await;
    assert!(server.platform.db.add_credit(&server.customer.id, nusd).await.expect("credited"));
    server
}

async fn charged(server: &TestServer) -> i64 {
    server.platform.db.billing_summary(&server.customer.id).await.expect("summary").expect("a customer").charged_nusd
}

#[tokio::test]
async fn a_customer_with_1_dollar_left_cannot_start_a_job_estimated_at_5() {
    let server = with_credit(DOLLAR).await;
    let body = json!({ "tracer": "t", "payload": { "steps": 1 } });
    let refused = server.post("/templates/sandbox-probe/operations/expensive", &body).send().await.expect("sent");
    assert_eq!(refused.status(), 402);
    let error: Value = refused.json().await.expect("json");
    assert_eq!(error["error"]["code"], "billing_limit_reached");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("$5.00") && m.contains("$1.00")), "{error}");
    let listed: Value = server.get_json("/templates/sandbox-probe/jobs").await;
    assert_eq!(listed["jobs"], json!([]), "nothing was created");
    // A job without an estimate still starts, and is charged cost × margin (2.0).
    let job_id = server.create_job("sandbox-probe", "effects", json!({ "steps": 2, "cost": 0.1 })).await;
    server.wait_for("sandbox-probe", &job_id, &["succeeded"], WITHIN).await;
    let job = server.job("sandbox-probe", &job_id).await;
    assert_eq!(job["billing"]["charges"].as_array().map(Vec::len), Some(2));
    assert_eq!(job["billing"]["charged_usd"], "0.4", "{job}");
    assert_eq!(job["billing"]["charged_nusd"], 400_000_000, "{job}");
    let usage: Value = server.get_json("/billing/usage").await;
    assert_eq!(usage["days"][0]["template_id"], "sandbox-probe", "{usage}");
    assert_eq!(usage["total"]["charge_usd"], "0.4", "{usage}");
    assert_eq!(usage["limits"]["available_usd"], "0.6", "{usage}");
    server.stop().await;
}

#[tokio::test]
async fn a_job_that_overspends_mid_run_stops_with_billing_limit_reached() {
    let server = with_credit(DOLLAR).await;
    let job_id = server.create_job("sandbox-probe", "effects", json!({ "steps": 10, "cost": 0.1 })).await;
    let job = server.wait_for("sandbox-probe", &job_id, &["succeeded", "failed"], WITHIN).await;
    assert_eq!(job["error"]["code"], "billing_limit_reached", "{job}");
    assert_eq!(job["billing"]["charges"].as_array().map(Vec::len), Some(5), "five $0.20 charges fit in $1");
    assert_eq!(charged(&server).await, DOLLAR);
    server.stop().await;
}

#[tokio::test]
async fn fifty_jobs_racing_for_the_last_dollar_never_push_the_balance_below_zero() {
    let server = with_credit(DOLLAR).await;
    let ids: Vec<String> = futures::future::join_all(
        (0..50).map(|_| server.create_job("sandbox-probe", "effects", json!({ "steps": 1, "cost": 0.05 }))),
    )
    .await;
    let mut outcomes = std::collections::BTreeMap::new();
    for id in &ids {
        let job = server.wait_for("sandbox-probe", id, &["succeeded", "failed"], WITHIN).await;
        let outcome = if job["status"] == "succeeded" {
            "succeeded".to_string()
        } else {
            job["error"]["code"].as_str().unwrap_or("?").to_string()
        };
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    assert_eq!(
        outcomes,
        [("billing_limit_reached".to_string(), 40), ("succeeded".to_string(), 10)].into(),
        "exactly $1 of $0.10 charges"
    );
    assert_eq!(charged(&server).await, DOLLAR, "exactly the dollar, not a nano more");
    server.stop().await;
}

#[tokio::test]
async fn a_charge_applied_again_for_the_same_effect_is_written_once() {
    // No workers: the test holds the job's lease itself, as a run would.
    let server = TestServer::start_with(|_| {}, false).await;
    let job_id = server.create_job("sandbox-probe", "effects", json!({ "steps": 1 })).await;
    let db = &server.platform.db;
    let claimed = db.claim_jobs(1, "test-lease", 60_000, 10).await.expect("claimed");
    assert_eq!(claimed.len(), 1);
    let key = format!("{job_id}:1");
    let entry = vidfarm::db::billing::NewLedgerEntry {
        effect_key: Some(&key),
        customer_id: &server.customer.id,
        job_id: &job_id,
        template_id: "sandbox-probe",
        event_type: "render",
        cost_nusd: DOLLAR / 2,
        charge_nusd: None,
        provider: None,
        model: None,
        metadata: "{}",
    };
    use vidfarm::db::billing::{LedgerWrite, OverLimit};
    // The first run charged, then died before journaling; its replay charges the same effect.
    let written = LedgerWrite::Written { charge_nusd: DOLLAR };
    assert_eq!(db.insert_ledger(&entry, "test-lease", 2.0, OverLimit::Refuse).await.expect("written"), written);
    assert_eq!(db.insert_ledger(&entry, "test-lease", 2.0, OverLimit::Refuse).await.expect("written"), written);
    let ledger = db.job_ledger(&job_id).await.expect("ledger");
    assert_eq!(ledger.len(), 1, "one row for one effect");
    assert_eq!(ledger[0].charge_nusd, DOLLAR, "cost × margin");
    server.stop().await;
}

#[tokio::test]
async fn the_host_bills_storage_writes_and_cpu_on_its_own() {
    let server = TestServer::start_with(
        |c| {
            c.storage_usd_per_gb = 1000.0;
            c.cpu_usd_per_billion_fuel = 1.0;
        },
        true,
    )
    .await;
    let job_id = server.create_job("sandbox-probe", "effects", json!({ "steps": 3 })).await;
    server.wait_for("sandbox-probe", &job_id, &["succeeded"], WITHIN).await;
    let ledger = server.platform.db.job_ledger(&job_id).await.expect("ledger");
    let of = |kind: &str| ledger.iter().filter(|r| r.event_type == kind).collect::<Vec<_>>();
    let writes = of("storage_write");
    assert_eq!(writes.len(), 3, "one charge per stored object: {ledger:?}");
    // "step 1" is 6 bytes: 6e-9 GB at $1000/GB, charged at the default margin 2.0.
    assert_eq!((writes[0].cost_nusd, writes[0].charge_nusd), (6_000, 12_000), "{writes:?}");
    let cpu: Vec<_> = of("cpu_estimate").into_iter().filter(|r| r.metadata.contains("recorded_by")).collect();
    assert_eq!(cpu.len(), 1, "one CPU charge of the host's per run (the probe records its own too): {ledger:?}");
    let fuel = server.job("sandbox-probe", &job_id).await["fuel_consumed"].as_i64().expect("fuel");
    // $1 per billion fuel is one nano-USD per unit of fuel.
    assert!(fuel > 0 && cpu[0].cost_nusd == fuel, "{cpu:?} for {fuel} fuel");
    let metadata: Value = serde_json::from_str(&cpu[0].metadata).expect("JSON");
    assert_eq!(metadata["recorded_by"], "host");
}

#[tokio::test]
async fn a_write_that_fails_in_a_shared_commit_takes_none_of_the_others_down() {
    // Writes queued together share one transaction; one that fails (an event for a job that
    // does not exist breaks a foreign key) must fail alone, and every other must be kept.
    let server = TestServer::start_with(|_| {}, false).await;
    let job_id = server.create_job("sandbox-probe", "echo", json!({})).await;
    let db = &server.platform.db;
    let event = vidfarm::db::events::NewEvent {
        level: "info",
        message: "queued together",
        metadata: "{}",
        progress: None,
        artifact: None,
    };
    let writes = (0..40u32).map(|i| {
        let target = if i == 20 { "job_missing" } else { job_id.as_str() };
        db.insert_event(target, None, (1_000 + i, 0), &event)
    });
    let outcomes = futures::future::join_all(writes).await;
    assert!(outcomes[20].is_err(), "the event of a missing job fails: {:?}", outcomes[20]);
    let kept = outcomes.iter().enumerate().filter(|(i, o)| *i != 20 && matches!(o, Ok(true))).count();
    assert_eq!(kept, 39, "{outcomes:?}");
    let stored = db.events_after(&job_id, 0, 1_000).await.expect("events");
    assert_eq!(stored.iter().filter(|e| e.message == "queued together").count(), 39);
    server.stop().await;
}

#[tokio::test]
async fn run_ends_committed_together_keep_every_charge_when_one_of_them_fails() {
    // Run ends queued together share one transaction (SQLite's batch, PostgreSQL's group
    // commit of run ends). One that fails must fail alone: every other end is written with its
    // CPU charge, once. A result with a NUL is refused by PostgreSQL's TEXT (SQLite stores it).
    let server = TestServer::start_with(|_| {}, false).await;
    for _ in 0..12 {
        server.create_job("sandbox-probe", "echo", json!({})).await;
    }
    let db = &server.platform.db;
    let claimed = db.claim_jobs(12, "lease-ended-together", 60_000, 100).await.expect("claimed");
    assert_eq!(claimed.len(), 12);
    let cpu = vidfarm::db::jobs::CpuCharge { cost_nusd: 1_000, default_margin: 1.0 };
    let finishes: Vec<vidfarm::db::jobs::Finish> = (0..claimed.len())
        .map(|i| vidfarm::db::jobs::Finish::Succeeded {
            result: if i == 6 { "{\"bad\":\"\u{0}\"}".into() } else { "{}".into() },
        })
        .collect();
    let ends = claimed
        .iter()
        .zip(&finishes)
        .map(|(job, finish)| db.finish_run(&job.id, "lease-ended-together", 10, finish, Some(cpu)));
    let outcomes = futures::future::join_all(ends).await;
    for (i, (job, outcome)) in claimed.iter().zip(&outcomes).enumerate() {
        if i == 6 {
            assert!(outcome.is_err() || db.backend_name() == "sqlite", "{outcome:?}");
            continue;
        }
        assert!(matches!(outcome, Ok(true)), "end {i}: {outcome:?}");
        let status = db.inspect("SELECT status FROM jobs WHERE id = $1", &[&job.id]).await.expect("read");
        assert_eq!(status, vec![Some("succeeded".to_string())]);
        let charges = db
            .inspect(
                "SELECT CAST(COUNT(*) AS TEXT) FROM billing_events WHERE job_id = $1 AND event_type = 'cpu_estimate'",
                &[&job.id],
            )
            .await
            .expect("read");
        assert_eq!(charges, vec![Some("1".to_string())], "end {i}: one CPU charge");
    }
    server.stop().await;
}

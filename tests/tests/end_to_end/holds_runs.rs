//! Runs and child fan-outs hold their money too: a run holds its fuel budget's price before
//! it starts (and may burn only the fuel the hold pays for), and children charge within the
//! same limit as their parent, so no fan-out takes a customer past their credit.

use serde_json::{Value, json};
use std::time::Duration;
use vidfarm_tests::server::TestServer;

const WITHIN: Duration = Duration::from_secs(60);
const FIVE_CENTS: i64 = 50_000_000;
const THIRTY_CENTS: i64 = 300_000_000;

/// A server whose CPU costs $1 per billion fuel units (so fuel is real money in these tests)
/// and whose storage costs `storage_usd_per_gb`, with a customer holding `credit` nano-USD.
async fn priced_server(credit: i64, storage_usd_per_gb: f64) -> TestServer {
    let server = TestServer::start_with(
        move |c| {
            c.cpu_usd_per_billion_fuel = 1.0;
            c.storage_usd_per_gb = storage_usd_per_gb;
            c.max_concurrent_jobs = 64;
        },
        true,
    )
    .await;
    assert!(server.platform.db.add_credit(&server.customer.id, credit).await.expect("credited"));
    server
}

async fn limits(server: &TestServer) -> Value {
    server.get_json("/billing/usage").await["limits"].clone()
}

#[tokio::test]
async fn a_spinning_run_stops_at_the_fuel_its_hold_pays_for_and_a_spent_credit_starts_no_run() {
    let server = priced_server(FIVE_CENTS, 0.0).await;
    // A 10-billion-unit budget would cost $10 (× margin 2); a run holds at most a sixteenth of
    // what is left, and never less than its 10-million-unit minimum ($0.02 charged): two
    // spinning runs each stop at 10 million units, and the $0.01 left starts none.
    let mut spins = Vec::new();
    for _ in 0..3 {
        let job_id = server.create_job("sandbox-probe", "spin", json!({})).await;
        spins.push(server.wait_for("sandbox-probe", &job_id, &["failed"], WITHIN).await);
    }
    for job in &spins {
        assert_eq!(job["error"]["code"], "billing_limit_reached", "{job}");
    }
    let fuel: Vec<u64> = spins.iter().map(|j| j["fuel_consumed"].as_u64().expect("fuel")).collect();
    assert!(fuel[..2].iter().all(|f| (9_900_000..=10_100_000).contains(f)), "stopped at 10 million units: {fuel:?}");
    assert_eq!(fuel[2], 0, "the third never ran: {:?}", spins[2]);
    assert!(spins[2]["error"]["message"].as_str().is_some_and(|m| m.contains("$0.02")), "{}", spins[2]);

    let billing = &spins[0]["billing"];
    let hold = &billing["holds"][0];
    assert_eq!((hold["type"].as_str(), hold["status"].as_str()), (Some("cpu_estimate"), Some("captured")), "{billing}");
    assert_eq!(hold["held"]["nusd"], 20_000_000, "{billing}");
    assert_eq!(billing["charges"][0]["type"], "cpu_estimate", "{billing}");
    assert!(billing["charged_nusd"].as_i64().is_some_and(|c| c <= 20_000_000), "{billing}");
    let limits = limits(&server).await;
    assert!(limits["charged_nusd"].as_i64().is_some_and(|c| c <= FIVE_CENTS), "{limits}");
    assert_eq!(limits["held_nusd"], 0, "{limits}");
    server.stop().await;
}

#[tokio::test]
async fn a_customer_without_limits_runs_without_fuel_holds_and_pays_for_the_fuel_burned() {
    let server = TestServer::start_with(|c| c.cpu_usd_per_billion_fuel = 1.0, true).await;
    let job_id = server.create_job("sandbox-probe", "echo", json!({ "said": "hi" })).await;
    let job = server.wait_for("sandbox-probe", &job_id, &["succeeded"], WITHIN).await;
    let billing = &job["billing"];
    assert_eq!(billing["holds"], json!([]), "{billing}");
    let fuel = job["fuel_consumed"].as_i64().expect("fuel");
    // $1 per billion units is one nano-USD per unit, charged at margin 2.
    assert_eq!(billing["charges"][0]["cost_nusd"], fuel, "{billing}");
    assert_eq!(billing["charges"][0]["charge_nusd"], 2 * fuel, "{billing}");
    server.stop().await;
}

#[tokio::test]
async fn child_fan_outs_never_take_a_30_cent_customer_below_zero() {
    // Each greeting's storage write ("Hello, n0!", 10 bytes) costs $0.005 at $500k/GB, $0.01
    // charged, and every run holds and pays for its fuel: a wave of eight children costs
    // about $0.085, so the fourth and fifth waves cannot fit.
    let server = priced_server(THIRTY_CENTS, 500_000.0).await;
    let names: Vec<String> = (0..8).map(|i| format!("n{i}")).collect();
    let mut parents = Vec::new();
    for _ in 0..5 {
        let body = json!({ "tracer": "fan-out", "payload": { "names": names } });
        let response = server.post("/templates/hello/operations/greet-many", &body).send().await.expect("sent");
        let status = response.status().as_u16();
        let answer: Value = response.json().await.expect("json");
        match status {
            202 => {
                let id = answer["job_id"].as_str().expect("an id").to_string();
                parents.push(server.wait_for("hello", &id, &["succeeded", "failed"], WITHIN).await);
            }
            402 => assert_eq!(answer["error"]["code"], "billing_limit_reached", "{answer}"),
            other => panic!("greet-many: {other} {answer}"),
        }
    }
    let limits = limits(&server).await;
    let charged = limits["charged_nusd"].as_i64().expect("charged");
    assert!(charged <= THIRTY_CENTS, "charged {charged} of {THIRTY_CENTS}: {limits}");
    assert!(charged > THIRTY_CENTS / 2, "the children did spend the credit: {limits}");
    assert!(limits["available_nusd"].as_i64().is_some_and(|a| a >= 0), "{limits}");
    assert_eq!(limits["held_nusd"], 0, "every hold settled: {limits}");
    assert!(parents.iter().any(|p| p["status"] == "succeeded"), "the first fan-out fit: {parents:?}");
    for failed in parents.iter().filter(|p| p["status"] == "failed") {
        assert_eq!(failed["error"]["code"], "billing_limit_reached", "{failed}");
    }
    assert!(parents.iter().any(|p| p["status"] == "failed") || parents.len() < 5, "the limit stopped a fan-out");
    server.stop().await;
}

#[tokio::test]
async fn a_credit_given_while_runs_spin_caps_their_cpu_charges_however_many_end_at_once() {
    // Runs that started while the customer had no limit hold nothing; a credit given while
    // they spin must still bound what their CPU is charged when they all end at once (one
    // cancel stops six children together, so their ends are written together).
    let server = TestServer::start_with(
        |c| {
            c.cpu_usd_per_billion_fuel = 1.0;
            c.max_concurrent_jobs = 64;
        },
        true,
    )
    .await;
    let parent = server.create_job("sandbox-probe", "spawn-spinners", json!({ "children": 6 })).await;
    server.wait_for("sandbox-probe", &parent, &["waiting_for_child"], WITHIN).await;
    let children: Vec<String> = (1..=6).map(|n| format!("{parent}_c{n}")).collect();
    for child in &children {
        server.wait_for("sandbox-probe", child, &["running"], WITHIN).await;
    }
    assert!(server.platform.db.add_credit(&server.customer.id, FIVE_CENTS).await.expect("credited"));
    // At $1 per billion units (charged at margin 2), each run burns past five cents in this time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cancel = server.post(&format!("/templates/sandbox-probe/jobs/{parent}/cancel"), &json!({})).send().await;
    assert!(cancel.expect("sent").status().is_success());
    let mut charges = Vec::new();
    for child in &children {
        let job = server.wait_for("sandbox-probe", child, &["cancelled", "failed"], WITHIN).await;
        assert_eq!(job["billing"]["holds"], json!([]), "it started without a limit: {job}");
        charges.push(job["billing"]["charged_nusd"].as_i64().expect("charged"));
    }
    let limits = limits(&server).await;
    assert_eq!(limits["charged_nusd"], FIVE_CENTS, "the credit, and not a nano more: {charges:?} {limits}");
    assert_eq!(limits["available_nusd"], 0, "{limits}");
    assert!(charges.iter().filter(|c| **c > 0).count() <= 2, "one or two took what was left: {charges:?}");
    server.stop().await;
}

//! The webhook wall, tried as a hostile customer: another customer's destination id in a
//! delete changes nothing of theirs, and test events cannot be sent without end.

use serde_json::{Value, json};
use std::time::Duration;
use vidfarm_tests::server::{Credentials, TestServer};

async fn pending(server: &TestServer, who: &Credentials) -> usize {
    let listed = server.get_json_as(who, "/customers/me/webhook-deliveries?status=pending").await;
    listed["data"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn deleting_another_customers_destination_is_a_404_and_their_deliveries_stay_pending() {
    // A receiver that is down and a long retry schedule: the victim's deliveries stay pending.
    let schedule = vec![Duration::ZERO, Duration::from_secs(3600)];
    let server = TestServer::start_with(move |c| c.webhooks.retry_schedule = schedule, true).await;
    let victim = server.customer.clone();
    let attacker = server.new_customer("Mallory").await;
    let added = server.post("/customers/me/webhooks", &json!({ "url": "http://127.0.0.1:9/hook" })).send();
    let destination: Value = added.await.expect("sent").json().await.expect("json");
    let id = destination["id"].as_str().expect("an id").to_string();
    let job_id = server.create_job("sandbox-probe", "echo", json!({})).await;
    server.wait_for("sandbox-probe", &job_id, &["succeeded"], Duration::from_secs(30)).await;
    let before = pending(&server, &victim).await;
    assert!(before > 0, "the victim has pending deliveries");

    let url = server.url(&format!("/customers/me/webhooks/{id}"));
    let refused = server.as_customer(&attacker, server.http.delete(url)).send().await.expect("sent");
    assert_eq!(refused.status(), 404, "not the attacker's destination");
    assert_eq!(pending(&server, &victim).await, before, "the victim's deliveries are untouched");
    let listed = server.get_json("/customers/me/webhooks").await;
    assert!(listed.to_string().contains(&id), "the destination is still there: {listed}");
    server.stop().await;
}

#[tokio::test]
async fn test_events_are_limited_per_customer_and_a_refused_one_queues_nothing() {
    let schedule = vec![Duration::ZERO, Duration::from_secs(3600)];
    let server = TestServer::start_with(move |c| c.webhooks.retry_schedule = schedule, true).await;
    let other = server.new_customer("Bob").await;
    let added = server.post("/customers/me/webhooks", &json!({ "url": "http://127.0.0.1:9/hook" })).send();
    let destination: Value = added.await.expect("sent").json().await.expect("json");
    let id = destination["id"].as_str().expect("an id").to_string();
    let test_path = format!("/customers/me/webhooks/{id}/test");
    for i in 0..10 {
        let sent = server.post(&test_path, &json!({})).send().await.expect("sent");
        assert_eq!(sent.status(), 202, "test event {i} is queued");
    }
    let refused = server.post(&test_path, &json!({})).send().await.expect("sent");
    assert_eq!(refused.status(), 429, "the eleventh test event in a minute is refused");
    assert!(refused.headers().contains_key("retry-after"), "with when to try again");
    let deliveries = server.get_json("/customers/me/webhook-deliveries?limit=100").await;
    let tests = deliveries["data"].as_array().expect("deliveries").iter().filter(|d| d["event_type"] == "webhook.test");
    assert_eq!(tests.count(), 10, "the refused one queued nothing: {deliveries}");

    // Another customer's allowance is their own.
    let post_as_bob =
        |path: &str, body: Value| server.as_customer(&other, server.http.post(server.url(path)).json(&body));
    let theirs = post_as_bob("/customers/me/webhooks", json!({ "url": "http://127.0.0.1:9/b" }));
    let theirs: Value = theirs.send().await.expect("sent").json().await.expect("json");
    let their_test = format!("/customers/me/webhooks/{}/test", theirs["id"].as_str().expect("an id"));
    let sent = post_as_bob(&their_test, json!({})).send().await.expect("sent");
    assert_eq!(sent.status(), 202, "Bob's first test event is not counted against Alice");
    server.stop().await;
}

//! Traces: one job's spans, exported over OTLP/HTTP to a loopback receiver, form one tree in
//! the client's trace — the HTTP request (a child of the client's `traceparent`), the job run
//! by the worker, the guest run, each capability call, and the webhook delivery.
//! One test in this binary: the subscriber is process-wide.

use serde_json::json;
use std::time::Duration;
use tracing_subscriber::prelude::*;
use vidfarm_tests::otlp::{OtlpReceiver, ReceivedSpan, ancestors};
use vidfarm_tests::receiver::Receiver;
use vidfarm_tests::server::TestServer;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// Whether `span` descends from the span named `name`.
fn under(spans: &[ReceivedSpan], span: &ReceivedSpan, name: &str) -> bool {
    ancestors(spans, span).iter().skip(1).any(|a| a.name == name)
}

#[tokio::test]
async fn a_jobs_spans_continue_the_clients_trace_from_request_to_webhook() {
    let collector = OtlpReceiver::start();
    let (layer, guard) = vidfarm::telemetry::otlp_layer_to(&collector.endpoint()).expect("the exporter builds");
    tracing_subscriber::registry().with(layer).init();

    let server = TestServer::start().await;
    let secret = server.post("/customers/me/webhook-secret", &json!({})).send().await.expect("sent");
    let secret: serde_json::Value = secret.json().await.expect("json");
    let webhooks = Receiver::start_trusting(0, &[secret["secret"].as_str().expect("a secret")]);
    let body = json!({ "tracer": "traced", "payload": { "name": "Ada" }, "webhook_url": webhooks.url("/job") });
    let response = server
        .post("/templates/hello/operations/greet", &body)
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let created: serde_json::Value = response.json().await.expect("json");
    let job_id = created["job_id"].as_str().expect("an id").to_string();
    server.wait_for("hello", &job_id, &["succeeded"], Duration::from_secs(30)).await;

    // Spans are exported when they end: flush until the delivery of `job.succeeded` is there.
    let delivered = |spans: &[ReceivedSpan]| {
        spans.iter().any(|s| s.name == "webhook.deliver" && s.attribute("event_type") == Some("job.succeeded"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let spans = loop {
        guard.force_flush().expect("flushed");
        let spans = collector.spans();
        if delivered(&spans) || std::time::Instant::now() > deadline {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert!(collector.refused().is_empty(), "{:?}", collector.refused());
    let ours: Vec<ReceivedSpan> = spans.iter().filter(|s| s.trace_id == CLIENT_TRACE).cloned().collect();

    // The request is the client's span's child.
    let request = named(&ours, "POST /templates/{template_id}/operations/{operation}");
    assert_eq!(request.len(), 1, "one create request in the client's trace: {names:?}");
    assert_eq!(request[0].parent_span_id.as_deref(), Some(CLIENT_SPAN));
    assert_eq!(request[0].attribute("http.response.status_code"), Some("202"));

    // The job, claimed and run by the worker, continues it.
    let job = named(&ours, "job hello.greet");
    assert_eq!(job.len(), 1, "{names:?}");
    assert_eq!(job[0].attribute("job_id"), Some(job_id.as_str()));
    assert!(under(&ours, job[0], &request[0].name), "the job descends from the request");
    let run = named(&ours, "guest run");
    assert!(run.iter().any(|r| r.parent_span_id.as_deref() == Some(job[0].span_id.as_str())), "{names:?}");

    // Each capability call is a span inside the run.
    let put = named(&ours, "storage.put");
    assert_eq!(put.len(), 1, "{names:?}");
    assert!(under(&ours, put[0], "guest run") && under(&ours, put[0], "job hello.greet"));
    assert_eq!(put[0].attribute("job_id"), Some(job_id.as_str()));

    // Every delivery of the job's events is in the same trace, labelled with the job.
    let deliveries = named(&ours, "webhook.deliver");
    assert!(deliveries.iter().any(|d| d.attribute("event_type") == Some("job.succeeded")), "{deliveries:?}");
    for delivery in &deliveries {
        assert_eq!(delivery.attribute("job_id"), Some(job_id.as_str()));
        assert!(under(&ours, delivery, &request[0].name), "a delivery outside the request's tree");
        assert_eq!(delivery.attribute("http.response.status_code"), Some("200"));
    }
    assert_eq!(ours[0].resource.get("service.name").map(String::as_str), Some("vidfarm"));
    server.stop().await;
    guard.shutdown().expect("shut down");
}

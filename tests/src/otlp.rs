//! A loopback OTLP/HTTP trace receiver: `POST /v1/traces` with the OTLP JSON encoding (what
//! `vidfarm::telemetry` exports), keeping every span for the test to inspect.
//!
//! It serves from its own thread and runtime, not the test's: flushing spans
//! (`TracerGuard::force_flush`) blocks the calling thread until the export is answered, and
//! the tests' `current_thread` runtime could not answer while blocked.
//!
//! OTLP JSON (as `opentelemetry-proto`'s serde encodes it): `resourceSpans[].resource.attributes`,
//! `resourceSpans[].scopeSpans[].spans[]` with `traceId`/`spanId`/`parentSpanId` as lowercase
//! hex (not base64; a root span's `parentSpanId` is `""`), `startTimeUnixNano` and
//! `intValue` as decimal strings, attributes as `[{key, value: {stringValue|intValue|…}}]`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One exported span, flattened; attribute values rendered as strings (`intValue` as its
/// decimal, booleans as `true`/`false`, arrays and maps as their JSON).
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    /// `None` for a root span.
    pub parent_span_id: Option<String>,
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    /// The names (messages) of the span's events: `tracing` events inside the span.
    pub events: Vec<String>,
    /// The resource of the batch: `service.name`, `service.version`, …
    pub resource: BTreeMap<String, String>,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    /// Headers of every export request, lower-case names.
    requests: Vec<BTreeMap<String, String>>,
    /// Requests refused (wrong content type, compressed, not JSON), with the reason.
    refused: Vec<String>,
}

pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl OtlpReceiver {
    /// Listen on 127.0.0.1 (any free port), serving from a dedicated thread.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the address");
        let received = Arc::new(Mutex::new(Received::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .layer(DefaultBodyLimit::max(64 << 20))
            .with_state(received.clone());
        std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await
                        .expect("the OTLP receiver serves");
                });
            })
            .expect("a receiver thread");
        Self { addr, received, stop: Some(stop) }
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`: what `OTEL_EXPORTER_OTLP_ENDPOINT` holds,
    /// and what `vidfarm::telemetry::otlp_layer_to` takes.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().spans.clone()
    }

    /// The headers of every export request so far (lower-case names).
    pub fn requests(&self) -> Vec<BTreeMap<String, String>> {
        self.lock().requests.clone()
    }

    /// Requests refused so far, with the reason: a test should expect none.
    pub fn refused(&self) -> Vec<String> {
        self.lock().refused.clone()
    }

    /// Polls (every 20 ms, up to `timeout`) until `done` holds for the spans received, and
    /// returns them; panics on timeout with what did arrive.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&[ReceivedSpan]) -> bool) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if Instant::now() >= deadline {
                let names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
                panic!("the OTLP receiver timed out; spans so far: {names:?}; refused: {:?}", self.refused());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        // The serving thread ends on its own once open connections close.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The spans of `spans` whose parent is `parent`.
pub fn children<'a>(spans: &'a [ReceivedSpan], parent: &ReceivedSpan) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.trace_id == parent.trace_id && s.parent_span_id.as_ref() == Some(&parent.span_id))
        .collect()
}

/// The chain from `span` up to its root (`span` first), following parents within `spans`.
pub fn ancestors<'a>(spans: &'a [ReceivedSpan], span: &'a ReceivedSpan) -> Vec<&'a ReceivedSpan> {
    let mut chain = vec![span];
    let mut current = span;
    while let Some(parent_id) = &current.parent_span_id {
        let Some(parent) = spans.iter().find(|s| s.trace_id == current.trace_id && &s.span_id == parent_id) else {
            break;
        };
        if chain.len() > spans.len() {
            break; // a cycle: ids are not unique
        }
        chain.push(parent);
        current = parent;
    }
    chain
}

async fn traces(State(received): State<Arc<Mutex<Received>>>, headers: HeaderMap, body: Bytes) -> Response {
    let request: BTreeMap<String, String> = headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let content_type = request.get("content-type").cloned().unwrap_or_default();
    let parsed = if !content_type.starts_with("application/json") {
        Err(format!("content-type {content_type:?}: this receiver reads OTLP JSON only"))
    } else if let Some(encoding) = request.get("content-encoding") {
        Err(format!("content-encoding {encoding:?}: this receiver reads uncompressed bodies only"))
    } else {
        serde_json::from_slice::<Value>(&body).map_err(|e| format!("not JSON: {e}")).map(|v| parse(&v))
    };
    let mut received = received.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    received.requests.push(request);
    match parsed {
        Ok(spans) => {
            received.spans.extend(spans);
            // An empty ExportTraceServiceResponse: full success.
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{}").into_response()
        }
        Err(reason) => {
            received.refused.push(reason.clone());
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, reason).into_response()
        }
    }
}

fn parse(request: &Value) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for resource_spans in array(&request["resourceSpans"]) {
        let resource = attributes(&resource_spans["resource"]["attributes"]);
        for scope_spans in array(&resource_spans["scopeSpans"]) {
            for span in array(&scope_spans["spans"]) {
                let text = |key: &str| span[key].as_str().unwrap_or_default().to_owned();
                out.push(ReceivedSpan {
                    trace_id: text("traceId"),
                    span_id: text("spanId"),
                    parent_span_id: Some(text("parentSpanId")).filter(|id| !id.is_empty()),
                    name: text("name"),
                    attributes: attributes(&span["attributes"]),
                    events: array(&span["events"]).map(|e| e["name"].as_str().unwrap_or_default().to_owned()).collect(),
                    resource: resource.clone(),
                    start_unix_nano: number(&span["startTimeUnixNano"]),
                    end_unix_nano: number(&span["endTimeUnixNano"]),
                });
            }
        }
    }
    out
}

fn array(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

fn attributes(list: &Value) -> BTreeMap<String, String> {
    array(list).filter_map(|kv| Some((kv["key"].as_str()?.to_owned(), any_value(&kv["value"])))).collect()
}

/// An `AnyValue` (`{"stringValue": "x"}`, `{"intValue": "42"}`, …) as a string: proto3 JSON
/// writes 64-bit integers as strings already.
fn any_value(value: &Value) -> String {
    match value.as_object().and_then(|o| o.values().next()) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// A u64 written as a decimal string (proto3 JSON) or, leniently, as a number.
fn number(value: &Value) -> u64 {
    value.as_str().and_then(|s| s.parse().ok()).or_else(|| value.as_u64()).unwrap_or_default()
}

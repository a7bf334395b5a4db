//! OpenTelemetry traces, exported over OTLP/HTTP when the standard environment asks for them.
//!
//! `tracing` spans become OpenTelemetry spans through a `tracing-opentelemetry` layer that sits
//! next to the log formatter on the subscriber's `Registry`. Nothing is exported — and no
//! thread is started — unless `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set.
//!
//! Environment honoured (the OpenTelemetry SDK spec names):
//! - `OTEL_EXPORTER_OTLP_ENDPOINT` (base URL, `/v1/traces` appended) or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is, takes precedence);
//! - `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` (`k=v,k2=v2`, URL-decoded),
//!   `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` (ms, default 10 s) — read by `opentelemetry-otlp`;
//! - `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`: `http/json` (the default here, so a collector or a
//!   test sees readable bodies) or `http/protobuf`; `grpc` is refused (no gRPC stack is built);
//! - `OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION`: unsupported (no gzip feature): setting it fails;
//! - `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` (default `service.name` is `vidfarm`);
//! - `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_SPAN_*_COUNT_LIMIT`, `OTEL_BSP_*` — read by the SDK;
//! - `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn the export off.
//!
//! Context travels as W3C Trace Context: a client's `traceparent` becomes the parent of the
//! request span, and [`current_traceparent`] serialises a span so that the job row can carry
//! it to whichever worker claims the job later.

use anyhow::{Context as _, anyhow, bail};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, InstrumentationScope, Key, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::collections::HashMap;
use tracing::Subscriber;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{Filtered, LevelFilter, Targets};
use tracing_subscriber::registry::LookupSpan;

/// The exporting layer: `tracing-opentelemetry` behind its own per-layer filter, so that the
/// log verbosity (`VIDFARM_LOG`) does not decide which spans are exported. Put it first on a
/// `Registry` (`S = Registry`: `registry().with(otlp).with(fmt::layer().with_filter(env_filter))`,
/// the `EnvFilter` per-layer on the formatter, not global), not on the `fmt()` builder.
pub type OtlpLayer<S> = Filtered<OpenTelemetryLayer<S, SdkTracer>, Targets, S>;

/// The layer when the environment configures an OTLP endpoint, `None` otherwise. Installs the
/// W3C Trace Context propagator either way. Call it once, at start-up.
pub fn otlp_layer<S>() -> anyhow::Result<Option<(OtlpLayer<S>, TracerGuard)>>
where
    S: Subscriber + for<'a> LookupSpan<'a> + 'static,
{
    install_propagator();
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.trim().eq_ignore_ascii_case("none"));
    if disabled || !(set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
        return Ok(None);
    }
    build(None, protocol_from_env()?).map(Some)
}

/// The layer exporting OTLP/HTTP JSON to `base_url` (`/v1/traces` appended), whatever the
/// environment says about endpoint and protocol: for tests, which cannot set environment
/// variables (`set_var` is `unsafe` in edition 2024 and this workspace denies `unsafe_code`).
pub fn otlp_layer_to<S>(base_url: &str) -> anyhow::Result<(OtlpLayer<S>, TracerGuard)>
where
    S: Subscriber + for<'a> LookupSpan<'a> + 'static,
{
    install_propagator();
    build(Some(format!("{}/v1/traces", base_url.trim_end_matches('/'))), Protocol::HttpJson)
}

/// Sets the process-wide text-map propagator to W3C Trace Context (`traceparent`/`tracestate`),
/// for any OpenTelemetry instrumentation that asks the global one.
pub fn install_propagator() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
}

fn build<S>(traces_url: Option<String>, protocol: Protocol) -> anyhow::Result<(OtlpLayer<S>, TracerGuard)>
where
    S: Subscriber + for<'a> LookupSpan<'a> + 'static,
{
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(protocol);
    if let Some(url) = traces_url {
        // A programmatic endpoint is used verbatim by opentelemetry-otlp (no path appended).
        builder = builder.with_endpoint(url);
    }
    let exporter = builder.build().context("building the OTLP span exporter")?;
    // The SDK's BatchSpanProcessor owns a dedicated thread and exports with the blocking
    // reqwest client (its own runtime thread): it works under any tokio runtime flavour,
    // including the tests' current_thread ones, and with no runtime at all.
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource()).build();
    let scope = InstrumentationScope::builder("vidfarm").with_version(env!("CARGO_PKG_VERSION")).build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer_with_scope(scope))
        .with_threads(false)
        .with_filter(exported_targets());
    Ok((layer, TracerGuard { provider }))
}

/// Spans and events exported: INFO and above from our code; nothing from the HTTP stack the
/// exporter itself uses (no feedback loop), and only warnings from the chattiest libraries.
fn exported_targets() -> Targets {
    Targets::new().with_default(LevelFilter::INFO).with_targets([
        ("opentelemetry", LevelFilter::OFF),
        ("hyper", LevelFilter::OFF),
        ("h2", LevelFilter::OFF),
        ("reqwest", LevelFilter::OFF),
        ("sqlx", LevelFilter::WARN),
        ("wasmtime", LevelFilter::WARN),
        ("cranelift", LevelFilter::WARN),
    ])
}

/// `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` win; otherwise `service.name=vidfarm`
/// (the SDK's own fallback is `unknown_service`) and `service.version` is the crate version.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let mut builder = Resource::builder();
    if detected.get(&Key::from("service.name")).is_none_or(|name| name.as_str().starts_with("unknown_service")) {
        builder = builder.with_service_name("vidfarm");
    }
    if detected.get(&Key::from("service.version")).is_none() {
        builder = builder.with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    }
    builder.build()
}

fn protocol_from_env() -> anyhow::Result<Protocol> {
    let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL")).as_deref() {
        None | Some("http/json") => Ok(Protocol::HttpJson),
        Some("http/protobuf") => Ok(Protocol::HttpBinary),
        Some(other) => bail!("OTLP protocol {other:?} is not supported: use http/json or http/protobuf"),
    }
}

/// Owns the tracer provider. Dropping it shuts the exporter down, flushing the spans still
/// queued; `force_flush` and `shutdown` do it explicitly. Both block the calling thread (up to
/// 5 s) until the export thread answers, so never call them from the thread that runs the
/// collector; on a runtime thread in production prefer `spawn_blocking`.
#[derive(Debug)]
pub struct TracerGuard {
    provider: SdkTracerProvider,
}

impl TracerGuard {
    /// Exports every span that has ended so far (a span ends when its last handle drops).
    pub fn force_flush(&self) -> anyhow::Result<()> {
        self.provider.force_flush().map_err(|e| anyhow!("flushing spans: {e}"))
    }

    /// Flushes and stops the exporter; spans ended afterwards are dropped. Idempotent.
    pub fn shutdown(&self) -> anyhow::Result<()> {
        match self.provider.shutdown() {
            Ok(()) | Err(OTelSdkError::AlreadyShutdown) => Ok(()),
            Err(e) => Err(anyhow!("shutting the span exporter down: {e}")),
        }
    }
}

impl Drop for TracerGuard {
    fn drop(&mut self) {
        // The layer's tracer holds a clone of the provider, so dropping ours alone would not
        // shut it down while the subscriber lives.
        let _ = self.shutdown();
    }
}

/// The remote parent described by a W3C `traceparent` (and optional `tracestate`); `None`
/// when the header is malformed, so that a bad header never detaches a span from its parent.
pub fn context_from_traceparent(traceparent: &str, tracestate: Option<&str>) -> Option<Context> {
    let mut carrier = HashMap::with_capacity(2);
    carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    if let Some(state) = tracestate {
        carrier.insert("tracestate".to_owned(), state.to_owned());
    }
    let cx = TraceContextPropagator::new().extract_with_context(&Context::new(), &carrier);
    let valid = cx.span().span_context().is_valid();
    valid.then_some(cx)
}

/// The remote parent sent by an HTTP client in `traceparent`/`tracestate` headers.
pub fn context_from_headers(headers: &axum::http::HeaderMap) -> Option<Context> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    context_from_traceparent(header("traceparent")?, header("tracestate"))
}

/// Makes `cx` the parent of `span`. Must happen before the span is first entered (or
/// instrumented future first polled) or asked for its context: afterwards the OpenTelemetry
/// span has started and its parent is fixed. False when that was too late, when the span is
/// disabled, or when no OTLP layer is installed — all harmless.
pub fn set_parent(span: &tracing::Span, cx: Context) -> bool {
    OpenTelemetrySpanExt::set_parent(span, cx).is_ok()
}

/// Continues a stored trace: `set_parent` from a `traceparent` string, if it parses.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) -> bool {
    traceparent.and_then(|tp| context_from_traceparent(tp, tracestate)).is_some_and(|cx| set_parent(span, cx))
}

/// The current span as a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`), to store on a
/// job row; `None` without an OTLP layer or outside any exported span.
pub fn current_traceparent() -> Option<String> {
    traceparent(&tracing::Span::current())
}

/// `span` as a W3C `traceparent`. Starts the OpenTelemetry span if it had not started yet.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
}

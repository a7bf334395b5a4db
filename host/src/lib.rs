//! Vidfarm's host: it loads video-production templates as sandboxed WebAssembly components
//! and sells their operations through one async REST API.
//!
//! The module map follows a request: `api` (axum, one router per resource) → `db` (all SQL)
//! → `engine` (workers, journal-backed capabilities, catalog) → `runtime` (wasmtime, limits,
//! the one `bindgen!`) → `capabilities` (one module per WIT interface) → backends
//! (`storage`, `providers`). `server` runs it all; `cli` is the binary's edge; `devrun` runs
//! one operation locally for template authors.

pub mod api;
pub mod backup;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod devrun;
pub mod engine;
pub mod guardrails;
pub mod metrics;
pub mod money;
pub mod outbound;
pub mod providers;
pub mod rate_limit;
pub mod render;
pub mod runtime;
pub mod server;
pub mod storage;
pub mod telemetry;
pub mod webhooks;

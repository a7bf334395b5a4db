//! Vidfarm's host: it loads video-production templates as sandboxed WebAssembly components
//! and sells their operations through one async REST API.
//!
//! The module map follows the request: `cli` (operator and author commands) → `runtime`
//! (wasmtime, limits, the one `bindgen!`) → `capabilities` (one module per WIT interface) →
//! backends (`storage`, `providers`). `devrun` runs one operation locally for authors.

pub mod capabilities;
pub mod cli;
pub mod devrun;
pub mod providers;
pub mod runtime;
pub mod storage;

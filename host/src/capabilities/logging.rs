//! `logging`: structured job events and progress, bounded per job.

use super::{HostState, JobEvent};
use crate::runtime::bindings::logging::{Host, Level};

/// Longest message kept; longer ones are cut (and say so) so one call cannot store megabytes.
const MAX_MESSAGE_BYTES: usize = 4096;
/// Largest metadata object kept; larger is replaced by a note.
const MAX_METADATA_BYTES: usize = 16 << 10;

impl Host for HostState {
    async fn log(&mut self, level: Level, message: String, metadata: String) -> wasmtime::Result<()> {
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        let event = JobEvent {
            level: level.into(),
            message: bounded(message),
            metadata: metadata_value(&metadata),
            progress: None,
            artifact: None,
        };
        self.emit(event).await
    }

    async fn progress(&mut self, fraction: f64, message: String, metadata: String) -> wasmtime::Result<()> {
        let fraction = if fraction.is_finite() { fraction.clamp(0.0, 1.0) } else { 0.0 };
        let event = JobEvent {
            level: "info".into(),
            message: bounded(message),
            metadata: metadata_value(&metadata),
            progress: Some(fraction),
            artifact: None,
        };
        self.emit(event).await
    }
}

/// A log or progress message as stored: cut to size, and without NUL characters, which
/// PostgreSQL refuses in text (a refused event would make the run replay for ever).
fn bounded(message: String) -> String {
    let message = if message.contains('\0') { message.replace('\0', "\u{FFFD}") } else { message };
    cut_to(message, MAX_MESSAGE_BYTES)
}

/// `text` cut to at most `max` bytes on a character boundary, marked when cut (log messages,
/// template errors: text a template sizes that every read copies).
pub(crate) fn cut_to(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" …[truncated]");
    }
    text
}

/// The guest's metadata as JSON: an object, `{}` when empty, or a note when invalid/too big.
pub(crate) fn metadata_value(metadata: &str) -> serde_json::Value {
    if metadata.trim().is_empty() {
        return serde_json::json!({});
    }
    if metadata.len() > MAX_METADATA_BYTES {
        return serde_json::json!({ "_truncated": format!("metadata of {} bytes dropped", metadata.len()) });
    }
    serde_json::from_str(metadata).unwrap_or_else(|_| serde_json::json!({ "_invalid_json": metadata }))
}

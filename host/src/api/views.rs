//! The public JSON shapes of stored rows (never internal fields like lease tokens).

use crate::db::events::EventRow;
use crate::db::jobs::JobRow;
use serde_json::{Value, json};

/// RFC 3339 (UTC, milliseconds) from unix milliseconds.
pub fn timestamp(ms: i64) -> Value {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

fn parsed(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null)
}

/// Every job field of the spec.
pub fn job(row: &JobRow) -> Value {
    let waiting_for = match row.status.as_str() {
        // A render the host runs is the job's child too: `{"render": "<render id>"}`.
        "waiting_for_child" => match parsed(row.waiting_on.as_deref()) {
            Value::Object(render) => Value::Object(render),
            children => json!({ "children": children }),
        },
        "waiting_for_human" => json!({ "human": parsed(row.waiting_on.as_deref()) }),
        _ => Value::Null,
    };
    json!({
        "job_id": row.id,
        "template_id": row.template_id,
        "template_version": row.template_version,
        "operation_name": row.operation,
        "tracer": row.tracer,
        "status": row.status,
        "payload": parsed(Some(&row.payload)),
        "result": parsed(row.result.as_deref()),
        "error": parsed(row.error.as_deref()),
        "progress": row.progress,
        "progress_message": row.progress_message,
        "webhook_url": row.webhook_url,
        "parent_job_id": row.parent_job_id,
        "customer_id": row.customer_id,
        "reservation_id": row.reservation_id,
        "idempotency_key": row.idempotency_key,
        "attempt": row.attempt,
        "retries": row.retries,
        "waiting_for": waiting_for,
        "fuel_consumed": row.fuel_consumed,
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
        "started_at": row.started_at.map_or(Value::Null, timestamp),
        "finished_at": row.finished_at.map_or(Value::Null, timestamp),
    })
}

pub fn event(row: &EventRow) -> Value {
    json!({
        "id": row.id,
        "timestamp": timestamp(row.at),
        "level": row.level,
        "message": row.message,
        "metadata": parsed(Some(&row.metadata)),
        "progress": row.progress,
        "artifact": parsed(row.artifact.as_deref()),
    })
}

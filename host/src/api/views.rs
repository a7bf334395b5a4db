//! The public JSON shapes of stored rows (never internal fields like lease tokens).

use crate::db::billing::{BillingSummary, LedgerRow};
use crate::db::customers::Customer;
use crate::db::events::EventRow;
use crate::db::holds::HoldRow;
use crate::db::jobs::JobRow;
use crate::money;
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
        "retry_of": row.retry_of,
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

/// An amount as the API shows it: exact nano-USD and the same as a decimal USD string.
pub fn amount(nanos: i64) -> Value {
    json!({ "usd": money::usd(nanos), "nusd": nanos })
}

/// A customer's fair-share caps as the CLI and the admin API show them (`null`: the host
/// default).
pub fn customer_limits(customer: &Customer) -> Value {
    json!({
        "customer_id": customer.id,
        "max_concurrent_jobs": customer.max_concurrent_jobs,
        "jobs_per_minute": customer.jobs_per_minute,
        "max_concurrent_renders": customer.max_concurrent_renders,
        "max_concurrent_deliveries": customer.max_concurrent_deliveries,
        "storage_quota_bytes": customer.storage_quota_bytes,
        "stored_bytes": customer.stored_bytes,
    })
}

/// A customer's limits and what they have spent, held and may still spend (`available_*`
/// is null when the customer has no limit).
pub fn limits(s: &BillingSummary) -> Value {
    let limited = s.available_nusd < money::UNLIMITED / 2;
    json!({
        "credit_usd": s.credit_nusd.map(money::usd), "credit_nusd": s.credit_nusd,
        "monthly_cap_usd": s.monthly_cap_nusd.map(money::usd), "monthly_cap_nusd": s.monthly_cap_nusd,
        "margin": s.margin,
        "charged_usd": money::usd(s.charged_nusd), "charged_nusd": s.charged_nusd,
        "charged_this_month_usd": money::usd(s.charged_this_month_nusd),
        "charged_this_month_nusd": s.charged_this_month_nusd,
        "held_usd": money::usd(s.held_nusd), "held_nusd": s.held_nusd,
        "available_usd": limited.then(|| money::usd(s.available_nusd)),
        "available_nusd": limited.then_some(s.available_nusd),
    })
}

/// A job's money: its reservation, its holds (held, captured, released) and its charges.
pub fn job_billing(job: &JobRow, charges: &[LedgerRow], holds: &[HoldRow]) -> Value {
    let charged: i64 = charges.iter().map(|c| c.charge_nusd).sum();
    let open: i64 = holds.iter().filter(|h| h.status == "open").map(|h| h.held_nusd).sum();
    json!({
        "reservation_id": job.reservation_id,
        "reserved_usd": money::usd(job.reserved_nusd),
        "reserved_nusd": job.reserved_nusd,
        "charged_usd": money::usd(charged),
        "charged_nusd": charged,
        "held_usd": money::usd(open),
        "held_nusd": open,
        "holds": holds.iter().map(|h| json!({
            "effect": h.effect_key, "type": h.kind, "status": h.status,
            "held": amount(h.held_nusd),
            "captured": h.captured_nusd.map(amount),
            "released": h.captured_nusd.map(|c| amount(h.held_nusd - c)),
            "at": timestamp(h.created_at), "settled_at": h.settled_at.map_or(Value::Null, timestamp),
        })).collect::<Vec<_>>(),
        "charges": charges.iter().map(|c| json!({
            "type": c.event_type,
            "cost_usd": money::usd(c.cost_nusd), "cost_nusd": c.cost_nusd,
            "charge_usd": money::usd(c.charge_nusd), "charge_nusd": c.charge_nusd,
            "provider": c.provider, "model": c.model, "metadata": parsed(Some(&c.metadata)),
            "at": timestamp(c.created_at),
        })).collect::<Vec<_>>(),
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

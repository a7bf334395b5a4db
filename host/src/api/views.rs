//! The public JSON shapes of stored rows (never internal fields like lease tokens).

use crate::db::billing::{BillingSummary, LedgerRow};
use crate::db::customers::Customer;
use crate::db::events::EventRow;
use crate::db::holds::HoldRow;
use crate::db::jobs::JobRow;
use crate::money;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

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

/// RFC 3339 text of unix milliseconds (none when out of range).
fn rfc3339(ms: i64) -> Option<String> {
    timestamp(ms).as_str().map(str::to_string)
}

/// The statuses a job passes through (a schema only: the status is stored and shown as text).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum JobStatus {
    Queued,
    Running,
    WaitingForChild,
    WaitingForHuman,
    Succeeded,
    Failed,
    Cancelled,
}

/// A job: every field of the spec (never internal fields like its lease).
#[derive(Serialize, ToSchema)]
pub struct Job {
    pub job_id: String,
    pub template_id: String,
    /// The template version that runs (or ran) it.
    pub template_version: String,
    pub operation_name: String,
    /// The client's own correlation id, as given.
    pub tracer: String,
    #[schema(value_type = JobStatus)]
    pub status: String,
    /// The validated input.
    pub payload: Value,
    /// What the operation returned (when succeeded).
    pub result: Value,
    /// `{code, message, ...}` (when failed or cancelled).
    pub error: Value,
    /// 0 to 1.
    pub progress: f64,
    pub progress_message: Option<String>,
    pub webhook_url: Option<String>,
    pub parent_job_id: Option<String>,
    /// The failed or cancelled job this one retries.
    pub retry_of: Option<String>,
    pub customer_id: String,
    pub reservation_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub attempt: i64,
    pub retries: i64,
    /// `{"children": [...]}`, `{"render": "<id>"}` or `{"human": <prompt>}` while waiting.
    pub waiting_for: Value,
    pub fuel_consumed: i64,
    #[schema(format = DateTime)]
    pub created_at: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
}

impl From<&JobRow> for Job {
    fn from(row: &JobRow) -> Self {
        let waiting_for = match row.status.as_str() {
            // A render the host runs is the job's child too: `{"render": "<render id>"}`.
            "waiting_for_child" => match parsed(row.waiting_on.as_deref()) {
                Value::Object(render) => Value::Object(render),
                children => json!({ "children": children }),
            },
            "waiting_for_human" => json!({ "human": parsed(row.waiting_on.as_deref()) }),
            _ => Value::Null,
        };
        Self {
            job_id: row.id.clone(),
            template_id: row.template_id.clone(),
            template_version: row.template_version.clone(),
            operation_name: row.operation.clone(),
            tracer: row.tracer.clone(),
            status: row.status.clone(),
            payload: parsed(Some(&row.payload)),
            result: parsed(row.result.as_deref()),
            error: parsed(row.error.as_deref()),
            progress: row.progress,
            progress_message: row.progress_message.clone(),
            webhook_url: row.webhook_url.clone(),
            parent_job_id: row.parent_job_id.clone(),
            retry_of: row.retry_of.clone(),
            customer_id: row.customer_id.clone(),
            reservation_id: row.reservation_id.clone(),
            idempotency_key: row.idempotency_key.clone(),
            attempt: row.attempt,
            retries: row.retries,
            waiting_for,
            fuel_consumed: row.fuel_consumed,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
            started_at: row.started_at.and_then(rfc3339),
            finished_at: row.finished_at.and_then(rfc3339),
        }
    }
}

/// A job with its money (`GET .../jobs/:id`).
#[derive(Serialize, ToSchema)]
pub struct JobWithBilling {
    #[serde(flatten)]
    pub job: Job,
    /// The reservation, holds (held, captured, released) and charges of the job.
    pub billing: Value,
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

/// One structured event of a job's timeline.
#[derive(Serialize, ToSchema)]
pub struct Event {
    /// Increasing per job: the cursor of `after` and `Last-Event-ID`.
    pub id: i64,
    #[schema(format = DateTime)]
    pub timestamp: Option<String>,
    /// `debug`, `info`, `warn` or `error`.
    pub level: String,
    pub message: String,
    pub metadata: Value,
    pub progress: Option<f64>,
    /// `{key, url, content_type, ...}` when the event announces a stored file.
    pub artifact: Value,
}

impl From<&EventRow> for Event {
    fn from(row: &EventRow) -> Self {
        Self {
            id: row.id,
            timestamp: rfc3339(row.at),
            level: row.level.clone(),
            message: row.message.clone(),
            metadata: parsed(Some(&row.metadata)),
            progress: row.progress,
            artifact: parsed(row.artifact.as_deref()),
        }
    }
}

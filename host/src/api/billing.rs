//! `/billing`: what a customer has been charged, per day and template.

use super::extract::Authenticated;
use super::{ApiError, AppState};
use crate::money;
use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(usage))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Period {
    /// `YYYY-MM-DD` (inclusive), default: the start of this month.
    from: Option<String>,
    /// `YYYY-MM-DD` (inclusive), default: today.
    to: Option<String>,
}

fn day_ms(field: &str, day: &str) -> Result<i64, ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(day, &format).map_err(|_| ApiError::BadRequest {
        code: "invalid_query",
        message: format!("`{field}` must be a date YYYY-MM-DD, not `{day}`"),
    })?;
    Ok(i64::try_from(date.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
}

/// Charges per day and template, and the customer's limits.
#[utoipa::path(get, path = "/billing/usage", tag = "billing",
    params(Period),
    responses(
        (status = 200, description = "`{from, to, days: [{day, template_id, charged_usd, ...}], limits}`", body = Value),
        (status = 400, description = "Bad query (a date that is not YYYY-MM-DD)", body = super::error::ErrorBody),
    ))]
async fn usage(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    query: Result<Query<Period>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(period) = query?;
    let from = match &period.from {
        Some(day) => day_ms("from", day)?,
        None => crate::db::month_start_ms(),
    };
    let to = match &period.to {
        Some(day) => day_ms("to", day)? + 86_400_000,
        None => crate::db::now_ms() + 1,
    };
    if to <= from {
        return Err(ApiError::BadRequest { code: "invalid_query", message: "`to` is before `from`".into() });
    }
    let rows = state.db.usage(&customer.id, from, to).await?;
    let summary = state.db.billing_summary(&customer.id).await?;
    let (cost, charge) = rows.iter().fold((0, 0), |(c, ch), r| (c + r.cost_nusd, ch + r.charge_nusd));
    let days: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "day": r.day, "template_id": r.template_id, "events": r.events,
                "cost_usd": money::usd(r.cost_nusd), "cost_nusd": r.cost_nusd,
                "charge_usd": money::usd(r.charge_nusd), "charge_nusd": r.charge_nusd,
            })
        })
        .collect();
    Ok(Json(json!({
        "customer_id": customer.id,
        "from": super::views::timestamp(from),
        "to": super::views::timestamp(to),
        "days": days,
        "total": {
            "cost_usd": money::usd(cost), "cost_nusd": cost, "charge_usd": money::usd(charge), "charge_nusd": charge,
        },
        "limits": summary.as_ref().map(super::views::limits),
    })))
}

//! `/customers/me/files`: the customer's workspace as the dashboard shows it — list (key, size,
//! when, a signed download URL) and delete (the bytes leave the quota).

use super::extract::Authenticated;
use super::{ApiError, AppState, views};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn router() -> Router<AppState> {
    Router::new().route("/customers/me/files", get(list)).route("/customers/me/files/{*key}", delete(remove))
}

fn workspace(customer_id: &str) -> String {
    format!("customers/{customer_id}/workspace")
}

#[derive(Deserialize)]
struct Page {
    /// Only keys after this one (the previous page's last key).
    after: Option<String>,
    limit: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(page) = query?;
    let limit = page.limit.unwrap_or(100).clamp(1, 500);
    let prefix = format!("{}/", workspace(&customer.id));
    let after = page.after.as_deref().map(|k| format!("{prefix}{k}"));
    let rows = state.db.stored_objects_under(&prefix, after.as_deref(), limit).await?;
    let mut files = Vec::with_capacity(rows.len());
    for row in &rows {
        let relative = row.key.strip_prefix(&prefix).unwrap_or(&row.key);
        files.push(json!({
            "key": relative,
            "size": row.bytes,
            "updated_at": views::timestamp(row.updated_at),
            "url": state.caps.storage.public_url(&row.key).await,
        }));
    }
    let usage = state.db.storage_usage(&customer.id, state.config.storage_quota_bytes).await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.key.strip_prefix(&prefix).unwrap_or(&r.key).to_string()))
        .flatten();
    Ok(Json(json!({
        "files": files,
        "next_after": next,
        "stored_bytes": usage.map(|u| u.stored_bytes),
        "quota_bytes": usage.map(|u| u.quota_bytes),
    })))
}

async fn remove(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let full =
        crate::storage::keys::resolve(&workspace(&customer.id), &key).map_err(|p| ApiError::invalid("key", p))?;
    let Some(object) = state.db.stored_object(&customer.id, &full).await? else {
        return Err(ApiError::not_found("file_not_found", format!("no file `{key}` in the workspace")));
    };
    // A presigned S3 upload is counted when it is signed and stays usable until its URL
    // expires: deleting the object before then would let the upload land uncounted.
    let settles_at = object.updated_at + i64::try_from(state.config.file_url_ttl.as_millis()).unwrap_or(i64::MAX);
    if state.config.s3.is_some() && crate::db::now_ms() < settles_at {
        return Err(ApiError::Conflict {
            code: "upload_window_open",
            message: format!("`{key}` was signed for upload recently; it can be deleted once that URL has expired"),
        });
    }
    match state.caps.storage.delete(&full).await {
        Ok(()) => {}
        Err(crate::capabilities::StoreError::Unavailable(m)) => {
            return Err(ApiError::Internal(format!("deleting `{key}`: {m}")));
        }
        Err(e) => return Err(ApiError::Internal(format!("deleting `{key}`: {e:?}"))),
    }
    state.db.forget_stored_object(&customer.id, &full).await?;
    Ok(StatusCode::NO_CONTENT)
}

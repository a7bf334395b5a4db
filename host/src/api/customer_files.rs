//! `/customers/me/files`: the customer's workspace as the dashboard shows it — list (key, size,
//! when, a signed download URL) and delete (the bytes leave the quota).

use super::error::ErrorBody;
use super::extract::Authenticated;
use super::{ApiError, AppState, views};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(list)).routes(routes!(remove))
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

/// The workspace's files in key order: key, size, changed, a signed download URL; and the
/// storage in use and the quota.
#[utoipa::path(get, path = "/customers/me/files", tag = "files",
    params(
        ("after" = Option<String>, Query, description = "Only keys after this one (the previous page's `next_after`)"),
        ("limit" = Option<u32>, Query, description = "1 to 500 (default 100)"),
    ),
    responses(
        (status = 200, description = "`{files: [{key, size, updated_at, url}], next_after, stored_bytes, quota_bytes}`", body = Value),
        (status = 400, description = "Bad query", body = ErrorBody),
    ))]
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

/// Delete a workspace file (its bytes leave the quota).
#[utoipa::path(delete, path = "/customers/me/files/{*key}", tag = "files",
    params(("key" = String, Path, description = "The file's key in the workspace (may contain `/`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such file", body = ErrorBody),
        (status = 409, description = "Signed for upload by a URL still valid (`upload_window_open`)", body = ErrorBody),
        (status = 422, description = "The key leaves the workspace", body = ErrorBody),
    ))]
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
    // Five minutes more: the URL is signed just after the count is recorded, and S3's clock may
    // run behind ours.
    let window = state.config.file_url_ttl.saturating_add(std::time::Duration::from_secs(300));
    let settles_at = object.updated_at.saturating_add(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
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

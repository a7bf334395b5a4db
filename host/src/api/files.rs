//! `/files/…`: the host's own signed URLs for the local object store (GET an artifact, PUT an
//! upload into a customer's workspace), and `POST /files/sign-upload`, which hands a customer
//! an upload URL (presigned S3, or the host's own) for a file in their workspace.

use super::extract::{Authenticated, JsonBody};
use super::{ApiError, AppState};
use crate::capabilities::StoreError;
use crate::storage::keys;
use crate::storage::signed_urls::SignatureError;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

/// The largest upload through the host's own PUT URL.
const MAX_UPLOAD_BYTES: usize = 512 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/files/sign-upload", post(sign_upload))
        .route("/files/{*key}", get(download).put(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)))
}

#[derive(Deserialize)]
struct Signed {
    expires: i64,
    sig: String,
}

fn now_s() -> i64 {
    crate::db::now_ms() / 1000
}

/// Why a signed URL is refused (answered 403), if it is.
fn check(
    state: &AppState,
    method: &str,
    key: &str,
    query: Result<Query<Signed>, impl std::fmt::Display>,
) -> Result<(), String> {
    let Query(signed) = query.map_err(|e| format!("a signed URL needs `expires` and `sig`: {e}"))?;
    match state.signer.verify(method, key, signed.expires, &signed.sig, now_s()) {
        Ok(()) => Ok(()),
        Err(SignatureError::Expired) => Err("the URL has expired".into()),
        Err(SignatureError::Mismatch) => Err("the signature does not match this URL".into()),
    }
}

fn forbidden(message: String) -> Response {
    (StatusCode::FORBIDDEN, Json(json!({ "error": { "code": "invalid_signature", "message": message } })))
        .into_response()
}

/// The media type of a stored file, from its extension (the local store keeps bytes only).
fn content_type(key: &str) -> &'static str {
    let extension = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "json" => "application/json",
        "txt" | "md" | "srt" => "text/plain; charset=utf-8",
        "vtt" => "text/vtt; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn download(
    State(state): State<AppState>,
    Path(key): Path<String>,
    query: Result<Query<Signed>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(refused) = check(&state, "GET", &key, query) {
        return forbidden(refused);
    }
    match state.caps.storage.get(&key).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type(&key))], bytes).into_response(),
        Err(StoreError::NotFound(_)) => ApiError::not_found("file_not_found", "no such file").into_response(),
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}

async fn upload(
    State(state): State<AppState>,
    Path(key): Path<String>,
    query: Result<Query<Signed>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Response {
    if let Err(refused) = check(&state, "PUT", &key, query) {
        return forbidden(refused);
    }
    // Only workspace files are uploaded; the signature already pins the exact key.
    let size = body.len();
    match state.caps.storage.put(&key, body.to_vec(), "application/octet-stream").await {
        Ok(_) => (StatusCode::CREATED, Json(json!({ "key": key, "size": size }))).into_response(),
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}

/// An upload URL for `key` in the caller's workspace (`customers/:id/workspace/<key>`).
async fn sign_upload(
    State(state): State<AppState>,
    Authenticated(customer): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let key = body.get("key").and_then(Value::as_str).ok_or_else(|| ApiError::invalid("key", "is required"))?;
    let content_type = match body.get("content_type") {
        None | Some(Value::Null) => "application/octet-stream",
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 200 => s.as_str(),
        Some(_) => return Err(ApiError::invalid("content_type", "must be a media type string")),
    };
    let full = keys::resolve(&format!("customers/{}/workspace", customer.id), key)
        .map_err(|problem| ApiError::invalid("key", problem))?;
    let upload = state
        .caps
        .storage
        .upload_url(&full, content_type)
        .await
        .ok_or_else(|| ApiError::Internal("this storage backend cannot sign uploads".into()))?;
    let expires_at = crate::db::now_ms() + i64::try_from(upload.ttl.as_millis()).unwrap_or(0);
    let headers: serde_json::Map<String, Value> =
        upload.headers.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    Ok(Json(json!({
        "key": key,
        "workspace_key": full,
        "method": upload.method,
        "url": upload.url,
        "headers": headers,
        "expires_at": super::views::timestamp(expires_at),
    })))
}

//! `/files/…`: the host's own signed URLs for the local object store (GET an artifact, PUT an
//! upload into a customer's workspace), and `POST /files/sign-upload`, which hands a customer
//! an upload URL (presigned S3, or the host's own) for a file in their workspace.

use super::error::ErrorBody;
use super::extract::{Authenticated, JsonBody};
use super::{ApiError, AppState};
use crate::capabilities::StoreError;
use crate::db::storage_quota::{Recorded, StoredObject};
use crate::storage::keys;
use crate::storage::signed_urls::SignatureError;
use axum::Json;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

/// The largest upload through the host's own PUT URL.
const MAX_UPLOAD_BYTES: usize = 512 << 20;
/// The largest presigned upload (one S3 PUT).
const MAX_SIGNED_UPLOAD_BYTES: u64 = 5 << 30;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(sign_upload))
        .routes(routes!(download, upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)))
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

/// A stored object through a signed URL (streamed).
#[utoipa::path(get, path = "/files/{*key}", tag = "files", security(()),
    params(
        ("key" = String, Path, description = "The object's key (may contain `/`)"),
        ("expires" = i64, Query, description = "Unix seconds the URL expires at"),
        ("sig" = String, Query, description = "The URL's signature"),
    ),
    responses(
        (status = 200, description = "The object", content_type = "application/octet-stream"),
        (status = 403, description = "Bad or expired signature", body = ErrorBody),
        (status = 404, description = "No such object", body = ErrorBody),
    ))]
async fn download(
    State(state): State<AppState>,
    Path(key): Path<String>,
    query: Result<Query<Signed>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(refused) = check(&state, "GET", &key, query) {
        return forbidden(refused);
    }
    // Streamed from the store: a 1 GB video costs the host a few buffers, not 1 GB.
    match state.caps.storage.open(&key).await {
        Ok(object) => {
            let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(object.body));
            let mut response = ([(header::CONTENT_TYPE, content_type(&key))], body).into_response();
            // Served from the dashboard's origin: a stored HTML or SVG file must not run as a
            // page of it (no sniffing, a sandbox without script or same-origin access).
            let h = response.headers_mut();
            h.insert(header::X_CONTENT_TYPE_OPTIONS, axum::http::HeaderValue::from_static("nosniff"));
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                axum::http::HeaderValue::from_static(
                    "sandbox; default-src 'none'; media-src 'self'; img-src 'self'; style-src 'unsafe-inline'",
                ),
            );
            if object.size != u64::MAX {
                response.headers_mut().insert(header::CONTENT_LENGTH, object.size.into());
            }
            response
        }
        Err(StoreError::NotFound(_)) => ApiError::not_found("file_not_found", "no such file").into_response(),
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}

/// Upload through the host's own signed URL (local store; streamed, at most 512 MiB).
#[utoipa::path(put, path = "/files/{*key}", tag = "files", security(()),
    params(
        ("key" = String, Path, description = "The workspace key the URL was signed for"),
        ("expires" = i64, Query, description = "Unix seconds the URL expires at"),
        ("sig" = String, Query, description = "The URL's signature"),
    ),
    request_body(content(("application/octet-stream")), description = "The file's bytes"),
    responses(
        (status = 201, description = "`{key, size}`", body = Value),
        (status = 403, description = "Bad or expired signature", body = ErrorBody),
        (status = 413, description = "Larger than 512 MiB (`payload_too_large`) or past the storage quota (`storage_quota_exceeded`)", body = ErrorBody),
    ))]
async fn upload(
    State(state): State<AppState>,
    Path(key): Path<String>,
    query: Result<Query<Signed>, axum::extract::rejection::QueryRejection>,
    body: axum::body::Body,
) -> Response {
    if let Err(refused) = check(&state, "PUT", &key, query) {
        return forbidden(refused);
    }
    // Only workspace files are uploaded; the signature already pins the exact key. The body
    // goes to a temporary file as it arrives (never whole in memory), then to the store.
    let spooled = match spool(&state, body).await {
        Ok(spooled) => spooled,
        Err(e) => return e.into_response(),
    };
    let size = std::fs::metadata(&spooled).map_or(0, |m| m.len());
    if let Err(e) = record_upload(&state, &key, size, false).await {
        return e.into_response();
    }
    match state.caps.storage.put_file(&key, &spooled, "application/octet-stream").await {
        Ok(size) => (StatusCode::CREATED, Json(json!({ "key": key, "size": size }))).into_response(),
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}

/// Write a request body to a temporary file under the data dir, refusing it (413) once it
/// passes `MAX_UPLOAD_BYTES`.
async fn spool(state: &AppState, body: axum::body::Body) -> Result<tempfile::TempPath, ApiError> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let dir = state.config.data_dir.join("uploads");
    let internal = |e: std::io::Error| ApiError::Internal(format!("spooling an upload: {e}"));
    tokio::fs::create_dir_all(&dir).await.map_err(internal)?;
    let temp = tempfile::NamedTempFile::new_in(&dir).map_err(internal)?;
    let (file, path) = temp.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut stream = body.into_data_stream();
    let mut written = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid("(body)", format!("the upload broke off: {e}")))?;
        written += chunk.len();
        if written > MAX_UPLOAD_BYTES {
            return Err(ApiError::PayloadTooLarge(MAX_UPLOAD_BYTES));
        }
        file.write_all(&chunk).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    Ok(path)
}

/// Count an upload of `size` bytes at the workspace key `key` against its customer's quota
/// (413 `storage_quota_exceeded` when it does not fit). `presigned`: see
/// [`StoredObject::keep_larger`].
async fn record_upload(state: &AppState, key: &str, size: u64, presigned: bool) -> Result<(), ApiError> {
    let customer_id = key.strip_prefix("customers/").and_then(|rest| rest.split('/').next()).unwrap_or_default();
    let object = StoredObject {
        key: key.to_string(),
        customer_id: customer_id.to_string(),
        bytes: size,
        default_quota: state.config.storage_quota_bytes,
        force: false,
        keep_larger: presigned,
    };
    match state.db.record_stored_object(object).await? {
        Recorded::Fits => Ok(()),
        Recorded::OverQuota { stored, quota } => Err(ApiError::QuotaExceeded(format!(
            "storing {size} bytes would pass the storage quota: {stored} of {quota} bytes are in use"
        ))),
    }
}

/// An upload URL for `key` in the caller's workspace (`customers/:id/workspace/<key>`),
/// counted against the storage quota.
#[utoipa::path(post, path = "/files/sign-upload", tag = "files",
    request_body = super::openapi::UploadRequest,
    responses(
        (status = 200, description = "`{key, workspace_key, method, url, headers, expires_at}`", body = Value),
        (status = 422, description = "A field is invalid (`key` escapes the workspace, `size` missing on S3 or past the quota)", body = ErrorBody),
    ))]
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
    let size = match body.get("size") {
        None | Some(Value::Null) => None,
        Some(n) => match n.as_u64() {
            Some(size) if size <= MAX_SIGNED_UPLOAD_BYTES => Some(size),
            _ => {
                return Err(ApiError::invalid("size", format!("must be a byte count up to {MAX_SIGNED_UPLOAD_BYTES}")));
            }
        },
    };
    if let Some(unknown) =
        body.as_object().and_then(|o| o.keys().find(|k| !["key", "content_type", "size"].contains(&k.as_str())))
    {
        return Err(ApiError::invalid(unknown, "is not a field of an upload request"));
    }
    // Uploads that bypass the host (presigned S3 PUTs) are counted against the quota now, for
    // the size the URL is signed for; the host's own PUT counts what actually arrives. A
    // re-sign for fewer bytes never lowers the count (see `StoredObject::keep_larger`).
    let presigned = state.config.s3.is_some();
    match (size, presigned) {
        (Some(size), true) => record_upload(&state, &full, size, true).await.map_err(|e| match e {
            ApiError::QuotaExceeded(problem) => ApiError::invalid("size", problem),
            other => other,
        })?,
        (None, true) => {
            return Err(ApiError::invalid("size", "is required: the upload URL is signed for exactly that many bytes"));
        }
        (_, false) => {}
    }
    let upload = state
        .caps
        .storage
        .upload_url(&full, content_type, size)
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

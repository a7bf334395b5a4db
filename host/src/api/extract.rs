//! Request extractors: the authenticated customer, and JSON bodies whose rejections become
//! our error shape (400 malformed / wrong content type, 413 too large).

use super::{ApiError, AppState};
use crate::db::customers::Customer;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

/// The customer named by `vidfarm-user-id` whose live key is `vidfarm-api-key`, or (with
/// neither header) the customer of the dashboard session the cookie names; a session's
/// state-changing requests must carry its CSRF token.
pub struct Authenticated(pub Customer);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ApiError::Unauthorized(format!("the `{name}` header is missing")))
        };
        if by_session(state, &parts.headers) {
            return session_customer(parts, state).await.map(Self);
        }
        let (user, key) = (header("vidfarm-user-id")?, header("vidfarm-api-key")?);
        let key_hash = hash_key(key);
        if let Some(customer) = state.auth_cache.get(user, &key_hash) {
            return Ok(Self(customer));
        }
        match state.db.authenticate(user, &key_hash).await? {
            Some(customer) => {
                state.auth_cache.put(&key_hash, &customer);
                // Last use, to the cache's few seconds; off the request's path.
                let (db, hash) = (state.db.clone(), key_hash.clone());
                tokio::spawn(async move { db.touch_api_key(&hash).await });
                Ok(Self(customer))
            }
            None => Err(ApiError::Unauthorized("unknown customer or invalid API key".into())),
        }
    }
}

/// Whether a request is authenticated by a dashboard session: it has a session cookie and
/// neither API-key header.
pub fn by_session(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    let keyless = !headers.contains_key("vidfarm-user-id") && !headers.contains_key("vidfarm-api-key");
    keyless && crate::dashboard::session::read(state, headers, crate::dashboard::session::COOKIE).is_some()
}

/// Passwords a customer may try per minute when a session does something lasting.
const PASSWORD_ATTEMPTS_PER_MINUTE: u32 = 10;

/// What outlasts a session (an API key, a webhook destination that receives every job's events,
/// the secret that signs deliveries to jobs' own webhook URLs) needs the account's `password` in the body when the request is made with a dashboard
/// session: a stolen session (a few days at most) must not turn itself into lasting access. A
/// request made with an API key needs none.
pub async fn confirm_session_password(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    customer_id: &str,
    body: &serde_json::Value,
) -> Result<(), ApiError> {
    if !by_session(state, headers) {
        return Ok(());
    }
    let Some(serde_json::Value::String(password)) = body.get("password") else {
        return Err(ApiError::invalid("password", "is required when a dashboard session does this"));
    };
    // Every attempt is charged before the (slow) check: a burst of parallel guesses cannot all
    // pass the allowance before the first failure is counted.
    state
        .limiter
        .take(&format!("reauth:{customer_id}"), PASSWORD_ATTEMPTS_PER_MINUTE)
        .await
        .map_err(ApiError::TooManyRequests)?;
    let hash = state.db.account_of(customer_id).await?.map(|a| a.password_hash);
    if crate::dashboard::session::verify_password(password.clone(), hash).await? {
        return Ok(());
    }
    Err(ApiError::Forbidden("password: does not match the account's password".into()))
}

async fn session_customer(parts: &Parts, state: &AppState) -> Result<Customer, ApiError> {
    use crate::dashboard::session;
    let Some((_, live)) = session::current(state, &parts.headers).await? else {
        return Err(ApiError::Unauthorized("the session has ended: sign in again".into()));
    };
    session::check_csrf(&parts.method, &parts.headers, &live)?;
    let Some(customer_id) = live.customer_id.as_deref() else {
        return Err(ApiError::Unauthorized("an operator's session has no customer: use a customer's account".into()));
    };
    state.db.customer(customer_id).await?.ok_or_else(|| ApiError::Unauthorized("the customer is gone".into()))
}

/// Recently verified keys, so a busy client costs one hash per request instead of a query.
/// Entries live [`AUTH_CACHE_TTL`]: a revoked key stops working within that time.
#[derive(Default)]
pub struct AuthCache(std::sync::Mutex<std::collections::HashMap<String, (Customer, std::time::Instant)>>);

/// How long a verified key is trusted without asking the database again.
pub const AUTH_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl AuthCache {
    fn get(&self, user: &str, key_hash: &str) -> Option<Customer> {
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(key_hash) {
            Some((customer, at)) if at.elapsed() < AUTH_CACHE_TTL => (customer.id == user).then(|| customer.clone()),
            Some(_) => {
                cache.remove(key_hash);
                None
            }
            None => None,
        }
    }

    /// Forget every verified key of a customer (one was revoked: it stops working at once).
    pub fn forget_customer(&self, customer_id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, (c, _)| c.id != customer_id);
    }

    fn put(&self, key_hash: &str, customer: &Customer) {
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 100_000 {
            cache.retain(|_, (_, at)| at.elapsed() < AUTH_CACHE_TTL);
        }
        cache.insert(key_hash.to_string(), (customer.clone(), std::time::Instant::now()));
    }
}

/// How API keys are stored: SHA-256, hex (keys are 256-bit random, so no salt or KDF is
/// needed to resist guessing).
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Issue a new API key for a customer: `vf_` + 256 random bits, hex. Only its hash is
/// stored; the key is returned to be shown once.
pub async fn issue_api_key(
    db: &crate::db::Db,
    customer_id: &str,
    label: Option<String>,
) -> Result<String, crate::db::DbError> {
    issue_api_key_record(db, customer_id, label).await.map(|(key, _)| key)
}

/// [`issue_api_key`], with the stored record.
pub async fn issue_api_key_record(
    db: &crate::db::Db,
    customer_id: &str,
    label: Option<String>,
) -> Result<(String, crate::db::customers::ApiKey), crate::db::DbError> {
    use rand::Rng;
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let key = format!("vf_{}", hex::encode(secret));
    let record = crate::db::customers::ApiKey {
        id: format!("key_{}", uuid::Uuid::now_v7().simple()),
        customer_id: customer_id.to_string(),
        prefix: key[..10].to_string(),
        label,
        created_at: crate::db::now_ms(),
        revoked_at: None,
        last_four: Some(key[key.len() - 4..].to_string()),
        last_used_at: None,
    };
    db.insert_api_key(&record, &hash_key(&key)).await?;
    Ok((key, record))
}

/// A JSON body as a `serde_json::Value`; handlers validate fields themselves so every 422
/// names the field.
pub struct JsonBody(pub serde_json::Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::BadRequest {
                code: "unsupported_content_type",
                message: "the body must be JSON with `content-type: application/json`".into(),
            }),
            Err(rejection) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge(state.config.max_body_bytes))
            }
            Err(rejection) => Err(ApiError::BadRequest { code: "invalid_json", message: rejection.body_text() }),
        }
    }
}

/// Whether `headers` carry `authorization: Bearer <token>` (compared as digests, so timing says
/// nothing about the token): the operator's routes and a protected `/metrics`.
pub fn bearer_matches(headers: &axum::http::HeaderMap, token: &str) -> bool {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    Sha256::digest(given.as_bytes()) == Sha256::digest(token.as_bytes())
}

//! Browser sessions: argon2id password hashes, a random 256-bit token in an HttpOnly,
//! SameSite=Lax cookie (only its SHA-256 is stored), one CSRF token per session that every
//! state-changing request must carry, and a fresh token at every sign-in (no fixation).

use crate::api::{ApiError, AppState};
use crate::db::accounts::Session;
use axum::http::{HeaderMap, HeaderValue, Method};
use sha2::{Digest, Sha256};

/// The session cookie's name (over https with the `__Host-` prefix: see [`named`]).
pub const COOKIE: &str = "vf_session";
/// The pre-session CSRF cookie of the sign-in and sign-up forms (double submit).
pub const FORM_COOKIE: &str = "vf_form";
/// How long a session lives after sign-in.
pub const SESSION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// The header a script's state-changing request carries its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
/// Longest password accepted (checked before any hashing: it bounds the work a request buys).
pub const MAX_PASSWORD: usize = 256;
/// How long an operator's session lasts (shorter than a customer's: it holds the platform).
pub const OPERATOR_SESSION_TTL_MS: i64 = 12 * 3600 * 1000;

/// Argon2 hashes at once (19 MiB and a core each): a flood of sign-ins waits its turn or is
/// refused, it cannot take the host's memory.
static HASHING: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
});

/// A hashing slot, waiting at most 2 s for one.
async fn hashing_slot() -> Result<tokio::sync::SemaphorePermit<'static>, ApiError> {
    match tokio::time::timeout(std::time::Duration::from_secs(2), HASHING.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError::TooManyRequests(1)),
    }
}

/// Why a password is not acceptable, if it is not.
pub fn password_problem(password: &str) -> Option<String> {
    let n = password.chars().count();
    (!(MIN_PASSWORD..=MAX_PASSWORD).contains(&n))
        .then(|| format!("password: must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"))
}

/// A normalised email (trimmed, lower-cased), or why it is not one.
pub fn normalized_email(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid { Ok(email) } else { Err("email: must be an email address") }
}

/// An argon2id hash (the crate's defaults: 19 MiB, 2 passes) of `password`, off the runtime's
/// threads.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    let _slot = hashing_slot().await?;
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHasher, SaltString};
        use rand::Rng;
        let mut random = [0u8; 16];
        rand::rng().fill_bytes(&mut random);
        let salt = SaltString::encode_b64(&random).map_err(|e| ApiError::Internal(format!("a salt: {e}")))?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::Internal(format!("hashing a password: {e}")))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// Whether `password` matches `hash`. With no hash (an unknown email) a dummy hash is checked
/// anyway, so the answer takes as long as for a known one and timing tells no email apart.
pub async fn verify_password(password: String, hash: Option<String>) -> Result<bool, ApiError> {
    if password.chars().count() > MAX_PASSWORD {
        return Ok(false);
    }
    let _slot = hashing_slot().await?;
    const DUMMY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0GVi5s2uQX8v3S8mYx3gFTJmXoQ0bSxq1tK9vqk0xJ4";
    let known = hash.is_some();
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let hash = hash.unwrap_or_else(|| DUMMY.to_string());
        let Ok(parsed) = PasswordHash::new(&hash) else { return false };
        argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && known
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))
}

/// 256 random bits, hex.
pub fn random_token() -> String {
    use rand::Rng;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// How a session token is stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether two secrets are equal, compared as digests (timing says nothing about either).
pub fn same_secret(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

/// The value of cookie `name` in a request.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// Whether the browser reached us over https (directly or through a proxy that says so):
/// then cookies are `Secure`.
pub fn over_https(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.public_url.starts_with("https://")
        || headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) == Some("https")
}

/// The client's address as the server saw it ("unknown" when served without it): behind a
/// proxy this is the proxy, so its limits then apply per proxy.
pub fn client_ip(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string())
}

/// The digest an operator's session keeps of the admin token it was opened with: a new token
/// ends every operator session opened with the old one.
pub fn operator_digest(state: &AppState) -> Option<String> {
    state.config.admin_token.as_deref().map(token_hash)
}

/// Whether `session` is a live operator session for the admin token in force now.
pub fn is_operator(state: &AppState, session: &Session) -> bool {
    session.operator && session.token_digest.is_some() && session.token_digest == operator_digest(state)
}

/// The name cookie `base` goes by for this request. Over https it is `__Host-<base>`: the
/// browser keeps such a cookie only if it is Secure, for the whole site and set by this very
/// host, so a sibling subdomain or a plain-http page cannot plant or shadow it; and only that
/// name is read there. Over plain http (development on localhost) browsers refuse the prefix,
/// so the bare name is used.
pub fn named(state: &AppState, headers: &HeaderMap, base: &str) -> String {
    if over_https(state, headers) { format!("__Host-{base}") } else { base.to_string() }
}

/// The value of cookie `base` (by the name it has for this request: [`named`]).
pub fn read<'h>(state: &AppState, headers: &'h HeaderMap, base: &str) -> Option<&'h str> {
    cookie(headers, &named(state, headers, base))
}

/// A `Set-Cookie` for cookie `base` (by [`named`]), Secure over https.
pub fn set(state: &AppState, headers: &HeaderMap, base: &str, value: &str, max_age_s: i64) -> HeaderValue {
    set_cookie(&named(state, headers, base), value, max_age_s, over_https(state, headers))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, the whole site; `max_age_s` 0 clears it.
fn set_cookie(name: &str, value: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The live session a request's cookie names, with its token's hash.
pub async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<(String, Session)>, ApiError> {
    let Some(token) = read(state, headers, COOKIE) else { return Ok(None) };
    let id_hash = token_hash(token);
    Ok(state.db.session(&id_hash).await?.map(|s| (id_hash, s)))
}

/// A request authenticated by its session cookie may change state only with the session's
/// CSRF token in [`CSRF_HEADER`]: a page of another site can send the cookie, not the token.
pub fn check_csrf(method: &Method, headers: &HeaderMap, session: &Session) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if same_secret(given, &session.csrf_token) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("a request made with a session must carry its `{CSRF_HEADER}` header")))
    }
}

/// Start a session: a fresh token (whatever cookie came with the request is never reused),
/// stored as its hash; returns the cookie to set.
pub async fn start(
    state: &AppState,
    headers: &HeaderMap,
    customer_id: Option<&str>,
    operator: bool,
) -> Result<HeaderValue, ApiError> {
    if let Some(old) = read(state, headers, COOKIE) {
        state.db.delete_session(&token_hash(old)).await?;
    }
    let token = random_token();
    let ttl = if operator { OPERATOR_SESSION_TTL_MS } else { SESSION_TTL_MS };
    let digest = if operator { operator_digest(state) } else { None };
    let new = crate::db::accounts::NewSession {
        id_hash: &token_hash(&token),
        customer_id,
        token_digest: digest.as_deref(),
        csrf_token: &random_token(),
        expires_at: crate::db::now_ms() + ttl,
    };
    state.db.create_session(&new).await?;
    Ok(set(state, headers, COOKIE, &token, ttl / 1000))
}

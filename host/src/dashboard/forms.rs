//! Sign-up, sign-in (customers by email and password, operators by the admin token),
//! sign-out and password change: plain HTML forms that work without script. The forms
//! before a session carry a double-submit CSRF token (a cookie and a field that must match);
//! the forms of a session carry the session's own.

use super::html::{alert, csrf, escape, field, page};
use super::session::{self, COOKIE, FORM_COOKIE};
use crate::api::{ApiError, AppState};
use crate::config::SignupMode;
use crate::db::accounts::SignedUp;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// Failed sign-ins per client and email (or operator token) a minute.
const FAILURES_PER_MINUTE: u32 = 10;
/// Sign-in and sign-up attempts per client a minute, whatever the email.
const ATTEMPTS_PER_MINUTE: u32 = 30;

#[derive(Deserialize, Default)]
pub struct SignupForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
}

#[derive(Deserialize, Default)]
pub struct SigninForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    admin_token: String,
    #[serde(default)]
    csrf_token: String,
}

#[derive(Deserialize, Default)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    csrf_token: String,
}

/// A form page with a fresh double-submit token (cookie + hidden field).
fn with_form_token(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    title: &str,
    render: impl FnOnce(&str) -> String,
) -> Response {
    let token = session::random_token();
    let mut response = page(status, title, &render(&token));
    let cookie = session::set(state, headers, FORM_COOKIE, &token, 3600);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// The client's address, for the sign-in limits.
pub struct ClientIp(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(session::client_ip(&parts.extensions)))
    }
}

fn form_token_ok(state: &AppState, headers: &HeaderMap, given: &str) -> bool {
    session::read(state, headers, FORM_COOKIE).is_some_and(|cookie| session::same_secret(cookie, given))
}

fn signup_body(state: &AppState, token: &str, error: Option<&str>, form: &SignupForm) -> String {
    let note = match state.config.signup {
        SignupMode::Invite => "<p>Sign-up is by invitation: use the email address you were invited with.</p>",
        _ => "",
    };
    format!(
        "{note}{}<form method=\"post\" action=\"/signup\">{}{}{}{}{}<button type=\"submit\">Create account</button></form>\
         <p>Have an account? <a href=\"/signin\">Sign in</a></p>",
        alert(error),
        csrf(token),
        field("Name", "name", "text", &form.name, "required maxlength=\"200\" autocomplete=\"organization\""),
        field("Email", "email", "email", &form.email, "required maxlength=\"254\" autocomplete=\"email\""),
        field(
            "Password",
            "password",
            "password",
            "",
            &format!(
                "required minlength=\"{MIN_PASSWORD}\" maxlength=\"{MAX_PASSWORD}\" autocomplete=\"new-password\""
            )
        ),
        "<p class=\"hint\">At least 10 characters.</p>",
    )
}

pub async fn signup_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.config.signup == SignupMode::Closed {
        return page(StatusCode::FORBIDDEN, "Sign-up is closed", "<p>Ask the operator for an account.</p>");
    }
    with_form_token(&state, &headers, StatusCode::OK, "Create your account", |t| {
        signup_body(&state, t, None, &SignupForm::default())
    })
}

use session::{MAX_PASSWORD, MIN_PASSWORD, normalized_email as email, password_problem};

/// One more attempt from this client; `false` once it is past its minute's allowance.
async fn attempt_allowed(state: &AppState, ip: &str) -> bool {
    state.limiter.take(&format!("signin-ip:{ip}"), ATTEMPTS_PER_MINUTE).await.is_ok()
}

pub async fn signup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<SignupForm>,
) -> Response {
    let again = |status, error: &str, form: &SignupForm| {
        with_form_token(&state, &headers, status, "Create your account", |t| signup_body(&state, t, Some(error), form))
    };
    if state.config.signup == SignupMode::Closed {
        return page(StatusCode::FORBIDDEN, "Sign-up is closed", "<p>Ask the operator for an account.</p>");
    }
    if !form_token_ok(&state, &headers, &form.csrf_token) {
        return again(StatusCode::FORBIDDEN, "The form expired: please submit it again.", &form);
    }
    if !attempt_allowed(&state, &ip).await {
        return again(StatusCode::TOO_MANY_REQUESTS, "Too many attempts: wait a minute.", &form);
    }
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return again(StatusCode::UNPROCESSABLE_ENTITY, "name: must be 1 to 200 characters", &form);
    }
    let email = match email(&form.email) {
        Ok(email) => email,
        Err(problem) => return again(StatusCode::UNPROCESSABLE_ENTITY, problem, &form),
    };
    if let Some(problem) = password_problem(&form.password) {
        return again(StatusCode::UNPROCESSABLE_ENTITY, &problem, &form);
    }
    // Sign-up without email verification tells whether an email has an account; each such
    // answer costs from a small per-client allowance, so probing many emails is slow.
    let taken = format!("signup-taken:{ip}");
    if state.limiter.peek(&taken, FAILURES_PER_MINUTE).await < 1.0 {
        return again(StatusCode::TOO_MANY_REQUESTS, "Too many attempts: wait a minute.", &form);
    }
    let invite_only = state.config.signup == SignupMode::Invite;
    // An uninvited email costs no hashing.
    match state.db.has_invite(&email).await {
        Ok(false) if invite_only => {
            let _ = state.limiter.take(&taken, FAILURES_PER_MINUTE).await;
            return again(StatusCode::FORBIDDEN, "email: has no invitation", &form);
        }
        Err(e) => return ApiError::from(e).into_response(),
        _ => {}
    }
    let result = async {
        let hash = session::hash_password(form.password.clone()).await?;
        let id = format!("cus_{}", uuid::Uuid::now_v7().simple());
        Ok::<_, ApiError>(state.db.sign_up(&id, name, &email, &hash, invite_only).await?)
    };
    match result.await {
        Ok(SignedUp::Created(customer)) => match session::start(&state, &headers, Some(&customer.id), false).await {
            Ok(cookie) => signed_in(cookie, "/"),
            Err(e) => e.into_response(),
        },
        Ok(SignedUp::EmailTaken) => {
            let _ = state.limiter.take(&taken, FAILURES_PER_MINUTE).await;
            again(StatusCode::CONFLICT, "email: an account with this email exists", &form)
        }
        Ok(SignedUp::NotInvited) => {
            let _ = state.limiter.take(&taken, FAILURES_PER_MINUTE).await;
            again(StatusCode::FORBIDDEN, "email: has no invitation", &form)
        }
        Err(e) => e.into_response(),
    }
}

fn signin_body(state: &AppState, token: &str, error: Option<&str>, email: &str) -> String {
    let signup = if state.config.signup == SignupMode::Closed {
        ""
    } else {
        "<p>New here? <a href=\"/signup\">Create an account</a></p>"
    };
    let operator = if state.config.admin_token.is_some() {
        format!(
            "<details><summary>Operator sign-in</summary><form method=\"post\" action=\"/signin\">{}{}\
             <button type=\"submit\">Sign in as operator</button></form></details>",
            csrf(token),
            field("Admin token", "admin_token", "password", "", "required autocomplete=\"off\""),
        )
    } else {
        String::new()
    };
    format!(
        "{}<form method=\"post\" action=\"/signin\">{}{}{}<button type=\"submit\">Sign in</button></form>{signup}{operator}",
        alert(error),
        csrf(token),
        field("Email", "email", "email", email, "required autocomplete=\"username\""),
        field("Password", "password", "password", "", "required autocomplete=\"current-password\""),
    )
}

pub async fn signin_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    with_form_token(&state, &headers, StatusCode::OK, "Sign in", |t| signin_body(&state, t, None, ""))
}

pub async fn signin(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<SigninForm>,
) -> Response {
    let again = |status, error: &str| {
        with_form_token(&state, &headers, status, "Sign in", |t| signin_body(&state, t, Some(error), &form.email))
    };
    if !form_token_ok(&state, &headers, &form.csrf_token) {
        return again(StatusCode::FORBIDDEN, "The form expired: please submit it again.");
    }
    if !attempt_allowed(&state, &ip).await {
        return again(StatusCode::TOO_MANY_REQUESTS, "Too many sign-in attempts: wait a minute.");
    }
    if !form.admin_token.is_empty() {
        let failures = format!("signin-operator:{ip}");
        if state.limiter.peek(&failures, FAILURES_PER_MINUTE).await < 1.0 {
            return again(StatusCode::TOO_MANY_REQUESTS, "Too many sign-in attempts: wait a minute.");
        }
        let matches = state.config.admin_token.as_deref().is_some_and(|t| session::same_secret(t, &form.admin_token));
        if !matches {
            let _ = state.limiter.take(&failures, FAILURES_PER_MINUTE).await;
            return again(StatusCode::UNAUTHORIZED, "admin_token: wrong token");
        }
        return match session::start(&state, &headers, None, true).await {
            Ok(cookie) => signed_in(cookie, "/app/admin"),
            Err(e) => e.into_response(),
        };
    }
    let Ok(email) = email(&form.email) else {
        return again(StatusCode::UNAUTHORIZED, "Wrong email or password.");
    };
    // Failures count per client and email: a stranger's wrong guesses cannot lock the
    // customer out from everywhere, and a success costs nothing.
    let failures = format!("signin:{ip}:{email}");
    if state.limiter.peek(&failures, FAILURES_PER_MINUTE).await < 1.0 {
        return again(StatusCode::TOO_MANY_REQUESTS, "Too many sign-in attempts: wait a minute.");
    }
    let account = match state.db.account_by_email(&email).await {
        Ok(account) => account,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let hash = account.as_ref().map(|a| a.password_hash.clone());
    match session::verify_password(form.password.clone(), hash).await {
        Ok(true) => {}
        Ok(false) => {
            let _ = state.limiter.take(&failures, FAILURES_PER_MINUTE).await;
            return again(StatusCode::UNAUTHORIZED, "Wrong email or password.");
        }
        Err(e) => return e.into_response(),
    }
    let customer_id = account.map(|a| a.customer_id);
    match session::start(&state, &headers, customer_id.as_deref(), false).await {
        Ok(cookie) => signed_in(cookie, "/"),
        Err(e) => e.into_response(),
    }
}

fn signed_in(cookie: HeaderValue, to: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf_token: String,
}

pub async fn signout(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<CsrfOnly>) -> Response {
    match session::current(&state, &headers).await {
        Ok(Some((id_hash, s))) if session::same_secret(&s.csrf_token, &form.csrf_token) => {
            if let Err(e) = state.db.delete_session(&id_hash).await {
                return ApiError::from(e).into_response();
            }
        }
        Ok(Some(_)) => return page(StatusCode::FORBIDDEN, "Sign out", "<p>The form expired.</p>"),
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    let mut response = Redirect::to("/signin").into_response();
    let clear = session::set(&state, &headers, COOKIE, "", 0);
    response.headers_mut().append(header::SET_COOKIE, clear);
    response
}

fn account_body(token: &str, email: &str, message: Option<&str>, error: Option<&str>) -> String {
    let done = message.map_or_else(String::new, |m| format!("<p class=\"notice\" role=\"status\">{}</p>", escape(m)));
    format!(
        "<p><a href=\"/\">← Dashboard</a></p><p>Signed in as <strong>{}</strong>.</p>{done}{}\
         <h2>Change password</h2><form method=\"post\" action=\"/account\">{}{}{}\
         <button type=\"submit\">Change password</button></form>",
        escape(email),
        alert(error),
        csrf(token),
        field("Current password", "current_password", "password", "", "required autocomplete=\"current-password\""),
        field(
            "New password",
            "new_password",
            "password",
            "",
            &format!("required minlength=\"{MIN_PASSWORD}\" autocomplete=\"new-password\"")
        ),
    )
}

pub async fn account_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Ok(Some((_, s))) = session::current(&state, &headers).await else {
        return Redirect::to("/signin").into_response();
    };
    let Some(customer_id) = s.customer_id.as_deref() else { return Redirect::to("/app/admin").into_response() };
    let email = match state.db.account_of(customer_id).await {
        Ok(a) => a.map(|a| a.email).unwrap_or_default(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    page(StatusCode::OK, "Account", &account_body(&s.csrf_token, &email, None, None))
}

pub async fn change_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    let Ok(Some((id_hash, s))) = session::current(&state, &headers).await else {
        return Redirect::to("/signin").into_response();
    };
    let Some(customer_id) = s.customer_id.clone() else { return Redirect::to("/app/admin").into_response() };
    let account = match state.db.account_of(&customer_id).await {
        Ok(Some(account)) => account,
        Ok(None) => return Redirect::to("/signin").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let again =
        |status, error: &str| page(status, "Account", &account_body(&s.csrf_token, &account.email, None, Some(error)));
    if !session::same_secret(&s.csrf_token, &form.csrf_token) {
        return again(StatusCode::FORBIDDEN, "The form expired: please submit it again.");
    }
    let failures = format!("password:{customer_id}");
    if state.limiter.peek(&failures, FAILURES_PER_MINUTE).await < 1.0 {
        return again(StatusCode::TOO_MANY_REQUESTS, "Too many attempts: wait a minute.");
    }
    match session::verify_password(form.current_password.clone(), Some(account.password_hash.clone())).await {
        Ok(true) => {}
        Ok(false) => {
            let _ = state.limiter.take(&failures, FAILURES_PER_MINUTE).await;
            return again(StatusCode::UNAUTHORIZED, "current_password: wrong password");
        }
        Err(e) => return e.into_response(),
    }
    if let Some(problem) = password_problem(&form.new_password) {
        return again(StatusCode::UNPROCESSABLE_ENTITY, &problem.replace("password:", "new_password:"));
    }
    let changed = async {
        let hash = session::hash_password(form.new_password.clone()).await?;
        Ok::<_, ApiError>(state.db.change_password(&customer_id, &hash, &id_hash).await?)
    };
    match changed.await {
        Ok(()) => page(
            StatusCode::OK,
            "Account",
            &account_body(
                &s.csrf_token,
                &account.email,
                Some("Password changed; your other sessions were signed out."),
                None,
            ),
        ),
        Err(e) => e.into_response(),
    }
}

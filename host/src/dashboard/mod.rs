//! The dashboard, served by the host at `/`: customers sign up, run operations and watch jobs
//! live; operators swap template versions. Sign-in, sign-up and the account page are server
//! rendered forms; the rest is one page shell and a small script (embedded in the binary, no
//! build step) that calls the same REST API customers use, authenticated by the session
//! cookie plus its CSRF token. Everything a customer or template wrote is put in the page as
//! text (`textContent`), never as markup.

mod forms;
mod html;
pub mod session;

use crate::api::AppState;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
/// A small mark for the tab (an SVG, so no binary asset).
const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\"><rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#0b5cad\"/><path d=\"M5 4l7 4-7 4z\" fill=\"#fff\"/></svg>";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(shell))
        .route("/app", get(shell))
        .route("/app/{*page}", get(shell))
        .route("/signup", get(forms::signup_page).post(forms::signup))
        .route("/signin", get(forms::signin_page).post(forms::signin))
        .route("/signout", post(forms::signout))
        .route("/account", get(forms::account_page).post(forms::change_password))
        .route("/assets/{file}", get(asset))
}

/// The page shell of every dashboard page: who is signed in and the session's CSRF token
/// (for the script's requests), then the script draws the page the path names.
async fn shell(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Ok(Some((_, session))) = session::current(&state, &headers).await else {
        return Redirect::to("/signin").into_response();
    };
    let (customer_id, name) = match session.customer_id.as_deref() {
        Some(id) => match state.db.customer(id).await {
            Ok(Some(c)) => (c.id, c.name),
            _ => return Redirect::to("/signin").into_response(),
        },
        None => (String::new(), "Operator".to_string()),
    };
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"csrf-token\" content=\"{csrf}\"><title>Vidfarm</title>\
         <link rel=\"stylesheet\" href=\"/assets/app.css\"><link rel=\"icon\" href=\"/assets/icon.svg\"></head>\
         <body data-customer-id=\"{id}\" data-customer-name=\"{name}\" data-operator=\"{operator}\">\
         <header><nav aria-label=\"Main\"><a class=\"brand\" href=\"/\">Vidfarm</a><span id=\"nav\"></span>\
         <form method=\"post\" action=\"/signout\" class=\"inline\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <button type=\"submit\">Sign out</button></form></nav></header>\
         <main id=\"app\" tabindex=\"-1\"><p>Loading…</p></main>\
         <script type=\"module\" src=\"/assets/app.js\"></script></body></html>",
        csrf = html::escape(&session.csrf_token),
        id = html::escape(&customer_id),
        name = html::escape(&name),
        operator = session.operator,
    );
    let mut response = Html(page).into_response();
    // Media and uploads may live in S3 (presigned https URLs); script only from this host.
    html::secure_page(
        &mut response,
        "default-src 'self'; img-src 'self' data: blob: https:; media-src 'self' blob: https:; \
         style-src 'self'; script-src 'self'; connect-src 'self' https:",
    );
    response
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "icon.svg" => (ICON, "image/svg+xml"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

//! Dashboard accounts made the way a browser without script makes them: the sign-up form
//! fetched, filled in and posted, the session cookie kept.

use crate::server::TestServer;

/// A signed-in customer's session.
pub struct Session {
    /// The `cookie` header value: `vf_session=…`.
    pub cookie: String,
    /// The session's CSRF token (from the page shell).
    pub csrf: String,
    pub customer_id: String,
}

/// The value of cookie `name` a response sets.
pub fn cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")).and_then(|rest| rest.split(';').next()))
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_string()
}

/// The value of the hidden field `name` in a page.
pub fn hidden(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"{name}\" value=\"")).expect("the hidden field");
    html[at..].split("value=\"").nth(1).and_then(|s| s.split('"').next()).expect("a value").to_string()
}

/// The sign-up form fetched, filled in and posted; the answer (303 on success).
pub async fn sign_up_over_http(server: &TestServer, email: &str) -> reqwest::Response {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let form_page = http.get(server.url("/signup")).send().await.expect("sent");
    let form_cookie = cookie(&form_page, "vf_form");
    let body = form_page.text().await.expect("html");
    let token = hidden(&body, "csrf_token");
    http.post(server.url("/signup"))
        .header("cookie", format!("vf_form={form_cookie}"))
        .form(&[("name", "Eve"), ("email", email), ("password", "a long enough password"), ("csrf_token", &token)])
        .send()
        .await
        .expect("sent")
}

/// A new customer signed up and signed in.
pub async fn signed_up(server: &TestServer, email: &str) -> Session {
    let signed = sign_up_over_http(server, email).await;
    assert_eq!(signed.status(), 303, "signed up");
    let cookie = format!("vf_session={}", cookie(&signed, "vf_session"));
    let http = reqwest::Client::new();
    let shell =
        http.get(server.url("/")).header("cookie", &cookie).send().await.expect("sent").text().await.expect("html");
    let csrf = shell.split("name=\"csrf-token\" content=\"").nth(1).and_then(|s| s.split('"').next()).expect("a token");
    let customer_id =
        shell.split("data-customer-id=\"").nth(1).and_then(|s| s.split('"').next()).expect("a customer id").to_string();
    Session { cookie, csrf: csrf.to_string(), customer_id }
}

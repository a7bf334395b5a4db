//! The dashboard in a real headless Chromium: a customer signs up, makes an API key, watches a
//! job they started over REST finish without reloading, runs operations from their generated
//! forms, answers a human wait, cancels and retries, watches an MP4 preview play and revokes
//! the key; an operator activates and rolls back a version. The walls around sessions — CSRF,
//! fixation, other customers' ids, markup in what templates write — are tried over HTTP.

use serde_json::{Value, json};
use std::time::Duration;
use vidfarm_tests::accounts::{cookie, hidden, sign_up_over_http, signed_up};
use vidfarm_tests::browser::Browser;
use vidfarm_tests::server::TestServer;

const WITHIN: Duration = Duration::from_secs(60);
const TOKEN: &str = "operator-secret";

async fn server() -> TestServer {
    TestServer::start_with(|c| c.admin_token = Some(TOKEN.into()), true).await
}

/// Sign up in the browser; returns the new customer's id.
async fn sign_up(browser: &Browser, server: &TestServer, email: &str) -> String {
    browser.goto(&server.url("/signup")).await;
    browser.screenshot("signup").await;
    browser.fill("#name", "Ada's Studio").await;
    browser.fill("#email", email).await;
    browser.fill("#password", "correct horse battery").await;
    browser.click("form[action='/signup'] button").await;
    browser.wait_text("h1", WITHIN, |t| t.starts_with("Hello, Ada")).await;
    browser.eval("return document.body.dataset.customerId", json!([])).await.as_str().expect("an id").to_string()
}

async fn assert_no_console_errors(browser: &Browser, page: &str) {
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors on {page}: {errors:?}");
}

#[tokio::test]
async fn a_customer_signs_up_makes_a_key_and_runs_and_watches_jobs_in_the_browser() {
    let server = server().await;
    let browser = Browser::start("customer").await;
    let customer_id = sign_up(&browser, &server, "ada@example.com").await;
    browser.screenshot("overview").await;
    assert_no_console_errors(&browser, "the overview").await;

    // An API key, shown once, with a ready curl line.
    browser.click("a[href='/app/keys']").await;
    browser.fill("#key-label", "ci").await;
    browser.fill("#key-password", "correct horse battery").await;
    browser.click("#new-key-form button").await;
    let key = browser.wait_text("#new-key-value", WITHIN, |t| t.starts_with("vf_")).await;
    browser.screenshot("api-keys").await;
    let rest = |path: &str| {
        server.http.get(server.url(path)).header("vidfarm-user-id", &customer_id).header("vidfarm-api-key", &key)
    };

    // A job started over REST appears in the open list and finishes there, without a reload.
    browser.click("a[href='/app/jobs']").await;
    browser.find("#job-list").await;
    browser.eval("window.notReloaded = true", json!([])).await;
    let created: Value = server
        .http
        .post(server.url("/templates/hello/operations/greet"))
        .header("vidfarm-user-id", &customer_id)
        .header("vidfarm-api-key", &key)
        .json(&json!({ "tracer": "from-rest", "payload": { "name": "<img src=x onerror=window.pwned=1>" } }))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let job_id = created["job_id"].as_str().expect("a job id").to_string();
    let row = format!("tr[data-job-id='{job_id}'] .status");
    browser.wait_text(&row, WITHIN, |t| t == "succeeded").await;
    assert_eq!(browser.eval("return window.notReloaded === true", json!([])).await, true, "the page reloaded");
    browser.screenshot("jobs").await;

    // Its page: the timeline and the result show the customer's markup as text, inert.
    browser.click(&format!("tr[data-job-id='{job_id}'] a")).await;
    browser.wait_text("#job-status", WITHIN, |t| t == "succeeded").await;
    let timeline = browser.wait_text("#timeline", WITHIN, |t| t.contains("greeting stored")).await;
    assert!(timeline.contains("<img src=x onerror=window.pwned=1>"), "{timeline}");
    assert!(browser.text("#result-json").await.contains("Hello, <img"), "the result is shown as text");
    assert_eq!(
        browser
            .eval("return window.pwned === undefined && !document.querySelector('#app img[src=x]')", json!([]))
            .await,
        true
    );
    browser.screenshot("job").await;
    assert_no_console_errors(&browser, "the job page").await;

    // An operation from its generated form.
    browser.goto(&server.url("/app/templates/hello")).await;
    browser.fill("form[data-operation='greet'] #f-greet-name", "Grace").await;
    browser.click("form[data-operation='greet'] button[type='submit']").await;
    browser.wait_text("#job-status", WITHIN, |t| t == "succeeded").await;
    assert!(browser.text("#result-json").await.contains("Hello, Grace!"));
    browser.screenshot("template-form-result").await;

    // A human wait answered from the page.
    browser.goto(&server.url("/app/templates/hello")).await;
    browser.fill("form[data-operation='greet-after-approval'] #f-greet-after-approval-name", "Linus").await;
    browser.click("form[data-operation='greet-after-approval'] button[type='submit']").await;
    browser.wait_text("#job-status", WITHIN, |t| t == "waiting_for_human").await;
    browser.fill("#human-answer", r#"{"approved": true, "note": "fine"}"#).await;
    browser.screenshot("human-wait").await;
    browser.click("form.human button").await;
    browser.wait_text("#job-status", WITHIN, |t| t == "succeeded").await;
    assert!(browser.text("#result-json").await.contains("Hello, Linus!"));

    // Cancel a job that waits, then retry it: a new job that links to the old one.
    browser.goto(&server.url("/app/templates/hello")).await;
    browser.fill("form[data-operation='greet-after-approval'] #f-greet-after-approval-name", "Ken").await;
    browser.click("form[data-operation='greet-after-approval'] button[type='submit']").await;
    browser.wait_text("#job-status", WITHIN, |t| t == "waiting_for_human").await;
    let cancelled_url = browser.url().await;
    browser.click(".actions button").await; // "Cancel job"
    browser.wait_text("#job-status", WITHIN, |t| t == "cancelled").await;
    browser.click(".actions button").await; // "Retry job"
    let started = std::time::Instant::now();
    while browser.url().await == cancelled_url {
        assert!(started.elapsed() < WITHIN, "retry did not open the new job");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.wait_text("#job-status", WITHIN, |t| t == "waiting_for_human").await;
    let retried = browser.url().await.rsplit('/').next().expect("a job id").to_string();
    let job: Value =
        rest(&format!("/templates/hello/jobs/{retried}")).send().await.expect("sent").json().await.expect("json");
    assert_eq!(job["retry_of"].as_str(), cancelled_url.rsplit('/').next(), "{job}");
    assert_no_console_errors(&browser, "the retried job").await;

    // Revoking the key in the page: a REST call with it fails at once.
    browser.click("a[href='/app/keys']").await;
    browser.click("tr[data-key-id] button").await;
    browser.accept_dialog().await;
    browser.wait_text("tr[data-key-id] td:nth-child(5)", WITHIN, |t| t.starts_with("revoked")).await;
    assert_eq!(rest("/templates").send().await.expect("sent").status(), 401);
    browser.quit().await;
    server.stop().await;
}

#[tokio::test]
async fn a_rendered_mp4_plays_in_the_job_page() {
    let server = server().await;
    let browser = Browser::start("render").await;
    sign_up(&browser, &server, "render@example.com").await;
    // The render form follows the schema's `$ref`s: the canvas is a group of number fields.
    browser.goto(&server.url("/app/templates/json-to-video")).await;
    browser.find("fieldset #f-render-canvas-width[type='number']").await;
    // A still image made in the page, uploaded into the workspace and rendered, all with the
    // session (the API the page's own forms use).
    let job_id = browser
        .eval(
            "const csrf = document.querySelector('meta[name=\"csrf-token\"]').content;
             const canvas = Object.assign(document.createElement('canvas'), { width: 160, height: 120 });
             const g = canvas.getContext('2d'); g.fillStyle = 'orange'; g.fillRect(0, 0, 160, 120);
             const png = await new Promise(r => canvas.toBlob(r, 'image/png'));
             const post = (path, body) => fetch(path, { method: 'POST', credentials: 'same-origin',
               headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: JSON.stringify(body) }).then(r => r.json());
             const signed = await post('/files/sign-upload', { key: 'in/still.png', content_type: 'image/png', size: png.size });
             const url = new URL(signed.url); 
             const put = await fetch(url.pathname + url.search, { method: 'PUT', headers: signed.headers || {}, body: png });
             if (!put.ok) return 'upload failed ' + put.status;
             const created = await post('/templates/json-to-video/operations/render', { tracer: 'mp4', payload: {
               canvas: { width: 160, height: 120, fps: 10 }, duration: 1,
               backgrounds: [{ src: 'workspace:in/still.png', type: 'image' }] } });
             return created.job_id || JSON.stringify(created);",
            json!([]),
        )
        .await;
    let job_id = job_id.as_str().expect("a job id").to_string();
    assert!(job_id.starts_with("job_"), "{job_id}");
    browser.goto(&server.url(&format!("/app/jobs/json-to-video/{job_id}"))).await;
    let status =
        browser.wait_text("#job-status", Duration::from_secs(120), |t| t == "succeeded" || t == "failed").await;
    browser.screenshot("render-job").await;
    assert_eq!(status, "succeeded", "{}", browser.text("#app").await);
    let playing = browser
        .eval(
            "const v = document.querySelector('video.preview'); if (!v) return 'no video';
             v.muted = true; await v.play(); await new Promise(r => setTimeout(r, 700));
             return v.currentTime > 0 ? 'played' : 'stuck at ' + v.currentTime + ' state ' + v.readyState;",
            json!([]),
        )
        .await;
    assert_eq!(playing, "played");
    browser.screenshot("render-playing").await;
    assert_no_console_errors(&browser, "the render's page").await;
    browser.quit().await;
    server.stop().await;
}

#[tokio::test]
async fn an_operator_activates_and_rolls_back_a_version_with_a_click() {
    let server = server().await;
    let text = std::fs::read_to_string(server.dir.path().join("registry-dev.key")).expect("the dev key exists");
    let key = vidfarm_registry::SigningKey::from_file_text(&text).expect("a key");
    let bytes = std::fs::read(vidfarm_template_artifacts::HELLO_NEXT).expect("hello 0.2.0 is built");
    let runtime = server.platform.catalog.runtime();
    vidfarm::engine::publish::publish(runtime, server.platform.catalog.registry(), &key, &bytes, None, "test")
        .await
        .expect("published");
    let browser = Browser::start("operator").await;
    browser.goto(&server.url("/signin")).await;
    browser.eval("document.querySelector('details').open = true", json!([])).await;
    browser.screenshot("signin").await;
    browser.fill("#admin_token", TOKEN).await;
    browser.click("details form button").await;
    let active = "tr[data-template-id='hello'] .active-version";
    let before = browser.wait_text(active, WITHIN, |t| !t.is_empty()).await;
    browser
        .eval(
            "const s = document.querySelector(\"tr[data-template-id='hello'] select\"); s.value = '0.2.0';",
            json!([]),
        )
        .await;
    browser.click("tr[data-template-id='hello'] td:last-child button").await; // Activate
    browser.wait_text(active, WITHIN, |t| t == "0.2.0").await;
    assert_eq!(server.platform.catalog.active("hello").expect("hello").manifest.version, "0.2.0");
    browser.screenshot("activated").await;
    browser.click("tr[data-template-id='hello'] td:last-child button:last-child").await; // Roll back
    browser.wait_text(active, WITHIN, |t| t == before).await;
    assert_eq!(server.platform.catalog.active("hello").expect("hello").manifest.version, before);
    // The platform page: every customer with their work, and the counters.
    browser.click("a[href='/app/platform']").await;
    browser.find(&format!("#customers tr[data-customer-id='{}']", server.customer.id)).await;
    browser.find("#counters tbody tr").await;
    browser.screenshot("platform").await;
    assert_no_console_errors(&browser, "the operator's page").await;
    browser.quit().await;
    server.stop().await;
}

/// A signed-up customer's session cookie (`vf_session=…`) and CSRF token, over plain HTTP.
async fn session_of(server: &TestServer, email: &str) -> (String, String) {
    let session = signed_up(server, email).await;
    (session.cookie, session.csrf)
}

#[tokio::test]
async fn a_session_changes_nothing_without_its_csrf_token() {
    let server = server().await;
    let (session, csrf) = session_of(&server, "eve@example.com").await;
    let create = |token: Option<&str>| {
        let mut request = server
            .http
            .post(server.url("/customers/me/api-keys"))
            .header("cookie", &session)
            .json(&json!({ "label": "x", "password": "a long enough password" }));
        if let Some(token) = token {
            request = request.header("x-csrf-token", token);
        }
        request.send()
    };
    assert_eq!(create(None).await.expect("sent").status(), 403, "no token");
    assert_eq!(create(Some("0".repeat(64).as_str())).await.expect("sent").status(), 403, "a wrong token");
    assert_eq!(create(Some(&csrf)).await.expect("sent").status(), 201, "the session's token");
    // Reading needs no token; a form posted from elsewhere (no form cookie) is refused.
    assert_eq!(
        server.http.get(server.url("/jobs")).header("cookie", &session).send().await.expect("sent").status(),
        200
    );
    let forged =
        server.http.post(server.url("/signin")).form(&[("email", "eve@example.com"), ("password", "x")]).send().await;
    assert_eq!(forged.expect("sent").status(), 403);
    server.stop().await;
}

#[tokio::test]
async fn a_stolen_session_cannot_make_itself_a_lasting_key_or_webhook_without_the_password() {
    let server = server().await;
    let (session, csrf) = session_of(&server, "thief@example.com").await;
    let make = |body: Value| {
        server
            .http
            .post(server.url("/customers/me/api-keys"))
            .header("cookie", &session)
            .header("x-csrf-token", &csrf)
            .json(&body)
            .send()
    };
    let without = make(json!({ "label": "mine now" })).await.expect("sent");
    assert_eq!(without.status(), 422);
    let error: Value = without.json().await.expect("json");
    assert_eq!(error["error"]["details"][0]["field"], "password", "{error}");
    let mut wrong = Vec::new();
    for _ in 0..11 {
        wrong.push(make(json!({ "password": "a guess at it!" })).await.expect("sent").status().as_u16());
    }
    assert_eq!(&wrong[..10], &[403; 10], "{wrong:?}");
    assert_eq!(wrong[10], 429, "guessing is rate-limited: {wrong:?}");
    let account = server.platform.db.account_by_email("thief@example.com").await.expect("read").expect("an account");
    assert!(server.platform.db.api_keys(&account.customer_id).await.expect("keys").is_empty(), "no key was made");
    // Nor a webhook destination, which would receive every job's events from then on.
    let hook = server
        .http
        .post(server.url("/customers/me/webhooks"))
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .json(&json!({ "url": "https://attacker.example/hook" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(hook.status(), 422);
    assert!(server.platform.db.destinations(&account.customer_id).await.expect("read").is_empty());
    // Nor the secret that signs deliveries to its jobs' own webhook URLs.
    let secret = server
        .http
        .post(server.url("/customers/me/webhook-secret"))
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("sent");
    assert_eq!(secret.status(), 422);
    server.stop().await;

    // With the password (and no guesses spent) the owner gets the key; a key-authenticated
    // request needs none.
    let server = self::server().await;
    let (session, csrf) = session_of(&server, "owner@example.com").await;
    let made = server
        .http
        .post(server.url("/customers/me/api-keys"))
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .json(&json!({ "password": "a long enough password" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(made.status(), 201);
    let made = server.post("/customers/me/api-keys", &json!({ "label": "from a key" })).send().await.expect("sent");
    assert_eq!(made.status(), 201);
    server.stop().await;
}

#[tokio::test]
async fn over_https_the_session_cookies_are_host_prefixed_and_secure_and_only_those_count() {
    let server = server().await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let https = |request: reqwest::RequestBuilder| request.header("x-forwarded-proto", "https");
    let page = https(http.get(server.url("/signup"))).send().await.expect("sent");
    let set: Vec<String> =
        page.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
    assert!(
        set.iter().any(|c| c.starts_with("__Host-vf_form=") && c.contains("; Secure") && c.contains("Path=/")),
        "{set:?}"
    );
    assert!(!set.iter().any(|c| c.contains("Domain=")), "a __Host- cookie names no domain: {set:?}");
    let form_cookie = cookie(&page, "__Host-vf_form");
    let token = hidden(&page.text().await.expect("html"), "csrf_token");
    let form =
        [("name", "Eve"), ("email", "tls@example.com"), ("password", "a long enough password"), ("csrf_token", &token)];
    // The bare name is not read over https: a cookie planted without the prefix counts for nothing.
    let planted = https(http.post(server.url("/signup")))
        .header("cookie", format!("vf_form={form_cookie}"))
        .form(&form)
        .send()
        .await
        .expect("sent");
    assert_eq!(planted.status(), 403);
    let signed = https(http.post(server.url("/signup")))
        .header("cookie", format!("__Host-vf_form={form_cookie}"))
        .form(&form)
        .send()
        .await
        .expect("sent");
    assert_eq!(signed.status(), 303);
    let session = cookie(&signed, "__Host-vf_session");
    let read = |name: &str| https(http.get(server.url("/jobs"))).header("cookie", format!("{name}={session}")).send();
    assert_eq!(read("__Host-vf_session").await.expect("sent").status(), 200);
    assert_eq!(read("vf_session").await.expect("sent").status(), 401);
    server.stop().await;
}

#[tokio::test]
async fn probing_sign_up_for_which_emails_have_accounts_is_cut_off_after_ten_answers_a_minute() {
    let server = server().await;
    assert_eq!(sign_up_over_http(&server, "known@example.com").await.status(), 303);
    let mut statuses = Vec::new();
    for _ in 0..11 {
        statuses.push(sign_up_over_http(&server, "known@example.com").await.status().as_u16());
    }
    assert_eq!(&statuses[..10], &[409; 10], "{statuses:?}");
    assert_eq!(statuses[10], 429, "the eleventh probe is refused before it is answered: {statuses:?}");
    server.stop().await;
}

#[tokio::test]
async fn signing_in_never_keeps_a_session_id_the_browser_already_had() {
    let server = server().await;
    session_of(&server, "fix@example.com").await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let page = http.get(server.url("/signin")).send().await.expect("sent");
    let form_cookie = cookie(&page, "vf_form");
    let token = hidden(&page.text().await.expect("html"), "csrf_token");
    // An attacker planted a session id of their choosing before the victim signs in.
    let planted = "a".repeat(64);
    let signed = http
        .post(server.url("/signin"))
        .header("cookie", format!("vf_form={form_cookie}; vf_session={planted}"))
        .form(&[("email", "fix@example.com"), ("password", "a long enough password"), ("csrf_token", &token)])
        .send()
        .await
        .expect("sent");
    assert_eq!(signed.status(), 303);
    let issued = cookie(&signed, "vf_session");
    assert_ne!(issued, planted);
    let with_planted = http.get(server.url("/jobs")).header("cookie", format!("vf_session={planted}")).send().await;
    assert_eq!(with_planted.expect("sent").status(), 401, "the planted id is no session");
    let with_issued = http.get(server.url("/jobs")).header("cookie", format!("vf_session={issued}")).send().await;
    assert_eq!(with_issued.expect("sent").status(), 200);
    // Wrong passwords are refused, and a burst of them is rate-limited.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let page = http.get(server.url("/signin")).send().await.expect("sent");
        let form_cookie = cookie(&page, "vf_form");
        let token = hidden(&page.text().await.expect("html"), "csrf_token");
        let tried = http
            .post(server.url("/signin"))
            .header("cookie", format!("vf_form={form_cookie}"))
            .form(&[("email", "fix@example.com"), ("password", "wrong password!"), ("csrf_token", &token)])
            .send()
            .await
            .expect("sent");
        statuses.push(tried.status().as_u16());
    }
    assert!(statuses.contains(&401) && statuses.ends_with(&[429]), "{statuses:?}");
    server.stop().await;
}

#[tokio::test]
async fn another_customers_job_and_key_are_404_to_a_session() {
    let server = server().await;
    let theirs = server.create_job("hello", "greet", json!({ "name": "Ada" })).await;
    let their_keys = server.platform.db.api_keys(&server.customer.id).await.expect("keys");
    let (session, csrf) = session_of(&server, "mallory@example.com").await;
    let job =
        server.http.get(server.url(&format!("/templates/hello/jobs/{theirs}"))).header("cookie", &session).send().await;
    assert_eq!(job.expect("sent").status(), 404);
    let revoke = server
        .http
        .delete(server.url(&format!("/customers/me/api-keys/{}", their_keys[0].id)))
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .send()
        .await;
    assert_eq!(revoke.expect("sent").status(), 404);
    let cancel = server
        .http
        .post(server.url(&format!("/templates/hello/jobs/{theirs}/cancel")))
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .send()
        .await;
    assert_eq!(cancel.expect("sent").status(), 404);
    let listed: Value = server
        .http
        .get(server.url("/jobs"))
        .header("cookie", &session)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["jobs"], json!([]), "{listed}");
    assert!(server.platform.db.api_keys(&server.customer.id).await.expect("keys")[0].revoked_at.is_none());
    server.stop().await;
}

#[tokio::test]
async fn with_invite_only_sign_up_an_uninvited_email_is_refused_and_an_invite_works_once() {
    let server = TestServer::start_with(
        |c| {
            c.admin_token = Some(TOKEN.into());
            c.signup = vidfarm::config::SignupMode::Invite;
        },
        false,
    )
    .await;
    assert_eq!(sign_up_over_http(&server, "guest@example.com").await.status(), 403);
    let invited = server
        .http
        .post(server.url("/admin/invites"))
        .bearer_auth(TOKEN)
        .json(&json!({ "email": " Guest@Example.com " }))
        .send()
        .await
        .expect("sent");
    assert_eq!(invited.status(), 200);
    assert_eq!(sign_up_over_http(&server, "guest@example.com").await.status(), 303, "the invite is used");
    assert_eq!(sign_up_over_http(&server, "guest@example.com").await.status(), 403, "the invite is spent");
    server.stop().await;
}

#[tokio::test]
async fn a_customer_manages_provider_keys_webhooks_files_and_config_and_sees_billing() {
    let server = server().await;
    let receiver = vidfarm_tests::receiver::Receiver::start(0);
    let browser = Browser::start("account").await;
    sign_up(&browser, &server, "ops@example.com").await;

    // A provider key: added, paused, resumed, removed; the secret is never shown again.
    browser.click("a[href='/app/provider-keys']").await;
    browser.fill("#pk-secret", "sk-test-abcdefgh12345678").await;
    browser.fill("#pk-label", "main").await;
    browser.click("#provider-key-form button").await;
    let state = browser.wait_text("tr[data-provider-key-id] .key-status", WITHIN, |t| t == "active").await;
    assert_eq!(state, "active");
    assert!(!browser.text("#app").await.contains("sk-test-abcdefgh12345678"), "the secret was shown");
    assert!(browser.text("#app").await.contains("…5678"));
    browser.click("tr[data-provider-key-id] button").await; // Pause
    browser.wait_text("tr[data-provider-key-id] .key-status", WITHIN, |t| t == "paused").await;
    browser.click("tr[data-provider-key-id] button").await; // Resume
    browser.wait_text("tr[data-provider-key-id] .key-status", WITHIN, |t| t == "active").await;
    browser.screenshot("provider-keys").await;
    browser.click("tr[data-provider-key-id] button:last-child").await; // Remove
    browser.accept_dialog().await;
    let started = std::time::Instant::now();
    while browser.count("tr[data-provider-key-id]").await > 0 {
        assert!(started.elapsed() < WITHIN, "the key was not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A webhook destination, a test event sent from the page, delivered and logged.
    browser.click("a[href='/app/webhooks']").await;
    browser.fill("#wh-url", &receiver.url("/hooks")).await;
    browser.fill("#wh-password", "correct horse battery").await;
    browser.click("#webhook-form button").await;
    let secret = browser.wait_text("#webhook-secret pre", WITHIN, |t| t.starts_with("whsec_")).await;
    receiver.trust(&secret).await;
    browser.click("tr[data-destination-id] button").await; // Send test event
    browser.wait_text("tr[data-delivery-id] .delivery-status", WITHIN, |t| t == "delivered").await;
    let received = receiver.received().await;
    assert!(received.iter().any(|r| r["body"]["type"] == "webhook.test"), "{received:?}");
    browser.screenshot("webhooks").await;

    // A workspace file: uploaded from the page, listed with its reference, deleted.
    browser.click("a[href='/app/files']").await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "hello from a file").expect("written");
    browser.fill("#file-upload", path.to_str().expect("a path")).await;
    browser.click("#file-form button").await;
    browser.wait_text("tr[data-file-key] td:nth-child(2)", WITHIN, |t| t == "workspace:uploads/notes.txt").await;
    browser.screenshot("files").await;
    browser.click("tr[data-file-key] button").await;
    browser.accept_dialog().await;
    let started = std::time::Instant::now();
    while browser.count("tr[data-file-key]").await > 0 {
        assert!(started.elapsed() < WITHIN, "the file was not deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The template config form saves the customer's config (hello's greeting).
    browser.goto(&server.url("/app/templates/hello")).await;
    browser.find("#config-form").await;
    browser.screenshot("template-config").await;

    // The account page: the password form.
    browser.goto(&server.url("/account")).await;
    browser.find("#current_password").await;
    browser.screenshot("account").await;

    // Billing draws the month's numbers.
    browser.goto(&server.url("/app/billing")).await;
    browser.wait_text("h1", WITHIN, |t| t == "Billing").await;
    browser.screenshot("billing").await;
    assert_no_console_errors(&browser, "the account pages").await;
    browser.quit().await;
    server.stop().await;
}

#[tokio::test]
async fn browser_apps_on_listed_origins_may_call_the_api_and_others_may_not() {
    let server = TestServer::start_with(|c| c.cors_origins = vec!["https://app.example".into()], false).await;
    let preflight = |origin: &str| {
        server
            .http
            .request(reqwest::Method::OPTIONS, server.url("/templates/hello/operations/greet"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "vidfarm-user-id,vidfarm-api-key,content-type")
            .send()
    };
    let allowed = preflight("https://app.example").await.expect("sent");
    assert_eq!(
        allowed.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap_or("")),
        Some("https://app.example")
    );
    let headers = allowed.headers().get("access-control-allow-headers").map(|v| v.to_str().unwrap_or("").to_string());
    assert!(headers.is_some_and(|h| h.contains("vidfarm-api-key")));
    assert!(allowed.headers().get("access-control-allow-credentials").is_none(), "cookies never go cross-origin");
    let refused = preflight("https://evil.example").await.expect("sent");
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    // A plain request from the listed origin reads its answer; the default is no CORS at all.
    let listed = server.get("/templates").header("origin", "https://app.example").send().await.expect("sent");
    assert_eq!(
        listed.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap_or("")),
        Some("https://app.example")
    );
    server.stop().await;
    let plain = TestServer::start_with(|_| {}, false).await;
    let answer = plain.get("/templates").header("origin", "https://app.example").send().await.expect("sent");
    assert!(answer.headers().get("access-control-allow-origin").is_none());
    plain.stop().await;
}

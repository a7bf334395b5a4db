//! The renderer as a way out, tried as a hostile customer would: a URL in Remotion props is
//! fetched by the host under its outbound policy (never by Chromium), so an internal address
//! never reaches a customer's video; a decompression-bomb image is refused from its header.

use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vidfarm_tests::server::TestServer;

const WITHIN: Duration = Duration::from_secs(240);

/// A loopback HTTP server standing for something inside the operator's network: it serves a
/// PNG and remembers the `user-agent` of every request.
struct Internal {
    url: String,
    agents: Arc<Mutex<Vec<String>>>,
}

async fn internal_server(png: Vec<u8>) -> Internal {
    let agents: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = agents.clone();
    let app = axum::Router::new().route(
        "/secret.png",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            let png = png.clone();
            async move {
                let agent = headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                seen.lock().expect("lock").push(agent);
                ([("content-type", "image/png")], png)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}/secret.png", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Internal { url, agents }
}

fn slideshow(image_url: &str) -> Value {
    json!({ "composition": "Slideshow", "props": {
        "width": 320, "height": 240, "fps": 10, "title": "Inside",
        "scenes": [{ "imageUrl": image_url, "text": "what is in here?", "durationSeconds": 1 }],
    } })
}

#[tokio::test]
async fn an_internal_url_in_remotion_props_is_refused_and_never_fetched() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let internal = internal_server(vidfarm_tests::media::png(dir.path(), "s.png", "red", "64x48")).await;
    // Production's outbound policy: public addresses only.
    let server = TestServer::start_with(|c| c.render.allow_private_sources = false, true).await;
    let job_id = server.create_job("sandbox-probe", "render-props", slideshow(&internal.url)).await;
    let job = server.wait_for("sandbox-probe", &job_id, &["failed", "succeeded"], WITHIN).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "render_invalid_request", "{job}");
    let message = job["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("input-props") && message.contains(&internal.url), "{job}");
    assert!(internal.agents.lock().expect("lock").is_empty(), "nobody fetched it: {:?}", internal.agents);
    server.stop().await;
}

#[tokio::test]
async fn a_url_in_remotion_props_is_fetched_by_the_host_and_handed_to_chromium_inline() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let internal = internal_server(vidfarm_tests::media::png(dir.path(), "s.png", "red", "64x48")).await;
    // Development's policy allows loopback: the host fetches the image itself.
    let server = TestServer::start_with(|c| c.render.allow_private_sources = true, true).await;
    let mut job = Value::Null;
    let mut jobs = 0;
    // On a loaded machine Chromium has once missed Remotion's 25 s launch window; that is the
    // browser starting, not what is tested here, so such a render is tried once more.
    for _ in 0..2 {
        let job_id = server.create_job("sandbox-probe", "render-props", slideshow(&internal.url)).await;
        job = server.wait_for("sandbox-probe", &job_id, &["failed", "succeeded"], WITHIN).await;
        jobs += 1;
        let launch = job["error"]["message"].as_str().is_some_and(|m| m.contains("connect to the browser"));
        if !launch {
            break;
        }
    }
    assert_eq!(job["status"], "succeeded", "{job}");
    let agents = internal.agents.lock().expect("lock").clone();
    assert_eq!(agents.len(), jobs, "fetched once per job: {agents:?}");
    assert!(!agents[0].contains("Chrome"), "by the host, not by Chromium: {agents:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_decompression_bomb_image_is_refused_from_its_header() {
    let server = TestServer::start_with(|_| {}, true).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    // 9,000 × 4,000 pixels (36 million, more than 8K's 33 million) in about 110 KB.
    let bomb = vidfarm_tests::media::png(dir.path(), "bomb.png", "red", "9000x4000");
    assert!(bomb.len() < 1 << 20);
    let body = json!({ "key": "in/bomb.png", "content_type": "image/png" });
    let signed: Value =
        server.post("/files/sign-upload", &body).send().await.expect("sent").json().await.expect("json");
    let url = signed["url"].as_str().expect("a URL");
    let put = server.http.put(server.url(&url[url.find("/files/").expect("a host URL")..])).body(bomb);
    assert!(put.send().await.expect("sent").status().is_success());
    let spec = json!({ "canvas": { "width": 320, "height": 240 }, "duration": 1,
                       "backgrounds": [{ "src": "workspace:in/bomb.png", "type": "image" }] });
    let job_id = server.create_job("json-to-video", "render", spec).await;
    let job = server.wait_for("json-to-video", &job_id, &["failed", "succeeded"], WITHIN).await;
    assert_eq!(job["status"], "failed", "{job}");
    let message = job["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("backgrounds[0].src") && message.contains("9000×4000"), "{job}");
    server.stop().await;
}

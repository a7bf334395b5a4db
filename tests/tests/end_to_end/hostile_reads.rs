//! Reads a customer or a template sizes, tried as a hostile customer would: an image fetched
//! for a provider call stops at its cap however much the server sends, an upload goes to disk
//! as it arrives (never whole in memory), and a template's page is read from its manifests
//! (never from its components).

use futures::StreamExt;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use vidfarm_tests::fake_providers::FakeProviders;
use vidfarm_tests::server::TestServer;

/// A server that answers with 1 MiB chunks for as long as the client reads (no length sent),
/// counting what it served.
async fn endless_server() -> (String, Arc<AtomicUsize>) {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let app = axum::Router::new().route(
        "/endless.png",
        axum::routing::get(move || {
            let counter = counter.clone();
            async move {
                let chunks = futures::stream::iter(0..2_000).map(move |_| {
                    counter.fetch_add(1 << 20, Ordering::Relaxed);
                    Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![0u8; 1 << 20]))
                });
                axum::body::Body::from_stream(chunks)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}/endless.png", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, served)
}

#[tokio::test]
async fn an_image_for_a_layout_call_is_read_only_up_to_its_cap() {
    let fakes = FakeProviders::start().await;
    let endpoints = fakes.endpoints();
    let server = TestServer::start_with(move |c| c.providers.endpoints = endpoints, true).await;
    let key = json!({ "provider": "gemini", "secret": "sk-gemini-reads-0001" });
    assert_eq!(server.post("/customers/me/provider-keys", &key).send().await.expect("sent").status(), 201);
    let (url, served) = endless_server().await;
    let payload = json!({ "provider": "gemini", "model": "gemini-2.5-flash", "image_url": url, "text": "hi" });
    let job_id = server.create_job("hello", "place-text", payload).await;
    let job = server.wait_for("hello", &job_id, &["failed", "succeeded"], Duration::from_secs(60)).await;
    assert_eq!(job["status"], "failed", "{job}");
    let served = served.load(Ordering::Relaxed);
    // 20 MiB, plus what sits in socket buffers when the host stops reading.
    assert!(served < 48 << 20, "the host read on past its cap: {} MiB served", served >> 20);
    assert!(fakes.seen().is_empty(), "no provider call was made");
    server.stop().await;
}

#[tokio::test]
async fn an_upload_is_written_to_disk_as_it_arrives() {
    let server = TestServer::start_with(|_| {}, false).await;
    let signed: serde_json::Value = server
        .post("/files/sign-upload", &json!({ "key": "in/slow.bin" }))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let url = signed["url"].as_str().expect("a URL");
    let url = server.url(&url[url.find("/files/").expect("a host URL")..]);
    // 4 MiB, then a client that never finishes its body.
    let body =
        futures::stream::once(async { Ok::<_, std::io::Error>(vec![7u8; 4 << 20]) }).chain(futures::stream::pending());
    let http = server.http.clone();
    let upload = tokio::spawn(async move { http.put(url).body(reqwest::Body::wrap_stream(body)).send().await });
    let spool = server.platform.config.data_dir.join("uploads");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let on_disk: u64 = std::fs::read_dir(&spool)
            .map(|dir| dir.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0);
        if on_disk >= 4 << 20 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the received bytes never reached the disk");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    upload.abort();
    server.stop().await;
}

#[tokio::test]
async fn a_templates_page_is_read_from_its_manifests_not_its_components() {
    let server = TestServer::start_with(|_| {}, false).await;
    let registry = server.platform.config.registry_dir().join("hello");
    let mut removed = 0;
    for version in std::fs::read_dir(&registry).expect("hello is published").flatten() {
        if std::fs::remove_file(version.path().join("component.wasm")).is_ok() {
            removed += 1;
        }
    }
    assert!(removed >= 1, "no component to remove under {}", registry.display());
    // The loaded template stays in memory; its page needs only the signed manifests.
    let page = server.get_json("/templates/hello").await;
    let versions = page["versions"].as_array().cloned().unwrap_or_default();
    assert!(!versions.is_empty(), "the versions come from the manifests: {page}");
    server.stop().await;
}

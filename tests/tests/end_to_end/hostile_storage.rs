//! Storage as a way to exhaust the host, tried as a hostile customer would: stored bytes
//! count against a per-customer quota (job artifacts, uploads through the host, presigned
//! uploads), presigned S3 uploads are signed for exactly the size that was counted, and an
//! upload is never held whole in memory.

use serde_json::{Value, json};
use std::time::Duration;
use vidfarm_tests::s3::S3Server;
use vidfarm_tests::server::TestServer;

const WITHIN: Duration = Duration::from_secs(30);

async fn set_quota(server: &TestServer, bytes: i64) {
    let url = server.url(&format!("/admin/customers/{}/limits", server.customer.id));
    let set = server.http.patch(&url).bearer_auth("op-token").json(&json!({ "storage_quota_bytes": bytes })).send();
    let set: Value = set.await.expect("sent").json().await.expect("json");
    assert_eq!(set["storage_quota_bytes"], bytes, "{set}");
}

async fn stored_bytes(server: &TestServer) -> i64 {
    let customer = server.platform.db.customer(&server.customer.id).await.expect("read").expect("a customer");
    customer.stored_bytes
}

/// An S3-compatible server and a host storing on it, the customer's quota set to `bytes`.
async fn on_s3_with_quota(bytes: i64) -> (S3Server, TestServer) {
    let s3 = S3Server::start().await;
    let settings = s3.settings.clone();
    let server = TestServer::start_with(
        move |c| {
            c.s3 = Some(settings);
            c.admin_token = Some("op-token".into());
        },
        false,
    )
    .await;
    set_quota(&server, bytes).await;
    (s3, server)
}

async fn sign(server: &TestServer, body: Value) -> reqwest::Response {
    server.post("/files/sign-upload", &body).send().await.expect("sent")
}

#[tokio::test]
async fn a_customers_jobs_stop_storing_at_their_quota() {
    let server = TestServer::start_with(|c| c.admin_token = Some("op-token".into()), true).await;
    // "Hello, Ada!" is 11 bytes: three greetings fit in 40 bytes, the fourth does not.
    set_quota(&server, 40).await;
    let mut outcomes = Vec::new();
    for name in ["Ada", "Bob", "Cyd", "Dee"] {
        let job_id = server.create_job("hello", "greet", json!({ "name": name })).await;
        let job = server.wait_for("hello", &job_id, &["succeeded", "failed"], WITHIN).await;
        outcomes.push(if job["status"] == "succeeded" {
            "stored".to_string()
        } else {
            job["error"]["code"].to_string()
        });
    }
    assert_eq!(outcomes, ["stored", "stored", "stored", "\"storage_quota_exceeded\""]);
    assert_eq!(stored_bytes(&server).await, 33);
    server.stop().await;
}

#[tokio::test]
async fn an_upload_through_the_host_past_the_quota_is_refused_and_not_stored() {
    let server = TestServer::start_with(|c| c.admin_token = Some("op-token".into()), false).await;
    set_quota(&server, 1_000).await;
    let signed: Value = sign(&server, json!({ "key": "in/big.bin" })).await.json().await.expect("json");
    let url = signed["url"].as_str().expect("a URL");
    let put = server.http.put(server.url(&url[url.find("/files/").expect("a host URL")..])).body(vec![7u8; 2_000]);
    let refused = put.send().await.expect("sent");
    assert_eq!(refused.status(), 413);
    let error: Value = refused.json().await.expect("json");
    assert_eq!(error["error"]["code"], "storage_quota_exceeded", "{error}");
    assert_eq!(stored_bytes(&server).await, 0);
    let key = format!("customers/{}/workspace/in/big.bin", server.customer.id);
    assert!(server.platform.caps.storage.get(&key, 1 << 20).await.is_err(), "nothing was stored");

    // Within the quota it is stored, and counted once however often it is written again.
    for _ in 0..2 {
        let put = server.http.put(server.url(&url[url.find("/files/").expect("a host URL")..])).body(vec![7u8; 600]);
        assert_eq!(put.send().await.expect("sent").status(), 201);
    }
    assert_eq!(stored_bytes(&server).await, 600);
    server.stop().await;
}

#[tokio::test]
async fn a_presigned_s3_upload_is_signed_for_the_size_counted_against_the_quota() {
    let (s3, server) = on_s3_with_quota(10_000).await;

    let missing = sign(&server, json!({ "key": "in/clip.bin" })).await;
    assert_eq!(missing.status(), 422);
    let error: Value = missing.json().await.expect("json");
    assert_eq!(error["error"]["details"][0]["field"], "size", "{error}");
    let over = sign(&server, json!({ "key": "in/clip.bin", "size": 20_000 })).await;
    assert_eq!(over.status(), 422);
    let error: Value = over.json().await.expect("json");
    assert_eq!(error["error"]["details"][0]["field"], "size", "{error}");

    let signed: Value = sign(&server, json!({ "key": "in/clip.bin", "size": 4_000 })).await.json().await.expect("json");
    assert_eq!(stored_bytes(&server).await, 4_000, "counted when signed");
    let put = |bytes: Vec<u8>| {
        let mut put = server.http.put(signed["url"].as_str().expect("a URL")).body(bytes);
        for (name, value) in signed["headers"].as_object().expect("headers") {
            if name != "content-length" {
                put = put.header(name.as_str(), value.as_str().expect("a value"));
            }
        }
        put.send()
    };
    let larger = put(vec![1u8; 9_000]).await.expect("sent");
    assert!(larger.status().is_client_error(), "S3 refuses another length: {}", larger.status());
    assert!(s3.keys().is_empty(), "nothing landed: {:?}", s3.keys());
    let exact = put(vec![1u8; 4_000]).await.expect("sent");
    assert!(exact.status().is_success(), "{}", exact.text().await.unwrap_or_default());
    server.stop().await;
}

#[tokio::test]
async fn re_signing_a_key_for_fewer_bytes_never_lowers_its_count() {
    let (_s3, server) = on_s3_with_quota(10_000).await;
    let large = sign(&server, json!({ "key": "in/clip.bin", "size": 9_000 })).await;
    assert_eq!(large.status(), 200);
    assert_eq!(stored_bytes(&server).await, 9_000);

    // The 9,000-byte URL may still be used (or its object still be there): a 1-byte re-sign is
    // signed, but the count stays.
    let smaller = sign(&server, json!({ "key": "in/clip.bin", "size": 1 })).await;
    assert_eq!(smaller.status(), 200);
    assert_eq!(stored_bytes(&server).await, 9_000, "the count never drops on a re-sign");
    // So a second key cannot use room the re-sign seemed to free.
    let other = sign(&server, json!({ "key": "in/other.bin", "size": 5_000 })).await;
    assert_eq!(other.status(), 422);
    // A larger re-sign raises it.
    assert_eq!(sign(&server, json!({ "key": "in/clip.bin", "size": 9_500 })).await.status(), 200);
    assert_eq!(stored_bytes(&server).await, 9_500);
    server.stop().await;
}

/// A still image in the workspace (`in/still.png`), uploaded through the host.
async fn upload_still(server: &TestServer) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let png = vidfarm_tests::media::png(dir.path(), "still.png", "orange", "160x120");
    let body = json!({ "key": "in/still.png", "content_type": "image/png", "size": png.len() });
    let signed: Value = sign(server, body).await.json().await.expect("json");
    let url = signed["url"].as_str().expect("a URL");
    let mut put = server.http.put(server.url(&url[url.find("/files/").expect("a host file URL")..])).body(png);
    for (name, value) in signed["headers"].as_object().into_iter().flatten() {
        put = put.header(name.as_str(), value.as_str().expect("a header value"));
    }
    assert!(put.send().await.expect("sent").status().is_success());
}

#[tokio::test]
async fn a_renders_output_counts_against_the_quota_and_a_customer_past_it_starts_no_render() {
    let server = TestServer::start_with(|c| c.admin_token = Some("op-token".into()), true).await;
    upload_still(&server).await;
    let before = stored_bytes(&server).await;
    // One byte of room: the render may start, and its output is counted even past the quota.
    set_quota(&server, before + 1).await;
    let spec = json!({
        "canvas": { "width": 160, "height": 120, "fps": 10 },
        "duration": 1,
        "backgrounds": [{ "src": "workspace:in/still.png", "type": "image" }]
    });
    let first = server.create_job("json-to-video", "render", spec.clone()).await;
    let job = server.wait_for("json-to-video", &first, &["succeeded", "failed"], Duration::from_secs(120)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let after = stored_bytes(&server).await;
    assert!(after > before + 1_000, "the MP4 was not counted: {before} → {after} bytes");
    // The output is an artifact event of the job, like the objects it stores itself.
    let logs = server.get_json(&format!("/templates/json-to-video/jobs/{first}/logs")).await;
    let artifact = logs["events"].as_array().into_iter().flatten().find_map(|e| e["artifact"].as_object().cloned());
    let artifact = artifact.expect("an artifact event");
    assert_eq!((artifact["kind"].as_str(), artifact["content_type"].as_str()), (Some("render"), Some("video/mp4")));
    assert!(artifact["size"].as_u64().is_some_and(|n| n > 1_000), "{artifact:?}");
    // Now past the quota: the next render is refused before anything is queued or held.
    let second = server.create_job("json-to-video", "render", spec.clone()).await;
    let job = server.wait_for("json-to-video", &second, &["succeeded", "failed"], Duration::from_secs(120)).await;
    assert_eq!(job["error"]["code"], "storage_quota_exceeded", "{job}");
    for seq in 0..8 {
        let render = server.platform.db.render(&format!("{second}_r{seq}")).await.expect("read");
        assert!(render.is_none(), "a render was queued at effect {seq}");
    }
    assert_eq!(stored_bytes(&server).await, after);
    server.stop().await;
}

//! Storage on local disk and on S3 (a real S3-compatible server, `s3s-fs`, which checks
//! signatures): artifacts land under the job's prefix, customers fetch them with signed URLs
//! that expire, upload into their workspace with signed URLs, and no key escapes its prefix.

use serde_json::{Value, json};
use std::time::Duration;
use vidfarm_tests::s3::S3Server;
use vidfarm_tests::server::TestServer;

const WITHIN: Duration = Duration::from_secs(30);

/// The artifact URL of the job's first stored object, from its logs.
async fn artifact_url(server: &TestServer, template: &str, job_id: &str) -> String {
    let logs = server.get_json(&format!("/templates/{template}/jobs/{job_id}/logs")).await;
    let events = logs["events"].as_array().expect("events");
    let artifact = events.iter().find(|e| !e["artifact"].is_null()).expect("an artifact event");
    artifact["artifact"]["url"].as_str().expect("a signed URL").to_string()
}

/// Host URLs carry the configured public base (`127.0.0.1:0` in tests): aim them at the server.
fn on_server(server: &TestServer, url: &str) -> String {
    let path = &url[url.find("/files/").expect("a file URL")..];
    server.url(path)
}

#[tokio::test]
async fn local_artifact_urls_are_signed_for_one_key_and_expire() {
    let server = TestServer::start_with(|c| c.file_url_ttl = Duration::from_secs(2), true).await;
    let job_id = server.create_job("hello", "greet", json!({ "name": "Ada" })).await;
    server.wait_for("hello", &job_id, &["succeeded"], WITHIN).await;
    let url = on_server(&server, &artifact_url(&server, "hello", &job_id).await);
    assert!(
        url.contains(&format!(
            "/files/templates/hello/users/{}/jobs/{job_id}/greeting.txt?expires=",
            server.customer.id
        ))
    );
    let fetched = server.http.get(&url).send().await.expect("sent");
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.text().await.expect("text"), "Hello, Ada!");

    let tampered = url.replace("greeting.txt", "other.txt");
    assert_eq!(server.http.get(&tampered).send().await.expect("sent").status(), 403);
    // The signature's last character changed (to one it is not already).
    let other = if url.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{other}", &url[..url.len() - 1]);
    assert_eq!(server.http.get(&forged).send().await.expect("sent").status(), 403);
    let unsigned = &url[..url.find('?').expect("a query")];
    assert_eq!(server.http.get(unsigned).send().await.expect("sent").status(), 403);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = server.http.get(&url).send().await.expect("sent");
    assert_eq!(expired.status(), 403);
    let error: Value = expired.json().await.expect("json");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("expired")), "{error}");
}

#[tokio::test]
async fn a_small_object_is_a_row_a_large_one_a_file_and_a_key_reads_what_was_written_last() {
    use vidfarm::storage::SMALL_OBJECT_BYTES;
    let server = TestServer::start().await;
    let job_id = server.create_job("hello", "greet", json!({ "name": "Ada" })).await;
    server.wait_for("hello", &job_id, &["succeeded"], WITHIN).await;
    let key = format!("templates/hello/users/{}/jobs/{job_id}/greeting.txt", server.customer.id);
    let (store, db, on_disk) = (&server.platform.caps.storage, &server.platform.db, server.dir.path().join("objects"));
    let rows = |key: String| async move {
        db.inspect("SELECT key FROM small_objects WHERE key = $1", &[&key]).await.expect("read").len()
    };
    assert_eq!(rows(key.clone()).await, 1, "the greeting is a row");
    assert!(!on_disk.join(&key).exists(), "and no file, nor its job's folder: {}", on_disk.display());
    assert_eq!(store.get(&key, 1 << 20).await.expect("read"), b"Hello, Ada!");

    let large = vec![b'L'; SMALL_OBJECT_BYTES + 1];
    assert_eq!(store.put(&key, large.clone(), "text/plain").await.expect("stored"), large.len() as u64);
    assert_eq!(rows(key.clone()).await, 0, "written large, the key's row is gone");
    assert_eq!(std::fs::read(on_disk.join(&key)).expect("a file"), large);
    assert_eq!(store.get(&key, 1 << 20).await.expect("read"), large);

    let small = vec![b's'; SMALL_OBJECT_BYTES];
    store.put(&key, small.clone(), "text/plain").await.expect("stored");
    assert_eq!(store.get(&key, 1 << 20).await.expect("read"), small, "written small again, it reads small");
    assert!(!on_disk.join(&key).exists(), "and the large file is gone, not left uncounted on disk");
    let opened = store.open(&key).await.expect("opened");
    assert_eq!(opened.size, small.len() as u64, "streamed readers see its size too");

    let file = server.dir.path().join("upload.bin");
    std::fs::write(&file, b"from a file").expect("written");
    store.put_file("customers/c/workspace/a.bin", &file, "application/octet-stream").await.expect("stored");
    assert_eq!(store.get("customers/c/workspace/a.bin", 1 << 20).await.expect("read"), b"from a file");
    assert!(!on_disk.join("customers/c/workspace/a.bin").exists(), "a small file is a row too");

    let exported = tempfile::tempdir().expect("a temp dir");
    // Rows, like S3 keys, may be an object and a folder of others at once; files may not.
    store.put("customers/c/workspace/a.bin/inside", b"y".to_vec(), "text/plain").await.expect("stored");
    let done = vidfarm::storage::small_objects::export(db, exported.path()).await.expect("exported");
    assert_eq!(done.written, 2, "the greeting and the workspace file: {done:?}");
    assert_eq!(done.failed.len(), 1, "the key under an object is named, the rest written: {done:?}");
    assert_eq!(done.failed[0].0, "customers/c/workspace/a.bin/inside");
    assert_eq!(std::fs::read(exported.path().join(&key)).expect("a file at the key"), small);
    assert_eq!(std::fs::read(exported.path().join("customers/c/workspace/a.bin")).expect("a file"), b"from a file");

    store.delete(&key).await.expect("deleted");
    assert!(matches!(store.get(&key, 1 << 20).await, Err(vidfarm::capabilities::StoreError::NotFound(_))));
    assert!(!on_disk.join(&key).exists(), "the stale large file went with the key");
    assert!(store.put("../escape.txt", b"x".to_vec(), "text/plain").await.is_err(), "rows take the files' keys only");
    assert_eq!(rows("../escape.txt".into()).await, 0);
}

/// An upload URL for a text file of `size` bytes at `key` in the default customer's workspace.
async fn sign_upload(server: &TestServer, key: &str, size: usize) -> Value {
    let body = json!({ "key": key, "content_type": "text/plain", "size": size });
    server.post("/files/sign-upload", &body).send().await.expect("sent").json().await.expect("json")
}

#[tokio::test]
async fn a_customer_uploads_into_their_own_workspace_with_a_signed_url() {
    let server = TestServer::start().await;
    let signed = sign_upload(&server, "inputs/brief.txt", "a brief about tide pools".len()).await;
    assert_eq!(signed["method"], "PUT", "{signed}");
    let url = on_server(&server, signed["url"].as_str().expect("a URL"));
    let put = server.http.put(&url).body("a brief about tide pools").send().await.expect("sent");
    assert_eq!(put.status(), 201);
    let workspace_key = format!("customers/{}/workspace/inputs/brief.txt", server.customer.id);
    let stored = server.platform.caps.storage.get(&workspace_key, 1 << 30).await.expect("stored");
    assert_eq!(stored, b"a brief about tide pools");
    // The URL is for that key and for PUT only.
    let elsewhere = url.replace("brief.txt", "other.txt");
    assert_eq!(server.http.put(&elsewhere).body("x").send().await.expect("sent").status(), 403);
    assert_eq!(server.http.get(&url).send().await.expect("sent").status(), 403);

    for bad in ["../escape.txt", "/etc/passwd", "a/../../b", ""] {
        let refused = server.post("/files/sign-upload", &json!({ "key": bad })).send().await.expect("sent");
        assert_eq!(refused.status(), 422, "{bad}");
        let error: Value = refused.json().await.expect("json");
        assert_eq!(error["error"]["details"][0]["field"], "key", "{bad}: {error}");
    }
}

async fn server_on(s3: &S3Server) -> TestServer {
    let settings = s3.settings.clone();
    TestServer::start_with(move |c| c.s3 = Some(settings), true).await
}

#[tokio::test]
async fn on_s3_artifacts_land_under_the_jobs_prefix_and_presigned_urls_fetch_them() {
    let s3 = S3Server::start().await;
    let server = server_on(&s3).await;
    let job_id = server.create_job("hello", "greet", json!({ "name": "Grace" })).await;
    server.wait_for("hello", &job_id, &["succeeded"], WITHIN).await;
    let key = format!("templates/hello/users/{}/jobs/{job_id}/greeting.txt", server.customer.id);
    assert_eq!(s3.keys(), vec![key.clone()]);
    let url = artifact_url(&server, "hello", &job_id).await;
    assert!(url.contains("X-Amz-Signature=") && url.contains(&key), "a presigned S3 URL: {url}");
    let fetched = reqwest::get(&url).await.expect("sent");
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.text().await.expect("text"), "Hello, Grace!");
    let at = url.find("X-Amz-Signature=").expect("a signature") + "X-Amz-Signature=".len();
    let flipped = if &url[at..=at] == "0" { "1" } else { "0" };
    let forged = format!("{}{flipped}{}", &url[..at], &url[at + 1..]);
    assert_eq!(reqwest::get(&forged).await.expect("sent").status(), 403, "s3s-fs checks signatures");

    let signed = sign_upload(&server, "inputs/clip.txt", "uploaded to S3".len()).await;
    let mut put = server.http.put(signed["url"].as_str().expect("a URL")).body("uploaded to S3");
    for (name, value) in signed["headers"].as_object().expect("headers") {
        put = put.header(name.as_str(), value.as_str().expect("a value"));
    }
    let put = put.send().await.expect("sent");
    assert!(put.status().is_success(), "{}", put.text().await.unwrap_or_default());
    let workspace_key = format!("customers/{}/workspace/inputs/clip.txt", server.customer.id);
    assert_eq!(server.platform.caps.storage.get(&workspace_key, 1 << 30).await.expect("stored"), b"uploaded to S3");
}

#[tokio::test]
async fn on_s3_every_escape_from_the_jobs_prefix_is_refused() {
    let s3 = S3Server::start().await;
    let server = server_on(&s3).await;
    let job_id = server.create_job("sandbox-probe", "escape-storage", json!({})).await;
    let job = server.wait_for("sandbox-probe", &job_id, &["succeeded", "failed"], WITHIN).await;
    assert_eq!(job["error"]["code"], "storage_invalid_key", "every attempt was refused: {job}");
    assert_eq!(s3.keys(), Vec::<String>::new(), "nothing was written anywhere in the bucket");
}

//! The template registry in an S3 bucket (`s3s-fs`, which checks signatures): the same layout
//! as the directory, the example templates published into it at start, and another process
//! (the CLI's store over the same bucket) publishing and activating a version the running
//! host picks up without a restart. A version whose bytes were changed in the bucket is
//! refused and the active one keeps serving.

use serde_json::json;
use std::time::{Duration, Instant};
use vidfarm_tests::s3::S3Server;
use vidfarm_tests::server::TestServer;

const WITHIN: Duration = Duration::from_secs(20);

async fn active_version(server: &TestServer) -> String {
    server.get_json("/templates/hello").await["active_version"].as_str().unwrap_or_default().to_string()
}

async fn greet(server: &TestServer) -> String {
    let job = server.create_job("hello", "greet", json!({ "name": "Ada" })).await;
    let done = server.wait_for("hello", &job, &["succeeded", "failed"], WITHIN).await;
    done["result"]["greeting"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn the_registry_lives_in_a_bucket_and_another_process_swaps_versions_there() {
    let s3 = S3Server::start().await;
    let settings = s3.settings.clone();
    let server = TestServer::start_with(move |c| c.registry_s3 = Some((settings, "registry".into())), true).await;
    let keys = s3.keys();
    for file in ["/component.wasm", "/manifest.json"] {
        assert!(keys.iter().any(|k| k.starts_with("registry/hello/") && k.ends_with(file)), "{file} in {keys:?}");
    }
    assert!(keys.iter().any(|k| k == "registry/hello/active"), "{keys:?}");
    assert!(keys.iter().any(|k| k.starts_with("registry/hello/history/")), "{keys:?}");
    assert_eq!(greet(&server).await, "Hello, Ada!");

    // Another process: its own store over the same bucket, as `vidfarm registry` would use.
    let other = server.platform.config.registry_store().expect("a store over the bucket");
    // The built-ins' key, which every development host on this bucket derives from the master key.
    let platform = &server.platform;
    let key = vidfarm::engine::publish::development_key(&platform.config, &platform.master_key).expect("the dev key");
    assert!(!server.dir.path().join("registry-dev.key").exists(), "no key of this host's own");
    let bytes = std::fs::read(vidfarm_template_artifacts::HELLO_NEXT).expect("hello 0.2.0 is built");
    let runtime = server.platform.catalog.runtime();
    let next = vidfarm::engine::publish::publish(runtime, &other, &key, &bytes, None, "cli").await.expect("published");
    let switched_at = Instant::now();
    other.activate("hello", &next.version, "cli").expect("activated");
    while active_version(&server).await != next.version {
        assert!(switched_at.elapsed() < Duration::from_secs(5), "the host never followed the bucket");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(greet(&server).await, "Howdy, Ada!");
    let actions: Vec<String> =
        other.history("hello").expect("history").iter().map(|r| format!("{}:{}", r.action, r.to)).collect();
    assert!(
        actions.ends_with(&[format!("publish:{}", next.version), format!("activate:{}", next.version)]),
        "{actions:?}"
    );

    // Bytes changed in the bucket (by anyone with write access) behind the manifest's back:
    // a host loading that version refuses it.
    let bucket = vidfarm::storage::S3Blobs::new(&s3.settings, "registry").expect("a client");
    let object = format!("hello/{}/component.wasm", next.version);
    let mut tampered = vidfarm_registry::Blobs::get(&bucket, &object).expect("read").expect("the object");
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    vidfarm_registry::Blobs::put(&bucket, &object, &tampered).expect("overwritten");
    let (settings, trusted) = (s3.settings.clone(), key.public_line());
    let fresh = TestServer::start_with(
        move |c| {
            c.registry_s3 = Some((settings, "registry".into()));
            c.trusted_keys = trusted; // a second host trusts the key the first one signed with
        },
        true,
    )
    .await;
    let refused = fresh.platform.catalog.load_version("hello", &next.version).await.map(|_| ()).expect_err("refused");
    assert!(refused.to_string().contains("tampered"), "{refused}");
    assert_eq!(greet(&server).await, "Howdy, Ada!", "the host that loaded it before keeps serving");
}

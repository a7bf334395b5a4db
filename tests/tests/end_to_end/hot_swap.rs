//! Hot swap: an operator activates a new version (and rolls back) while a load generator
//! creates and polls jobs — zero failed requests; jobs created before the switch run on the
//! old version, jobs created after it on the new one. And every bad artifact is refused.

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use vidfarm_registry::{ArtifactManifest, SigningKey};
use vidfarm_tests::server::TestServer;

const TOKEN: &str = "operator-secret";

async fn server() -> TestServer {
    TestServer::start_with(|c| c.admin_token = Some(TOKEN.into()), true).await
}

fn dev_key(server: &TestServer) -> SigningKey {
    if server.platform.config.registry_s3.is_some() {
        let platform = &server.platform;
        return vidfarm::engine::publish::development_key(&platform.config, &platform.master_key).expect("the dev key");
    }
    let text = std::fs::read_to_string(server.dir.path().join("registry-dev.key")).expect("the dev key exists");
    SigningKey::from_file_text(&text).expect("a key")
}

async fn publish_next(server: &TestServer, key: &SigningKey) -> String {
    let bytes = std::fs::read(vidfarm_template_artifacts::HELLO_NEXT).expect("hello 0.2.0 is built");
    let runtime = server.platform.catalog.runtime();
    let stored =
        vidfarm::engine::publish::publish(runtime, server.platform.catalog.registry(), key, &bytes, None, "test")
            .await
            .expect("published");
    stored.version
}

async fn admin(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let response = server.http.post(server.url(path)).bearer_auth(TOKEN).json(&body).send().await.expect("sent");
    (response.status().as_u16(), response.json().await.expect("json"))
}

/// One created job: when it was created relative to the switches, and how it ended.
struct Record {
    created: Instant,
    job: Value,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activating_and_rolling_back_under_load_fails_no_request_and_pins_versions() {
    let server = Arc::new(server().await);
    let v1 = server.platform.catalog.active("hello").expect("hello is active").manifest.version.clone();
    let v2 = publish_next(&server, &dev_key(&server)).await;
    assert_eq!(v2, "0.2.0");

    let records = Arc::new(Mutex::new(Vec::<Record>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut generators = Vec::new();
    for g in 0..6 {
        let (server, records, failures, stop) = (server.clone(), records.clone(), failures.clone(), stop.clone());
        generators.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.is_cancelled() {
                n += 1;
                let created = Instant::now();
                let body = json!({ "tracer": format!("load-{g}-{n}"), "payload": { "name": format!("N{g}x{n}") } });
                let response = server.post("/templates/hello/operations/greet", &body).send().await;
                let id = match response {
                    Ok(r) if r.status() == 202 => {
                        r.json::<Value>().await.expect("json")["job_id"].as_str().expect("id").to_string()
                    }
                    Ok(r) => {
                        failures.lock().await.push(format!("create: {}", r.status()));
                        continue;
                    }
                    Err(e) => {
                        failures.lock().await.push(format!("create: {e}"));
                        continue;
                    }
                };
                let job = loop {
                    match server.get(&format!("/templates/hello/jobs/{id}")).send().await {
                        Ok(r) if r.status() == 200 => {
                            let job: Value = r.json().await.expect("json");
                            if job["status"] == "succeeded" || job["status"] == "failed" {
                                break job;
                            }
                        }
                        Ok(r) => failures.lock().await.push(format!("poll: {}", r.status())),
                        Err(e) => failures.lock().await.push(format!("poll: {e}")),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                };
                records.lock().await.push(Record { created, job });
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(800)).await;
    let before_activate = Instant::now();
    let (status, switched) = admin(&server, "/admin/templates/hello/activate", json!({ "version": v2 })).await;
    let after_activate = Instant::now();
    assert_eq!((status, switched["active_version"].as_str()), (200, Some(v2.as_str())), "{switched}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before_rollback = Instant::now();
    let (status, back) = admin(&server, "/admin/templates/hello/rollback", json!({})).await;
    let after_rollback = Instant::now();
    assert_eq!((status, back["active_version"].as_str()), (200, Some(v1.as_str())), "{back}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.cancel();
    for g in generators {
        g.await.expect("generator");
    }

    assert_eq!(*failures.lock().await, Vec::<String>::new(), "zero failed requests");
    let records = records.lock().await;
    assert!(records.len() > 50, "the load was real: {} jobs", records.len());
    let (mut old, mut new, mut back_to_old) = (0, 0, 0);
    for Record { created, job } in records.iter() {
        assert_eq!(job["status"], "succeeded", "{job}");
        let (version, greeting) = (
            job["template_version"].as_str().expect("a version"),
            job["result"]["greeting"].as_str().expect("a greeting"),
        );
        let expected = if *created < before_activate || (*created >= after_rollback) {
            Some((v1.as_str(), "Hello"))
        } else if *created >= after_activate && *created < before_rollback {
            Some((v2.as_str(), "Howdy"))
        } else {
            None // created while a switch was in flight: either version is right
        };
        if let Some((want_version, want_word)) = expected {
            assert_eq!(version, want_version, "{job}");
            assert!(greeting.starts_with(want_word), "{version} ran its own code: {greeting}");
            match (want_version == v1, *created >= after_rollback) {
                (true, false) => old += 1,
                (false, _) => new += 1,
                (true, true) => back_to_old += 1,
            }
        }
    }
    assert!(old > 0 && new > 0 && back_to_old > 0, "jobs on every side of the switches: {old} / {new} / {back_to_old}");
    let history = server.platform.catalog.registry().history("hello").expect("history");
    let switches: Vec<String> =
        history.iter().filter(|r| r.action != "publish").map(|r| format!("{}:{}", r.action, r.actor)).collect();
    assert!(switches.ends_with(&["activate:admin-api".to_string(), "rollback:admin-api".to_string()]), "{switches:?}");
}

#[tokio::test]
async fn every_bad_artifact_is_refused_with_its_reason_and_the_old_version_keeps_serving() {
    let server = server().await;
    let key = dev_key(&server);
    let store = server.platform.catalog.registry();
    let good = std::fs::read(vidfarm_template_artifacts::HELLO_NEXT).expect("built");
    let runtime = server.platform.catalog.runtime();
    let described = runtime.load(Arc::from(good.clone())).await.expect("loads").manifest;
    let ops = vidfarm::engine::publish::operation_summaries_of(&described);
    let stranger = SigningKey::generate();

    let mut cases: Vec<(&str, vidfarm_registry::SignedManifest, Vec<u8>, &str)> = Vec::new();
    let sign = |k: &SigningKey, m: ArtifactManifest| k.sign(m).expect("signs");
    let mut unsigned = sign(&key, ArtifactManifest::new("hello", "0.3.0", &good, ops.clone(), &key));
    unsigned.signature = None;
    cases.push(("0.3.0", unsigned, good.clone(), "unsigned"));
    let mut tampered_bytes = good.clone();
    let last = tampered_bytes.len() - 1;
    tampered_bytes[last] ^= 1;
    cases.push((
        "0.4.0",
        sign(&key, ArtifactManifest::new("hello", "0.4.0", &good, ops.clone(), &key)),
        tampered_bytes,
        "tampered",
    ));
    cases.push((
        "0.5.0",
        sign(&stranger, ArtifactManifest::new("hello", "0.5.0", &good, ops.clone(), &stranger)),
        good.clone(),
        "does not trust",
    ));
    let mut other_world = ArtifactManifest::new("hello", "0.6.0", &good, ops.clone(), &key);
    other_world.wit_world = "vidfarm:template@1.0.0".into();
    cases.push(("0.6.0", sign(&key, other_world), good.clone(), "WIT world"));
    cases.push((
        "0.7.0",
        sign(&key, ArtifactManifest::new("hello", "0.7.0", &good, vec![], &key)),
        good.clone(),
        "describe",
    ));

    let serving = store.active("hello").expect("reads").expect("the dev build is active");
    for (version, signed, bytes, reason) in cases {
        store.publish(&bytes, &signed, "test").expect("the store takes it; the host must refuse it");
        let (status, body) = admin(&server, "/admin/templates/hello/activate", json!({ "version": version })).await;
        assert_eq!(status, 422, "{version}: {body}");
        assert!(
            body["error"]["message"].as_str().is_some_and(|m| m.contains(reason)),
            "{version} refused for `{reason}`: {body}"
        );
        assert!(
            server.platform.catalog.active("hello").expect("still serving").manifest.version.contains('+'),
            "the dev build keeps serving"
        );
        // And the registry points back at it: a host starting now, or another host, serves it too.
        assert_eq!(store.active("hello").expect("reads"), Some(serving.clone()), "{version} was switched back");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.ends_with(&format!("switched back to {serving}")), "the answer says so: {message}");
    }
    // A rollback passes over the reverts: there is nothing before the dev build to go back to.
    let (status, body) = admin(&server, "/admin/templates/hello/rollback", json!({})).await;
    assert_eq!(status, 404, "{body}");
    let job = server.create_job("hello", "greet", json!({ "name": "Ada" })).await;
    assert_eq!(
        server.wait_for("hello", &job, &["succeeded"], Duration::from_secs(20)).await["result"]["greeting"],
        "Hello, Ada!"
    );
    let (status, _) = admin(&server, "/admin/templates/hello/activate", json!({ "version": "9.9.9" })).await;
    assert_eq!(status, 404);
    let wrong =
        server.http.post(server.url("/admin/templates/hello/rollback")).bearer_auth("nope").send().await.expect("sent");
    assert_eq!(wrong.status(), 401, "customer keys and wrong tokens are not operator tokens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_sent_at_once_take_turns_so_each_starts_from_the_one_before() {
    // The registry in a bucket, where each read and write is a request: room for two switches
    // to read the same active version before either writes, unless they take turns.
    let s3 = vidfarm_tests::s3::S3Server::start().await;
    let settings = s3.settings.clone();
    let server = TestServer::start_with(
        move |c| {
            c.admin_token = Some(TOKEN.into());
            c.registry_s3 = Some((settings, "registry".into()));
        },
        true,
    )
    .await;
    let server = Arc::new(server);
    let v2 = publish_next(&server, &dev_key(&server)).await;
    let mut switches = Vec::new();
    for n in 0..16 {
        let server = server.clone();
        let v2 = v2.clone();
        switches.push(tokio::spawn(async move {
            match n % 2 {
                0 => admin(&server, "/admin/templates/hello/activate", json!({ "version": v2 })).await,
                _ => admin(&server, "/admin/templates/hello/rollback", json!({})).await,
            }
        }));
    }
    for switch in switches {
        let (status, body) = switch.await.expect("the request ran");
        // A rollback with nothing before the active version is a 404; nothing else may fail.
        assert!(status == 200 || (status == 404 && body["error"]["code"] == "version_not_found"), "{status} {body}");
    }
    let history = server.platform.catalog.registry().history("hello").expect("history");
    let chain: Vec<_> = history.iter().filter(|r| r.action != "publish").collect();
    assert!(chain.len() > 2, "switches happened: {chain:?}");
    for pair in chain.windows(2) {
        assert_eq!(
            pair[1].from.as_ref(),
            Some(&pair[0].to),
            "a switch started from a version already replaced: {pair:?}"
        );
    }
    let active = server.platform.catalog.registry().active("hello").expect("reads");
    assert_eq!(active.as_ref(), Some(&chain[chain.len() - 1].to), "the last switch is what is active");
    assert_eq!(
        &server.platform.catalog.active("hello").expect("serving").manifest.version,
        active.as_ref().expect("a version"),
        "and what this host serves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activation_whose_operator_hangs_up_half_way_still_switches_and_the_host_serves_what_the_registry_says() {
    let server = server().await;
    let catalog = &server.platform.catalog;
    let v1 = catalog.active("hello").expect("hello is active").manifest.version.clone();
    let v2 = publish_next(&server, &dev_key(&server)).await;
    // Another switch holds the registry's turn: this activation is inside its switch, waiting.
    let held = server
        .platform
        .db
        .take_turn(vidfarm::engine::publish::REGISTRY_TURN, Duration::from_secs(5))
        .await
        .expect("asked")
        .expect("the turn");
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(700)).build().expect("a client");
    let sent = impatient
        .post(server.url("/admin/templates/hello/activate"))
        .bearer_auth(TOKEN)
        .json(&json!({ "version": v2 }))
        .send()
        .await;
    let gone = sent.expect_err("the activation cannot answer while the turn is held");
    assert!(gone.is_timeout(), "the operator hung up: {gone}");
    assert_eq!(catalog.registry().active("hello").expect("reads").as_deref(), Some(v1.as_str()), "switched early");

    // The turn comes free: the switch the operator left goes on, to the end.
    drop(held);
    let started = Instant::now();
    loop {
        let registry = catalog.registry().active("hello").expect("reads");
        let served = catalog.active("hello").expect("serving").manifest.version.clone();
        if registry.as_deref() == Some(v2.as_str()) && served == v2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the switch stopped with its request: the registry says {registry:?}, the host serves {served}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let history = catalog.registry().history("hello").expect("history");
    let switches: Vec<_> = history.iter().filter(|r| r.actor == "admin-api").collect();
    assert_eq!(switches.len(), 1, "one switch, made once: {switches:?}");
    assert_eq!((switches[0].from.as_deref(), switches[0].to.as_str()), (Some(v1.as_str()), v2.as_str()));
    // And the next operator's switch finds the registry free and starting from it.
    let (status, body) = admin(&server, "/admin/templates/hello/rollback", json!({})).await;
    assert_eq!(
        (status, body["active_version"].as_str(), body["previous_version"].as_str()),
        (200, Some(v1.as_str()), Some(v2.as_str())),
        "{body}"
    );
}

#[tokio::test]
async fn a_version_nothing_uses_is_unloaded_when_idle_and_loaded_again_when_a_job_needs_it() {
    let server = TestServer::start_with(
        |c| {
            c.admin_token = Some(TOKEN.into());
            c.unload_idle_versions_after = Duration::from_millis(300);
        },
        true,
    )
    .await;
    let catalog = &server.platform.catalog;
    let v1 = catalog.active("hello").expect("hello is active").manifest.version.clone();
    let v2 = publish_next(&server, &dev_key(&server)).await;
    // A run still going on v1 holds it.
    let running = catalog.version("hello", &v1).expect("v1 is loaded");
    let (status, body) = admin(&server, "/admin/templates/hello/activate", json!({ "version": v2 })).await;
    assert_eq!(status, 200, "{body}");
    // Idle for 300 ms; looked for at most once a second, by the 250 ms registry poll.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert!(catalog.loaded_versions("hello").contains(&v1), "a version a run holds was unloaded");

    drop(running);
    let started = Instant::now();
    while catalog.loaded_versions("hello").contains(&v1) {
        assert!(started.elapsed() < Duration::from_secs(10), "the idle version stayed loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(catalog.loaded_versions("hello"), vec![v2.clone()], "the active version stays, however idle");

    // A job of v1 (queued before the switch, or retried) loads it again.
    let again = catalog.load_version("hello", &v1).await.expect("loaded again");
    assert_eq!(again.manifest.version, v1);
    let job = server.create_job("hello", "greet", json!({ "name": "Ada" })).await;
    let done = server.wait_for("hello", &job, &["succeeded"], Duration::from_secs(20)).await;
    assert_eq!(done["result"]["greeting"], "Howdy, Ada!", "new jobs run on the active version");
}

//! A template that carries its own Remotion compositions (`tests/fixtures/postcard-ts`: a
//! TypeScript template with a `remotion/` folder): `vidfarm template build` bundles them, the
//! bundle is signed and published with the component, and the template's renders use that
//! bundle and no other — rendered for real in Chromium. Another template cannot name them, and
//! a bundle changed in the registry refuses the whole version.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use vidfarm::devrun::build::bundle_path;
use vidfarm_registry::SigningKey;
use vidfarm_tests::server::TestServer;

const WITHIN: Duration = Duration::from_secs(240);
const TEMPLATE: &str = "postcard-ts";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/postcard-ts")
}

/// The built component and its packed bundle.
fn built() -> (Vec<u8>, Vec<u8>) {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("template-compositions");
    let component = vidfarm_tests::built_template(&fixture(), &out);
    let bytes = std::fs::read(&component).expect("the component");
    let bundle = std::fs::read(bundle_path(&component)).expect("`template build` packed the remotion/ folder");
    (bytes, bundle)
}

fn dev_key(server: &TestServer) -> SigningKey {
    let text = std::fs::read_to_string(server.dir.path().join("registry-dev.key")).expect("the dev key");
    SigningKey::from_file_text(&text).expect("a key")
}

/// Publish the postcard template with its bundle (signed with the server's dev key); the
/// version. Not active yet.
async fn publish(server: &TestServer) -> String {
    let (bytes, bundle) = built();
    publish_as(server, &bytes, &bundle, None).await
}

/// Publish `bytes` with `bundle` as the version `describe` states, `+build` appended if given.
async fn publish_as(server: &TestServer, bytes: &[u8], bundle: &[u8], build: Option<&str>) -> String {
    let key = dev_key(server);
    let catalog = &server.platform.catalog;
    let stored = vidfarm::engine::publish::publish_with_bundle(
        catalog.runtime(),
        catalog.registry(),
        &key,
        bytes,
        Some(bundle),
        build,
        "test",
    )
    .await
    .expect("published");
    stored.version
}

/// Publish and activate, and have the server follow.
async fn publish_active(server: &TestServer) {
    let version = publish(server).await;
    server.platform.catalog.registry().activate(TEMPLATE, &version, "test").expect("activated");
    assert!(server.platform.catalog.sync().await.is_empty(), "the version with its bundle loads");
}

async fn run(server: &TestServer, template: &str, operation: &str, payload: Value) -> Value {
    let job_id = server.create_job(template, operation, payload).await;
    server.wait_for(template, &job_id, &["succeeded", "failed", "cancelled"], WITHIN).await
}

fn error_of(job: &Value) -> String {
    assert_eq!(job["status"], "failed", "{job}");
    job["error"]["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_template_renders_the_composition_it_carries_and_no_other_template_can() {
    let server = TestServer::start().await;
    publish_active(&server).await;

    // The composition tries to call a server on this machine while it renders: the template's
    // code runs in a network namespace of its own, so nothing arrives.
    let beacon = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let beacon_url = format!("http://{}/beacon", beacon.local_addr().expect("an address"));
    let payload = json!({ "greeting": "Greetings", "from": "the coast", "beacon": beacon_url });
    let job = run(&server, TEMPLATE, "postcard", payload).await;
    let reached = tokio::time::timeout(Duration::from_millis(200), beacon.accept()).await;
    assert!(reached.is_err(), "the template's composition reached the network: {reached:?}");
    assert_eq!(job["status"], "succeeded", "{job}");
    let metadata = &job["result"]["metadata"];
    // The host's compositions are 1280×720 and take their length from props: this is the
    // template's own 320×180, 45-frame postcard.
    assert_eq!((metadata["width"].as_u64(), metadata["height"].as_u64()), (Some(320), Some(180)), "{job}");
    let seconds = metadata["duration_seconds"].as_f64().expect("a duration");
    assert!((seconds - 1.5).abs() < 0.1, "1.5 s of video, got {seconds}: {job}");
    assert_eq!(job["result"]["key"], "postcard.mp4");

    // Another template asks for the postcard by name: it resolves in the operator's bundle,
    // where there is no such composition.
    let probe = run(&server, "sandbox-probe", "render-props", json!({ "composition": "Postcard", "props": {} })).await;
    let message = error_of(&probe);
    assert!(message.contains("Could not find composition with ID Postcard"), "{message}");
}

#[tokio::test]
async fn a_template_with_its_own_bundle_reaches_no_other_bundle_or_entry() {
    let server = TestServer::start().await;
    publish_active(&server).await;

    // The operator's compositions are not in the template's bundle.
    let host = run(&server, TEMPLATE, "render-named", json!({ "composition": "TitleCard" })).await;
    let message = error_of(&host);
    assert!(message.contains("Could not find composition with ID TitleCard"), "{message}");

    // Nor can it point the renderer at another bundle, or an entry it was not built from.
    let host_bundle = server.platform.config.render.remotion.as_ref().expect("Remotion").serve_url.clone();
    let elsewhere =
        run(&server, TEMPLATE, "render-named", json!({ "composition": "TitleCard", "serveUrl": host_bundle })).await;
    let message = error_of(&elsewhere);
    assert!(message.contains("serve-url") && message.contains("published with"), "{message}");
    let entry = run(
        &server,
        TEMPLATE,
        "render-named",
        json!({ "composition": "Postcard", "entryPoint": "../../src/index.ts" }),
    )
    .await;
    let message = error_of(&entry);
    assert!(message.contains("entry-point") && message.contains("remotion/index.ts"), "{message}");
}

#[tokio::test]
async fn a_bundle_changed_in_the_registry_refuses_the_whole_version() {
    let server = TestServer::start().await;
    let version = publish(&server).await;
    let stored = PathBuf::from(server.platform.catalog.registry().location()).join(TEMPLATE).join(&version);
    let mut bundle = std::fs::read(stored.join("bundle.tar")).expect("the bundle is stored beside the component");
    // One byte of the bundle's JavaScript changed, the signed manifest left as it was.
    let at = bundle.len() / 2;
    bundle[at] ^= 1;
    std::fs::write(stored.join("bundle.tar"), &bundle).expect("tampered");
    server.platform.catalog.registry().activate(TEMPLATE, &version, "test").expect("activated");

    let refused = server.platform.catalog.sync().await;
    let message = refused.iter().find(|(id, _)| id == TEMPLATE).map(|(_, e)| e.to_string()).expect("refused");
    assert!(message.contains("bundle") && message.contains("digest"), "{message}");
    assert!(server.platform.catalog.active(TEMPLATE).is_none(), "the version never serves");
    let body = json!({ "tracer": "t", "payload": { "greeting": "Hi", "from": "me" } });
    let response =
        server.post(&format!("/templates/{TEMPLATE}/operations/postcard"), &body).send().await.expect("sent");
    assert_eq!(response.status(), 404, "no version of the template serves jobs");
}

/// The postcard's compositions at another size: the fixture's `remotion/` folder, copied with
/// its width and height changed, bundled and packed as `template build` does.
fn smaller_bundle() -> Vec<u8> {
    // Inside this checkout, so the build finds `renderers/remotion` as it does for a template
    // in `templates/` (outside one, an author sets VIDFARM_REMOTION_DIR).
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("a temp dir");
    std::fs::create_dir_all(dir.path().join("remotion")).expect("a folder");
    for file in ["index.ts", "Root.tsx"] {
        let text = std::fs::read_to_string(fixture().join("remotion").join(file)).expect("the fixture");
        let text = text.replace("width={320}", "width={160}").replace("height={180}", "height={90}");
        std::fs::write(dir.path().join("remotion").join(file), text).expect("written");
    }
    let packed = dir.path().join("smaller.remotion.tar");
    let bundled = vidfarm::devrun::build::pack_compositions(dir.path(), &packed, None);
    assert!(bundled.expect("bundled"), "the folder has a remotion/ project");
    std::fs::read(packed).expect("packed")
}

async fn postcard_size(server: &TestServer) -> (Option<u64>, Option<u64>) {
    let job = run(server, TEMPLATE, "postcard", json!({ "greeting": "Hello", "from": "here" })).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let metadata = &job["result"]["metadata"];
    (metadata["width"].as_u64(), metadata["height"].as_u64())
}

#[tokio::test]
async fn activating_and_rolling_back_swap_the_compositions_with_the_component() {
    let server = TestServer::start().await;
    publish_active(&server).await;
    assert_eq!(postcard_size(&server).await, (Some(320), Some(180)));

    let (bytes, _) = built();
    let next = publish_as(&server, &bytes, &smaller_bundle(), Some("smaller")).await;
    assert_eq!(next, "0.1.0+smaller");
    let registry = server.platform.catalog.registry();
    registry.activate(TEMPLATE, &next, "test").expect("activated");
    assert!(server.platform.catalog.sync().await.is_empty());
    assert_eq!(postcard_size(&server).await, (Some(160), Some(90)), "the new version renders its own bundle");

    registry.rollback(TEMPLATE, "test").expect("rolled back");
    assert!(server.platform.catalog.sync().await.is_empty());
    assert_eq!(postcard_size(&server).await, (Some(320), Some(180)), "the rollback brings its bundle back");
}

#[test]
fn the_scaffold_remotion_folder_bundles_as_it_is() {
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("a temp dir");
    let scaffolds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/scaffolds");
    vidfarm::devrun::build::add_compositions("my-film", dir.path(), Some(&scaffolds)).expect("added");
    let packed = dir.path().join("my-film.remotion.tar");
    assert!(vidfarm::devrun::build::pack_compositions(dir.path(), &packed, None).expect("bundled"));
    let mut archive = tar::Archive::new(std::fs::File::open(&packed).expect("packed"));
    let mut files = std::collections::HashMap::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("an entry");
        let name = entry.path().expect("a path").display().to_string();
        let mut text = String::new();
        if !name.ends_with(".map") && std::io::Read::read_to_string(&mut entry, &mut text).is_ok() {
            files.insert(name, text);
        }
    }
    assert!(files.contains_key("index.html"), "{:?}", files.keys());
    assert_eq!(files["vidfarm-bundle.json"], r#"{"entry_point":"remotion/index.ts"}"#);
    assert!(files.values().any(|js| js.contains("my-film")), "the scaffold's default title is the template's name");
}

/// `ugc-voiceover` and `research-render` render compositions of their own: a host that cannot
/// render a template's bundle (Remotion off here; on Lambda alike) does not publish them, rather
/// than take renders — after paying for their AI stages — that would fail.
#[tokio::test]
async fn without_a_local_renderer_the_built_ins_with_their_own_compositions_are_not_published() {
    let server = TestServer::start_with(
        |c| {
            c.render.remotion = None;
            c.builtin_compositions = true;
            c.example_cache = Some(vidfarm_tests::server::shared_bundle_cache());
        },
        false,
    )
    .await;
    assert_eq!(server.get("/templates/hello").send().await.expect("sent").status(), 200);
    for id in ["ugc-voiceover", "research-render"] {
        let status = server.get(&format!("/templates/{id}")).send().await.expect("sent").status();
        assert_eq!(status, 404, "{id} is not served without its compositions");
    }
    server.stop().await;
}

//! The `speech` interface end to end: `hello voice` says a text through `speech.speak` and
//! `hello narrate` reads a long one through `speech.narrate`, with customer keys for
//! ElevenLabs leased like every provider's, against a fake on loopback that speaks ElevenLabs'
//! wire format (`xi-api-key`, the voice id in the path, bare PCM back, `request-id`).

use serde_json::{Value, json};
use std::time::Duration;
use vidfarm_tests::fake_providers::{FakeProviders, Reply, elevenlabs_request_id};
use vidfarm_tests::server::TestServer;

const WITHIN: Duration = Duration::from_secs(30);

/// ElevenLabs' "George", from its voice library.
const GEORGE: &str = "JBFqnCBsd6RMkjVDRZzb";

/// 48 characters: 3.2 s at the fakes' 15 characters a second.
const TEXT: &str = "Tide pools hide whole worlds under every rock...";

async fn server_with(fakes: &FakeProviders) -> TestServer {
    let endpoints = fakes.endpoints();
    TestServer::start_with(
        move |c| {
            c.providers.endpoints = endpoints;
            c.providers.retry_base = Duration::from_millis(20);
        },
        true,
    )
    .await
}

async fn add_key(server: &TestServer, secret: &str, weight: i64) -> String {
    let body = json!({ "provider": "elevenlabs", "secret": secret, "weight": weight });
    let response = server.post("/customers/me/provider-keys", &body).send().await.expect("sent");
    assert_eq!(response.status(), 201, "adding an ElevenLabs key");
    response.json::<Value>().await.expect("json")["id"].as_str().expect("an id").to_string()
}

fn say(model: &str, voice: &str, extra: Value) -> Value {
    let mut payload = json!({ "provider": "elevenlabs", "model": model, "text": TEXT, "voice": voice });
    payload.as_object_mut().expect("an object").extend(extra.as_object().expect("an object").clone());
    payload
}

async fn run(server: &TestServer, payload: Value) -> Value {
    let job_id = server.create_job("hello", "voice", payload).await;
    server.wait_for("hello", &job_id, &["succeeded", "failed"], WITHIN).await;
    server.job("hello", &job_id).await
}

#[tokio::test]
async fn elevenlabs_speaks_in_its_wire_format_is_stored_as_a_wav_and_billed_by_the_character() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    add_key(&server, "xi-key-0001", 1).await;
    let settings = json!({ "stability": 0.4, "similarity_boost": 0.8, "speed": 1.1, "use_speaker_boost": true });
    // $0.10 per 1,000 characters for Multilingual v2 and v3, half that for Flash and Turbo.
    for (model, cost_nusd) in [("eleven_multilingual_v2", 48 * 100_000), ("eleven_flash_v2_5", 48 * 50_000)] {
        let job = run(&server, say(model, GEORGE, json!({ "voice_settings": settings, "seed": 42 }))).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        let result = &job["result"];
        assert_eq!(
            (result["key"].as_str(), result["content_type"].as_str()),
            (Some("speech/voice.wav"), Some("audio/wav"))
        );
        assert_eq!(result["duration_seconds"].as_f64(), Some(3.2), "{job}");
        let url = result["url"].as_str().expect("a signed URL");
        let url = server.url(&url[url.find("/files/").expect("a host file URL")..]);
        let wav = server.http.get(&url).send().await.expect("sent").bytes().await.expect("the WAV");
        let probed = vidfarm_tests::media::probe(&wav);
        assert!((probed.duration - 3.2).abs() < 0.01, "{probed:?}");
        assert_eq!(probed.codecs, ["pcm_s16le"], "{probed:?}");
        let charges = job["billing"]["charges"].as_array().expect("charges");
        assert_eq!(charges.len(), 1, "one call, one charge: {job}");
        assert_eq!((charges[0]["provider"].as_str(), charges[0]["model"].as_str()), (Some("elevenlabs"), Some(model)));
        assert_eq!(charges[0]["cost_nusd"].as_i64(), Some(cost_nusd), "{job}");
    }
    let seen = fakes.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let call = &seen[0];
    assert_eq!((call.provider, call.key.as_str()), ("elevenlabs", "xi-key-0001"), "the key goes in xi-api-key");
    assert_eq!(call.body["voice_id"], GEORGE);
    assert_eq!(call.body["output_format"], "pcm_24000");
    assert_eq!((&call.body["text"], &call.body["model_id"]), (&json!(TEXT), &json!("eleven_multilingual_v2")));
    assert_eq!((&call.body["voice_settings"], &call.body["seed"]), (&settings, &json!(42)));
}

#[tokio::test]
async fn what_elevenlabs_cannot_do_is_refused_before_a_key_is_leased_and_its_own_refusals_spare_the_key() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    let key = add_key(&server, "xi-key-0001", 1).await;
    let refused = [
        say("eleven_multilingual_v2", "../../voices", json!({})),
        say("eleven_english_v1", GEORGE, json!({})),
        say("eleven_v3", GEORGE, json!({ "instructions": "slowly" })),
        say("eleven_v3", GEORGE, json!({ "voice_settings": { "speed": 3 } })),
        say("eleven_v3", GEORGE, json!({ "voice_settings": { "pitch": 1 } })),
        json!({ "provider": "openai", "model": "tts-1", "text": TEXT, "voice": "alloy", "seed": 1 }),
    ];
    for payload in refused {
        let job = run(&server, payload.clone()).await;
        assert_eq!(job["error"]["code"], "provider_invalid_request", "{payload}: {job}");
        assert_eq!(job["billing"]["charges"].as_array().map(Vec::len), Some(0), "{job}");
    }
    assert!(fakes.seen().is_empty(), "no refused call reached a provider");

    // ElevenLabs' own 404 for an unknown voice is the request's fault: the key stays usable.
    let job = run(&server, say("eleven_v3", "missing", json!({}))).await;
    assert_eq!(job["error"]["code"], "provider_invalid_request", "{job}");
    assert!(job["error"]["message"].as_str().is_some_and(|m| m.contains("voice_id missing was not found")), "{job}");
    let view = server.get_json(&format!("/customers/me/provider-keys/{key}")).await;
    assert_eq!(view["status"], "active", "{view}");
    // Too long for one call: a schema error naming the field, before any job exists.
    let body = json!({ "tracer": "t", "payload": say("eleven_v3", GEORGE, json!({ "text": "a".repeat(5_001) })) });
    let response = server.post("/templates/hello/operations/voice", &body).send().await.expect("sent");
    assert_eq!(response.status(), 422);
    assert!(response.text().await.expect("text").contains("text"));
}

#[tokio::test]
async fn an_elevenlabs_key_out_of_quota_cools_down_an_invalid_one_is_disabled_and_the_next_key_speaks() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    let spent = add_key(&server, "xi-spent-0001", 20).await;
    let revoked = add_key(&server, "xi-revoked-0001", 10).await;
    add_key(&server, "xi-good-0001", 1).await;
    let detail = |status: &str, message: &str| json!({ "detail": { "status": status, "message": message } });
    // ElevenLabs answers both with a 401; only `invalid_api_key` says the key itself is bad.
    fakes
        .always("xi-spent-0001", Reply::status(401).body(detail("quota_exceeded", "This request exceeds your quota.")));
    fakes.always("xi-revoked-0001", Reply::status(401).body(detail("invalid_api_key", "Invalid API key")));
    let job = run(&server, say("eleven_flash_v2_5", GEORGE, json!({}))).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let keys_used: Vec<String> = fakes.seen().iter().map(|s| s.key.clone()).collect();
    assert_eq!(keys_used, ["xi-spent-0001", "xi-revoked-0001", "xi-good-0001"], "by weight, each key once");

    let spent_now = server.get_json(&format!("/customers/me/provider-keys/{spent}")).await;
    assert_eq!(spent_now["status"], "rate_limited", "a used-up quota cools the key down: {spent_now}");
    let revoked_now = server.get_json(&format!("/customers/me/provider-keys/{revoked}")).await;
    assert_eq!(revoked_now["status"], "invalid", "{revoked_now}");
    assert!(revoked_now["disabled_reason"].as_str().is_some_and(|r| r.contains("Invalid API key")), "{revoked_now}");
    let charges = job["billing"]["charges"].as_array().expect("charges");
    assert_eq!(charges.len(), 1, "only the call that spoke is charged: {job}");
}

/// `sentences` sentences of 60 characters: cut into parts of at most 2,000 characters.
fn long_text(sentences: usize) -> String {
    (0..sentences).map(|n| format!("Sentence {n:04} of the tide, read slowly over the rock pools. ")).collect()
}

fn narrate(text: &str) -> Value {
    json!({ "provider": "elevenlabs", "model": "eleven_multilingual_v2", "text": text, "voice": GEORGE })
}

/// The texts of the requests ElevenLabs received, in order.
fn spoken_texts(fakes: &FakeProviders) -> Vec<String> {
    fakes
        .seen()
        .iter()
        .filter(|s| s.provider == "elevenlabs")
        .map(|s| s.body["text"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn a_long_text_is_narrated_in_stitched_parts_into_one_wav_while_the_job_waits_and_is_charged_once() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    add_key(&server, "xi-key-0001", 1).await;
    let text = long_text(80);
    assert_eq!(text.chars().count(), 4_800);
    let job_id = server.create_job("hello", "narrate", narrate(&text)).await;
    let job = server.wait_for("hello", &job_id, &["succeeded", "failed"], WITHIN).await;
    assert_eq!(job["status"], "succeeded", "{job}");

    // Three requests (33, 33 and 14 sentences), each naming the ones before it.
    let seen: Vec<_> = fakes.seen().into_iter().filter(|s| s.provider == "elevenlabs").collect();
    let texts = spoken_texts(&fakes);
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(texts.concat(), text, "every character spoken once, in order");
    assert!(texts.iter().all(|t| t.chars().count() <= 2_000 && t.ends_with(". ")), "cut at sentence ends");
    assert_eq!(seen[0].body.get("previous_request_ids"), None);
    assert_eq!(seen[1].body["previous_request_ids"], json!([elevenlabs_request_id(&texts[0])]));
    let both = json!([elevenlabs_request_id(&texts[0]), elevenlabs_request_id(&texts[1])]);
    assert_eq!(seen[2].body["previous_request_ids"], both);

    // One WAV of all of it: 4,800 characters at the fake's 15 a second.
    let job = server.job("hello", &job_id).await;
    let result = &job["result"];
    assert_eq!(
        (result["key"].as_str(), result["content_type"].as_str()),
        (Some("speech/narration.wav"), Some("audio/wav"))
    );
    assert!((result["duration_seconds"].as_f64().unwrap_or(0.0) - 320.0).abs() < 0.01, "{job}");
    let url = result["url"].as_str().expect("a signed URL");
    let url = server.url(&url[url.find("/files/").expect("a host file URL")..]);
    let wav = server.http.get(&url).send().await.expect("sent").bytes().await.expect("the WAV");
    let probed = vidfarm_tests::media::probe(&wav);
    assert!((probed.duration - 320.0).abs() < 0.01, "{probed:?}");
    assert_eq!(probed.codecs, ["pcm_s16le"], "{probed:?}");
    // Charged once, as ElevenLabs bills it: $0.10 per 1,000 characters.
    let charges = job["billing"]["charges"].as_array().expect("charges");
    assert_eq!(charges.len(), 1, "{job}");
    assert_eq!(
        (charges[0]["type"].as_str(), charges[0]["provider"].as_str()),
        (Some("ai_generation"), Some("elevenlabs"))
    );
    assert_eq!(charges[0]["cost_nusd"].as_i64(), Some(4_800 * 100_000), "{job}");
    // The parts were joined and removed: only the narration is stored.
    let first_part = format!("narration-parts/{job_id}_r1/part-0000");
    let gone = server.platform.caps.storage.get(&first_part, 1 << 30).await;
    assert!(matches!(gone, Err(vidfarm::capabilities::StoreError::NotFound(_))), "{gone:?}");
}

#[tokio::test]
async fn a_narration_interrupted_by_a_restart_goes_on_from_the_next_part_and_no_part_is_spoken_twice() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    add_key(&server, "xi-key-0001", 1).await;
    fakes.set_delay(Duration::from_millis(400));
    let text = long_text(160);
    let job_id = server.create_job("hello", "narrate", narrate(&text)).await;
    let deadline = tokio::time::Instant::now() + WITHIN;
    while spoken_texts(&fakes).len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the narration never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.job("hello", &job_id).await["status"], "waiting_for_child", "no instance is held meanwhile");

    // A shutdown lets the request in flight finish; the next start goes on after it.
    let server = server.restart().await;
    fakes.set_delay(Duration::ZERO);
    let job = server.wait_for("hello", &job_id, &["succeeded", "failed"], WITHIN).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let texts = spoken_texts(&fakes);
    assert_eq!(texts.len(), 5, "{texts:?}");
    assert_eq!(texts.concat(), text, "no part spoken twice, none skipped");
    let row = server.platform.db.render(&format!("{job_id}_r1")).await.expect("read").expect("the generation");
    assert_eq!(row.attempts, 2, "interrupted once, resumed once");
    let job = server.job("hello", &job_id).await;
    let charges = job["billing"]["charges"].as_array().expect("charges");
    assert_eq!(charges.len(), 1, "{job}");
    assert_eq!(charges[0]["cost_nusd"].as_i64(), Some(9_600 * 100_000), "{job}");
    let logs: Value = server.get_json(&format!("/templates/hello/jobs/{job_id}/logs?limit=500")).await;
    assert!(logs.to_string().contains("resumed (elevenlabs, attempt 2)"), "{logs}");
}

#[tokio::test]
async fn a_narration_is_held_at_its_price_before_anything_is_spoken_and_refused_past_its_bounds() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    add_key(&server, "xi-key-0001", 1).await;
    let openai = json!({ "provider": "openai", "model": "tts-1", "text": "hi", "voice": "alloy" });
    let job = run_op(&server, "narrate", openai).await;
    assert_eq!(job["error"]["code"], "provider_invalid_request", "{job}");
    assert!(job["error"]["message"].as_str().is_some_and(|m| m.contains("elevenlabs")), "{job}");
    // 50,000 characters at $0.10 per 1,000 are $5: a customer allowed $1 gets no word spoken.
    assert!(server.platform.db.add_credit(&server.customer.id, 1_000_000_000).await.expect("credited"));
    let job = run_op(&server, "narrate", narrate(&long_text(833))).await;
    assert_eq!(job["error"]["code"], "billing_limit_reached", "{job}");
    assert!(spoken_texts(&fakes).is_empty(), "nothing was spoken, so nothing was paid for");
}

async fn run_op(server: &TestServer, operation: &str, payload: Value) -> Value {
    let job_id = server.create_job("hello", operation, payload).await;
    server.wait_for("hello", &job_id, &["succeeded", "failed"], WITHIN).await
}

#[tokio::test]
async fn a_part_that_may_have_been_spoken_is_never_sent_again_and_only_the_parts_spoken_are_charged() {
    let fakes = FakeProviders::start().await;
    let server = server_with(&fakes).await;
    add_key(&server, "xi-key-0001", 1).await;
    // The first part is spoken; a gateway then answers 502 for the second, which ElevenLabs may
    // have spoken (and billed) behind it.
    let bad_gateway = Reply::status(502).body(json!({ "error": "bad gateway" }));
    fakes.script("xi-key-0001", [Reply::status(200), bad_gateway]);
    let job_id = server.create_job("hello", "narrate", narrate(&long_text(80))).await;
    server.wait_for("hello", &job_id, &["succeeded", "failed"], WITHIN).await;
    let job = server.job("hello", &job_id).await;
    assert_eq!(job["error"]["code"], "provider_failed", "{job}");
    assert!(job["error"]["message"].as_str().is_some_and(|m| m.contains("part 2 of 3")), "{job}");
    assert_eq!(spoken_texts(&fakes).len(), 2, "the second part was not sent again");
    // The first part's 1,980 characters are paid for; nothing else is.
    let charges = job["billing"]["charges"].as_array().expect("charges");
    assert_eq!(charges.len(), 1, "{job}");
    assert_eq!(charges[0]["cost_nusd"].as_i64(), Some(1_980 * 100_000), "{job}");
    let first_part = format!("narration-parts/{job_id}_r1/part-0000");
    let gone = server.platform.caps.storage.get(&first_part, 1 << 30).await;
    assert!(
        matches!(gone, Err(vidfarm::capabilities::StoreError::NotFound(_))),
        "a failed narration's parts are deleted"
    );
}

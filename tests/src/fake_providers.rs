//! Fake AI providers on loopback that speak each provider's real wire format (OpenAI chat
//! completions, image generations and speech, Gemini `generateContent` with text, image and
//! audio output, Veo's `predictLongRunning` in `fake_veo`, OpenRouter and Perplexity's
//! OpenAI-compatible chat, ElevenLabs `text-to-speech/{voice_id}` answering bare PCM), with scripted replies per key (200 / 429 in every header style /
//! 401 / 500) and a record of every request and of concurrent requests per key.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vidfarm::config::Endpoints;

/// A 1×1 PNG, the image every fake returns.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 1, 0, 0, 0, 1, 8,
    6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0,
    0xf0, 0x1f, 0, 0x05, 0, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60,
    0x82,
];

/// A scripted reply: a status with headers and a body (none: the provider's success).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        let body = (status != 200)
            .then(|| json!({"error": {"message": format!("scripted {status}"), "type": "scripted", "code": status}}));
        Self { status, headers: Vec::new(), body }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// An OpenAI-style chat completion answering `content` (what a writer model would say).
    pub fn chat(content: &str) -> Self {
        Self::status(200).body(json!({
            "id": "chatcmpl-scripted", "object": "chat.completion", "created": 1_700_000_000, "model": "scripted",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 60, "total_tokens": 100},
        }))
    }

    /// Gemini's 429: `RetryInfo.retryDelay` in the error body, no header.
    pub fn gemini_rate_limit(delay: &str) -> Self {
        Self::status(429).body(json!({"error": {"code": 429, "message": "Resource has been exhausted",
            "status": "RESOURCE_EXHAUSTED", "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                 "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}}))
    }
}

/// One request the fakes received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub provider: &'static str,
    pub path: String,
    pub key: String,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    scripts: HashMap<String, VecDeque<Reply>>,
    seen: Vec<Seen>,
    in_flight: HashMap<String, u32>,
    max_in_flight: HashMap<String, u32>,
}

/// The running fakes; clones share state.
#[derive(Clone)]
pub struct FakeProviders {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
    /// How long each success takes (to make calls overlap).
    delay: Arc<Mutex<Duration>>,
    /// Whether successes use every output token the request allows (200,000 when it sets no
    /// bound), as the costliest real answer would.
    greedy: Arc<std::sync::atomic::AtomicBool>,
    /// Veo's operations (see `fake_veo`).
    veo: Arc<Mutex<crate::fake_veo::VeoState>>,
}

impl FakeProviders {
    pub async fn start() -> Self {
        let fakes = Self {
            base: String::new(),
            inner: Arc::default(),
            delay: Arc::default(),
            greedy: Arc::default(),
            veo: Arc::default(),
        };
        fakes.set_veo_polls(2);
        let app = Router::new()
            .route("/openai/v1/chat/completions", post(|s, h, b| handle(s, h, b, "openai", "chat")))
            .route("/openai/v1/images/generations", post(|s, h, b| handle(s, h, b, "openai", "images")))
            .route("/openai/v1/audio/speech", post(|s, h, b| handle(s, h, b, "openai", "speech")))
            .route("/openrouter/api/v1/chat/completions", post(|s, h, b| handle(s, h, b, "openrouter", "chat")))
            .route("/perplexity/chat/completions", post(|s, h, b| handle(s, h, b, "perplexity", "chat")))
            .route("/elevenlabs/v1/text-to-speech/{voice_id}", post(elevenlabs))
            .route("/gemini/v1beta/models/{call}", post(gemini))
            .route("/gemini/v1beta/models/{model}/operations/{id}", get(crate::fake_veo::operation))
            .route("/gemini/v1beta/files/{file}", get(crate::fake_veo::file))
            .route("/gemini-storage/{id}", get(crate::fake_veo::storage))
            .with_state(fakes.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("the fakes serve") });
        Self { base, ..fakes }
    }

    /// Base URLs for the host's config.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            openai: format!("{}/openai/v1", self.base),
            gemini: format!("{}/gemini/v1beta", self.base),
            openrouter: format!("{}/openrouter/api/v1", self.base),
            perplexity: format!("{}/perplexity", self.base),
            elevenlabs: format!("{}/elevenlabs/v1", self.base),
        }
    }

    /// Queue replies for calls made with `key` (after them: successes).
    pub fn script(&self, key: &str, replies: impl IntoIterator<Item = Reply>) {
        self.inner.lock().expect("lock").scripts.entry(key.into()).or_default().extend(replies);
    }

    /// Make every call made with `key` answer `reply`, from now on.
    pub fn always(&self, key: &str, reply: Reply) {
        self.script(key, std::iter::repeat_n(reply, 10_000));
    }

    /// Answer every call with as many output tokens as it allows (200,000 when unbounded).
    pub fn set_greedy(&self, greedy: bool) {
        self.greedy.store(greedy, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.delay.lock().expect("lock") = delay;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().expect("lock").seen.clone()
    }

    pub fn calls_with(&self, key: &str) -> usize {
        self.seen().iter().filter(|s| s.key == key).count()
    }

    pub(crate) fn record(&self, seen: Seen) {
        self.inner.lock().expect("lock").seen.push(seen);
    }

    /// The next scripted reply for `key`, if one is queued.
    pub(crate) fn next_scripted(&self, key: &str) -> Option<Reply> {
        self.inner.lock().expect("lock").scripts.get_mut(key).and_then(VecDeque::pop_front)
    }

    pub(crate) fn veo(&self) -> std::sync::MutexGuard<'_, crate::fake_veo::VeoState> {
        self.veo.lock().expect("lock")
    }

    /// The most requests ever in flight at once with one key, per key.
    pub fn max_in_flight(&self) -> HashMap<String, u32> {
        self.inner.lock().expect("lock").max_in_flight.clone()
    }
}

async fn gemini(
    State(fakes): State<FakeProviders>,
    Path(call): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(model) = call.strip_suffix(":predictLongRunning") {
        return crate::fake_veo::submit(fakes, model, headers, body).await;
    }
    if !call.ends_with(":generateContent") {
        return (StatusCode::NOT_FOUND, "unknown Gemini method").into_response();
    }
    handle(State(fakes), headers, body, "gemini", "generate").await
}

/// `POST /v1/text-to-speech/{voice_id}?output_format=…`: the voice id and format travel in the
/// URL, so they are added to the recorded body as `voice_id` and `output_format`.
async fn elevenlabs(
    State(fakes): State<FakeProviders>,
    Path(voice_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Ok(Value::Object(mut request)) = serde_json::from_str::<Value>(&body) else {
        return elevenlabs_error(422, "invalid_body", "the body is not a JSON object");
    };
    request.insert("voice_id".into(), json!(voice_id));
    request.insert("output_format".into(), json!(query.get("output_format")));
    handle(State(fakes), headers, Value::Object(request).to_string(), "elevenlabs", "speech").await
}

/// An error in ElevenLabs' shape: `{"detail": {"status": …, "message": …}}`.
pub fn elevenlabs_error(status: u16, code: &str, message: &str) -> Response {
    let body = json!({"detail": {"status": code, "message": message}});
    (StatusCode::from_u16(status).expect("a status"), axum::Json(body)).into_response()
}

async fn handle(
    State(fakes): State<FakeProviders>,
    headers: HeaderMap,
    body: String,
    provider: &'static str,
    call: &'static str,
) -> Response {
    let key = match provider {
        "gemini" => headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string(),
        "elevenlabs" => headers.get("xi-api-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string(),
        _ => headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_string(),
    };
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the body is not JSON").into_response();
    };
    let reply = {
        let mut inner = fakes.inner.lock().expect("lock");
        inner.seen.push(Seen { provider, path: call.into(), key: key.clone(), body: request.clone() });
        let now = inner.in_flight.entry(key.clone()).or_default();
        *now += 1;
        let now = *now;
        let max = inner.max_in_flight.entry(key.clone()).or_default();
        *max = (*max).max(now);
        inner.scripts.get_mut(&key).and_then(VecDeque::pop_front)
    };
    let delay = *fakes.delay.lock().expect("lock");
    tokio::time::sleep(delay).await;
    let response = match reply {
        // A scripted success body (e.g. `Reply::chat`): served as is.
        Some(Reply { status: 200, body: Some(body), .. }) => axum::Json(body).into_response(),
        Some(Reply { status, headers, body }) if status != 200 => {
            let mut response = (StatusCode::from_u16(status).expect("a status"), axum::Json(body)).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(
                    axum::http::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                    value.parse().expect("a header value"),
                );
            }
            response
        }
        _ if provider == "elevenlabs" => elevenlabs_speech(&request),
        _ if call == "speech" => match openai_speech(&request) {
            Ok(wav) => ([("content-type", "audio/wav")], wav).into_response(),
            Err(problem) => {
                (StatusCode::BAD_REQUEST, axum::Json(json!({"error": {"message": problem}}))).into_response()
            }
        },
        _ => match success(provider, call, &request, &key, fakes.greedy.load(std::sync::atomic::Ordering::SeqCst)) {
            Ok(body) => axum::Json(body).into_response(),
            Err(problem) => {
                (StatusCode::BAD_REQUEST, axum::Json(json!({"error": {"message": problem}}))).into_response()
            }
        },
    };
    *fakes.inner.lock().expect("lock").in_flight.entry(key).or_default() -= 1;
    response
}

const LAYOUT: &str =
    r#"{"zone":"top","align":"center","max_width_percent":70,"justification":"the sky above the subject is empty"}"#;

/// The provider's success body, after checking the request has the fields the real API
/// requires (a malformed request gets the 400 the real one would).
fn success(provider: &str, call: &str, request: &Value, key: &str, greedy: bool) -> Result<Value, String> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(PNG);
    // Output tokens billed: a few, or (greedy) all the request allows.
    let allowed = ["/max_completion_tokens", "/max_tokens", "/generationConfig/maxOutputTokens"]
        .iter()
        .find_map(|p| request.pointer(p).and_then(Value::as_u64))
        .unwrap_or(200_000);
    let output_tokens = if greedy { allowed } else { 7 };
    if provider == "gemini" {
        let parts =
            request.pointer("/contents/0/parts").and_then(Value::as_array).ok_or("contents[0].parts is required")?;
        let prompt = parts.iter().filter_map(|p| p["text"].as_str()).collect::<String>();
        let layout = request
            .pointer("/systemInstruction/parts/0/text")
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains("overlay text"));
        if layout && !parts.iter().any(|p| p["inlineData"]["data"].is_string()) {
            return Err("the vision call has no inline image".into());
        }
        let modalities = request.pointer("/generationConfig/responseModalities").map(Value::to_string);
        if modalities.as_deref().is_some_and(|m| m.contains("AUDIO")) {
            return gemini_speech(request, &prompt);
        }
        let wants_image = modalities.is_some_and(|m| m.contains("IMAGE"));
        // An image costs what Gemini's image models bill for one: 1,290 output tokens.
        let output_tokens = if wants_image && greedy { 1_290 } else { output_tokens };
        let answer = if layout { LAYOUT.to_string() } else { answer_from(key, &prompt) };
        let mut out_parts = vec![json!({"text": answer})];
        if wants_image {
            out_parts.push(json!({"inlineData": {"mimeType": "image/png", "data": b64}}));
        }
        return Ok(json!({
            "candidates": [{"content": {"role": "model", "parts": out_parts}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": words(&prompt), "candidatesTokenCount": output_tokens,
                              "totalTokenCount": words(&prompt) as u64 + output_tokens},
        }));
    }
    let model = request["model"].as_str().ok_or("model is required")?;
    if call == "images" {
        let prompt = request["prompt"].as_str().ok_or("prompt is required")?;
        return Ok(json!({
            "created": 1_700_000_000,
            "data": [{"b64_json": b64, "revised_prompt": format!("revised: {prompt}")}],
            "usage": {"input_tokens": words(prompt), "output_tokens": if greedy { 6_240 } else { 1_056 }},
        }));
    }
    let messages = request["messages"].as_array().ok_or("messages is required")?;
    let last = messages.last().ok_or("messages must not be empty")?;
    let prompt = match &last["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => return Err("content must be a string or parts".into()),
    };
    let layout = messages[0]["content"].as_str().is_some_and(|s| s.contains("overlay text"));
    let mut message =
        json!({"role": "assistant", "content": if layout { LAYOUT.to_string() } else { answer_from(key, &prompt) }});
    if request["modalities"].to_string().contains("image") {
        message["images"] =
            json!([{"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{b64}")}}]);
    }
    let mut usage = json!({"prompt_tokens": words(&prompt), "completion_tokens": output_tokens,
                           "total_tokens": words(&prompt) as u64 + output_tokens});
    if provider == "openrouter" {
        usage["cost"] = json!(0.000_42);
    }
    Ok(json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": usage,
    }))
}

/// What the fakes answer a text prompt with: names the key by its last eight characters
/// only (a real provider never echoes a secret, and tests scan for leaked secrets).
pub fn answer_from(key: &str, prompt: &str) -> String {
    let tail: String = key.chars().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
    format!("answer from …{tail}: {prompt}")
}

/// How fast the fake voices speak.
pub const SPOKEN_CHARS_PER_SECOND: f64 = 15.0;

/// 24 kHz 16-bit mono PCM of a 220 Hz tone as long as `text` takes to say at
/// [`SPOKEN_CHARS_PER_SECOND`]: audible, and of a length a test can predict.
pub fn spoken_pcm(text: &str) -> Vec<u8> {
    let samples = (text.chars().count() as f64 / SPOKEN_CHARS_PER_SECOND * 24_000.0).round() as usize;
    (0..samples)
        .flat_map(|i| ((((i as f64 / 24_000.0) * 220.0 * std::f64::consts::TAU).sin() * 8_000.0) as i16).to_le_bytes())
        .collect()
}

/// `POST /v1/audio/speech` with `response_format: "wav"`: OpenAI streams the WAV, so its
/// RIFF and data sizes are the 0xFFFFFFFF placeholders, as here.
fn openai_speech(request: &Value) -> Result<Vec<u8>, String> {
    request["model"].as_str().ok_or("model is required")?;
    request["voice"].as_str().ok_or("voice is required")?;
    let input = request["input"].as_str().ok_or("input is required")?;
    if input.chars().count() > 4_096 {
        return Err("input is longer than 4096 characters".into());
    }
    if request["response_format"] != "wav" {
        return Err("this fake speaks only response_format wav".into());
    }
    let pcm = spoken_pcm(input);
    let mut wav = Vec::with_capacity(44 + pcm.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&u32::MAX.to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    for field in [
        16u32.to_le_bytes().as_slice(),
        &1u16.to_le_bytes(),
        &1u16.to_le_bytes(),
        &24_000u32.to_le_bytes(),
        &48_000u32.to_le_bytes(),
        &2u16.to_le_bytes(),
        &16u16.to_le_bytes(),
    ] {
        wav.extend_from_slice(field);
    }
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&u32::MAX.to_le_bytes());
    wav.extend_from_slice(&pcm);
    Ok(wav)
}

/// ElevenLabs' answer for `output_format=pcm_24000`: bare 16-bit mono PCM, with the characters
/// billed in `character-cost` and the request's id in `request-id`.
fn elevenlabs_speech(request: &Value) -> Response {
    let Some(text) = request["text"].as_str() else {
        return elevenlabs_error(422, "invalid_body", "text: Field required");
    };
    if request["voice_id"] == "missing" {
        return elevenlabs_error(404, "voice_not_found", "A voice with the voice_id missing was not found.");
    }
    if text.chars().count() > 5_000 {
        return elevenlabs_error(400, "max_character_limit_exceeded", "The text is longer than 5000 characters.");
    }
    if request["output_format"] != "pcm_24000" || !request["model_id"].is_string() {
        return elevenlabs_error(400, "invalid_request", "this fake speaks pcm_24000 with a model_id only");
    }
    let headers = [
        ("content-type", "audio/pcm".to_string()),
        ("character-cost", text.chars().count().to_string()),
        ("request-id", elevenlabs_request_id(text)),
    ];
    (headers, spoken_pcm(text)).into_response()
}

/// The `request-id` the fake gives the request that spoke `text` (tests name it to check that
/// a later request continues it).
pub fn elevenlabs_request_id(text: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    format!("req_{:016x}", hasher.finish())
}

/// A Gemini TTS answer: base64 PCM in `inlineData`, 32 audio tokens a second.
fn gemini_speech(request: &Value, text: &str) -> Result<Value, String> {
    request
        .pointer("/generationConfig/speechConfig/voiceConfig/prebuiltVoiceConfig/voiceName")
        .and_then(Value::as_str)
        .ok_or("generationConfig.speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName is required")?;
    let pcm = spoken_pcm(text);
    let audio_tokens = (pcm.len() as f64 / 48_000.0 * 32.0).ceil() as u64;
    Ok(json!({
        "candidates": [{"content": {"role": "model", "parts": [{"inlineData": {
            "mimeType": "audio/L16;codec=pcm;rate=24000",
            "data": base64::engine::general_purpose::STANDARD.encode(&pcm)}}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": words(text), "candidatesTokenCount": audio_tokens,
                          "totalTokenCount": words(text) as u64 + audio_tokens},
    }))
}

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

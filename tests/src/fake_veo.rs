//! Gemini's Veo on loopback, at the wire: `POST models/{model}:predictLongRunning` answers an
//! operation name; `GET models/{model}/operations/{id}` answers `{name}` while the clip is
//! "generating" and `{done, response.generateVideoResponse.generatedSamples[0].video.uri}`
//! after it (or the safety filter's `raiMediaFilteredReasons` for a prompt saying FILTERED);
//! the file URI checks the key and redirects to storage, which serves a real MP4 (FFmpeg) of
//! the length asked for. An operation is visible only to the key that submitted it.

use crate::fake_providers::{FakeProviders, Seen};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

/// What the fake knows of one operation.
#[derive(Clone, Debug)]
struct Operation {
    name: String,
    key: String,
    seconds: u32,
    aspect_ratio: String,
    prompt: String,
    polls: u32,
}

#[derive(Default)]
pub struct VeoState {
    operations: HashMap<String, Operation>,
    /// Polls an operation answers "running" before it is done.
    polls_before_done: u32,
    /// Keep every operation running (a host can be stopped mid-generation).
    hold: bool,
    clips: HashMap<(u32, String), Vec<u8>>,
    submitted: u64,
    /// Where finished operations say the clip is (`None`: this fake's own file URL).
    uri: Option<String>,
}

impl FakeProviders {
    /// Operations answer "running" to this many polls before they are done (default 2).
    pub fn set_veo_polls(&self, polls: u32) {
        self.veo().polls_before_done = polls;
    }

    /// Hold every operation running (`true`) until released (`false`).
    pub fn hold_veo(&self, hold: bool) {
        self.veo().hold = hold;
    }

    /// Make finished operations name `uri` as the clip's address (a provider answer gone bad).
    pub fn set_veo_uri(&self, uri: &str) {
        self.veo().uri = Some(uri.into());
    }

    /// How many generations were submitted with any key.
    pub fn veo_submits(&self) -> usize {
        self.seen().iter().filter(|s| s.path == "predictLongRunning").count()
    }

    /// How many polls the operations answered.
    pub fn veo_polls(&self) -> usize {
        self.seen().iter().filter(|s| s.path == "operation").count()
    }
}

fn gemini_error(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).expect("a status");
    let body = json!({"error": {"code": status, "message": message,
        "status": if status == 404 { "NOT_FOUND" } else { "INVALID_ARGUMENT" }}});
    (code, axum::Json(body)).into_response()
}

fn key_of(headers: &HeaderMap) -> String {
    headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// `POST models/{model}:predictLongRunning`.
pub async fn submit(fakes: FakeProviders, model: &str, headers: HeaderMap, body: String) -> Response {
    let key = key_of(&headers);
    let request: Value = serde_json::from_str(&body).unwrap_or_default();
    fakes.record(Seen {
        provider: "gemini",
        path: "predictLongRunning".into(),
        key: key.clone(),
        body: request.clone(),
    });
    if let Some(reply) = fakes.next_scripted(&key) {
        return (StatusCode::from_u16(reply.status).expect("a status"), axum::Json(reply.body)).into_response();
    }
    let prompt = request.pointer("/instances/0/prompt").and_then(Value::as_str).unwrap_or_default();
    let seconds = request.pointer("/parameters/durationSeconds").and_then(Value::as_u64).unwrap_or(8) as u32;
    let aspect = request.pointer("/parameters/aspectRatio").and_then(Value::as_str).unwrap_or("16:9");
    if prompt.is_empty() {
        return gemini_error(400, "instances[0].prompt is required");
    }
    if ![4, 6, 8].contains(&seconds) || !["16:9", "9:16"].contains(&aspect) {
        return gemini_error(400, "durationSeconds must be 4, 6 or 8 and aspectRatio 16:9 or 9:16");
    }
    let id = {
        let mut veo = fakes.veo();
        veo.submitted += 1;
        format!("op{:04}x{}", veo.submitted, std::process::id())
    };
    let name = format!("models/{model}/operations/{id}");
    let operation =
        Operation { name: name.clone(), key, seconds, aspect_ratio: aspect.into(), prompt: prompt.into(), polls: 0 };
    fakes.veo().operations.insert(id, operation);
    axum::Json(json!({"name": name})).into_response()
}

/// `GET models/{model}/operations/{id}`.
pub async fn operation(
    State(fakes): State<FakeProviders>,
    Path((_model, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let key = key_of(&headers);
    fakes.record(Seen { provider: "gemini", path: "operation".into(), key: key.clone(), body: json!({"id": id}) });
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_string();
    let mut veo = fakes.veo();
    let (hold, polls_before_done, uri) = (veo.hold, veo.polls_before_done, veo.uri.clone());
    let Some(operation) = veo.operations.get_mut(&id).filter(|o| o.key == key) else {
        return gemini_error(404, "Operation not found");
    };
    if hold || operation.polls < polls_before_done {
        operation.polls += 1;
        return axum::Json(json!({"name": operation.name})).into_response();
    }
    if operation.prompt.contains("FILTERED") {
        return axum::Json(json!({"name": operation.name, "done": true, "response": {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
            "generateVideoResponse": {"raiMediaFilteredCount": 1,
                "raiMediaFilteredReasons": ["The prompt was blocked by the safety filter."]}}}))
        .into_response();
    }
    let uri = uri.unwrap_or_else(|| format!("http://{host}/gemini/v1beta/files/{id}:download?alt=media"));
    axum::Json(json!({"name": operation.name, "done": true, "response": {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
        "generateVideoResponse": {"generatedSamples": [{"video": {"uri": uri}}]}}}))
    .into_response()
}

/// `GET files/{id}:download?alt=media`: the key's own file, by redirect to storage.
pub async fn file(State(fakes): State<FakeProviders>, Path(file): Path<String>, headers: HeaderMap) -> Response {
    let key = key_of(&headers);
    let id = file.trim_end_matches(":download").to_string();
    fakes.record(Seen { provider: "gemini", path: "download".into(), key: key.clone(), body: json!({"id": id}) });
    match fakes.veo().operations.get(&id) {
        Some(operation) if operation.key == key => {
            (StatusCode::FOUND, [("location", format!("/gemini-storage/{id}"))]).into_response()
        }
        _ => gemini_error(404, "File not found"),
    }
}

/// The storage a file URI redirects to: the clip, made once per length and shape.
pub async fn storage(State(fakes): State<FakeProviders>, Path(id): Path<String>) -> Response {
    let Some(operation) = fakes.veo().operations.get(&id).cloned() else {
        return (StatusCode::NOT_FOUND, "no such object").into_response();
    };
    let shape = (operation.seconds, operation.aspect_ratio.clone());
    if let Some(clip) = fakes.veo().clips.get(&shape).cloned() {
        return ([("content-type", "video/mp4")], clip).into_response();
    }
    let clip = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().expect("a temp dir");
        let size = if operation.aspect_ratio == "9:16" { "180x320" } else { "320x180" };
        let path = dir.path().join("clip.mp4");
        let video = format!("testsrc=size={size}:rate=24:duration={}", operation.seconds);
        let audio = format!("sine=frequency=440:duration={}", operation.seconds);
        crate::media::ffmpeg(
            &["-f", "lavfi", "-i", &video, "-f", "lavfi", "-i", &audio, "-c:v", "libx264", "-preset", "ultrafast"],
            &path,
        );
        std::fs::read(path).expect("the clip")
    })
    .await
    .expect("ffmpeg ran");
    fakes.veo().clips.insert(shape, clip.clone());
    ([("content-type", "video/mp4")], clip).into_response()
}

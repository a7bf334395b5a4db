//! Video generation at the wire: Gemini's Veo (`POST models/{model}:predictLongRunning`, then
//! `GET {operation name}` until `done`, then the sample's `video.uri`, which redirects to the
//! file). It is asynchronous at the provider: a submit answers with an operation name in
//! seconds, the clip is ready minutes later. Priced per second of video, as Google bills it.
//!
//! OpenAI's Videos API (Sora 2) is not offered: OpenAI shut it down on 24 September 2026 with
//! no replacement (its video-generation guide), so a request for it is refused up front.

use super::Provider;
use super::wire::{CallError, send_json, text_at};
use crate::money;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The longest prompt a generation takes.
pub const MAX_PROMPT_CHARS: usize = 4_000;
pub const MAX_NEGATIVE_PROMPT_CHARS: usize = 1_000;

/// What a template asked to generate (stored as the generation's request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoTask {
    /// `gemini` (the only provider with a video API here).
    pub provider: String,
    pub model: String,
    pub prompt: String,
    pub seconds: u32,
    /// `16:9` or `9:16`.
    pub aspect_ratio: String,
    pub negative_prompt: Option<String>,
}

/// (model prefix, USD per second of video, the lengths it makes). Longest prefix first.
/// Veo 3.1 with audio at 720p/1080p: $0.40 a second, fast $0.15 (Gemini API pricing). Veo 3.0
/// and 2.0 were retired on 30 June 2026; `veo-3.1-lite` has no published price yet.
const MODELS: &[(Provider, &str, f64, &[u32])] =
    &[(Provider::Gemini, "veo-3.1-fast", 0.15, &[4, 6, 8]), (Provider::Gemini, "veo-3.1-generate", 0.40, &[4, 6, 8])];

fn model_entry(provider: Provider, model: &str) -> Option<&'static (Provider, &'static str, f64, &'static [u32])> {
    MODELS.iter().find(|(p, prefix, _, _)| *p == provider && model.starts_with(prefix))
}

impl VideoTask {
    pub fn provider(&self) -> Option<Provider> {
        super::parse_provider(&self.provider)
    }

    /// Why the request cannot be generated, naming the field; checked before anything is
    /// held or submitted.
    pub fn refusal(&self) -> Option<String> {
        let Some(provider) = self.provider() else {
            return Some(format!("provider: `{}` does not generate video", self.provider));
        };
        if provider == Provider::Openai {
            return Some("provider: OpenAI's Videos API shut down on 24 September 2026; use gemini (Veo)".into());
        }
        if provider != Provider::Gemini {
            return Some(format!("provider: {} does not generate video; use gemini (Veo)", self.provider));
        }
        let name_ok = (1..=64).contains(&self.model.len())
            && self.model.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
        if !name_ok {
            // The model is part of the request's URL: nothing in it may change the path.
            return Some("model: must be 1 to 64 lower-case letters, digits, `.` or `-`".into());
        }
        let Some((_, _, _, lengths)) = model_entry(provider, &self.model) else {
            let known: Vec<&str> = MODELS.iter().filter(|m| m.0 == provider).map(|m| m.1).collect();
            return Some(format!(
                "model: `{}` is not a {} video model whose price is known (one of {}…)",
                self.model,
                self.provider,
                known.join("…, ")
            ));
        };
        let prompt = self.prompt.chars().count();
        if self.prompt.trim().is_empty() {
            return Some("prompt: must not be empty".into());
        }
        if prompt > MAX_PROMPT_CHARS {
            return Some(format!("prompt: {prompt} characters; at most {MAX_PROMPT_CHARS}"));
        }
        if !lengths.contains(&self.seconds) {
            return Some(format!(
                "duration-seconds: {} s; `{}` makes clips of {lengths:?} s",
                self.seconds, self.model
            ));
        }
        if !["16:9", "9:16"].contains(&self.aspect_ratio.as_str()) {
            return Some(format!("aspect-ratio: `{}`; must be 16:9 or 9:16", self.aspect_ratio));
        }
        match &self.negative_prompt {
            Some(n) if n.chars().count() > MAX_NEGATIVE_PROMPT_CHARS => {
                Some(format!("negative-prompt: at most {MAX_NEGATIVE_PROMPT_CHARS} characters"))
            }
            _ => None,
        }
    }

    /// What the clip costs at the provider, nano-USD: its seconds at the model's rate (Google
    /// bills the length asked for).
    pub fn cost_nusd(&self) -> i64 {
        let rate = self.provider().and_then(|p| model_entry(p, &self.model)).map_or(0.0, |m| m.2);
        money::cost_from_usd(rate * f64::from(self.seconds))
    }

    /// The backend name on the generation's row and in its events.
    pub fn backend(&self) -> &'static str {
        "gemini-veo"
    }
}

/// Where a submitted generation stands at the provider.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    /// Still running (Veo reports no percentage).
    Pending,
    /// Done: fetch the clip from here (with the key).
    Ready { download_url: String },
    /// The provider gave up on it (safety filter, internal error): nothing to pay for.
    Failed(String),
}

/// Veo's endpoints, with the HTTP client to reach them.
pub struct Veo<'a> {
    pub http: &'a reqwest::Client,
    /// `…/v1beta`.
    pub base_url: &'a str,
}

impl Veo<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url.trim_end_matches('/'), path)
    }

    /// Submit the generation; the answer is its operation's name.
    pub async fn submit(&self, secret: &str, task: &VideoTask) -> Result<String, CallError> {
        let mut parameters =
            json!({"aspectRatio": task.aspect_ratio, "durationSeconds": task.seconds, "sampleCount": 1});
        if let Some(negative) = &task.negative_prompt {
            parameters["negativePrompt"] = json!(negative);
        }
        let body = json!({"instances": [{"prompt": task.prompt}], "parameters": parameters});
        let post = self.http.post(self.url(&format!("models/{}:predictLongRunning", task.model)));
        let answer = send_json(Provider::Gemini, post.header("x-goog-api-key", secret).json(&body)).await?;
        operation_name(text_at(&answer, "/name")?).map(str::to_string)
    }

    /// Ask where the operation `name` stands.
    pub async fn poll(&self, secret: &str, name: &str) -> Result<Poll, CallError> {
        let get = self.http.get(self.url(operation_name(name)?)).header("x-goog-api-key", secret);
        Ok(read_operation(&send_json(Provider::Gemini, get).await?))
    }

    /// Download the finished clip to `path`, streamed, at most `max_bytes` (more is refused).
    /// The file URL must be on the configured Gemini endpoint; it redirects to Google's
    /// storage, which is followed (at most 3 hops, https or the endpoint itself, public
    /// addresses only unless `allow_private`) without the key: the key goes to Google alone.
    pub async fn download(
        &self,
        secret: &str,
        url: &str,
        path: &std::path::Path,
        max_bytes: u64,
        allow_private: bool,
    ) -> Result<u64, CallError> {
        let origin = |u: &str| reqwest::Url::parse(u).ok().map(|u| u.origin());
        let endpoint = origin(self.base_url);
        if endpoint.is_none() || origin(url) != endpoint {
            return Err(CallError::BadAnswer(format!("the clip's address `{url}` is not on the Gemini endpoint")));
        }
        let mut request = self.http.get(url).header("x-goog-api-key", secret);
        for _ in 0..4 {
            let response = request
                .timeout(DOWNLOAD_TIMEOUT)
                .send()
                .await
                .map_err(|e| CallError::Transient { status: None, detail: format!("downloading the clip: {e}") })?;
            let status = response.status();
            if status.is_redirection() {
                let next = response
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| response.url().join(l).ok())
                    .ok_or_else(|| CallError::BadAnswer("a redirect without a usable location".into()))?;
                let on_endpoint = Some(next.origin()) == endpoint;
                if !on_endpoint {
                    if next.scheme() != "https" {
                        return Err(CallError::BadAnswer(format!("the clip redirects to `{next}`, not https")));
                    }
                    let (url, addrs) = crate::outbound::check_destination(next.as_str(), allow_private)
                        .await
                        .map_err(|reason| CallError::BadAnswer(format!("the clip redirects to `{next}`: {reason}")))?;
                    // Sent to the addresses just approved: a DNS answer that changes in between
                    // cannot aim it elsewhere.
                    let pinned = crate::outbound::pinned_client(&url, &addrs, DOWNLOAD_TIMEOUT)
                        .map_err(|e| CallError::Transient { status: None, detail: format!("{e}") })?;
                    request = pinned.get(url);
                } else {
                    request = self.http.get(next);
                }
                continue;
            }
            if !status.is_success() {
                let headers = response.headers().clone();
                let mut body = Vec::new();
                let mut response = response;
                while let Ok(Some(chunk)) = response.chunk().await {
                    body.extend_from_slice(&chunk);
                    if body.len() >= 64 << 10 {
                        break; // an error's first 64 KiB say what it is
                    }
                }
                return Err(super::wire::failure(Provider::Gemini, status.as_u16(), &headers, &body));
            }
            if response.content_length().is_some_and(|length| length > max_bytes) {
                return Err(CallError::BadAnswer(format!("the clip is larger than {max_bytes} bytes")));
            }
            return stream_to(response, path, max_bytes).await;
        }
        Err(CallError::BadAnswer("the clip redirects more than 3 times".into()))
    }
}

/// The longest a clip's download may take (a few hundred MB at worst).
const DOWNLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

async fn stream_to(mut response: reqwest::Response, path: &std::path::Path, max_bytes: u64) -> Result<u64, CallError> {
    use tokio::io::AsyncWriteExt;
    let local = |e: std::io::Error| CallError::Transient { status: None, detail: format!("writing the clip: {e}") };
    let mut file = tokio::fs::File::create(path).await.map_err(local)?;
    let mut written = 0u64;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| CallError::Transient { status: None, detail: format!("downloading the clip: {e}") })?
    {
        written += chunk.len() as u64;
        if written > max_bytes {
            return Err(CallError::BadAnswer(format!("the clip is larger than {max_bytes} bytes")));
        }
        file.write_all(&chunk).await.map_err(local)?;
    }
    file.flush().await.map_err(local)?;
    Ok(written)
}

/// A Veo operation: `{name}` while it runs; `{name, done: true, response: {generateVideoResponse:
/// {generatedSamples: [{video: {uri}}]}}}` when it is done; `{done: true, error: {code, message}}`
/// when it failed. Samples withheld by the safety filter are counted in `raiMediaFilteredCount`
/// with their reasons in `raiMediaFilteredReasons`.
fn read_operation(answer: &Value) -> Poll {
    if answer["done"] != true && answer.get("response").is_none() && answer.get("error").is_none() {
        return Poll::Pending;
    }
    if let Some(message) = answer.pointer("/error/message").and_then(Value::as_str) {
        return Poll::Failed(format!("Veo: {message}"));
    }
    let response = &answer["response"]["generateVideoResponse"];
    match response.pointer("/generatedSamples/0/video/uri").and_then(Value::as_str) {
        Some(uri) => Poll::Ready { download_url: uri.to_string() },
        None => {
            let reasons = response["raiMediaFilteredReasons"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "));
            Poll::Failed(match reasons.filter(|r| !r.is_empty()) {
                Some(reasons) => format!("Veo withheld the video: {reasons}"),
                None => "Veo finished without a video".into(),
            })
        }
    }
}

/// An operation name as it may appear in a URL path: `models/<model>/operations/<id>`, each
/// part plain. Anything else (a `..`, a query, another host) is a bad answer, never followed.
fn operation_name(name: &str) -> Result<&str, CallError> {
    let plain =
        |s: &str| !s.is_empty() && s != ".." && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    match name.split('/').collect::<Vec<_>>().as_slice() {
        ["models", model, "operations", id] if plain(model) && plain(id) => Ok(name),
        _ => Err(CallError::BadAnswer(format!("the operation name `{name}` is not models/…/operations/…"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(provider: &str, model: &str, seconds: u32) -> VideoTask {
        VideoTask {
            provider: provider.into(),
            model: model.into(),
            prompt: "a cat surfing".into(),
            seconds,
            aspect_ratio: "16:9".into(),
            negative_prompt: None,
        }
    }

    #[test]
    fn requests_are_refused_naming_the_field_before_anything_is_paid() {
        assert_eq!(task("gemini", "veo-3.1-generate-preview", 8).refusal(), None);
        assert_eq!(task("gemini", "veo-3.1-fast-generate-001", 4).refusal(), None);
        assert!(
            task("gemini", "veo-3.1-generate-preview", 12).refusal().expect("refused").starts_with("duration-seconds")
        );
        assert!(task("gemini", "veo-2.0-generate-001", 8).refusal().expect("refused").starts_with("model"));
        let sneaky = task("gemini", "veo-3.1-fast/../veo-3.1-generate-preview", 8);
        assert!(sneaky.refusal().expect("refused").starts_with("model"), "a model cannot rewrite the URL");
        assert!(task("gemini", "veo-3.1-fast?x=1", 8).refusal().is_some());
        assert!(task("openai", "sora-2", 8).refusal().expect("refused").contains("shut down"));
        assert!(task("perplexity", "sonar", 8).refusal().expect("refused").starts_with("provider"));
        let mut wide = task("gemini", "veo-3.1-generate-preview", 8);
        wide.aspect_ratio = "4:3".into();
        assert!(wide.refusal().expect("refused").starts_with("aspect-ratio"));
        wide.aspect_ratio = "9:16".into();
        wide.negative_prompt = Some("x".repeat(MAX_NEGATIVE_PROMPT_CHARS + 1));
        assert!(wide.refusal().expect("refused").starts_with("negative-prompt"));
        wide.negative_prompt = None;
        wide.prompt = " ".into();
        assert!(wide.refusal().expect("refused").starts_with("prompt"));
    }

    #[test]
    fn a_clip_costs_its_seconds_at_the_models_rate() {
        assert_eq!(task("gemini", "veo-3.1-generate-preview", 8).cost_nusd(), 3_200_000_000);
        assert_eq!(task("gemini", "veo-3.1-fast-generate-preview", 8).cost_nusd(), 1_200_000_000);
        assert_eq!(task("gemini", "veo-3.1-generate-001", 4).cost_nusd(), 1_600_000_000);
    }

    #[test]
    fn operations_are_read_as_veo_writes_them() {
        let pending = json!({"name": "models/veo-3.1-generate-preview/operations/abc"});
        assert_eq!(read_operation(&pending), Poll::Pending);
        let done = json!({"name": "x", "done": true, "response": {"@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
            "generateVideoResponse": {"generatedSamples": [{"video": {"uri": "https://g/v1beta/files/f:download?alt=media"}}]}}});
        assert_eq!(
            read_operation(&done),
            Poll::Ready { download_url: "https://g/v1beta/files/f:download?alt=media".into() }
        );
        let filtered = json!({"done": true, "response": {"generateVideoResponse": {"raiMediaFilteredCount": 1,
            "raiMediaFilteredReasons": ["The prompt could not be submitted."]}}});
        assert_eq!(
            read_operation(&filtered),
            Poll::Failed("Veo withheld the video: The prompt could not be submitted.".into())
        );
        let failed = json!({"done": true, "error": {"code": 13, "message": "internal"}});
        assert_eq!(read_operation(&failed), Poll::Failed("Veo: internal".into()));
    }

    #[test]
    fn only_plain_operation_names_reach_a_url() {
        assert!(operation_name("models/veo-3.1-generate-preview/operations/a1b2").is_ok());
        assert!(operation_name("models/../../admin/operations/x").is_err());
        assert!(operation_name("models/x/operations/y?key=z").is_err());
        assert!(operation_name("https://evil/operations/x").is_err());
        assert!(operation_name("").is_err());
        assert!(operation_name("operations/x").is_err(), "only a model's operations");
    }
}

//! The Gemini wire format: `models/{model}:generateContent` with `x-goog-api-key`, for text,
//! images (`responseModalities`) and vision (inline image data).

use super::Provider;
use super::openai::ChatAnswer;
use super::wire::{CallError, Usage, count_at, send_json};
use crate::runtime::bindings::providers::{ImageRequest, ImageResponse, TextRequest};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

pub struct Gemini<'a> {
    pub http: &'a reqwest::Client,
    /// e.g. `https://generativelanguage.googleapis.com/v1beta`
    pub base_url: &'a str,
}

impl Gemini<'_> {
    pub(super) async fn generate(&self, secret: &str, model: &str, body: &Value) -> Result<Value, CallError> {
        if model.is_empty() || model.contains(['/', '?', '#', ':']) {
            return Err(CallError::Rejected { status: 400, detail: format!("`{model}` is not a Gemini model name") });
        }
        let url = format!("{}/models/{model}:generateContent", self.base_url.trim_end_matches('/'));
        send_json(Provider::Gemini, self.http.post(url).header("x-goog-api-key", secret).json(body)).await
    }

    pub async fn text(&self, secret: &str, request: &TextRequest) -> Result<ChatAnswer, CallError> {
        let mut config = json!({});
        if let Some(t) = request.temperature {
            config["temperature"] = json!(t);
        }
        if let Some(max) = request.max_output_tokens {
            config["maxOutputTokens"] = json!(max);
        }
        let parts = vec![json!({"text": request.prompt})];
        self.text_body(secret, &request.model, &body(request.system.as_deref(), parts, config)).await
    }

    /// Text from a prepared body (the vision call builds its own).
    pub async fn text_body(&self, secret: &str, model: &str, body: &Value) -> Result<ChatAnswer, CallError> {
        let answer = self.generate(secret, model, body).await?;
        let text: String = parts(&answer).iter().filter_map(|p| p["text"].as_str()).collect();
        if text.is_empty() {
            return Err(CallError::BadAnswer(refusal(&answer)));
        }
        Ok(ChatAnswer { text, usage: usage(&answer, 0) })
    }

    pub async fn image(&self, secret: &str, request: &ImageRequest) -> Result<(ImageResponse, Usage), CallError> {
        let config = json!({"responseModalities": ["TEXT", "IMAGE"]});
        let answer =
            self.generate(secret, &request.model, &body(None, vec![json!({"text": request.prompt})], config)).await?;
        let parts = parts(&answer);
        let inline =
            parts.iter().find_map(|p| p.get("inlineData")).ok_or_else(|| CallError::BadAnswer(refusal(&answer)))?;
        let bytes = STANDARD
            .decode(inline["data"].as_str().unwrap_or_default())
            .map_err(|e| CallError::BadAnswer(format!("`inlineData.data` is not base64: {e}")))?;
        let content_type = inline["mimeType"].as_str().unwrap_or("image/png").to_string();
        let caption: String = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        let image = ImageResponse { bytes, content_type, revised_prompt: Some(caption).filter(|c| !c.is_empty()) };
        Ok((image, usage(&answer, 1)))
    }
}

/// A `generateContent` body: one user turn of `parts`, an optional system instruction.
pub fn body(system: Option<&str>, parts: Vec<Value>, config: Value) -> Value {
    let mut body = json!({"contents": [{"role": "user", "parts": parts}], "generationConfig": config});
    if let Some(system) = system {
        body["systemInstruction"] = json!({"parts": [{"text": system}]});
    }
    body
}

/// An image part from bytes.
pub fn inline_image(content_type: &str, bytes: &[u8]) -> Value {
    json!({"inlineData": {"mimeType": content_type, "data": STANDARD.encode(bytes)}})
}

fn parts(answer: &Value) -> Vec<Value> {
    answer.pointer("/candidates/0/content/parts").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// Why Gemini gave no content (a safety block names its reason).
fn refusal(answer: &Value) -> String {
    let reason = answer
        .pointer("/promptFeedback/blockReason")
        .or_else(|| answer.pointer("/candidates/0/finishReason"))
        .and_then(Value::as_str)
        .unwrap_or("no content");
    format!("Gemini returned no usable content ({reason})")
}

fn usage(answer: &Value, images: u32) -> Usage {
    Usage {
        input_tokens: count_at(answer, "/usageMetadata/promptTokenCount"),
        // Thinking tokens are billed as output (and count against `maxOutputTokens`).
        output_tokens: count_at(answer, "/usageMetadata/candidatesTokenCount")
            .saturating_add(count_at(answer, "/usageMetadata/thoughtsTokenCount")),
        images,
        ..Usage::default()
    }
}

//! The OpenAI wire format: chat completions (OpenAI, and the OpenAI-compatible OpenRouter and
//! Perplexity), image generations (OpenAI), and images through chat modalities (OpenRouter).

use super::Provider;
use super::wire::{CallError, Usage, count_at, decode_data_url, send_json, text_at};
use crate::runtime::bindings::providers::{ImageRequest, ImageResponse, TextRequest};
use base64::Engine;
use serde_json::{Value, json};

/// One OpenAI-compatible endpoint: its base URL (with the version path) and its flavour.
pub struct OpenAiCompatible<'a> {
    pub http: &'a reqwest::Client,
    pub base_url: &'a str,
    pub provider: Provider,
}

/// A chat call's answer.
pub struct ChatAnswer {
    pub text: String,
    pub usage: Usage,
}

impl OpenAiCompatible<'_> {
    fn post(&self, path: &str, secret: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base_url.trim_end_matches('/'))).bearer_auth(secret).json(body)
    }

    /// `POST /chat/completions` with a system and a user message.
    pub async fn chat(&self, secret: &str, request: &TextRequest) -> Result<ChatAnswer, CallError> {
        let mut messages = Vec::new();
        if let Some(system) = &request.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": request.prompt}));
        let mut body = json!({"model": request.model, "messages": messages});
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(max) = request.max_output_tokens {
            body[if self.provider == Provider::Openai { "max_completion_tokens" } else { "max_tokens" }] = json!(max);
        }
        self.chat_body(secret, &body).await
    }

    /// A chat call with a prepared body (vision and JSON-mode calls build their own).
    pub async fn chat_body(&self, secret: &str, body: &Value) -> Result<ChatAnswer, CallError> {
        let answer = send_json(self.provider, self.post("/chat/completions", secret, body)).await?;
        let text = text_at(&answer, "/choices/0/message/content")?.to_string();
        Ok(ChatAnswer { text, usage: chat_usage(&answer) })
    }

    /// An image: `POST /images/generations` on OpenAI, chat with image output on OpenRouter.
    pub async fn image(&self, secret: &str, request: &ImageRequest) -> Result<(ImageResponse, Usage), CallError> {
        match self.provider {
            Provider::Openrouter => self.image_through_chat(secret, request).await,
            _ => self.image_generation(secret, request).await,
        }
    }

    async fn image_generation(
        &self,
        secret: &str,
        request: &ImageRequest,
    ) -> Result<(ImageResponse, Usage), CallError> {
        let mut body = json!({"model": request.model, "prompt": request.prompt, "n": 1});
        if let Some(size) = &request.size {
            body["size"] = json!(size);
        }
        if request.model.starts_with("dall-e") {
            body["response_format"] = json!("b64_json"); // gpt-image models always answer in base64
        }
        let answer = send_json(self.provider, self.post("/images/generations", secret, &body)).await?;
        let encoded = text_at(&answer, "/data/0/b64_json")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| CallError::BadAnswer(format!("`b64_json` is not base64: {e}")))?;
        let usage = Usage {
            input_tokens: count_at(&answer, "/usage/input_tokens"),
            output_tokens: count_at(&answer, "/usage/output_tokens"),
            images: 1,
            ..Usage::default()
        };
        let image = ImageResponse {
            content_type: sniff_image_type(&bytes).into(),
            bytes,
            revised_prompt: answer.pointer("/data/0/revised_prompt").and_then(Value::as_str).map(str::to_string),
        };
        Ok((image, usage))
    }

    async fn image_through_chat(
        &self,
        secret: &str,
        request: &ImageRequest,
    ) -> Result<(ImageResponse, Usage), CallError> {
        let body = json!({
            "model": request.model,
            "messages": [{"role": "user", "content": request.prompt}],
            "modalities": ["image", "text"],
        });
        let answer = send_json(self.provider, self.post("/chat/completions", secret, &body)).await?;
        let url = text_at(&answer, "/choices/0/message/images/0/image_url/url")?;
        let (content_type, bytes) =
            decode_data_url(url).ok_or_else(|| CallError::BadAnswer("the image is not a base64 data URL".into()))?;
        let revised = answer.pointer("/choices/0/message/content").and_then(Value::as_str).filter(|s| !s.is_empty());
        let usage = Usage { images: 1, ..chat_usage(&answer) };
        Ok((ImageResponse { bytes, content_type, revised_prompt: revised.map(str::to_string) }, usage))
    }
}

fn chat_usage(answer: &Value) -> Usage {
    Usage {
        input_tokens: count_at(answer, "/usage/prompt_tokens"),
        output_tokens: count_at(answer, "/usage/completion_tokens"),
        images: 0,
        characters: 0,
        reported_cost_usd: answer.pointer("/usage/cost").and_then(Value::as_f64).filter(|c| c.is_finite() && *c >= 0.0),
    }
}

/// The media type of PNG, JPEG and WebP bytes (what image APIs return).
pub fn sniff_image_type(bytes: &[u8]) -> &'static str {
    match bytes {
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [0xff, 0xd8, ..] => "image/jpeg",
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => "image/webp",
        _ => "application/octet-stream",
    }
}

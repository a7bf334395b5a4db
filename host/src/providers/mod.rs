//! AI providers: the engine's [`ProviderRouter`] (customer keys leased from SQLite, real
//! OpenAI / Gemini / OpenRouter / Perplexity / ElevenLabs wire formats) and, for development with no key
//! at all, the clearly labelled [`DevEchoProvider`].

mod dev_echo;
mod elevenlabs;
mod gemini;
pub mod keys;
mod layout;
pub mod narration;
mod narration_runs;
mod openai;
mod png;
mod pricing;
mod quote;
mod rate_limit;
mod router;
pub mod secrets;
mod setup;
mod speech;
pub mod video;
mod video_runs;
mod wire;

pub use dev_echo::DevEchoProvider;
pub use narration_runs::{NarrationOutput, delete_parts as delete_narration_parts};
pub use rate_limit::{go_duration, retry_after_header};
pub use router::ProviderRouter;
pub use secrets::MasterKey;
pub use setup::{ProviderSetupError, env_keys, master_key};
pub use video_runs::VideoScope;

use crate::capabilities::ProviderCall;
use crate::outbound::DownloadError;
use crate::runtime::bindings::providers::LayoutRequest;
use crate::runtime::bindings::speech::VoiceProvider;
use crate::runtime::bindings::types::Provider as WitProvider;
use openai::{ChatAnswer, OpenAiCompatible};
use serde_json::json;
use wire::CallError;

/// An image's media type and bytes.
type InlineImage = (String, Vec<u8>);

/// The AI providers the host routes to. The WIT world's `types.provider` names the first
/// four and cannot grow (wasmtime links enum cases exactly, so a new case would break every
/// component built before it); ElevenLabs is reached through the `speech` interface only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Openai,
    Gemini,
    Openrouter,
    Perplexity,
    Elevenlabs,
}

impl From<WitProvider> for Provider {
    fn from(p: WitProvider) -> Self {
        match p {
            WitProvider::Openai => Self::Openai,
            WitProvider::Gemini => Self::Gemini,
            WitProvider::Openrouter => Self::Openrouter,
            WitProvider::Perplexity => Self::Perplexity,
        }
    }
}

impl From<VoiceProvider> for Provider {
    fn from(p: VoiceProvider) -> Self {
        match p {
            VoiceProvider::Openai => Self::Openai,
            VoiceProvider::Gemini => Self::Gemini,
            VoiceProvider::Elevenlabs => Self::Elevenlabs,
        }
    }
}

impl serde::Serialize for Provider {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(provider_name(*self))
    }
}

/// Every provider, in the order lists show them.
pub const ALL: [Provider; 5] =
    [Provider::Openai, Provider::Gemini, Provider::Openrouter, Provider::Perplexity, Provider::Elevenlabs];

/// The lower-case name used in the API, the database and metrics.
pub fn provider_name(p: Provider) -> &'static str {
    match p {
        Provider::Openai => "openai",
        Provider::Gemini => "gemini",
        Provider::Openrouter => "openrouter",
        Provider::Perplexity => "perplexity",
        Provider::Elevenlabs => "elevenlabs",
    }
}

pub fn parse_provider(name: &str) -> Option<Provider> {
    ALL.into_iter().find(|p| provider_name(*p) == name)
}

impl ProviderRouter {
    fn openai(&self, provider: Provider) -> OpenAiCompatible<'_> {
        let endpoints = &self.settings.endpoints;
        let base_url = match provider {
            Provider::Openrouter => &endpoints.openrouter,
            Provider::Perplexity => &endpoints.perplexity,
            _ => &endpoints.openai,
        };
        OpenAiCompatible { http: &self.http, base_url, provider }
    }

    fn elevenlabs(&self) -> elevenlabs::ElevenLabs<'_> {
        elevenlabs::ElevenLabs { http: &self.http, base_url: &self.settings.endpoints.elevenlabs }
    }

    fn gemini(&self) -> gemini::Gemini<'_> {
        gemini::Gemini { http: &self.http, base_url: &self.settings.endpoints.gemini }
    }

    /// A vision call asking for the layout JSON: the image goes by URL to OpenAI-compatible
    /// providers and inline to Gemini (`inline`, fetched once before any key is leased:
    /// Gemini cannot fetch URLs itself).
    async fn vision(
        &self,
        secret: &str,
        request: &LayoutRequest,
        inline: Option<&InlineImage>,
        max_output: Option<u32>,
    ) -> Result<ChatAnswer, CallError> {
        let prompt = layout::user_prompt(request);
        let provider = Provider::from(request.provider);
        if let (Provider::Gemini, Some((content_type, bytes))) = (provider, inline) {
            let parts = vec![json!({"text": prompt}), gemini::inline_image(content_type, bytes)];
            let mut config = json!({"responseMimeType": "application/json", "temperature": 0.2});
            if let Some(max) = max_output {
                config["maxOutputTokens"] = json!(max);
            }
            let body = gemini::body(Some(layout::SYSTEM), parts, config);
            return self.gemini().text_body(secret, &request.model, &body).await;
        }
        let mut body = json!({
            "model": request.model,
            "messages": [
                {"role": "system", "content": layout::SYSTEM},
                {"role": "user", "content": [
                    {"type": "text", "text": prompt},
                    {"type": "image_url", "image_url": {"url": request.image_url}},
                ]},
            ],
        });
        if provider != Provider::Perplexity {
            body["response_format"] = json!({"type": "json_object"});
        }
        if let Some(max) = max_output {
            body[if provider == Provider::Openai { "max_completion_tokens" } else { "max_tokens" }] = json!(max);
        }
        self.openai(provider).chat_body(secret, &body).await
    }

    /// The image a Gemini layout call sends inline; `None` for every other call.
    async fn inline_image(&self, call: &ProviderCall) -> Result<Option<InlineImage>, CallError> {
        match call {
            ProviderCall::Layout(r) if r.provider == WitProvider::Gemini => {
                self.fetch_image(&r.image_url).await.map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The image at `url` (a `data:` URL, or http(s) to a public address in production).
    async fn fetch_image(&self, url: &str) -> Result<InlineImage, CallError> {
        const MAX_IMAGE_BYTES: usize = 20 << 20;
        let rejected = |detail: String| CallError::Rejected { status: 400, detail };
        if let Some(decoded) = wire::decode_data_url(url) {
            if decoded.1.len() > MAX_IMAGE_BYTES {
                return Err(rejected("the image is larger than 20 MiB".into()));
            }
            return Ok(decoded);
        }
        // Read as it arrives and stop at the cap: a 400 MB answer costs 20 MiB, not 400 MB.
        let mut bytes = Vec::new();
        let allow_private = self.settings.allow_private_urls;
        crate::outbound::download_capped(url, allow_private, self.settings.timeout, MAX_IMAGE_BYTES as u64, &mut bytes)
            .await
            .map_err(|e| match e {
                DownloadError::Refused(reason) => rejected(reason),
                DownloadError::TooLarge { .. } => rejected("the image is larger than 20 MiB".into()),
                DownloadError::Unreachable(m) => rejected(format!("fetching the image: {m}")),
                DownloadError::Sink(e) => rejected(format!("fetching the image: {e}")),
            })?;
        Ok((openai::sniff_image_type(&bytes).to_string(), bytes))
    }
}

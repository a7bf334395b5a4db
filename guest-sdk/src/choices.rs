//! Payload building blocks templates share: a provider picked by name, and a rendered video
//! as customers receive it.

use crate::bindings::vidfarm::template::remotion::RenderResult;
use crate::bindings::vidfarm::template::speech::VoiceProvider;
use crate::bindings::vidfarm::template::types::Provider;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An AI provider as a payload names it (`"openai"`, `"gemini"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    Openai,
    Gemini,
    Openrouter,
    Perplexity,
}

impl From<ProviderName> for Provider {
    fn from(p: ProviderName) -> Self {
        match p {
            ProviderName::Openai => Provider::Openai,
            ProviderName::Gemini => Provider::Gemini,
            ProviderName::Openrouter => Provider::Openrouter,
            ProviderName::Perplexity => Provider::Perplexity,
        }
    }
}

/// A provider that speaks, as a payload names it (`"openai"`, `"gemini"`, `"elevenlabs"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VoiceProviderName {
    Openai,
    Gemini,
    Elevenlabs,
}

impl From<VoiceProviderName> for VoiceProvider {
    fn from(p: VoiceProviderName) -> Self {
        match p {
            VoiceProviderName::Openai => VoiceProvider::Openai,
            VoiceProviderName::Gemini => VoiceProvider::Gemini,
            VoiceProviderName::Elevenlabs => VoiceProvider::Elevenlabs,
        }
    }
}

/// A provider and one of its models, e.g. `{"provider": "openai", "model": "gpt-4o-mini"}`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelChoice {
    pub provider: ProviderName,
    #[schemars(length(min = 1, max = 200))]
    pub model: String,
}

/// A finished render as a template returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenderedVideo {
    pub render_id: String,
    /// The MP4, relative to the job's artifacts.
    pub key: String,
    /// A signed URL to download it.
    pub url: Option<String>,
    pub duration_seconds: f64,
    pub width: u64,
    pub height: u64,
    pub has_audio: bool,
}

impl From<RenderResult> for RenderedVideo {
    fn from(rendered: RenderResult) -> Self {
        let meta: serde_json::Value = serde_json::from_str(&rendered.metadata).unwrap_or_default();
        Self {
            render_id: rendered.render_id,
            key: rendered.output_key,
            url: rendered.output_url,
            duration_seconds: meta["duration_seconds"].as_f64().unwrap_or(0.0),
            width: meta["width"].as_u64().unwrap_or(0),
            height: meta["height"].as_u64().unwrap_or(0),
            has_audio: meta["has_audio"].as_bool().unwrap_or(false),
        }
    }
}

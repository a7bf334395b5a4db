//! What a provider call cost the platform, from its token usage: USD per million input and
//! output tokens and per image, by provider and model (longest matching model prefix), with a
//! per-provider default for models not listed; text-to-speech models priced by the character
//! have their own table. A cost the provider reports itself (OpenRouter) wins. Prices as
//! published by the providers in 2026; operators bill their own margin on top.

use super::Provider;
use super::wire::Usage;
use crate::money;

/// (model prefix, USD per 1M input tokens, per 1M output tokens, per image).
type Price = (&'static str, f64, f64, f64);

const OPENAI: &[Price] = &[
    // Text in, audio tokens out (https://platform.openai.com/docs/pricing).
    ("gpt-4o-mini-tts", 0.60, 12.00, 0.0),
    // Priced by the character (CHARACTER_PRICES).
    ("tts-1", 0.0, 0.0, 0.0),
    ("gpt-4o-mini", 0.15, 0.60, 0.0),
    ("gpt-4o", 2.50, 10.00, 0.0),
    ("gpt-4.1-nano", 0.10, 0.40, 0.0),
    ("gpt-4.1-mini", 0.40, 1.60, 0.0),
    ("gpt-4.1", 2.00, 8.00, 0.0),
    ("gpt-5-nano", 0.05, 0.40, 0.0),
    ("gpt-5-mini", 0.25, 2.00, 0.0),
    ("gpt-5", 1.25, 10.00, 0.0),
    ("o1-pro", 150.00, 600.00, 0.0),
    ("o1-mini", 1.10, 4.40, 0.0),
    ("o1", 15.00, 60.00, 0.0),
    ("o3-pro", 20.00, 80.00, 0.0),
    ("o3-mini", 1.10, 4.40, 0.0),
    ("o3", 2.00, 8.00, 0.0),
    ("o4-mini", 1.10, 4.40, 0.0),
    ("gpt-image-1", 5.00, 40.00, 0.0),
    ("dall-e-3", 0.0, 0.0, 0.04),
    ("", 2.50, 10.00, 0.04),
];
const GEMINI: &[Price] = &[
    // Text in, audio tokens out (https://ai.google.dev/gemini-api/docs/pricing).
    ("gemini-2.5-flash-preview-tts", 0.50, 10.00, 0.0),
    ("gemini-2.5-pro-preview-tts", 1.00, 20.00, 0.0),
    ("gemini-2.5-flash-image", 0.30, 30.00, 0.0),
    ("gemini-2.5-flash-lite", 0.10, 0.40, 0.0),
    ("gemini-2.5-flash", 0.30, 2.50, 0.0),
    ("gemini-2.5-pro", 1.25, 10.00, 0.0),
    ("gemini-2.0-flash", 0.10, 0.40, 0.0),
    ("", 0.30, 2.50, 0.039),
];
const OPENROUTER: &[Price] = &[("", 1.00, 3.00, 0.04)];
const PERPLEXITY: &[Price] = &[("sonar-pro", 3.00, 15.00, 0.0), ("sonar", 1.00, 1.00, 0.0), ("", 1.00, 1.00, 0.0)];

/// ElevenLabs bills only by the character (ELEVENLABS_CHARACTER_PRICES).
const ELEVENLABS: &[Price] = &[("", 0.0, 0.0, 0.0)];

/// (model prefix, USD per 1M characters): OpenAI's `tts-1` and `tts-1-hd`.
const CHARACTER_PRICES: &[(&str, f64)] = &[("tts-1-hd", 30.00), ("tts-1", 15.00)];

/// (model prefix, USD per 1M characters): ElevenLabs' API rates (elevenlabs.io/pricing/api):
/// $0.05 per 1,000 characters for Flash and Turbo, $0.10 for Multilingual v2 and v3. Only
/// these models are called (`elevenlabs::refusal`).
pub const ELEVENLABS_CHARACTER_PRICES: &[(&str, f64)] = &[
    ("eleven_flash_v2", 50.00),
    ("eleven_turbo_v2", 50.00),
    ("eleven_multilingual_v2", 100.00),
    ("eleven_v3", 100.00),
];

/// The platform's cost of one call, nano-USD (a cost the provider reports wins; a fraction of
/// a nano is rounded up).
pub fn cost_nusd(provider: Provider, model: &str, usage: &Usage) -> i64 {
    if let Some(reported) = usage.reported_cost_usd {
        return money::cost_from_usd(reported);
    }
    let rates = Rates::of(provider, model);
    rates.input(i64::from(usage.input_tokens))
        + rates.output(i64::from(usage.output_tokens))
        + i64::from(usage.images).saturating_mul(rates.per_image)
        + rates.characters(i64::from(usage.characters))
}

/// The platform's cost of one call in USD (for the key's usage statistics).
pub fn cost_usd(provider: Provider, model: &str, usage: &Usage) -> f64 {
    cost_nusd(provider, model, usage) as f64 / money::NANOS_PER_USD as f64
}

/// A model's prices in nano-USD per token and per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub per_input_token: i64,
    pub per_output_token: i64,
    pub per_image: i64,
    /// For models priced by the character (0 for the rest).
    pub per_character: i64,
}

impl Rates {
    /// The rates a call is *held* at: the model's own, except where only the provider knows
    /// the price (OpenRouter reports each call's cost; its catalogue runs to $75 per million
    /// output tokens and more), where the hold assumes an expensive model.
    pub fn for_quote(provider: Provider, model: &str) -> Self {
        match provider {
            Provider::Openrouter => Self {
                per_input_token: 15_000,
                per_output_token: 75_000,
                per_image: money::cost_from_usd(0.25),
                per_character: 0,
            },
            _ => Self::of(provider, model),
        }
    }

    pub fn of(provider: Provider, model: &str) -> Self {
        let (_, input, output, image) = price(provider, model);
        // USD per 1M tokens → nano-USD per token is × 1000 (every listed price is exact).
        Self {
            per_input_token: (input * 1000.0).round() as i64,
            per_output_token: (output * 1000.0).round() as i64,
            per_image: money::cost_from_usd(image),
            per_character: match provider {
                Provider::Openai => CHARACTER_PRICES,
                Provider::Elevenlabs => ELEVENLABS_CHARACTER_PRICES,
                _ => &[],
            }
            .iter()
            .find(|(prefix, _)| model.starts_with(prefix))
            .map_or(0, |(_, usd)| (usd * 1000.0).round() as i64),
        }
    }

    pub fn characters(&self, count: i64) -> i64 {
        count.saturating_mul(self.per_character)
    }

    pub fn input(&self, tokens: i64) -> i64 {
        tokens.saturating_mul(self.per_input_token)
    }

    pub fn output(&self, tokens: i64) -> i64 {
        tokens.saturating_mul(self.per_output_token)
    }
}

/// The most input tokens `bytes` of text can be: a BPE tokenizer never makes more tokens
/// than bytes, plus a few for each message's framing. Never an underestimate.
pub fn input_tokens_bound(bytes: usize, messages: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX / 2).saturating_add(16 * i64::try_from(messages).unwrap_or(4))
}

/// Input tokens one image may count as in a vision call: OpenAI's `gpt-4o-mini` bills a
/// high-detail 2048×768 image as 36,835 tokens; Gemini tiles big images at 258 tokens a tile.
pub const IMAGE_INPUT_TOKENS_BOUND: i64 = 40_000;

/// Output tokens an image generation may bill: `gpt-image-1` at high quality and 1536 px is
/// 6,240 tokens; Gemini's image models bill 1,290 per image.
pub fn image_output_tokens_bound(provider: Provider, model: &str) -> i64 {
    match provider {
        Provider::Openai if model.starts_with("gpt-image") => 6_240,
        Provider::Gemini if model.contains("image") => 1_290,
        _ => 0,
    }
}

/// The worst case of one image generation: per-image prices at their largest size and
/// quality (DALL·E 3 HD 1792 px is $0.12), token-priced models at their largest output; an
/// OpenRouter model's price is only known from its answer, so it holds $0.25.
pub fn image_worst_case_nusd(provider: Provider, model: &str, prompt_bytes: usize) -> i64 {
    let rates = Rates::for_quote(provider, model);
    let per_image = match provider {
        Provider::Openai if model.starts_with("dall-e-3") => money::cost_from_usd(0.12),
        Provider::Openrouter => money::cost_from_usd(0.25),
        _ => rates.per_image,
    };
    rates.input(input_tokens_bound(prompt_bytes, 1))
        + rates.output(image_output_tokens_bound(provider, model))
        + per_image
}

fn price(provider: Provider, model: &str) -> Price {
    let table = match provider {
        Provider::Openai => OPENAI,
        Provider::Gemini => GEMINI,
        Provider::Openrouter => OPENROUTER,
        Provider::Perplexity => PERPLEXITY,
        Provider::Elevenlabs => ELEVENLABS,
    };
    // Every table ends with the "" default, which matches any model.
    *table.iter().find(|(prefix, ..)| model.starts_with(prefix)).unwrap_or(&table[table.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_costs_its_tokens_at_the_models_price() {
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 500_000,
            images: 0,
            characters: 0,
            reported_cost_usd: None,
        };
        assert_eq!(cost_nusd(Provider::Openai, "gpt-4o-mini-2024-07-18", &usage), 450_000_000);
        assert_eq!(cost_nusd(Provider::Openai, "gpt-4o", &usage), 7_500_000_000);
        assert_eq!(cost_nusd(Provider::Gemini, "some-future-model", &usage), 1_550_000_000);
    }

    #[test]
    fn a_cost_the_provider_reports_wins() {
        let usage =
            Usage { input_tokens: 10, output_tokens: 10, images: 0, characters: 0, reported_cost_usd: Some(0.0123) };
        assert_eq!(cost_nusd(Provider::Openrouter, "anthropic/claude", &usage), 12_300_000);
    }

    #[test]
    fn image_models_hold_their_real_worst_case() {
        // gpt-image-1: 6,240 output tokens at $40/M is $0.2496, plus the prompt.
        let gpt_image = image_worst_case_nusd(Provider::Openai, "gpt-image-1", 10);
        assert!((249_600_000..250_000_000).contains(&gpt_image), "{gpt_image}");
        assert_eq!(
            image_worst_case_nusd(Provider::Openai, "dall-e-3", 0),
            120_000_000 + Rates::of(Provider::Openai, "dall-e-3").input(16)
        );
        let gemini = image_worst_case_nusd(Provider::Gemini, "gemini-2.5-flash-image", 0);
        assert!((38_700_000..38_800_000).contains(&gemini), "1,290 tokens at $30/M: {gemini}");
    }
}

//! What a provider call cost the platform, from its token usage: USD per million input and
//! output tokens and per image, by provider and model (longest matching model prefix), with a
//! per-provider default for models not listed. A cost the provider reports itself (OpenRouter)
//! wins. Prices as published by the providers in 2026; operators bill their own margin on top.

use super::wire::Usage;
use crate::runtime::bindings::types::Provider;

/// (model prefix, USD per 1M input tokens, per 1M output tokens, per image).
type Price = (&'static str, f64, f64, f64);

const OPENAI: &[Price] = &[
    ("gpt-4o-mini", 0.15, 0.60, 0.0),
    ("gpt-4o", 2.50, 10.00, 0.0),
    ("gpt-4.1-nano", 0.10, 0.40, 0.0),
    ("gpt-4.1-mini", 0.40, 1.60, 0.0),
    ("gpt-4.1", 2.00, 8.00, 0.0),
    ("gpt-5-mini", 0.25, 2.00, 0.0),
    ("gpt-5", 1.25, 10.00, 0.0),
    ("gpt-image-1", 5.00, 40.00, 0.0),
    ("dall-e-3", 0.0, 0.0, 0.04),
    ("", 2.50, 10.00, 0.04),
];
const GEMINI: &[Price] = &[
    ("gemini-2.5-flash-image", 0.30, 30.00, 0.0),
    ("gemini-2.5-flash-lite", 0.10, 0.40, 0.0),
    ("gemini-2.5-flash", 0.30, 2.50, 0.0),
    ("gemini-2.5-pro", 1.25, 10.00, 0.0),
    ("gemini-2.0-flash", 0.10, 0.40, 0.0),
    ("", 0.30, 2.50, 0.039),
];
const OPENROUTER: &[Price] = &[("", 1.00, 3.00, 0.04)];
const PERPLEXITY: &[Price] = &[("sonar-pro", 3.00, 15.00, 0.0), ("sonar", 1.00, 1.00, 0.0), ("", 1.00, 1.00, 0.0)];

/// The platform's cost of one call.
pub fn cost_usd(provider: Provider, model: &str, usage: &Usage) -> f64 {
    if let Some(reported) = usage.reported_cost_usd {
        return reported;
    }
    let (_, input, output, image) = price(provider, model);
    (f64::from(usage.input_tokens) * input + f64::from(usage.output_tokens) * output) / 1e6
        + f64::from(usage.images) * image
}

/// An upper bound of a call's cost before it is made: the prompt at ~4 characters a token and
/// the whole output allowance (or 4,096 tokens), plus one image for image calls.
pub fn estimate_usd(provider: Provider, model: &str, prompt_chars: usize, max_output: Option<u32>, images: u32) -> f64 {
    let usage = Usage {
        input_tokens: u32::try_from(prompt_chars / 4 + 1).unwrap_or(u32::MAX),
        output_tokens: max_output.unwrap_or(4096),
        images,
        reported_cost_usd: None,
    };
    cost_usd(provider, model, &usage)
}

fn price(provider: Provider, model: &str) -> Price {
    let table = match provider {
        Provider::Openai => OPENAI,
        Provider::Gemini => GEMINI,
        Provider::Openrouter => OPENROUTER,
        Provider::Perplexity => PERPLEXITY,
    };
    // Every table ends with the "" default, which matches any model.
    *table.iter().find(|(prefix, ..)| model.starts_with(prefix)).unwrap_or(&table[table.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_costs_its_tokens_at_the_models_price() {
        let usage = Usage { input_tokens: 1_000_000, output_tokens: 500_000, images: 0, reported_cost_usd: None };
        assert!((cost_usd(Provider::Openai, "gpt-4o-mini-2024-07-18", &usage) - 0.45).abs() < 1e-9);
        assert!((cost_usd(Provider::Openai, "gpt-4o", &usage) - 7.5).abs() < 1e-9);
        assert!((cost_usd(Provider::Gemini, "some-future-model", &usage) - 1.55).abs() < 1e-9);
    }

    #[test]
    fn a_cost_the_provider_reports_wins() {
        let usage = Usage { input_tokens: 10, output_tokens: 10, images: 0, reported_cost_usd: Some(0.0123) };
        assert_eq!(cost_usd(Provider::Openrouter, "anthropic/claude", &usage), 0.0123);
    }
}

//! The worst case of a provider call before it is made, and the output bound that keeps it
//! inside its hold. A call's cost is bounded by the request itself: the prompt can be at most
//! as many tokens as it has bytes, and the output at most the `max_completion_tokens` /
//! `max_tokens` / `maxOutputTokens` the host sets — so the host always sets it, to what the
//! template asked (or [`DEFAULT_MAX_OUTPUT_TOKENS`]) or less when less is left to spend.

use super::pricing::{self, IMAGE_INPUT_TOKENS_BOUND, Rates};
use crate::capabilities::ProviderCall;

/// The output bound of a text call whose template set none.
pub const DEFAULT_MAX_OUTPUT_TOKENS: i64 = 16_384;

/// The smallest output worth calling for: below it the call is refused, not made.
pub const MIN_TEXT_OUTPUT_TOKENS: i64 = 16;

/// A layout answer is a small JSON object; this bounds it with room to spare.
const LAYOUT_OUTPUT_TOKENS: i64 = 1_024;
const MIN_LAYOUT_OUTPUT_TOKENS: i64 = 256;

/// What a call may cost, in nano-USD of the platform's cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// With the output the template asked for.
    pub want_cost_nusd: i64,
    /// With the smallest useful output (image calls cannot be made smaller: the same).
    pub min_cost_nusd: i64,
    /// How the cost grows with the output, for calls whose output the host bounds.
    output: Option<OutputPrice>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OutputPrice {
    /// The input's worst case (paid whatever the output).
    fixed_nusd: i64,
    per_token_nusd: i64,
    requested_tokens: i64,
}

impl Quote {
    pub fn of(call: &ProviderCall) -> Self {
        match call {
            ProviderCall::Text(r) => {
                let rates = Rates::for_quote(r.provider.into(), &r.model);
                let bytes = r.prompt.len() + r.system.as_ref().map_or(0, String::len);
                let input = pricing::input_tokens_bound(bytes, 2);
                let requested = r.max_output_tokens.map_or(DEFAULT_MAX_OUTPUT_TOKENS, i64::from);
                Self::bounded(rates, input, 0, requested, MIN_TEXT_OUTPUT_TOKENS.min(requested.max(1)))
            }
            ProviderCall::Layout(r) => {
                let rates = Rates::for_quote(r.provider.into(), &r.model);
                let text = pricing::input_tokens_bound(r.overlay_text.len() + 4_096, 2);
                Self::bounded(rates, text, IMAGE_INPUT_TOKENS_BOUND, LAYOUT_OUTPUT_TOKENS, MIN_LAYOUT_OUTPUT_TOKENS)
            }
            ProviderCall::Image(r) => {
                let worst = pricing::image_worst_case_nusd(r.provider.into(), &r.model, r.prompt.len());
                Self { want_cost_nusd: worst, min_cost_nusd: worst, output: None }
            }
            // Speech cannot be cut short to fit: the whole text's worst case, or nothing.
            ProviderCall::Speech(r) => {
                let worst = super::speech::worst_case_nusd(r);
                Self { want_cost_nusd: worst, min_cost_nusd: worst, output: None }
            }
        }
    }

    fn bounded(rates: Rates, text_tokens: i64, image_tokens: i64, requested: i64, min: i64) -> Self {
        let fixed_nusd = rates.input(text_tokens.saturating_add(image_tokens));
        let output = OutputPrice { fixed_nusd, per_token_nusd: rates.per_output_token, requested_tokens: requested };
        Self {
            want_cost_nusd: fixed_nusd.saturating_add(rates.output(requested)),
            min_cost_nusd: fixed_nusd.saturating_add(rates.output(min)),
            output: Some(output),
        }
    }

    /// The output bound that keeps the call's worst case within `cost_budget_nusd`: what was
    /// asked for, or fewer tokens when the budget is smaller. `None` for calls without one.
    pub fn max_output_tokens(&self, cost_budget_nusd: i64) -> Option<u32> {
        let output = self.output?;
        let affordable = if output.per_token_nusd <= 0 {
            output.requested_tokens
        } else {
            (cost_budget_nusd - output.fixed_nusd).max(0) / output.per_token_nusd
        };
        Some(u32::try_from(affordable.min(output.requested_tokens).max(1)).unwrap_or(u32::MAX))
    }
}

/// The call as it is sent: a text call with its output bound set.
pub fn with_output_bound(call: &ProviderCall, max_output: Option<u32>) -> ProviderCall {
    match (call, max_output) {
        (ProviderCall::Text(r), Some(max)) => {
            let mut r = r.clone();
            r.max_output_tokens = Some(max);
            ProviderCall::Text(r)
        }
        _ => call.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::providers::TextRequest;
    use crate::runtime::bindings::types::Provider;

    fn ask(prompt: &str, max: Option<u32>) -> ProviderCall {
        ProviderCall::Text(TextRequest {
            provider: Provider::Openai,
            model: "gpt-4o-mini".into(),
            prompt: prompt.into(),
            system: None,
            max_output_tokens: max,
            temperature: None,
        })
    }

    #[test]
    fn an_unbounded_text_call_is_quoted_at_the_default_bound() {
        let quote = Quote::of(&ask("hello", None));
        // (5 bytes + 32 framing) × 150 + 16,384 × 600 nano-USD.
        assert_eq!(quote.want_cost_nusd, 37 * 150 + 16_384 * 600);
        assert_eq!(quote.min_cost_nusd, 37 * 150 + 16 * 600);
        assert_eq!(quote.max_output_tokens(quote.want_cost_nusd), Some(16_384));
    }

    #[test]
    fn a_smaller_budget_lowers_the_output_bound_to_fit() {
        let quote = Quote::of(&ask("hello", Some(1_000)));
        let budget = 37 * 150 + 250 * 600 + 599;
        assert_eq!(quote.max_output_tokens(budget), Some(250));
        assert_eq!(quote.max_output_tokens(10 * quote.want_cost_nusd), Some(1_000), "never above what was asked");
    }
}

//! The development echo provider: answers every call locally and says so in every answer,
//! so a template can be run end to end with no keys and nobody mistakes it for a model.

use super::provider_name;
use crate::capabilities::{BackendResult, JobScope, ProviderAnswer, ProviderCall, ProviderGateway};
use crate::runtime::bindings::providers::*;
use async_trait::async_trait;

/// Every answer starts with this label.
pub const LABEL: &str = "[vidfarm dev-echo provider: no provider key configured]";

pub struct DevEchoProvider;

fn tokens(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

#[async_trait]
impl ProviderGateway for DevEchoProvider {
    async fn call(
        &self,
        _: &JobScope,
        _: u32,
        call: &ProviderCall,
    ) -> BackendResult<Result<ProviderAnswer, ProviderError>> {
        Ok(Ok(answer(call)))
    }
}

/// The echo's answer to `call`.
pub fn answer(call: &ProviderCall) -> ProviderAnswer {
    match call {
        ProviderCall::Text(request) => {
            let text = format!(
                "{LABEL} {}/{} echoes: {}",
                provider_name(request.provider.into()),
                request.model,
                request.prompt
            );
            ProviderAnswer::Text(TextResponse {
                output_tokens: tokens(&text),
                input_tokens: tokens(&request.prompt),
                text,
                provider: request.provider,
                model: request.model.clone(),
            })
        }
        ProviderCall::Image(request) => {
            let (width, height) = parse_size(request.size.as_deref()).unwrap_or((320, 180));
            let seed = blake3::hash(request.prompt.as_bytes());
            ProviderAnswer::Image(ImageResponse {
                bytes: super::png::gradient(width, height, seed.as_bytes()),
                content_type: "image/png".into(),
                revised_prompt: Some(format!("{LABEL} {}", request.prompt)),
            })
        }
        ProviderCall::Speech(request) => ProviderAnswer::Speech(tone(&request.text)),
        ProviderCall::Layout(request) => ProviderAnswer::Layout(LayoutResponse {
            zone: LayoutZone::Bottom,
            align: LayoutAlign::Center,
            max_width_percent: 80.0,
            justification: format!("{LABEL} default lower-third layout for {:?}", request.overlay_text),
        }),
    }
}

/// A soft 440 Hz tone as long as the text would take to say (15 characters a second, at least
/// a second): a template's timing works end to end, and nobody mistakes it for a voice.
fn tone(text: &str) -> crate::capabilities::SpeechAudio {
    const RATE: u32 = 24_000;
    let seconds = (text.chars().count() as f64 / 15.0).max(1.0);
    let samples = (seconds * f64::from(RATE)) as usize;
    let pcm: Vec<u8> = (0..samples)
        .flat_map(|i| {
            {
                let t = i as f64 / f64::from(RATE);
                ((t * 440.0 * std::f64::consts::TAU).sin() * 3_000.0) as i16
            }
            .to_le_bytes()
        })
        .collect();
    crate::capabilities::SpeechAudio::from_pcm16(&pcm, RATE, 1)
}

/// `WxH` with both sides in 1..=2048.
fn parse_size(size: Option<&str>) -> Option<(u32, u32)> {
    let (w, h) = size?.split_once('x')?;
    let (w, h) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
    ((1..=2048).contains(&w) && (1..=2048).contains(&h)).then_some((w, h))
}

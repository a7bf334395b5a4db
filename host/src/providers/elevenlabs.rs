//! ElevenLabs text to speech at the wire: `POST /v1/text-to-speech/{voice_id}` with the
//! `xi-api-key` header and `output_format=pcm_24000`, whose answer is bare 16-bit mono PCM at
//! 24 kHz. Billed by the character at ElevenLabs' API rates, so a call's hold is its price.

use super::speech::{BYTES_PER_SECOND, MAX_AUDIO_BYTES};
use super::wire::{CallError, Usage, send};
use super::{Provider, pricing};
use crate::capabilities::{SpeechAudio, SpeechCall};
use serde_json::{Map, Value, json};

/// The one answer format asked for: what the other providers answer with too.
const OUTPUT_FORMAT: &str = "pcm_24000";

/// The slowest ElevenLabs speech a read is sized for: `speed` 0.7 of 12 characters a second is
/// 8.4; this assumes 4, as the holds of the others do.
const SLOWEST_CHARS_PER_SECOND: f64 = 4.0;

/// The largest `voice_settings` JSON taken.
const MAX_SETTINGS_BYTES: usize = 1_024;

/// The `voice_settings` fields ElevenLabs documents, with their ranges.
const NUMERIC_SETTINGS: &[(&str, f64, f64)] =
    &[("stability", 0.0, 1.0), ("similarity_boost", 0.0, 1.0), ("style", 0.0, 1.0), ("speed", 0.7, 1.2)];

pub struct ElevenLabs<'a> {
    pub http: &'a reqwest::Client,
    pub base_url: &'a str,
}

/// Why an ElevenLabs request is refused before any key is leased, if it is.
pub fn refusal(request: &SpeechCall) -> Option<String> {
    let voice = &request.voice;
    if voice.is_empty() || voice.len() > 64 || !voice.chars().all(|c| c.is_ascii_alphanumeric()) {
        // It is a path segment of the URL: nothing but a voice id goes there.
        return Some(format!(
            "voice: `{}` is not an ElevenLabs voice id (1 to 64 letters and digits, e.g. JBFqnCBsd6RMkjVDRZzb)",
            super::speech::shortened(voice)
        ));
    }
    let model = &request.model;
    if model.len() > 64 || !model.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Some(format!(
            "model: `{}` is not an ElevenLabs model id (at most 64 lower-case letters, digits and `_`)",
            super::speech::shortened(model)
        ));
    }
    if request.instructions.is_some() {
        return Some("instructions: ElevenLabs takes none; use voice_settings (or eleven_v3's audio tags)".into());
    }
    if let Some(settings) = &request.voice_settings
        && let Err(why) = voice_settings(settings)
    {
        return Some(format!("voice_settings: {why}"));
    }
    let known = pricing::ELEVENLABS_CHARACTER_PRICES.iter().any(|(prefix, _)| request.model.starts_with(prefix));
    (!known).then(|| format!("model: `{model}` is not an ElevenLabs speech model this host knows the price of"))
}

/// The settings as the JSON object sent, or why they are refused.
fn voice_settings(text: &str) -> Result<Map<String, Value>, String> {
    // Five settings fit in far less: a bound on what is stored with a queued narration.
    if text.len() > MAX_SETTINGS_BYTES {
        return Err(format!("must be at most {MAX_SETTINGS_BYTES} bytes of JSON"));
    }
    let Ok(Value::Object(settings)) = serde_json::from_str::<Value>(text) else {
        return Err("must be a JSON object".into());
    };
    for (name, value) in &settings {
        if name == "use_speaker_boost" {
            if !value.is_boolean() {
                return Err("use_speaker_boost must be true or false".into());
            }
            continue;
        }
        let Some((_, min, max)) = NUMERIC_SETTINGS.iter().find(|(known, ..)| known == name) else {
            return Err(format!(
                "`{}` is not a voice setting (stability, similarity_boost, style, speed, use_speaker_boost)",
                super::speech::shortened(name)
            ));
        };
        if !value.as_f64().is_some_and(|v| (*min..=*max).contains(&v)) {
            return Err(format!("{name} must be a number from {min} to {max}"));
        }
    }
    Ok(settings)
}

/// The most audio bytes read: the text at the slowest speech, and never past the cap of all.
fn max_audio_bytes(request: &SpeechCall) -> usize {
    let seconds = (request.text.chars().count() as f64 / SLOWEST_CHARS_PER_SECOND).max(10.0);
    ((seconds * BYTES_PER_SECOND) as usize).min(MAX_AUDIO_BYTES)
}

impl ElevenLabs<'_> {
    pub async fn speech(&self, secret: &str, request: &SpeechCall) -> Result<(SpeechAudio, Usage), CallError> {
        let (pcm, _) = self.speak_pcm(secret, request, &[]).await?;
        let audio = SpeechAudio::from_pcm16(&pcm, 24_000, 1);
        Ok((audio, characters(request)))
    }

    /// The bare 24 kHz PCM of `request` and ElevenLabs' id for it (`request-id`), which a
    /// later request names in `previous_request_ids` to continue the same read (request
    /// stitching, for long texts spoken in parts).
    pub async fn speak_pcm(
        &self,
        secret: &str,
        request: &SpeechCall,
        previous_request_ids: &[String],
    ) -> Result<(Vec<u8>, Option<String>), CallError> {
        let mut body = json!({ "text": request.text, "model_id": request.model });
        if let Some(settings) = &request.voice_settings {
            let settings = voice_settings(settings).map_err(|e| CallError::Rejected { status: 400, detail: e })?;
            body["voice_settings"] = Value::Object(settings);
        }
        if let Some(seed) = request.seed {
            body["seed"] = json!(seed);
        }
        if !previous_request_ids.is_empty() {
            body["previous_request_ids"] = json!(previous_request_ids);
        }
        let url = format!("{}/text-to-speech/{}", self.base_url.trim_end_matches('/'), request.voice);
        let post =
            self.http.post(url).query(&[("output_format", OUTPUT_FORMAT)]).header("xi-api-key", secret).json(&body);
        let (headers, pcm) = send(Provider::Elevenlabs, post, max_audio_bytes(request)).await?;
        if pcm.len() < 2 {
            return Err(CallError::BadAnswer("ElevenLabs returned no audio".into()));
        }
        let id = headers.get("request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        Ok((pcm, id))
    }
}

/// What ElevenLabs bills for a request: the characters of its text.
pub fn characters(request: &SpeechCall) -> Usage {
    Usage { characters: u32::try_from(request.text.chars().count()).unwrap_or(u32::MAX), ..Usage::default() }
}

#[cfg(test)]
mod tests {
    use super::super::speech::{tests::speech, worst_case_nusd};
    use super::*;

    fn eleven(model: &str, text: &str) -> SpeechCall {
        SpeechCall { voice: "JBFqnCBsd6RMkjVDRZzb".into(), ..speech(Provider::Elevenlabs, model, text) }
    }

    #[test]
    fn elevenlabs_speech_is_held_at_its_price_per_character() {
        let text = "a".repeat(1_000);
        // $0.10 per 1,000 characters = 100,000 nano-USD a character; Flash and Turbo half that.
        assert_eq!(worst_case_nusd(&eleven("eleven_multilingual_v2", &text)), 1_000 * 100_000);
        assert_eq!(worst_case_nusd(&eleven("eleven_v3", &text)), 1_000 * 100_000);
        assert_eq!(worst_case_nusd(&eleven("eleven_flash_v2_5", &text)), 1_000 * 50_000);
        assert_eq!(worst_case_nusd(&eleven("eleven_turbo_v2_5", &text)), 1_000 * 50_000);
    }

    #[test]
    fn what_elevenlabs_would_refuse_or_misbill_is_refused_before_a_key_is_leased() {
        let refused = |call: SpeechCall| super::super::speech::refusal(&call);
        assert_eq!(refused(eleven("eleven_multilingual_v2", "Hello there.")), None);
        assert!(refused(eleven("eleven_monolingual_v1", "hi")).is_some_and(|why| why.contains("price")));
        assert!(refused(eleven("eleven_v3", &"a".repeat(5_001))).is_some_and(|why| why.contains("5000")));
        assert!(refused(SpeechCall { voice: "../voices".into(), ..eleven("eleven_v3", "hi") }).is_some());
        assert!(refused(SpeechCall { instructions: Some("slowly".into()), ..eleven("eleven_v3", "hi") }).is_some());
        let with = |settings: &str| SpeechCall { voice_settings: Some(settings.into()), ..eleven("eleven_v3", "hi") };
        assert_eq!(refused(with(r#"{"stability":0.4,"speed":1.1,"use_speaker_boost":true}"#)), None);
        assert!(refused(with(r#"{"speed":3}"#)).is_some_and(|why| why.contains("speed")));
        assert!(refused(with(r#"{"pitch":1}"#)).is_some_and(|why| why.contains("pitch")));
        assert!(refused(with("[1]")).is_some());
        let padded = format!(r#"{{"speed":1.0{}}}"#, " ".repeat(2_000));
        assert!(refused(with(&padded)).is_some_and(|why| why.contains("1024 bytes")));
        let huge_model = "eleven_v3".to_string() + &"x".repeat(10_000);
        let why = refused(eleven(&huge_model, "hi")).expect("refused");
        assert!(why.starts_with("model:") && why.len() < 300, "named, not echoed whole: {why}");
        assert!(refused(SpeechCall { voice: String::new(), ..eleven("eleven_v3", "hi") }).is_some());
        // ElevenLabs options on another provider are a mistake, not silently dropped.
        let openai = SpeechCall { seed: Some(7), ..speech(Provider::Openai, "tts-1", "hi") };
        assert!(refused(openai).is_some_and(|why| why.contains("ElevenLabs")));
    }
}

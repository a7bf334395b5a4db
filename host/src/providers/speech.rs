//! Text to speech at the wire: OpenAI `POST /audio/speech` (`response_format: "wav"`),
//! Gemini TTS (`generateContent` with `responseModalities: ["AUDIO"]`, 24 kHz 16-bit PCM in
//! base64) and ElevenLabs (`elevenlabs.rs`, raw 24 kHz PCM). Either way the answer becomes one clean 16-bit PCM WAV whose length is counted from
//! its samples, and a usage the pricing understands: characters for character-priced models,
//! tokens for token-priced ones.

use super::Provider;
use super::gemini::Gemini;
use super::openai::OpenAiCompatible;
use super::pricing::Rates;
use super::wire::{CallError, Usage, count_at, send};
use crate::capabilities::{SpeechAudio, SpeechCall as SpeechRequest};
use base64::Engine;
use serde_json::{Value, json};

/// The longest text one call may speak (OpenAI's `input` limit; Gemini's is larger).
pub const MAX_TEXT_CHARS: usize = 4_096;

/// ElevenLabs' limit per request for `eleven_v3` (its other models take more; one limit for
/// all keeps a call's worst case and duration in the same range as the others').
pub const MAX_ELEVENLABS_TEXT_CHARS: usize = 5_000;

/// The longest `instructions` (how to speak): they are part of what the hold pays for.
pub const MAX_INSTRUCTION_CHARS: usize = 1_000;

/// The 16-bit PCM audio rate every provider answers with here (OpenAI's WAV, Gemini's and
/// ElevenLabs' PCM).
pub(super) const BYTES_PER_SECOND: f64 = 48_000.0;

/// The largest audio answer read (≈ 11 minutes of 24 kHz 16-bit mono, far past what
/// 4,096 characters take): a provider that streams more is cut off, not buffered.
pub const MAX_AUDIO_BYTES: usize = 64 << 20;

/// Audio tokens per second of speech, where providers bill audio by the token: OpenAI prices
/// `gpt-4o-mini-tts` at $12 per 1M audio tokens and estimates $0.015 a minute (1,250 tokens a
/// minute); Gemini counts 32 tokens per second of audio. Used for OpenAI's bill (its speech
/// endpoint reports no usage) and for every hold's worst case.
const OPENAI_AUDIO_TOKENS_PER_SECOND: f64 = 1_250.0 / 60.0;
const GEMINI_AUDIO_TOKENS_PER_SECOND: f64 = 32.0;

/// The slowest speech a hold assumes: 4 characters a second (people speak 12–15), so no
/// instruction to "speak slowly" can make a call cost more than its hold.
const SLOWEST_CHARS_PER_SECOND: f64 = 4.0;

/// At most the first 64 characters of `text`, for an error message that names a bad value.
pub fn shortened(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// A request refused before any key is leased.
pub fn refusal(request: &SpeechRequest) -> Option<String> {
    if request.model.len() > 200 {
        return Some("model: at most 200 characters".into());
    }
    let chars = request.text.chars().count();
    if request.text.trim().is_empty() {
        return Some("text must not be empty".into());
    }
    let max = if request.provider == Provider::Elevenlabs { MAX_ELEVENLABS_TEXT_CHARS } else { MAX_TEXT_CHARS };
    if chars > max {
        return Some(format!("text is {chars} characters; at most {max} are spoken in one call"));
    }
    if request.voice.trim().is_empty() {
        return Some("voice must not be empty".into());
    }
    let instructions = request.instructions.as_ref().map_or(0, |i| i.chars().count());
    if instructions > MAX_INSTRUCTION_CHARS {
        return Some(format!("instructions are {instructions} characters; at most {MAX_INSTRUCTION_CHARS}"));
    }
    if request.provider != Provider::Elevenlabs && (request.voice_settings.is_some() || request.seed.is_some()) {
        return Some("voice_settings and seed are ElevenLabs options".into());
    }
    // Only models whose price is known: an unknown one would be billed at a text model's rates.
    let known = match request.provider {
        Provider::Openai => request.model.starts_with("tts-1") || request.model.starts_with("gpt-4o-mini-tts"),
        Provider::Gemini => request.model.contains("-tts"),
        Provider::Elevenlabs => return super::elevenlabs::refusal(request),
        other => return Some(format!("{} does not generate speech", super::provider_name(other))),
    };
    (!known).then(|| {
        format!(
            "`{}` is not a {} speech model this host knows the price of",
            shortened(&request.model),
            super::provider_name(request.provider)
        )
    })
}

/// The longest audio the hold pays for: the text and the instructions spoken at the slowest
/// speech, at least 10 s.
fn held_seconds(request: &SpeechRequest) -> f64 {
    let chars = request.text.chars().count() + request.instructions.as_ref().map_or(0, |i| i.chars().count());
    (chars as f64 / SLOWEST_CHARS_PER_SECOND).max(10.0)
}

/// The audio tokens the hold pays for (Gemini is told to stop there).
fn held_audio_tokens(request: &SpeechRequest) -> i64 {
    (held_seconds(request) * audio_tokens_per_second(request.provider)).ceil() as i64
}

/// The largest WAV the hold pays for (OpenAI's answer is cut off past it).
fn held_audio_bytes(request: &SpeechRequest) -> usize {
    ((held_seconds(request) * BYTES_PER_SECOND) as usize).saturating_add(4_096).min(MAX_AUDIO_BYTES)
}

/// The call's worst case in nano-USD: exact for character-priced models, and at the slowest
/// speech for token-priced ones.
pub fn worst_case_nusd(request: &SpeechRequest) -> i64 {
    let rates = Rates::of(request.provider, &request.model);
    let chars = request.text.chars().count() as i64;
    rates
        .characters(chars)
        .saturating_add(rates.input(super::pricing::input_tokens_bound(input_bytes(request), 1)))
        .saturating_add(rates.output(held_audio_tokens(request)))
}

/// What the model reads: the text and the instructions.
fn input_bytes(request: &SpeechRequest) -> usize {
    request.text.len() + request.instructions.as_ref().map_or(0, String::len)
}

fn audio_tokens_per_second(provider: Provider) -> f64 {
    match provider {
        Provider::Gemini => GEMINI_AUDIO_TOKENS_PER_SECOND,
        _ => OPENAI_AUDIO_TOKENS_PER_SECOND,
    }
}

impl OpenAiCompatible<'_> {
    /// `POST /audio/speech`: the WAV comes back as the body.
    pub async fn speech(&self, secret: &str, request: &SpeechRequest) -> Result<(SpeechAudio, Usage), CallError> {
        let mut body = json!({
            "model": request.model, "input": request.text, "voice": request.voice, "response_format": "wav",
        });
        if let Some(instructions) = &request.instructions
            && !request.model.starts_with("tts-1")
        {
            body["instructions"] = json!(instructions);
        }
        let url = format!("{}/audio/speech", self.base_url.trim_end_matches('/'));
        let post = self.http.post(url).bearer_auth(secret).json(&body);
        let (_, bytes) = send(self.provider, post, held_audio_bytes(request)).await?;
        let audio = SpeechAudio::from_wav(&bytes).map_err(CallError::BadAnswer)?;
        let chars = u32::try_from(request.text.chars().count()).unwrap_or(u32::MAX);
        let usage = Usage {
            // The endpoint reports no usage: a token is at most a byte of the input, and audio
            // tokens follow the audio's length at OpenAI's published rate.
            input_tokens: u32::try_from(input_bytes(request)).unwrap_or(u32::MAX),
            output_tokens: (audio.duration_seconds * OPENAI_AUDIO_TOKENS_PER_SECOND).ceil() as u32,
            characters: chars,
            ..Usage::default()
        };
        Ok((audio, usage))
    }
}

impl Gemini<'_> {
    /// A TTS model's `generateContent`: base64 PCM in `inlineData`, its rate in the MIME type.
    pub async fn speech(&self, secret: &str, request: &SpeechRequest) -> Result<(SpeechAudio, Usage), CallError> {
        let text = match &request.instructions {
            Some(how) => format!("{how}: {}", request.text),
            None => request.text.clone(),
        };
        let config = json!({
            "responseModalities": ["AUDIO"],
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": request.voice}}},
            // No more audio than the hold pays for.
            "maxOutputTokens": held_audio_tokens(request),
        });
        let body = super::gemini::body(None, vec![json!({"text": text})], config);
        let answer = self.generate(secret, &request.model, &body).await?;
        let inline = answer
            .pointer("/candidates/0/content/parts")
            .and_then(Value::as_array)
            .and_then(|parts| parts.iter().find_map(|p| p.get("inlineData")))
            .ok_or_else(|| CallError::BadAnswer("Gemini returned no audio".into()))?;
        let mime = inline["mimeType"].as_str().unwrap_or_default();
        let pcm = base64::engine::general_purpose::STANDARD
            .decode(inline["data"].as_str().unwrap_or_default())
            .map_err(|e| CallError::BadAnswer(format!("`inlineData.data` is not base64: {e}")))?;
        let rate = pcm_rate(mime).ok_or_else(|| CallError::BadAnswer(format!("unexpected audio type `{mime}`")))?;
        let audio = SpeechAudio::from_pcm16(&pcm, rate, 1);
        // Never less than the audio's own length at 32 tokens a second, if usage is missing.
        let floor = (audio.duration_seconds * GEMINI_AUDIO_TOKENS_PER_SECOND).ceil() as u32;
        let usage = Usage {
            input_tokens: count_at(&answer, "/usageMetadata/promptTokenCount"),
            output_tokens: count_at(&answer, "/usageMetadata/candidatesTokenCount").max(floor),
            characters: u32::try_from(request.text.chars().count()).unwrap_or(u32::MAX),
            ..Usage::default()
        };
        Ok((audio, usage))
    }
}

/// The sample rate of `audio/L16;codec=pcm;rate=24000` (16-bit PCM is all Gemini speaks).
fn pcm_rate(mime: &str) -> Option<u32> {
    let mut parts = mime.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("audio/L16") {
        return None;
    }
    parts
        .find_map(|p| p.strip_prefix("rate="))
        .map_or(Some(24_000), |r| r.parse().ok().filter(|r| SAMPLE_RATES.contains(r)))
}

/// The sample rates accepted from a provider (telephone to studio).
const SAMPLE_RATES: std::ops::RangeInclusive<u32> = 8_000..=96_000;

impl SpeechAudio {
    /// A WAV with a fresh header around 16-bit PCM samples (`sample_rate` in 8–96 kHz and one
    /// or two `channels`, as the callers check; outside them the header would be nonsense).
    pub fn from_pcm16(pcm: &[u8], sample_rate: u32, channels: u16) -> Self {
        let channels = channels.clamp(1, 2);
        let sample_rate = sample_rate.clamp(*SAMPLE_RATES.start(), *SAMPLE_RATES.end());
        let data = &pcm[..pcm.len() - pcm.len() % (2 * usize::from(channels))];
        let byte_rate = sample_rate * u32::from(channels) * 2;
        let mut wav = Vec::with_capacity(44 + data.len());
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
        wav.extend_from_slice(&channels.to_le_bytes());
        wav.extend_from_slice(&sample_rate.to_le_bytes());
        wav.extend_from_slice(&byte_rate.to_le_bytes());
        wav.extend_from_slice(&(channels * 2).to_le_bytes());
        wav.extend_from_slice(&16u16.to_le_bytes());
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
        wav.extend_from_slice(data);
        Self { wav, duration_seconds: data.len() as f64 / f64::from(byte_rate.max(1)) }
    }

    /// A provider's WAV, rewritten with exact sizes: streamed WAVs carry placeholder lengths
    /// (`0xFFFFFFFF`), so the data chunk runs to the end of what arrived.
    pub fn from_wav(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err("the audio is not a WAV file".into());
        }
        let (mut at, mut format) = (12usize, None);
        while at + 8 <= bytes.len() {
            let id = &bytes[at..at + 4];
            let size = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]) as usize;
            let body = at + 8;
            if id == b"fmt " && body + 16 <= bytes.len() {
                let u16_at = |i: usize| u16::from_le_bytes([bytes[body + i], bytes[body + i + 1]]);
                let rate = u32::from_le_bytes([bytes[body + 4], bytes[body + 5], bytes[body + 6], bytes[body + 7]]);
                format = Some((u16_at(0), u16_at(2), rate, u16_at(14)));
            } else if id == b"data" {
                let Some((1, channels @ 1..=2, rate, 16)) = format.filter(|f| SAMPLE_RATES.contains(&f.2)) else {
                    return Err(format!("the WAV is not 16-bit mono or stereo PCM at 8–96 kHz ({format:?})"));
                };
                let end = body.saturating_add(size).min(bytes.len());
                return Ok(Self::from_pcm16(&bytes[body..end], rate, channels));
            }
            at = body.saturating_add(size).saturating_add(size % 2);
        }
        Err("the WAV has no data chunk".into())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::providers) fn speech(provider: Provider, model: &str, text: &str) -> SpeechRequest {
        SpeechRequest {
            provider,
            model: model.into(),
            text: text.into(),
            voice: "alloy".into(),
            key: "a.wav".into(),
            instructions: None,
            voice_settings: None,
            seed: None,
        }
    }

    #[test]
    fn a_streamed_wav_with_placeholder_sizes_is_rewritten_with_its_real_length() {
        let clean = SpeechAudio::from_pcm16(&vec![0u8; 48_000], 24_000, 1);
        assert_eq!(clean.duration_seconds, 1.0);
        let mut streamed = clean.wav.clone();
        streamed[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        streamed[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        let parsed = SpeechAudio::from_wav(&streamed).expect("a WAV");
        assert_eq!(parsed.wav, clean.wav);
        assert_eq!(parsed.duration_seconds, 1.0);
        assert!(SpeechAudio::from_wav(b"ID3 not a wav").is_err());
    }

    #[test]
    fn geminis_pcm_rate_comes_from_its_mime_type() {
        assert_eq!(pcm_rate("audio/L16;codec=pcm;rate=24000"), Some(24_000));
        assert_eq!(pcm_rate("audio/L16; rate=16000"), Some(16_000));
        assert_eq!(pcm_rate("audio/mpeg"), None);
    }

    #[test]
    fn character_priced_speech_is_held_at_its_exact_price_and_token_priced_at_the_slowest_speech() {
        let text = "a".repeat(1_000);
        // tts-1: $15 per 1M characters = 15,000 nano-USD a character.
        assert_eq!(worst_case_nusd(&speech(Provider::Openai, "tts-1", &text)), 1_000 * 15_000);
        assert_eq!(worst_case_nusd(&speech(Provider::Openai, "tts-1-hd", &text)), 1_000 * 30_000);
        // gpt-4o-mini-tts: 250 s at the slowest → 5,209 audio tokens at $12/1M, plus the input.
        let mini = worst_case_nusd(&speech(Provider::Openai, "gpt-4o-mini-tts", &text));
        assert!(mini >= 5_209 * 12_000, "{mini}");
        assert!(refusal(&speech(Provider::Perplexity, "x", "hi")).is_some());
        assert!(refusal(&speech(Provider::Openai, "gpt-4o", "hi")).is_some(), "not a known speech model");
        assert!(refusal(&speech(Provider::Gemini, "gemini-2.5-flash", "hi")).is_some(), "not a TTS model");
        let mut long_instructions = speech(Provider::Openai, "gpt-4o-mini-tts", "hi");
        long_instructions.instructions = Some("slowly ".repeat(200));
        assert!(refusal(&long_instructions).is_some());
        // Instructions are paid for as if spoken: 250 s for 1,000 characters.
        long_instructions.instructions = Some("a".repeat(1_000));
        assert!(worst_case_nusd(&long_instructions) >= 5_209 * 12_000);
        assert!(refusal(&speech(Provider::Openai, "tts-1", &"a".repeat(4_097))).is_some());
    }
}

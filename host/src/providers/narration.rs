//! Long audio: a text of up to 50,000 characters (about an hour of speech) narrated by
//! ElevenLabs as a long-running generation. No ElevenLabs API speaks that much in one request
//! (5,000 characters at most; its Studio API is granted on request only), so the host speaks it
//! in parts cut at sentence ends, each request naming the ones before it
//! (`previous_request_ids`, ElevenLabs' request stitching) so the voice carries on, and joins
//! the parts into one WAV. The job waits suspended, without an instance, as for a video.

use super::pricing::Rates;
use super::{Provider, parse_provider};
use crate::capabilities::SpeechCall;
use serde::{Deserialize, Serialize};

/// The longest text one narration speaks: about an hour at normal speed, a 170 MB WAV.
pub const MAX_NARRATION_CHARS: usize = 50_000;

/// The longest part spoken in one request. Small enough that progress moves every few
/// seconds and that a host stopping mid-request loses little; far below ElevenLabs' limits.
pub const PART_CHARS: usize = 2_000;

/// What a template asked to narrate (stored as the generation's request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NarrationTask {
    /// `elevenlabs`.
    pub provider: String,
    pub model: String,
    pub text: String,
    pub voice: String,
    /// ElevenLabs' `voice_settings`, a JSON object.
    pub voice_settings: Option<String>,
    pub seed: Option<u32>,
}

impl NarrationTask {
    /// Why it cannot be narrated, naming the field; checked before anything is held.
    pub fn refusal(&self) -> Option<String> {
        if parse_provider(&self.provider) != Some(Provider::Elevenlabs) {
            return Some(format!(
                "provider: {} has no long audio here; narrate with elevenlabs, or speak parts of at most 4,096 \
                 characters with speak",
                self.provider
            ));
        }
        let chars = self.text.chars().count();
        if self.text.trim().is_empty() {
            return Some("text: must not be empty".into());
        }
        if chars > MAX_NARRATION_CHARS {
            return Some(format!("text: {chars} characters; at most {MAX_NARRATION_CHARS} are narrated"));
        }
        // Each part is an ElevenLabs request: the voice, model and settings are checked as one.
        super::elevenlabs::refusal(&self.part_call("-"))
    }

    /// ElevenLabs' price of the whole narration (it bills the characters it is sent: the
    /// parts, without the blank stretches between them).
    pub fn cost_nusd(&self) -> i64 {
        self.price_of(&self.parts())
    }

    /// The price of speaking `parts`.
    pub fn price_of(&self, parts: &[&str]) -> i64 {
        let chars: usize = parts.iter().map(|p| p.chars().count()).sum();
        Rates::of(Provider::Elevenlabs, &self.model).characters(chars as i64)
    }

    /// The request for one part.
    pub fn part_call(&self, text: &str) -> SpeechCall {
        SpeechCall {
            provider: Provider::Elevenlabs,
            model: self.model.clone(),
            text: text.to_string(),
            voice: self.voice.clone(),
            key: String::new(),
            instructions: None,
            voice_settings: self.voice_settings.clone(),
            seed: self.seed,
        }
    }

    /// Whether requests may name the ones before them: ElevenLabs' stitching does not take
    /// `eleven_v3`, which gets each part on its own.
    pub fn stitches(&self) -> bool {
        !self.model.starts_with("eleven_v3")
    }

    /// The text cut into parts of at most [`PART_CHARS`].
    pub fn parts(&self) -> Vec<&str> {
        self.parts_of(PART_CHARS)
    }

    /// The text cut into parts of at most `max` characters, in order; a part that is only
    /// whitespace (a blank stretch longer than a part) is left out: there is nothing to say.
    pub fn parts_of(&self, max: usize) -> Vec<&str> {
        split_into_parts(&self.text, max).into_iter().filter(|p| !p.trim().is_empty()).collect()
    }
}

/// `text` in pieces of at most `max` characters whose concatenation is `text`: each cut after
/// the last sentence end (`.`, `!`, `?`, a line break) that fits, else after the last space,
/// else in the middle of a word.
pub fn split_into_parts(text: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.chars().count() > max {
        // The byte index just past the `max`-th character.
        let limit = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..limit];
        let after = |i: usize, c: char| i + c.len_utf8();
        let sentence = window.char_indices().filter_map(|(i, c)| sentence_end(window, i, c)).next_back();
        let space = window.char_indices().filter(|(_, c)| c.is_whitespace()).map(|(i, c)| after(i, c)).next_back();
        let cut = sentence.or(space).filter(|cut| *cut > 0).unwrap_or(limit);
        parts.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        parts.push(rest);
    }
    parts
}

/// Where a part may end after the character `c` at `at`: past a line break, or past the
/// whitespace after a `.`, `!` or `?` (so the next part starts with its sentence's first word).
fn sentence_end(window: &str, at: usize, c: char) -> Option<usize> {
    match c {
        '\n' => Some(at + 1),
        '.' | '!' | '?' => {
            let next = window[at + 1..].chars().next().filter(|n| n.is_whitespace())?;
            Some(at + 1 + next.len_utf8())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn narration(model: &str, text: &str) -> NarrationTask {
        NarrationTask {
            provider: "elevenlabs".into(),
            model: model.into(),
            text: text.into(),
            voice: "JBFqnCBsd6RMkjVDRZzb".into(),
            voice_settings: None,
            seed: None,
        }
    }

    #[test]
    fn a_long_text_is_cut_at_sentence_ends_into_parts_that_join_back_into_it() {
        let sentence = "The tide comes in over the rocks, slowly, as it has for years. ";
        let text = sentence.repeat(100);
        let parts = split_into_parts(&text, PART_CHARS);
        assert_eq!(parts.concat(), text);
        assert!(parts.iter().all(|p| p.chars().count() <= PART_CHARS));
        assert!(parts[..parts.len() - 1].iter().all(|p| p.ends_with(". ")), "cut after a sentence");
        assert_eq!(parts.len(), 4, "31 sentences of 63 characters fit in a part");
        // No sentence end: after a space; no space: anywhere, counting characters, not bytes.
        assert_eq!(split_into_parts("aaa bbb ccc", 5), ["aaa ", "bbb ", "ccc"]);
        assert_eq!(split_into_parts("ééééééé", 3), ["ééé", "ééé", "é"]);
        assert_eq!(split_into_parts("short", 5), ["short"]);
    }

    #[test]
    fn a_narration_is_priced_by_its_characters_and_refused_past_its_bounds() {
        let task = narration("eleven_multilingual_v2", &"a".repeat(10_000));
        assert_eq!(task.cost_nusd(), 10_000 * 100_000);
        assert_eq!(task.price_of(&task.parts()[..2]), 4_000 * 100_000);
        // A blank stretch is not a part, and is not paid for.
        let gap = narration("eleven_flash_v2_5", &format!("{}.{}Then more.", "a".repeat(1_999), "\n".repeat(2_500)));
        let parts = gap.parts();
        assert_eq!(parts.len(), 2, "the 2,000 line breaks between them are no part: {parts:?}");
        assert!(parts[1].ends_with("Then more.") && parts[1].chars().count() == 510);
        assert_eq!(gap.cost_nusd(), (2_000 + 510) * 50_000);
        assert_eq!(task.refusal(), None);
        assert!(task.stitches());
        assert!(!narration("eleven_v3", "hi").stitches());
        let too_long = narration("eleven_flash_v2_5", &"a".repeat(MAX_NARRATION_CHARS + 1));
        assert!(too_long.refusal().is_some_and(|why| why.starts_with("text:")));
        let openai = NarrationTask { provider: "openai".into(), ..narration("tts-1", "hi") };
        assert!(openai.refusal().is_some_and(|why| why.starts_with("provider:")));
        assert!(narration("eleven_english_v1", "hi").refusal().is_some());
        assert!(NarrationTask { voice: "a/b".into(), ..narration("eleven_v3", "hi") }.refusal().is_some());
    }
}

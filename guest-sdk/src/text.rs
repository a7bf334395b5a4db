//! Helpers for what AI providers answer: JSON inside prose or code fences.

use serde::de::DeserializeOwned;

/// The first JSON value of type `T` in `text`: the whole text, a fenced ```json block, or the
/// span from the first `{`/`[` to its last matching closer. Models often wrap JSON in prose.
pub fn extract_json<T: DeserializeOwned>(text: &str) -> Option<T> {
    let trimmed = text.trim();
    if let Ok(value) = serde_json::from_str(trimmed) {
        return Some(value);
    }
    if let Some(fenced) = trimmed.split("```").nth(1) {
        let body = fenced.trim_start_matches("json").trim();
        if let Ok(value) = serde_json::from_str(body) {
            return Some(value);
        }
    }
    for (open, close) in [('{', '}'), ('[', ']')] {
        if let (Some(start), Some(end)) = (trimmed.find(open), trimmed.rfind(close))
            && start < end
            && let Ok(value) = serde_json::from_str(&trimmed[start..=end])
        {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_found_bare_fenced_or_inside_prose() {
        let bare: Option<Vec<u32>> = extract_json("[1, 2]");
        assert_eq!(bare, Some(vec![1, 2]));
        let fenced: Option<serde_json::Value> = extract_json("Sure!\n```json\n{\"a\": 1}\n```\nEnjoy.");
        assert_eq!(fenced, Some(serde_json::json!({"a": 1})));
        let prose: Option<serde_json::Value> = extract_json("Here it is: {\"b\": [true]} as asked.");
        assert_eq!(prose, Some(serde_json::json!({"b": [true]})));
        assert_eq!(extract_json::<serde_json::Value>("no json here"), None);
    }
}

/// A `data:` URL of `bytes` (base64), for providers that take images by URL.
pub fn data_url(content_type: &str, bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4 + content_type.len() + 13);
    out.push_str("data:");
    out.push_str(content_type);
    out.push_str(";base64,");
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod data_url_tests {
    #[test]
    fn data_urls_are_standard_base64() {
        assert_eq!(super::data_url("text/plain", b"Man"), "data:text/plain;base64,TWFu");
        assert_eq!(super::data_url("text/plain", b"Ma"), "data:text/plain;base64,TWE=");
        assert_eq!(super::data_url("text/plain", b"M"), "data:text/plain;base64,TQ==");
    }
}

//! What every adapter shares: sending a JSON request and sorting the reply into the outcomes
//! the key queue acts on (success, rate limit, bad key, the provider's fault, our fault).

use super::Provider;
use super::rate_limit::{self, RateLimitSignal};
use serde_json::Value;
use std::time::SystemTime;

/// Why a provider call did not give an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// 429: cool the key down.
    RateLimited { signal: RateLimitSignal, detail: String },
    /// The key is not valid (401/403, or Gemini's `API_KEY_INVALID`).
    Auth { status: u16, detail: String },
    /// The request was refused for itself (400, 404, 422 …): another key would not help.
    Rejected { status: u16, detail: String },
    /// 5xx, 408, timeouts, connection errors: worth another try, on another key if any.
    Transient { status: Option<u16>, detail: String },
    /// A 2xx whose body is not what the provider's format promises.
    BadAnswer(String),
}

/// Tokens (and images) a call consumed, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub images: u32,
    /// Characters spoken, for models priced by the character (text to speech).
    pub characters: u32,
    /// Some providers (OpenRouter) report the call's cost themselves.
    pub reported_cost_usd: Option<f64>,
}

/// The largest JSON answer read (a Gemini image in base64 is a few MB).
const MAX_JSON_BYTES: usize = 64 << 20;

/// Send `request` to `provider` and return the JSON body of a 2xx, or classify the failure.
pub async fn send_json(provider: Provider, request: reqwest::RequestBuilder) -> Result<Value, CallError> {
    let (_, body) = send(provider, request, MAX_JSON_BYTES).await?;
    serde_json::from_slice(&body).map_err(|e| CallError::BadAnswer(format!("the answer is not JSON: {e}")))
}

/// Send `request` to `provider` and return the headers and body of a 2xx (read up to
/// `max_bytes`: a longer answer is the provider's fault, not a reason to buffer it), or
/// classify the failure.
pub async fn send(
    provider: Provider,
    request: reqwest::RequestBuilder,
    max_bytes: usize,
) -> Result<(reqwest::header::HeaderMap, Vec<u8>), CallError> {
    let mut response = request.send().await.map_err(|e| CallError::Transient {
        status: None,
        detail: if e.is_timeout() { "the provider did not answer in time".into() } else { format!("{e}") },
    })?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() > max_bytes => {
                return Err(CallError::BadAnswer(format!("the answer is larger than {max_bytes} bytes")));
            }
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            // A success that broke off mid-body was made (and billed): not a failure to retry.
            Err(e) if (200..300).contains(&status) => {
                return Err(CallError::BadAnswer(format!("the answer broke off after {} bytes: {e}", body.len())));
            }
            Err(e) => {
                return Err(CallError::Transient { status: Some(status), detail: format!("reading the answer: {e}") });
            }
        }
    }
    if (200..300).contains(&status) {
        return Ok((headers, body));
    }
    Err(failure(provider, status, &headers, &body))
}

/// What a non-2xx answer means, from its status, headers and (start of the) body.
pub fn failure(provider: Provider, status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> CallError {
    let body = String::from_utf8_lossy(body);
    let detail = error_message(&body, status);
    match status {
        429 => CallError::RateLimited { signal: rate_limit::parse(headers, &body, SystemTime::now()), detail },
        // ElevenLabs answers a used-up character quota with a 401: the key is fine, its quota is not.
        401 if provider == Provider::Elevenlabs && elevenlabs_status(&body) == Some("quota_exceeded") => {
            let signal = RateLimitSignal { retry_after: None, quota_exhausted: true };
            CallError::RateLimited { signal, detail }
        }
        _ if is_invalid_key(provider, status, &body) => CallError::Auth { status, detail },
        408 | 500..=599 => CallError::Transient { status: Some(status), detail },
        _ => CallError::Rejected { status, detail },
    }
}

/// Whether an error answer says the key itself is invalid — only a provider's own structured
/// statement of it: OpenAI's `error.code: "invalid_api_key"` (401), Gemini's
/// `ErrorInfo.reason: "API_KEY_INVALID"` in `error.details` (400), a 401 from OpenRouter or
/// Perplexity (whose 401 means exactly that). A 403 (no permission for a model, a moderation
/// refusal) or a message that merely quotes those words is the request's problem, not the
/// key's: a prompt cannot get a key disabled for every tenant.
fn is_invalid_key(provider: Provider, status: u16, body: &str) -> bool {
    let parsed: Value = serde_json::from_str(body).unwrap_or_default();
    match provider {
        Provider::Openai => status == 401 && parsed.pointer("/error/code") == Some(&Value::from("invalid_api_key")),
        Provider::Gemini => {
            status == 400
                && parsed.pointer("/error/details").and_then(Value::as_array).is_some_and(|details| {
                    details.iter().any(|d| {
                        d["@type"].as_str().is_some_and(|t| t.ends_with("google.rpc.ErrorInfo"))
                            && d["reason"] == "API_KEY_INVALID"
                    })
                })
        }
        Provider::Openrouter | Provider::Perplexity => status == 401,
        Provider::Elevenlabs => status == 401 && elevenlabs_status(body) == Some("invalid_api_key"),
    }
}

/// ElevenLabs' structured error code: `{"detail": {"status": "invalid_api_key", "message": …}}`.
fn elevenlabs_status(body: &str) -> Option<&'static str> {
    let parsed: Value = serde_json::from_str(body).ok()?;
    let status = parsed.pointer("/detail/status")?.as_str()?;
    ["invalid_api_key", "quota_exceeded"].into_iter().find(|known| *known == status)
}

/// The provider's own error message (`error.message` in four formats, ElevenLabs'
/// `detail.message`, or the first of a validation error's `detail[].msg`), else the body.
fn error_message(body: &str, status: u16) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        ["/error/message", "/detail/message", "/detail/0/msg"].iter().find_map(|p| v.pointer(p).and_then(Value::as_str))
    });
    let text = message.unwrap_or(body).trim();
    let text: String = text.chars().take(300).collect();
    if text.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {text}") }
}

/// A string at `pointer`, or a `BadAnswer` naming what is missing.
pub fn text_at<'a>(body: &'a Value, pointer: &str) -> Result<&'a str, CallError> {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| CallError::BadAnswer(format!("the answer has no `{pointer}`")))
}

/// A token count at `pointer` (0 when the provider did not report it).
pub fn count_at(body: &Value, pointer: &str) -> u32 {
    body.pointer(pointer).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

/// The bytes and media type of a `data:` URL.
pub fn decode_data_url(url: &str) -> Option<(String, Vec<u8>)> {
    use base64::Engine;
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(data.trim()).ok()?;
    Some((if mime.is_empty() { "application/octet-stream".into() } else { mime.into() }, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_decode_to_their_bytes_and_type() {
        assert_eq!(decode_data_url("data:image/png;base64,aGk="), Some(("image/png".into(), b"hi".to_vec())));
        assert_eq!(decode_data_url("https://example.com/a.png"), None);
        assert_eq!(decode_data_url("data:text/plain,hi"), None);
    }

    #[test]
    fn only_a_providers_structured_auth_error_marks_a_key_invalid() {
        let openai_bad_key = r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        assert!(is_invalid_key(Provider::Openai, 401, openai_bad_key));
        assert!(!is_invalid_key(Provider::Openai, 401, r#"{"error":{"message":"no"}}"#), "a 401 without the code");
        assert!(!is_invalid_key(Provider::Openai, 403, openai_bad_key), "403 is permission, not the key");
        let gemini_bad_key = r#"{"error":{"code":400,"message":"API key not valid","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        assert!(is_invalid_key(Provider::Gemini, 400, gemini_bad_key));
        let quoted = r#"{"error":{"code":400,"message":"your prompt said API_KEY_INVALID"}}"#;
        assert!(!is_invalid_key(Provider::Gemini, 400, quoted), "words in a message are not the structured error");
        assert!(!is_invalid_key(Provider::Gemini, 403, r#"{"error":{"status":"PERMISSION_DENIED"}}"#));
        assert!(is_invalid_key(Provider::Openrouter, 401, "{}"));
        assert!(!is_invalid_key(Provider::Openrouter, 403, r#"{"error":{"message":"flagged by moderation"}}"#));
        let eleven_bad_key = r#"{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}"#;
        assert!(is_invalid_key(Provider::Elevenlabs, 401, eleven_bad_key));
        let eleven_quota = r#"{"detail":{"status":"quota_exceeded","message":"This request exceeds your quota."}}"#;
        assert!(!is_invalid_key(Provider::Elevenlabs, 401, eleven_quota), "a used-up quota is not a bad key");
    }

    #[test]
    fn an_elevenlabs_quota_401_cools_the_key_down_and_its_messages_are_read() {
        let headers = reqwest::header::HeaderMap::new();
        let quota = br#"{"detail":{"status":"quota_exceeded","message":"This request exceeds your quota."}}"#;
        let CallError::RateLimited { signal, detail } = failure(Provider::Elevenlabs, 401, &headers, quota) else {
            panic!("a quota is a rate limit")
        };
        assert!(signal.quota_exhausted);
        assert_eq!(detail, "HTTP 401: This request exceeds your quota.");
        let missing = br#"{"detail":{"status":"voice_not_found","message":"A voice with that ID was not found."}}"#;
        assert!(matches!(
            failure(Provider::Elevenlabs, 404, &headers, missing),
            CallError::Rejected { status: 404, .. }
        ));
        let invalid = br#"{"detail":[{"loc":["body","text"],"msg":"Field required","type":"missing"}]}"#;
        assert_eq!(error_message(&String::from_utf8_lossy(invalid), 422), "HTTP 422: Field required");
    }

    #[tokio::test]
    async fn a_success_that_breaks_off_mid_body_was_made_and_is_not_a_failure_to_retry() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let address = listener.local_addr().expect("an address");
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("a connection");
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            // 1,000 bytes promised, ten sent, then the connection is gone.
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nonly ten b").await;
        });
        let request = reqwest::Client::new().post(format!("http://{address}/v1/text-to-speech/x"));
        let error = send(Provider::Elevenlabs, request, 1 << 20).await.expect_err("broken off");
        assert!(matches!(&error, CallError::BadAnswer(m) if m.contains("broke off")), "{error:?}");
    }

    #[test]
    fn error_messages_come_from_the_providers_error_object() {
        assert_eq!(error_message(r#"{"error":{"message":"Invalid model"}}"#, 400), "HTTP 400: Invalid model");
        assert_eq!(error_message("", 502), "HTTP 502");
    }
}

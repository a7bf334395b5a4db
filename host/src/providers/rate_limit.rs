//! How long a rate-limited key cools down, from the provider's own signal: `retry-after-ms`,
//! `retry-after` (seconds or an HTTP date), OpenAI's `x-ratelimit-reset-*` ("6m0s", "12ms"),
//! Gemini's `RetryInfo.retryDelay` in the error body. A 429 that means "quota exhausted"
//! (OpenAI `insufficient_quota`, a Gemini per-day quota) is not a short cooldown.

use reqwest::header::HeaderMap;
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// What a 429 told us.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitSignal {
    /// The provider's own wait, when it gave one.
    pub retry_after: Option<Duration>,
    /// The quota (billing or daily), not the rate, is used up.
    pub quota_exhausted: bool,
}

/// Read a 429's headers and body.
pub fn parse(headers: &HeaderMap, body: &str, now: SystemTime) -> RateLimitSignal {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let from_ms = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()).and_then(secs_f64(1e-3));
    let from_retry_after = header("retry-after").and_then(|v| retry_after(v, now));
    let from_openai = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
        .iter()
        .filter_map(|name| header(name).and_then(go_duration))
        .max();
    let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let from_gemini = gemini_retry_delay(&body);
    RateLimitSignal {
        retry_after: from_ms.or(from_retry_after).or(from_gemini).or(from_openai),
        quota_exhausted: quota_exhausted(&body),
    }
}

/// The `retry-after` header of a response (seconds or an HTTP date), if any.
pub fn retry_after_header(headers: &HeaderMap) -> Option<Duration> {
    headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| retry_after(v.trim(), SystemTime::now()))
}

/// `Retry-After`: delta-seconds or an HTTP date.
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = value.parse::<f64>() {
        return secs_f64(1.0)(secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn secs_f64(unit: f64) -> impl Fn(f64) -> Option<Duration> {
    move |n| (n.is_finite() && n >= 0.0).then(|| Duration::from_secs_f64((n * unit).min(86_400.0 * 7.0)))
}

/// Go-style durations as OpenAI sends them: `1s`, `6m0s`, `12ms`, `1h2m3.5s`.
pub fn go_duration(text: &str) -> Option<Duration> {
    let mut total = 0.0_f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    secs_f64(1.0)(total)
}

/// `error.details[]` with `@type` `…RetryInfo` and `retryDelay` like `"37s"` or `"1.5s"`.
fn gemini_retry_delay(body: &Value) -> Option<Duration> {
    body.pointer("/error/details")?
        .as_array()?
        .iter()
        .filter(|d| d["@type"].as_str().is_some_and(|t| t.ends_with("RetryInfo")))
        .find_map(|d| d["retryDelay"].as_str().and_then(go_duration))
}

fn quota_exhausted(body: &Value) -> bool {
    let error = &body["error"];
    let openai = [&error["code"], &error["type"]].iter().any(|v| v.as_str() == Some("insufficient_quota"));
    let gemini_daily = error["details"].as_array().is_some_and(|details| {
        details
            .iter()
            .flat_map(|d| d["violations"].as_array().into_iter().flatten())
            .any(|v| ["quotaId", "quotaMetric"].iter().any(|f| v[f].as_str().is_some_and(|s| s.contains("PerDay"))))
    });
    openai || gemini_daily
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (HeaderName::from_bytes(k.as_bytes()).expect("name"), HeaderValue::from_str(v).expect("value"))
            })
            .collect()
    }

    fn wait(pairs: &[(&str, &str)], body: &str) -> Option<Duration> {
        parse(&headers(pairs), body, SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)).retry_after
    }

    #[test]
    fn every_header_style_gives_the_providers_own_wait() {
        assert_eq!(wait(&[("retry-after", "20")], ""), Some(Duration::from_secs(20)));
        assert_eq!(wait(&[("retry-after-ms", "1500")], ""), Some(Duration::from_millis(1500)));
        assert_eq!(
            wait(&[("retry-after", "Tue, 14 Nov 2023 22:14:20 GMT")], ""),
            Some(Duration::from_secs(1_700_000_060 - 1_700_000_000))
        );
        assert_eq!(
            wait(&[("x-ratelimit-reset-requests", "6m0s"), ("x-ratelimit-reset-tokens", "12ms")], ""),
            Some(Duration::from_secs(360))
        );
        assert_eq!(wait(&[("retry-after-ms", "250"), ("retry-after", "9")], ""), Some(Duration::from_millis(250)));
        assert_eq!(wait(&[], ""), None);
        assert_eq!(wait(&[("retry-after", "soon")], ""), None);
    }

    #[test]
    fn gemini_says_when_to_retry_in_its_error_body() {
        let body = r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[
            {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerMinutePerProjectPerModel"}]},
            {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
        let signal = parse(&HeaderMap::new(), body, SystemTime::now());
        assert_eq!(signal, RateLimitSignal { retry_after: Some(Duration::from_secs(37)), quota_exhausted: false });
    }

    #[test]
    fn an_exhausted_quota_is_told_apart_from_a_rate_limit() {
        let openai = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert!(parse(&HeaderMap::new(), openai, SystemTime::now()).quota_exhausted);
        let gemini = r#"{"error":{"code":429,"details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure",
            "violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}"#;
        assert!(parse(&HeaderMap::new(), gemini, SystemTime::now()).quota_exhausted);
        let rate = r#"{"error":{"type":"requests","code":"rate_limit_exceeded"}}"#;
        assert!(!parse(&HeaderMap::new(), rate, SystemTime::now()).quota_exhausted);
    }

    #[test]
    fn go_durations_parse_like_openai_writes_them() {
        assert_eq!(go_duration("1h2m3.5s"), Some(Duration::from_secs_f64(3723.5)));
        assert_eq!(go_duration("12ms"), Some(Duration::from_millis(12)));
        assert_eq!(go_duration("0s"), Some(Duration::ZERO));
        assert_eq!(go_duration("3 days"), None);
        assert_eq!(go_duration(""), None);
    }
}

//! The few pages the server renders itself (sign-up, sign-in, account, the app's shell):
//! plain HTML, every interpolated value escaped.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// `text` safe inside HTML text and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `body` is trusted markup (built with [`escape`]d values).
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Vidfarm</title><link rel=\"stylesheet\" href=\"/assets/app.css\"><link rel=\"icon\" href=\"/assets/icon.svg\"></head>\
         <body><main class=\"narrow\"><h1>{}</h1>{body}</main></body></html>",
        escape(title),
        escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    secure_page(&mut response, "default-src 'self'; style-src 'self'; script-src 'none'");
    response
}

/// The headers of every page the dashboard serves: never cached (forms carry CSRF tokens),
/// never framed, only the host's own resources.
pub fn secure_page(response: &mut Response, policy: &str) {
    use axum::http::{HeaderValue, header};
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    let policy = format!("{policy}; frame-ancestors 'none'; form-action 'self'; base-uri 'none'");
    if let Ok(value) = HeaderValue::from_str(&policy) {
        h.insert(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// An error line above a form (`role=alert`, so screen readers announce it).
pub fn alert(message: Option<&str>) -> String {
    message.map_or_else(String::new, |m| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(m)))
}

/// A labelled input.
pub fn field(label: &str, name: &str, kind: &str, value: &str, extra: &str) -> String {
    format!(
        "<label for=\"{name}\">{}</label><input id=\"{name}\" name=\"{name}\" type=\"{kind}\" value=\"{}\" {extra}>",
        escape(label),
        escape(value)
    )
}

/// The hidden CSRF field every form carries.
pub fn csrf(token: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">", escape(token))
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_in_values_is_rendered_as_text() {
        assert_eq!(
            super::escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}

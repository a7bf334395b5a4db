//! Keys a template gives are relative to a prefix. They are checked against a strict
//! allow-list before anything else sees them, so no spelling (`..`, absolute, `%2e`, `\`,
//! NUL, drive letters) can reach outside the prefix on any backend.

/// Longest relative key accepted.
const MAX_KEY_BYTES: usize = 512;

/// `prefix/key` when `key` is a safe relative key; otherwise why not.
pub fn resolve(prefix: &str, key: &str) -> Result<String, String> {
    validate(key)?;
    Ok(format!("{prefix}/{key}"))
}

/// A safe relative key: segments of `[A-Za-z0-9._-]` (plus `=`, `+`, `@`, `,`) separated by
/// single `/`, none of them `.` or `..`, not starting with `/`, at most 512 bytes.
pub fn validate(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!("the key is longer than {MAX_KEY_BYTES} bytes"));
    }
    if key.starts_with('/') {
        return Err(format!("`{}` is absolute; keys are relative to the job's prefix", printable(key)));
    }
    if let Some(c) = key.chars().find(|c| !allowed(*c)) {
        return Err(format!("`{}` contains `{}`, which keys may not contain", printable(key), c.escape_default()));
    }
    for segment in key.split('/') {
        match segment {
            "" => return Err(format!("`{}` has an empty path segment", printable(key))),
            "." | ".." => return Err(format!("`{}` has a `{segment}` segment", printable(key))),
            _ => {}
        }
    }
    Ok(())
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '=' | '+' | '@' | ',')
}

fn printable(key: &str) -> String {
    key.escape_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_keys_resolve_under_their_prefix() {
        assert_eq!(resolve("p/q", "a/b.txt").as_deref(), Ok("p/q/a/b.txt"));
        assert_eq!(resolve("p", "renders/scene-1.mp4").as_deref(), Ok("p/renders/scene-1.mp4"));
    }

    #[test]
    fn every_escape_spelling_is_refused() {
        for key in [
            "",
            "..",
            "../x",
            "a/../../x",
            "/etc/passwd",
            "%2e%2e/x",
            "..%2fx",
            "..\\x",
            "C:\\x",
            "a/./b",
            "a//b",
            "nul\0x",
            "a/..",
            "~/.ssh",
            "a b",
            "line\nbreak",
        ] {
            assert!(validate(key).is_err(), "{key:?} was accepted");
        }
    }

    #[test]
    fn a_key_over_the_length_limit_is_refused() {
        assert!(validate(&"a".repeat(MAX_KEY_BYTES + 1)).is_err());
        assert!(validate(&"a".repeat(MAX_KEY_BYTES)).is_ok());
    }
}

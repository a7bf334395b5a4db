//! URLs the host signs for its own file route (the local backend's "presigned" URLs):
//! `{base}/files/{key}?expires={unix s}&sig={hex}`, where the signature is a keyed BLAKE3
//! hash of the method, the key and the expiry under a key derived from the master key. A URL
//! works until it expires, for that key and method only.

use std::time::Duration;

/// Signs and checks file URLs.
#[derive(Clone)]
pub struct UrlSigner {
    key: [u8; 32],
    /// Where the host's API is reachable from outside, e.g. `https://vidfarm.example.com`.
    base: String,
    /// How long a signed URL works.
    pub ttl: Duration,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the URL has expired")]
    Expired,
    #[error("the signature does not match")]
    Mismatch,
}

impl UrlSigner {
    pub fn new(key: [u8; 32], base: &str, ttl: Duration) -> Self {
        Self { key, base: base.trim_end_matches('/').to_string(), ttl }
    }

    fn signature(&self, method: &str, key: &str, expires: i64) -> String {
        blake3::keyed_hash(&self.key, format!("{method}\n{key}\n{expires}").as_bytes()).to_hex().to_string()
    }

    /// The URL `method` may use on `key` until `now + ttl` (unix seconds: `now_s`).
    pub fn url(&self, method: &str, key: &str, now_s: i64) -> (String, i64) {
        let expires = now_s.saturating_add(i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2));
        let sig = self.signature(method, key, expires);
        let method_param = if method == "GET" { String::new() } else { format!("&method={method}") };
        (format!("{}/files/{key}?expires={expires}&sig={sig}{method_param}", self.base), expires)
    }

    /// Whether `sig` signs `method` on `key` until `expires`, and that is still in the future.
    pub fn verify(&self, method: &str, key: &str, expires: i64, sig: &str, now_s: i64) -> Result<(), SignatureError> {
        let expected = self.signature(method, key, expires);
        // Compare as hashes (constant time in blake3's Hash equality).
        let same = blake3::hash(expected.as_bytes()) == blake3::hash(sig.as_bytes());
        if !same {
            return Err(SignatureError::Mismatch);
        }
        if expires <= now_s {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }
}

impl UrlSigner {
    /// The object key of a GET URL this signer made and that still works, so the host can
    /// read its own URLs from the store instead of fetching them from itself.
    pub fn own_object(&self, url: &str, now_s: i64) -> Option<String> {
        let rest = url.strip_prefix(&self.base)?.strip_prefix("/files/")?;
        let (key, query) = rest.split_once('?')?;
        let (mut expires, mut sig) = (None, None);
        for pair in query.split('&') {
            match pair.split_once('=')? {
                ("expires", v) => expires = v.parse::<i64>().ok(),
                ("sig", v) => sig = Some(v),
                _ => return None, // another method, or parameters we never add
            }
        }
        self.verify("GET", key, expires?, sig?, now_s).ok().map(|()| key.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> UrlSigner {
        UrlSigner::new([7; 32], "http://h:1/", Duration::from_secs(60))
    }

    fn parts(url: &str) -> (i64, String) {
        let query = url.split_once('?').expect("a query").1;
        let get = |name: &str| {
            query.split('&').find_map(|p| p.strip_prefix(&format!("{name}="))).expect("the parameter").to_string()
        };
        (get("expires").parse().expect("a number"), get("sig"))
    }

    #[test]
    fn a_signed_url_works_for_its_key_and_method_until_it_expires() {
        let (url, expires) = signer().url("GET", "templates/t/users/c/jobs/j/a.txt", 1000);
        assert!(url.starts_with("http://h:1/files/templates/t/users/c/jobs/j/a.txt?expires=1060&sig="));
        let (e, sig) = parts(&url);
        assert_eq!(e, expires);
        let key = "templates/t/users/c/jobs/j/a.txt";
        assert_eq!(signer().verify("GET", key, e, &sig, 1059), Ok(()));
        assert_eq!(signer().verify("GET", key, e, &sig, 1060), Err(SignatureError::Expired));
        assert_eq!(signer().verify("PUT", key, e, &sig, 1000), Err(SignatureError::Mismatch));
        assert_eq!(
            signer().verify("GET", "templates/t/users/c/jobs/j/b.txt", e, &sig, 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(signer().verify("GET", key, e + 3600, &sig, 1000), Err(SignatureError::Mismatch));
        let other = UrlSigner::new([8; 32], "http://h:1", Duration::from_secs(60));
        assert_eq!(other.verify("GET", key, e, &sig, 1000), Err(SignatureError::Mismatch));
    }
}

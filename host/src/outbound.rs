//! Requests the host makes to addresses it was given (webhook URLs, image URLs): in
//! production they may only go to public addresses, so nobody can aim the host at its own
//! loopback, the cloud metadata service or the private network (SSRF). Development allows
//! them, so receivers on the developer's machine work.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long one DNS lookup may take.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// A client whose requests to `url`'s host go to the addresses `check_destination` approved
/// (so a DNS answer that changes in between cannot redirect the request), without redirects.
pub fn pinned_client(url: &reqwest::Url, addrs: &[SocketAddr], timeout: Duration) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().timeout(timeout).redirect(reqwest::redirect::Policy::none());
    if let Some(host) = url.host_str() {
        builder = builder.resolve_to_addrs(host, addrs);
    }
    builder.build()
}

/// Refuse `url` unless it is http(s) and, when `allow_private` is false, every address its
/// host resolves to is public; the approved addresses come back (none when private
/// addresses are allowed: then nothing was resolved).
pub async fn check_destination(url: &str, allow_private: bool) -> Result<(reqwest::Url, Vec<SocketAddr>), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("`{url}` must be an http or https URL"));
    }
    let host = parsed.host_str().ok_or_else(|| format!("`{url}` has no host"))?.to_string();
    if allow_private {
        return Ok((parsed, Vec::new()));
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    // A resolver that never answers must not hold a job, a webhook sender or a request.
    let lookup = tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((host.as_str(), port)))
        .await
        .map_err(|_| format!("`{host}` did not resolve within {} s", DNS_TIMEOUT.as_secs()))?;
    let addrs: Vec<SocketAddr> = lookup.map_err(|e| format!("`{host}` does not resolve: {e}"))?.collect();
    match addrs.iter().find(|a| !is_public(a.ip())) {
        Some(a) => Err(format!("`{host}` resolves to {}, a private or local address", a.ip())),
        None if addrs.is_empty() => Err(format!("`{host}` does not resolve")),
        None => Ok((parsed, addrs)),
    }
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            // An IPv6 address that carries an IPv4 one reaches it: judge that one.
            Some(v4) => is_public_v4(v4),
            None => !is_private_v6(v6),
        },
    }
}

/// The IPv4 address an IPv6 one leads to, if any: IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d` (deprecated, still routed by some stacks), NAT64
/// `64:ff9b::/96` and `64:ff9b:1::/48`, and 6to4 `2002:aabb:ccdd::/16`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0; 6] && !(ip.is_loopback() || ip.is_unspecified()) {
        return Some(tail);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0; 4] || s[2] == 1) {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
    }
    None
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || a >= 240)
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link local
        || (first & 0xffc0) == 0xfec0 // site local (deprecated, still routed)
        || (first == 0x0100 && ip.segments()[1..4] == [0; 3]) // discard-only
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_private_and_metadata_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
            "64:ff9b:1::a00:1",   // local-use NAT64 of 10.0.0.1
            "2002:7f00:1::",      // 6to4 of 127.0.0.1
            "2002:a9fe:a9fe::1",  // 6to4 of the metadata service
            "::127.0.0.1",        // IPv4-compatible
            "::a9fe:a9fe",
            "192.0.0.170",
            "fec0::1",
            "100::1",
        ] {
            assert!(!is_public(ip.parse().expect("an address")), "{ip} passed as public");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"] {
            assert!(is_public(ip.parse().expect("an address")), "{ip} refused");
        }
    }

    #[tokio::test]
    async fn production_refuses_loopback_urls_and_development_allows_them() {
        assert!(
            check_destination("http://127.0.0.1:9/hook", false)
                .await
                .expect_err("refused")
                .contains("private or local")
        );
        assert!(check_destination("http://localhost:9/hook", false).await.is_err());
        assert!(check_destination("http://127.0.0.1:9/hook", true).await.is_ok());
        assert!(check_destination("ftp://example.com/", true).await.expect_err("refused").contains("http or https"));
    }
}

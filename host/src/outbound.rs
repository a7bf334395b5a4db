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
    let addrs = resolve_within(&host, DNS_TIMEOUT, tokio::net::lookup_host((host.as_str(), port))).await?;
    match addrs.iter().find(|a| !is_public(a.ip())) {
        Some(a) => Err(format!("`{host}` resolves to {}, a private or local address", a.ip())),
        None if addrs.is_empty() => Err(format!("`{host}` does not resolve")),
        None => Ok((parsed, addrs)),
    }
}

/// The addresses a lookup gives, or an error once `limit` has passed without an answer.
async fn resolve_within<I: Iterator<Item = SocketAddr>>(
    host: &str,
    limit: Duration,
    lookup: impl std::future::Future<Output = std::io::Result<I>>,
) -> Result<Vec<SocketAddr>, String> {
    match tokio::time::timeout(limit, lookup).await {
        Err(_) => Err(format!("`{host}` did not resolve within {} s", limit.as_secs())),
        Ok(Err(e)) => Err(format!("`{host}` does not resolve: {e}")),
        Ok(Ok(addrs)) => Ok(addrs.collect()),
    }
}

/// Why a capped download stopped.
#[derive(Debug)]
pub enum DownloadError {
    /// The URL is malformed or the outbound policy refuses its destination.
    Refused(String),
    /// The destination could not be reached, answered an error status or broke off.
    Unreachable(String),
    /// The body passed the cap (announced or counted as it arrived).
    TooLarge { limit: u64 },
    /// Writing what arrived failed (the host's disk, not the customer's input).
    Sink(std::io::Error),
}

/// GET `url` under the outbound policy and copy its body into `sink` as it arrives, stopping
/// at `max` bytes without reading the rest; returns the bytes written. The one place the
/// host reads a body whose size someone else chose.
pub async fn download_capped<W: tokio::io::AsyncWrite + Unpin>(
    url: &str,
    allow_private: bool,
    timeout: Duration,
    max: u64,
    sink: &mut W,
) -> Result<u64, DownloadError> {
    use tokio::io::AsyncWriteExt;
    let (parsed, addrs) = check_destination(url, allow_private).await.map_err(DownloadError::Refused)?;
    let client = pinned_client(&parsed, &addrs, timeout).map_err(|e| DownloadError::Unreachable(e.to_string()))?;
    let mut response = client.get(parsed).send().await.map_err(|e| DownloadError::Unreachable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(DownloadError::Unreachable(format!("HTTP {}", response.status())));
    }
    if response.content_length().is_some_and(|n| n > max) {
        return Err(DownloadError::TooLarge { limit: max });
    }
    let mut written = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| DownloadError::Unreachable(e.to_string()))? {
        written += chunk.len() as u64;
        if written > max {
            return Err(DownloadError::TooLarge { limit: max });
        }
        sink.write_all(&chunk).await.map_err(DownloadError::Sink)?;
    }
    sink.flush().await.map_err(DownloadError::Sink)?;
    Ok(written)
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

    #[tokio::test(start_paused = true)]
    async fn a_resolver_that_never_answers_is_given_up_on_after_the_dns_time_box() {
        let never = std::future::pending::<std::io::Result<std::vec::IntoIter<SocketAddr>>>();
        let started = tokio::time::Instant::now();
        let error = resolve_within("stuck.example", DNS_TIMEOUT, never).await.expect_err("given up");
        assert!(error.contains("did not resolve within 5 s"), "{error}");
        assert_eq!(started.elapsed(), DNS_TIMEOUT);
        let answered = std::future::ready(Ok(vec![SocketAddr::from(([93, 184, 216, 34], 80))].into_iter()));
        assert_eq!(resolve_within("example.com", DNS_TIMEOUT, answered).await.expect("resolved").len(), 1);
    }

    #[tokio::test]
    async fn a_body_past_the_cap_stops_the_download_without_reading_the_rest() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // A server that announces no length and would stream 64 MiB; the download must stop at
        // the 1 MiB cap long before the server is done.
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut request).await;
            let head = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n";
            socket.write_all(head).await.expect("head");
            let chunk = vec![7u8; 64 << 10];
            let mut sent = 0usize;
            for _ in 0..1024 {
                if socket.write_all(&chunk).await.is_err() {
                    break;
                }
                sent += chunk.len();
            }
            sent
        });
        let mut sink = Vec::new();
        let url = format!("http://{addr}/big");
        let error = download_capped(&url, true, Duration::from_secs(10), 1 << 20, &mut sink).await.expect_err("capped");
        assert!(matches!(error, DownloadError::TooLarge { limit } if limit == 1 << 20), "{error:?}");
        assert!(sink.len() <= 1 << 20, "kept {} bytes", sink.len());
        let sent = server.await.expect("server");
        assert!(sent < 32 << 20, "the server got to send {sent} bytes");
        let refused = download_capped(&url, false, Duration::from_secs(1), 1, &mut Vec::new()).await;
        assert!(matches!(refused, Err(DownloadError::Refused(_))));
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

//! Which URLs a webhook may be sent to. A merchant chooses the URL, and the request
//! leaves from inside tijori's network: without these rules an endpoint set to
//! `http://169.254.169.254/` or `http://10.0.0.5:8080/admin` would make tijori a proxy
//! into its own network (server-side request forgery), with the answer shown back to
//! the merchant in the delivery log.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// The longest URL accepted. Real endpoints are far shorter; the cap keeps an absurd
/// one out of the database and the logs.
pub const MAX_URL_BYTES: usize = 2048;

/// Why a URL (or the address it leads to) may not be called.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Longer than [`MAX_URL_BYTES`].
    #[error("the URL is {0} bytes, at most {MAX_URL_BYTES} are allowed")]
    TooLong(usize),
    /// Not a URL at all.
    #[error("not a URL: {0}")]
    Parse(url::ParseError),
    /// A scheme other than `http` or `https` (`file:`, `ftp:`, `gopher:`...): only
    /// HTTP is a webhook, and the others reach things HTTP cannot.
    #[error("the URL's scheme is {0}, only http and https are allowed")]
    Scheme(String),
    /// No host to send to.
    #[error("the URL has no host")]
    NoHost,
    /// A user name or password in the URL: it would be sent to the endpoint, and shown
    /// wherever the URL is, which is no place for a credential.
    #[error("the URL carries a user name or password")]
    Credentials,
    /// The host is an IP address that is not public.
    #[error("{ip} is a {range} address, not a public one")]
    NotPublic {
        /// The address.
        ip: IpAddr,
        /// Which kind of address it is (loopback, private, link-local...).
        range: &'static str,
    },
    /// The host is `localhost` or a name under it, which is this machine by definition
    /// (RFC 6761), whatever DNS would say.
    #[error("localhost is this machine, not a public host")]
    Localhost,
    /// The host name resolved to no public address (one that points into a private
    /// network): when the endpoint is saved, or when sending (re-bound later).
    #[error("{host} resolves to no public address")]
    NoPublicAddress {
        /// The host name.
        host: String,
    },
}

/// Checks a webhook URL: `http` or `https`, a host, no credentials, at most
/// [`MAX_URL_BYTES`], and unless `allow_private` (tests, or an on-premises deployment
/// whose merchants are inside its own network), no IP literal that is not public and
/// no `localhost`. A host name's addresses are checked when it is called, by the
/// sender's resolver, because they can change after this check.
pub fn check_url(s: &str, allow_private: bool) -> Result<Url, UrlError> {
    if s.len() > MAX_URL_BYTES {
        return Err(UrlError::TooLong(s.len()));
    }
    let url = Url::parse(s).map_err(UrlError::Parse)?;
    // Parsing can lengthen it (an international name in punycode, escapes).
    if url.as_str().len() > MAX_URL_BYTES {
        return Err(UrlError::TooLong(url.as_str().len()));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme(url.scheme().to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    // The parser has already turned every spelling of an IPv4 address (`2130706433`,
    // `0x7f.1`, `127.1`) into an address, and lower-cased names, so what is left is
    // either an address or a name.
    let host = url.host().ok_or(UrlError::NoHost)?;
    if !allow_private {
        match host {
            Host::Ipv4(ip) => check_ip(IpAddr::V4(ip))?,
            Host::Ipv6(ip) => check_ip(IpAddr::V6(ip))?,
            Host::Domain(name) => {
                let name = name.strip_suffix('.').unwrap_or(name);
                if name == "localhost" || name.ends_with(".localhost") {
                    return Err(UrlError::Localhost);
                }
            }
        }
    }
    Ok(url)
}

fn check_ip(ip: IpAddr) -> Result<(), UrlError> {
    match non_public_range(ip) {
        Some(range) => Err(UrlError::NotPublic { ip, range }),
        None => Ok(()),
    }
}

/// Whether an address is reachable on the public internet, and so one a webhook may be
/// sent to. Everything else is this machine, the network it sits in, or no real
/// destination. The standard library's `is_global` would do, but it is not stable.
pub fn is_public(ip: IpAddr) -> bool {
    non_public_range(ip).is_none()
}

/// The kind of the address, if it is not public (for the error the merchant sees).
pub(crate) fn non_public_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => v4_range(ip),
        IpAddr::V6(ip) => v6_range(ip),
    }
}

/// IPv4 ranges that are not public (IANA's special-purpose registry, the parts that are
/// not globally reachable).
const V4_RANGES: &[(Ipv4Addr, u32, &str)] = &[
    (
        Ipv4Addr::new(0, 0, 0, 0),
        8,
        "unspecified (\"this network\")",
    ),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "carrier-grade NAT"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    // Includes 169.254.169.254, the cloud providers' metadata service (credentials).
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignment"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4 relay"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    // Includes 255.255.255.255, the broadcast address.
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved or broadcast"),
];

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let ip = u32::from(ip);
    V4_RANGES
        .iter()
        .find(|(net, len, _)| (ip ^ u32::from(*net)) >> (32 - len) == 0)
        .map(|(_, _, range)| *range)
}

/// IPv6 ranges inside global unicast (2000::/3) that are not public. Outside 2000::/3
/// nothing is (loopback, unique-local, link-local, multicast, the unassigned rest),
/// apart from addresses that embed an IPv4 one, which are judged by that address.
const V6_RANGES: &[(Ipv6Addr, u32, &str)] = &[
    // Teredo, benchmarking, ORCHID...: no webhook endpoint lives here.
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "IETF protocol assignment",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation",
    ),
];

fn in_v6(ip: u128, net: Ipv6Addr, len: u32) -> bool {
    (ip ^ u128::from(net)) >> (128 - len) == 0
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(ip);
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // The addresses that carry an IPv4 address reach that address (the OS, a NAT64 or
    // a 6to4 relay translates), so `::ffff:127.0.0.1` is loopback.
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if in_v6(bits, Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96) // IPv4-mapped
        || in_v6(bits, Ipv6Addr::UNSPECIFIED, 96) // IPv4-compatible (deprecated)
        || in_v6(bits, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96)
    // NAT64
    {
        return v4_range(low32);
    }
    if in_v6(bits, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        return v4_range(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    if in_v6(bits, Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7) {
        return Some("unique-local");
    }
    if in_v6(bits, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10) {
        return Some("link-local");
    }
    if in_v6(bits, Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10) {
        return Some("site-local");
    }
    if in_v6(bits, Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8) {
        return Some("multicast");
    }
    if !in_v6(bits, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
        return Some("reserved");
    }
    V6_RANGES
        .iter()
        .find(|(net, len, _)| in_v6(bits, *net, *len))
        .map(|(_, _, range)| *range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_non_public_range_is_refused_and_its_neighbours_are_not() {
        let refused = [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("::1", "loopback"),
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("169.254.0.1", "link-local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.255", "carrier-grade NAT"),
            ("0.0.0.0", "unspecified (\"this network\")"),
            ("0.1.2.3", "unspecified (\"this network\")"),
            ("::", "unspecified"),
            ("255.255.255.255", "reserved or broadcast"),
            ("240.0.0.1", "reserved or broadcast"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("ff02::1", "multicast"),
            ("ff0e::1", "multicast"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("192.0.0.8", "IETF protocol assignment"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("192.88.99.1", "6to4 relay"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("fec0::1", "site-local"),
            ("2001::1", "IETF protocol assignment"),
            ("100::1", "reserved"),
            // IPv4 inside IPv6: judged by the IPv4 address.
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:10.1.2.3", "private"),
            ("::ffff:0.0.0.0", "unspecified (\"this network\")"),
            ("::127.0.0.1", "loopback"),
            ("::192.168.0.1", "private"),
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b::a00:1", "private"),
            ("2002:7f00:1::", "loopback"),
            ("2002:c0a8:101::1", "private"),
        ];
        for (s, range) in refused {
            assert_eq!(non_public_range(ip(s)), Some(range), "{s}");
            assert!(!is_public(ip(s)), "{s}");
        }
        let public = [
            "8.8.8.8",
            "1.1.1.1",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "2001:200::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ];
        for s in public {
            assert!(is_public(ip(s)), "{s}: {:?}", non_public_range(ip(s)));
        }
    }

    #[test]
    fn only_http_urls_to_a_public_host_without_credentials_pass() {
        let ok = check_url("https://hooks.example.com/tijori?x=1", false).unwrap();
        assert_eq!(ok.host_str(), Some("hooks.example.com"));
        check_url("http://8.8.8.8:8080/", false).unwrap();
        check_url("http://[2606:4700:4700::1111]/", false).unwrap();

        assert!(matches!(
            check_url("ftp://example.com/", false),
            Err(UrlError::Scheme(s)) if s == "ftp"
        ));
        assert!(matches!(
            check_url("file:///etc/passwd", false),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            check_url("not a url", false),
            Err(UrlError::Parse(_))
        ));
        assert!(matches!(
            check_url("http://", false),
            Err(UrlError::Parse(_))
        ));
        assert_eq!(
            check_url("https://user:pass@example.com/", false),
            Err(UrlError::Credentials)
        );
        assert_eq!(
            check_url("https://user@example.com/", false),
            Err(UrlError::Credentials)
        );
        assert_eq!(
            check_url("https://:pass@example.com/", false),
            Err(UrlError::Credentials)
        );
        // Credentials are refused even where private addresses are allowed.
        assert_eq!(
            check_url("http://u:p@127.0.0.1/", true),
            Err(UrlError::Credentials)
        );

        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(matches!(check_url(&long, false), Err(UrlError::TooLong(_))));
        let just = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES - 20));
        assert_eq!(just.len(), MAX_URL_BYTES);
        check_url(&just, false).unwrap();
    }

    #[test]
    fn private_hosts_are_refused_in_every_spelling_unless_allowed() {
        for s in [
            "http://127.0.0.1:8080/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://0177.0.0.1/",
            "http://127.0.0.1./",
            "http://0.0.0.0/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.5/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
        ] {
            assert!(
                matches!(check_url(s, false), Err(UrlError::NotPublic { .. })),
                "{s}: {:?}",
                check_url(s, false)
            );
            check_url(s, true).unwrap();
        }
        for s in [
            "http://localhost/",
            "http://LOCALHOST:3000/",
            "http://localhost./",
            "http://api.localhost/",
        ] {
            assert_eq!(check_url(s, false), Err(UrlError::Localhost), "{s}");
            check_url(s, true).unwrap();
        }
        // A name that merely contains the word is someone's domain.
        check_url("http://localhost.example.com/", false).unwrap();
        check_url("http://mylocalhost/", false).unwrap();
    }

    proptest! {
        #[test]
        fn an_ipv4_address_and_its_mapped_ipv6_form_are_judged_alike(v4 in any::<u32>()) {
            let v4 = Ipv4Addr::from(v4);
            prop_assert_eq!(
                is_public(IpAddr::V4(v4)),
                is_public(IpAddr::V6(v4.to_ipv6_mapped()))
            );
        }
    }
}

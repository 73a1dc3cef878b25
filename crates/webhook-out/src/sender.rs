//! The transport: one POST of a signed message to an endpoint, and what came of it.

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, LOCATION};
use url::Url;

use crate::address::{check_url, is_public, UrlError};
use crate::secret::Secret;
use crate::signature::signature_header;

/// How much of an endpoint's answer is kept: enough to show the merchant why their
/// endpoint refused a message, not enough for an endpoint to fill tijori's memory or
/// database.
pub const RESPONSE_CAP_BYTES: usize = 1024;

/// The connection's own limit, inside the whole call's: an endpoint that does not
/// even accept the connection is given up on sooner than one that is answering.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the sender is set up, once.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    /// The limit for the whole call, answer included. An endpoint is expected to
    /// acknowledge quickly and work afterwards; waiting longer would hold a worker.
    pub timeout: Duration,
    /// Whether private addresses (loopback, the local network, `localhost`) may be
    /// called: for tests and for a deployment whose merchants are inside its own
    /// network. Never in a public deployment: see [`check_url`].
    pub allow_private: bool,
    /// The `user-agent` header, so that a merchant can tell these requests apart in
    /// their logs and firewall.
    pub user_agent: String,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            timeout: Duration::from_secs(15),
            allow_private: false,
            user_agent: concat!("webhook-out/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// One message as it is sent: the body and the three headers the spec defines. The
/// same id is sent on every retry (it is the receiver's deduplication key); the
/// timestamp and signature are fresh for each attempt.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`, Unix seconds.
    pub timestamp: i64,
    /// The JSON body, sent as is (the signature covers these exact bytes).
    pub body: String,
    /// `webhook-signature`, from [`signature_header`].
    pub signature: String,
}

impl Message {
    /// A message signed with the endpoint's current secrets (two during a rotation).
    pub fn signed(secrets: &[&Secret], id: String, timestamp: i64, body: String) -> Message {
        let signature = signature_header(secrets, &id, timestamp, body.as_bytes());
        Message {
            id,
            timestamp,
            body,
            signature,
        }
    }
}

// Not derived: a message printed into a log would carry a customer's details.
impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("timestamp", &self.timestamp)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Why an attempt got no answer that counts. A non-2xx answer is not one of these: it
/// is an answer, in [`Attempt::http_status`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The URL, or the address its host resolved to, may not be called. Nothing was
    /// sent. Retrying will not help until the endpoint is changed.
    #[error("refused: {0}")]
    Refused(UrlError),
    /// No complete answer within the timeout. The endpoint may still have processed
    /// the message, which is why receivers deduplicate on `webhook-id`.
    #[error("no answer within the timeout")]
    Timeout,
    /// No connection (DNS, refused, reset, TLS), or it broke before the answer was read.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The endpoint answered with a redirect. It is not followed: the POST would become
    /// a GET or be replayed to a host that was never checked, and a webhook URL that
    /// moved is for the merchant to update.
    #[error("redirected ({status}){}", location.as_ref().map(|l| format!(" to {l}")).unwrap_or_default())]
    Redirect {
        /// The 3xx status.
        status: u16,
        /// Where it pointed, if it said.
        location: Option<String>,
    },
    /// The request could not be built (a header value with a line break, say): a bug
    /// in the caller's message, not the endpoint's fault.
    #[error("the request could not be built: {0}")]
    Malformed(String),
}

/// What one attempt came to: the record a delivery log keeps.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The answer's status, if one arrived.
    pub http_status: Option<u16>,
    /// From the start of the call to the end of the answer (or the failure).
    pub duration: Duration,
    /// The first [`RESPONSE_CAP_BYTES`] of the answer's body, as text (lossily: it is
    /// shown to the merchant, whatever the endpoint sent), cut on a character boundary.
    pub response: String,
    /// Why the attempt failed short of an answer that counts.
    pub error: Option<SendError>,
}

impl Attempt {
    /// The endpoint accepted the message: a 2xx, read to the end of what is kept. A 2xx
    /// whose answer then broke off counts as not delivered: a retry costs the receiver
    /// one duplicate it discards by id, a lost message costs the merchant an event.
    pub fn delivered(&self) -> bool {
        self.error.is_none() && self.http_status.is_some_and(|s| (200..300).contains(&s))
    }

    fn refused(error: UrlError) -> Attempt {
        Attempt {
            http_status: None,
            duration: Duration::ZERO,
            response: String::new(),
            error: Some(SendError::Refused(error)),
        }
    }
}

/// Sends messages. Built once and shared: it holds the HTTP client, whose connection
/// pool and TLS set-up are worth reusing.
#[derive(Clone, Debug)]
pub struct Sender {
    client: reqwest::Client,
    allow_private: bool,
    lookup: Lookup,
}

impl Sender {
    /// The sender for `config`. Fails only if the HTTP client cannot be built (the
    /// TLS back end failed to start).
    pub fn new(config: SenderConfig) -> Result<Sender, reqwest::Error> {
        Sender::with_lookup(config, Lookup::System)
    }

    fn with_lookup(config: SenderConfig, lookup: Lookup) -> Result<Sender, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(config.timeout))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(config.user_agent)
            // A proxy taken from the environment (HTTPS_PROXY...) would resolve the
            // host itself, past the resolver below, and from its own network.
            .no_proxy();
        if !config.allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly {
                lookup: lookup.clone(),
            }));
        }
        Ok(Sender {
            client: builder.build()?,
            allow_private: config.allow_private,
            lookup,
        })
    }

    /// Whether `url`'s host name resolves, now, to a public address: what an
    /// operator saving an endpoint should hear at once rather than after three days of
    /// refused deliveries. Only a refusal is an error: a name that does not resolve
    /// (yet), or a resolver that does not answer within the connect timeout, is left to
    /// the deliveries, which check every connection anyway (the address can change
    /// after this check).
    pub async fn check_resolves(&self, url: &Url) -> Result<(), UrlError> {
        let Some(url::Host::Domain(host)) = url.host() else {
            return Ok(());
        };
        if self.allow_private {
            return Ok(());
        }
        let Ok(Ok(found)) = tokio::time::timeout(CONNECT_TIMEOUT, self.lookup.resolve(host)).await
        else {
            return Ok(());
        };
        public_only(host, found)
            .map(drop)
            .map_err(|e| UrlError::NoPublicAddress { host: e.host })
    }

    /// POSTs `msg` to `url` and reports what happened; it never fails otherwise, every
    /// outcome is an [`Attempt`] to record. Logged at debug level with the host, the
    /// status and the time, never the body or the signature.
    pub async fn send(&self, url: &Url, msg: &Message) -> Attempt {
        let host = url.host_str().unwrap_or_default();
        // Again at every send, not only when the endpoint was saved: the rules may
        // have changed since, and an IP-literal host never reaches the resolver.
        let attempt = match check_url(url.as_str(), self.allow_private) {
            Err(refused) => Attempt::refused(refused),
            Ok(_) => self.post(url, msg).await,
        };
        let elapsed_ms = u64::try_from(attempt.duration.as_millis()).unwrap_or(u64::MAX);
        match &attempt.error {
            None => tracing::debug!(
                host,
                status = attempt.http_status,
                elapsed_ms,
                "webhook answered"
            ),
            Some(error) => tracing::debug!(
                host,
                status = attempt.http_status,
                elapsed_ms,
                %error,
                "webhook not delivered"
            ),
        }
        attempt
    }

    async fn post(&self, url: &Url, msg: &Message) -> Attempt {
        let started = Instant::now();
        let request = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &msg.id)
            .header("webhook-timestamp", msg.timestamp.to_string())
            .header("webhook-signature", &msg.signature)
            .body(msg.body.clone());
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                return Attempt {
                    http_status: None,
                    duration: started.elapsed(),
                    response: String::new(),
                    error: Some(failure(error)),
                }
            }
        };
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let (body, read_error) = read_capped(&mut response, RESPONSE_CAP_BYTES).await;
        let error = if status.is_redirection() {
            Some(SendError::Redirect {
                status: status.as_u16(),
                location,
            })
        } else {
            read_error
        };
        Attempt {
            http_status: Some(status.as_u16()),
            duration: started.elapsed(),
            response: body,
            error,
        }
    }
}

/// Reads the answer until `cap` bytes are in hand, then stops: the rest is never
/// pulled, and dropping the response closes the connection. (The HTTP library reads
/// the socket in buffers, so up to one buffer more may have arrived; an endpoint
/// streaming without end is cut off all the same.)
async fn read_capped(response: &mut reqwest::Response, cap: usize) -> (String, Option<SendError>) {
    let mut bytes = Vec::new();
    let mut error = None;
    while bytes.len() < cap {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                error = Some(failure(e));
                break;
            }
        }
    }
    (cut(&bytes, cap), error)
}

/// At most `cap` bytes of `bytes` as text, on a character boundary. A character the
/// cap splits is dropped, not turned into a replacement character, so that a valid
/// UTF-8 answer stays valid text; invalid bytes elsewhere become U+FFFD.
fn cut(bytes: &[u8], cap: usize) -> String {
    let mut end = bytes.len().min(cap);
    if end < bytes.len() {
        // The last character that starts within three bytes of the cap: if it does not
        // end before the cap, it is incomplete here and dropped.
        if let Some(k) = (1..=end.min(3)).find(|k| bytes[end - k] & 0xC0 != 0x80) {
            if let Err(e) = std::str::from_utf8(&bytes[end - k..end]) {
                if e.error_len().is_none() {
                    end -= k;
                }
            }
        }
    }
    let mut text = String::from_utf8_lossy(&bytes[..end]).into_owned();
    // Replacement characters are three bytes for one: the text may still be too long.
    let mut limit = text.len().min(cap);
    while !text.is_char_boundary(limit) {
        limit -= 1;
    }
    text.truncate(limit);
    text
}

fn failure(error: reqwest::Error) -> SendError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<NoPublicAddress>() {
            return SendError::Refused(UrlError::NoPublicAddress {
                host: refused.host.clone(),
            });
        }
        source = cause.source();
    }
    if error.is_timeout() {
        return SendError::Timeout;
    }
    let builder = error.is_builder();
    // Without the URL: its path or query may hold the merchant's own token, and the
    // caller knows which URL it called.
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if builder {
        SendError::Malformed(message)
    } else {
        SendError::Unreachable(message)
    }
}

/// Where the resolver gets addresses from: the system's resolver, or in tests a fixed
/// answer (no name resolves to a chosen address offline without it).
#[derive(Clone, Debug)]
enum Lookup {
    System,
    #[cfg(test)]
    Fixed(Vec<std::net::IpAddr>),
}

impl Lookup {
    /// The addresses `host` resolves to, with port 0 (the connector puts the URL's
    /// port in).
    async fn resolve(&self, host: &str) -> std::io::Result<Vec<SocketAddr>> {
        match self {
            Lookup::System => Ok(tokio::net::lookup_host((host, 0)).await?.collect()),
            #[cfg(test)]
            Lookup::Fixed(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect()),
        }
    }
}

/// The resolver of a sender that may not call private addresses. It runs at every new
/// connection, so a name that resolved to a public address when the endpoint was
/// saved and to `10.0.0.5` now (DNS rebinding) is refused now; and the connection goes
/// to the very address checked, there is no second lookup to race.
struct PublicOnly {
    lookup: Lookup,
}

/// The resolver's refusal, found again by [`failure`] in the error's chain.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to no public address")]
struct NoPublicAddress {
    host: String,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let lookup = self.lookup.clone();
        Box::pin(async move {
            let kept = public_only(&host, lookup.resolve(&host).await?)?;
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// The public addresses among those a name resolved to; none is a refusal (an empty
/// answer is left to the connector, which reports it as the DNS failure it is).
fn public_only(host: &str, found: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, NoPublicAddress> {
    if found.is_empty() {
        return Ok(found);
    }
    let kept: Vec<SocketAddr> = found
        .into_iter()
        .filter(|addr| is_public(addr.ip()))
        .collect();
    if kept.is_empty() {
        return Err(NoPublicAddress {
            host: host.to_owned(),
        });
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::verify;
    use wiremock::matchers::{header_exists, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    fn local(timeout: Duration) -> Sender {
        Sender::new(SenderConfig {
            timeout,
            allow_private: true,
            user_agent: "test".into(),
        })
        .unwrap()
    }

    fn strict() -> Sender {
        Sender::new(SenderConfig::default()).unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn message(secret: &Secret) -> Message {
        Message::signed(
            &[secret],
            "msg_2b5Xc1".into(),
            1_700_000_000,
            r#"{"type":"payment.succeeded"}"#.into(),
        )
    }

    #[tokio::test]
    async fn the_message_arrives_with_the_spec_headers_and_a_signature_that_verifies() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hooks"))
            .and(header_exists("webhook-signature"))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
        let secret = Secret::generate();
        let msg = message(&secret);
        let attempt = local(Duration::from_secs(5))
            .send(&url(&format!("{}/hooks", server.uri())), &msg)
            .await;
        assert!(attempt.delivered(), "{attempt:?}");
        assert_eq!(attempt.http_status, Some(204));

        let requests: Vec<Request> = server.received_requests().await.unwrap();
        let request = &requests[0];
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(header("user-agent"), "test");
        assert_eq!(header("webhook-id"), "msg_2b5Xc1");
        assert_eq!(header("webhook-timestamp"), "1700000000");
        assert_eq!(request.body, msg.body.as_bytes());
        verify(
            &[&secret],
            &header("webhook-id"),
            &header("webhook-timestamp"),
            &header("webhook-signature"),
            &request.body,
            1_700_000_010,
            300,
        )
        .unwrap();
    }

    #[tokio::test]
    async fn a_500_is_an_answer_but_not_a_delivery() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500).set_body_string("database down"))
            .mount(&server)
            .await;
        let attempt = local(Duration::from_secs(5))
            .send(&url(&server.uri()), &message(&Secret::generate()))
            .await;
        assert_eq!(attempt.http_status, Some(500));
        assert_eq!(attempt.response, "database down");
        assert_eq!(attempt.error, None);
        assert!(!attempt.delivered());
    }

    #[tokio::test]
    async fn a_redirect_is_reported_and_not_followed() {
        let target = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&target)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&target)
            .await;
        let server = MockServer::start().await;
        let elsewhere = format!("{}/moved", target.uri());
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(302).insert_header("location", elsewhere.as_str()))
            .mount(&server)
            .await;
        let attempt = local(Duration::from_secs(5))
            .send(&url(&server.uri()), &message(&Secret::generate()))
            .await;
        assert_eq!(attempt.http_status, Some(302));
        assert_eq!(
            attempt.error,
            Some(SendError::Redirect {
                status: 302,
                location: Some(elsewhere.clone())
            })
        );
        assert!(!attempt.delivered());
        assert!(attempt.error.unwrap().to_string().contains(&elsewhere));
        // `target` checks its expect(0) when dropped.
    }

    #[tokio::test]
    async fn a_slow_endpoint_is_a_timeout() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(800)))
            .mount(&server)
            .await;
        let attempt = local(Duration::from_millis(150))
            .send(&url(&server.uri()), &message(&Secret::generate()))
            .await;
        assert_eq!(attempt.error, Some(SendError::Timeout));
        assert_eq!(attempt.http_status, None);
        assert!(!attempt.delivered());
        assert!(attempt.duration < Duration::from_millis(800), "{attempt:?}");
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let attempt = local(Duration::from_secs(5))
            .send(
                &url(&format!("http://127.0.0.1:{port}/")),
                &message(&Secret::generate()),
            )
            .await;
        assert!(
            matches!(&attempt.error, Some(SendError::Unreachable(m)) if !m.contains("127.0.0.1")),
            "{attempt:?}"
        );
    }

    #[tokio::test]
    async fn a_big_answer_is_cut_to_the_cap() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(100_000)))
            .mount(&server)
            .await;
        let sender = local(Duration::from_secs(5));
        let attempt = sender
            .send(&url(&server.uri()), &message(&Secret::generate()))
            .await;
        assert!(attempt.delivered(), "{attempt:?}");
        assert_eq!(attempt.response, "x".repeat(RESPONSE_CAP_BYTES));

        // A two-byte character the cap splits is dropped whole.
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200).set_body_string(format!("a{}", "é".repeat(2000))),
            )
            .mount(&server)
            .await;
        let attempt = sender
            .send(&url(&server.uri()), &message(&Secret::generate()))
            .await;
        assert_eq!(attempt.response, format!("a{}", "é".repeat(511)));
    }

    #[test]
    fn cutting_keeps_whole_characters_and_never_exceeds_the_cap() {
        assert_eq!(cut(b"hello", 10), "hello");
        assert_eq!(cut(b"hello", 3), "hel");
        assert_eq!(cut("aé".as_bytes(), 2), "a");
        assert_eq!(cut("a€".as_bytes(), 3), "a");
        assert_eq!(cut("a€".as_bytes(), 4), "a€");
        assert_eq!(cut("a😀".as_bytes(), 4), "a");
        assert_eq!(cut("😀😀".as_bytes(), 5), "😀");
        // Invalid bytes become U+FFFD; the result still fits the cap.
        let cut_invalid = cut(&[0xff; 10], 4);
        assert!(cut_invalid.len() <= 4, "{cut_invalid:?}");
        assert_eq!(cut_invalid, "\u{fffd}");
        assert_eq!(cut(&[b'a', 0xff, b'b'], 10), "a\u{fffd}b");
    }

    #[tokio::test]
    async fn a_private_address_is_refused_without_a_connection() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let port = server.address().port();
        let sender = strict();
        for (s, expected) in [
            (
                format!("http://127.0.0.1:{port}/"),
                UrlError::NotPublic {
                    ip: "127.0.0.1".parse().unwrap(),
                    range: "loopback",
                },
            ),
            (format!("http://localhost:{port}/"), UrlError::Localhost),
        ] {
            assert_eq!(check_url(&s, false), Err(expected.clone()));
            let attempt = sender.send(&url(&s), &message(&Secret::generate())).await;
            assert_eq!(attempt.error, Some(SendError::Refused(expected)), "{s}");
            assert_eq!(attempt.http_status, None);
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_a_private_address_is_refused_at_connect_time() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let port = server.address().port();
        // As if the merchant's name had been re-bound to loopback after it was saved.
        let sender = Sender::with_lookup(
            SenderConfig::default(),
            Lookup::Fixed(vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()]),
        )
        .unwrap();
        let target = url(&format!("http://hooks.merchant.example:{port}/"));
        check_url(target.as_str(), false).unwrap();
        let attempt = sender.send(&target, &message(&Secret::generate())).await;
        assert_eq!(
            attempt.error,
            Some(SendError::Refused(UrlError::NoPublicAddress {
                host: "hooks.merchant.example".into()
            })),
            "{attempt:?}"
        );
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_a_private_address_is_refused_when_saved() {
        let saved = |ips: &[&str], allow_private: bool| {
            let lookup = Lookup::Fixed(ips.iter().map(|ip| ip.parse().unwrap()).collect());
            let config = SenderConfig {
                allow_private,
                ..SenderConfig::default()
            };
            async move {
                Sender::with_lookup(config, lookup)
                    .unwrap()
                    .check_resolves(&url("https://hooks.merchant.example/events"))
                    .await
            }
        };
        assert_eq!(
            saved(&["10.0.0.5"], false).await,
            Err(UrlError::NoPublicAddress {
                host: "hooks.merchant.example".into()
            })
        );
        // One public address is enough: the connection goes only to those.
        assert_eq!(saved(&["10.0.0.5", "93.184.215.14"], false).await, Ok(()));
        assert_eq!(saved(&["10.0.0.5"], true).await, Ok(()), "allowed here");
        // Nothing found yet: the deliveries will see.
        assert_eq!(saved(&[], false).await, Ok(()));
        // An address, not a name: check_url has judged it already.
        let sender = Sender::with_lookup(
            SenderConfig::default(),
            Lookup::Fixed(vec!["10.0.0.5".parse().unwrap()]),
        )
        .unwrap();
        assert_eq!(
            sender
                .check_resolves(&url("https://93.184.215.14/events"))
                .await,
            Ok(())
        );
    }

    #[test]
    fn the_resolver_keeps_only_public_addresses() {
        let addr = |s: &str| SocketAddr::new(s.parse().unwrap(), 443);
        let kept = public_only(
            "h.example",
            vec![
                addr("10.0.0.5"),
                addr("93.184.215.14"),
                addr("::ffff:127.0.0.1"),
                addr("2606:2800::1"),
            ],
        )
        .unwrap();
        assert_eq!(kept, [addr("93.184.215.14"), addr("2606:2800::1")]);
        let refused = public_only(
            "h.example",
            vec![addr("169.254.169.254"), addr("fd00::1"), addr("127.0.0.1")],
        )
        .unwrap_err();
        assert_eq!(refused.host, "h.example");
        assert!(public_only("h.example", vec![]).unwrap().is_empty());
    }

    #[test]
    fn a_message_never_prints_its_body_or_signature() {
        let secret = Secret::generate();
        let msg = message(&secret);
        let shown = format!("{msg:?}");
        assert!(!shown.contains("payment.succeeded"), "{shown}");
        assert!(!shown.contains(&msg.signature), "{shown}");
        assert!(shown.contains("msg_2b5Xc1"));
    }
}

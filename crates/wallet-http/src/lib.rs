//! The HTTP transport the wallet clients share (`khalti`, `chapa`, `esewa`), so that
//! how a gateway is called is written once: the client's set-up (timeouts, no
//! redirects), reading an answer with a cap on its size, and the two ways a call can
//! fail before any answer (too slow, or no connection). What an answer means is each
//! client's own business.

#![warn(missing_docs)]

use std::time::Duration;

/// A `reqwest` client as every wallet client needs one: a timeout for the whole call
/// and one to connect, and redirects not followed. A redirected POST turns into a GET
/// (or is replayed elsewhere), and a redirect is never a gateway's answer, so a 3xx is
/// reported to the caller as an unexpected answer instead.
pub fn client(
    timeout: Duration,
    connect_timeout: Duration,
    user_agent: &'static str,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .build()
}

/// What came back: the status and the body as text (lossily, a gateway's answer is
/// kept for audit even when it is not UTF-8), at most the cap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status code.
    pub http_status: u16,
    /// The body, cut at the cap.
    pub body: String,
    /// The body was longer than the cap: an answer no contract allows.
    pub too_large: bool,
}

/// Why a call produced no answer.
#[derive(Debug)]
pub enum Failure {
    /// No answer in time: the request may still have been processed.
    Timeout,
    /// No connection, or it dropped before the answer was read.
    Unreachable(reqwest::Error),
}

impl Failure {
    fn from(error: reqwest::Error) -> Failure {
        if error.is_timeout() {
            Failure::Timeout
        } else {
            Failure::Unreachable(error)
        }
    }
}

/// Which call this is, for the debug log line every call ends with (never the body,
/// which may carry a customer's details, nor any header, which carries the key).
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The gateway's name (`khalti`, `chapa`, `esewa`).
    pub gateway: &'static str,
    /// The HTTP method.
    pub method: &'static str,
    /// The URL's path.
    pub path: &'a str,
}

/// Sends `request` and reads its answer, at most `max_bytes` of it, and logs the call
/// (at debug level: status, time, size, or the failure). A failure says whether an
/// HTTP status had arrived before it (the answer then could not be read).
pub async fn exchange(
    request: reqwest::RequestBuilder,
    call: Call<'_>,
    max_bytes: usize,
) -> Result<Answer, (Failure, Option<u16>)> {
    let started = std::time::Instant::now();
    let result = read(request, max_bytes).await;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match &result {
        Ok(answer) => tracing::debug!(
            gateway = call.gateway,
            method = call.method,
            path = %call.path,
            status = answer.http_status,
            elapsed_ms,
            bytes = answer.body.len(),
            "gateway answered"
        ),
        Err((failure, status)) => tracing::debug!(
            gateway = call.gateway,
            method = call.method,
            path = %call.path,
            status = ?status,
            elapsed_ms,
            error = ?failure,
            "gateway call failed"
        ),
    }
    result
}

async fn read(
    request: reqwest::RequestBuilder,
    max_bytes: usize,
) -> Result<Answer, (Failure, Option<u16>)> {
    let mut response = request.send().await.map_err(|e| (Failure::from(e), None))?;
    let http_status = response.status().as_u16();
    let mut bytes = Vec::new();
    let mut too_large = false;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if bytes.len() + chunk.len() > max_bytes {
                    let room = max_bytes - bytes.len();
                    bytes.extend_from_slice(&chunk[..room]);
                    too_large = true;
                    break;
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err((Failure::from(e), Some(http_status))),
        }
    }
    Ok(Answer {
        http_status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        too_large,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const CALL: Call<'static> = Call {
        gateway: "test",
        method: "GET",
        path: "/",
    };

    #[tokio::test]
    async fn an_answer_is_capped_and_a_redirect_is_not_followed() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(100)))
            .mount(&server)
            .await;
        let http = client(Duration::from_secs(2), Duration::from_secs(1), "test").unwrap();
        let answer = exchange(http.get(server.uri()), CALL, 10).await.unwrap();
        assert_eq!(answer.body, "x".repeat(10));
        assert!(answer.too_large);
        let whole = exchange(http.get(server.uri()), CALL, 1_000).await.unwrap();
        assert!(!whole.too_large && whole.body.len() == 100);

        let moved = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(302).insert_header("location", server.uri()))
            .mount(&moved)
            .await;
        assert_eq!(
            exchange(http.get(moved.uri()), CALL, 1_000)
                .await
                .unwrap()
                .http_status,
            302
        );
    }

    #[tokio::test]
    async fn a_slow_answer_is_a_timeout_and_a_closed_port_unreachable() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(500)))
            .mount(&server)
            .await;
        let http = client(Duration::from_millis(100), Duration::from_secs(1), "test").unwrap();
        assert!(matches!(
            exchange(http.get(server.uri()), CALL, 10).await,
            Err((Failure::Timeout, None))
        ));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        assert!(matches!(
            exchange(http.get(format!("http://127.0.0.1:{port}/")), CALL, 10).await,
            Err((Failure::Unreachable(_), None))
        ));
    }
}

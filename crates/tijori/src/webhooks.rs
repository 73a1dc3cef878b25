//! The core's `EventSender` over the `webhook-out` crate: Standard Webhooks signing,
//! the guard against private addresses (unless `TIJORI_WEBHOOK_ALLOW_PRIVATE`), no
//! redirects, and a 15 s limit per delivery.

use async_trait::async_trait;
use tijori_core::events::{EventSender, Message, Sent};
use webhook_out::{Secret, SendError, Sender, SenderConfig};

/// Sends tijori's outgoing events.
pub struct WebhookSender {
    sender: Sender,
    allow_private: bool,
}

impl WebhookSender {
    /// A sender with the Standard Webhooks timeout (15 s); `allow_private` lets
    /// endpoints be on loopback and private networks.
    pub fn new(allow_private: bool) -> anyhow::Result<WebhookSender> {
        let sender = Sender::new(SenderConfig {
            allow_private,
            user_agent: concat!("tijori/", env!("CARGO_PKG_VERSION")).to_owned(),
            ..SenderConfig::default()
        })?;
        Ok(WebhookSender {
            sender,
            allow_private,
        })
    }
}

#[async_trait]
impl EventSender for WebhookSender {
    async fn check_url(&self, url: &str) -> Result<String, String> {
        let url = webhook_out::check_url(url, self.allow_private).map_err(|e| e.to_string())?;
        self.sender
            .check_resolves(&url)
            .await
            .map_err(|e| e.to_string())?;
        Ok(url.to_string())
    }

    fn new_secret(&self) -> String {
        Secret::generate().expose().to_owned()
    }

    async fn send(&self, url: &str, message: &Message<'_>) -> Sent {
        let failed = |error: String| Sent {
            http_status: None,
            duration_ms: 0,
            response: String::new(),
            error: Some(error),
        };
        let url = match webhook_out::check_url(url, self.allow_private) {
            Ok(url) => url,
            Err(e) => return failed(format!("refused: {e}")),
        };
        let mut secrets = Vec::with_capacity(message.secrets.len());
        for s in &message.secrets {
            match Secret::parse(s) {
                Ok(secret) => secrets.push(secret),
                // A secret tijori made itself: stored wrong, it signs nothing.
                Err(e) => return failed(format!("the endpoint's secret is unusable: {e}")),
            }
        }
        let signing: Vec<&Secret> = secrets.iter().collect();
        let out = webhook_out::Message::signed(
            &signing,
            message.id.to_string(),
            message.timestamp,
            message.body.to_owned(),
        );
        let attempt = self.sender.send(&url, &out).await;
        Sent {
            http_status: attempt.http_status,
            duration_ms: u64::try_from(attempt.duration.as_millis()).unwrap_or(u64::MAX),
            response: attempt.response,
            error: attempt.error.map(|e| describe(&e)),
        }
    }
}

/// A failure as the operator reads it in the list of attempts.
fn describe(e: &SendError) -> String {
    match e {
        SendError::Refused(why) => format!("refused: {why}"),
        SendError::Timeout => "no answer within 15 s".to_owned(),
        SendError::Unreachable(why) => format!("unreachable: {why}"),
        SendError::Redirect { status, location } => match location {
            Some(to) => format!("redirected ({status}) to {to}: redirects are not followed"),
            None => format!("redirected ({status}): redirects are not followed"),
        },
        SendError::Malformed(why) => format!("could not be sent: {why}"),
    }
}

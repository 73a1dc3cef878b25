//! SMTP delivery for the outbox (lettre).

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tijori_core::mail::Mailer;

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// `url` as lettre reads it: `smtps://user:pass@host:465` (TLS),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS), or `smtp://host:25`.
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("TIJORI_SMTP_URL is not a usable SMTP URL: {e}"))?
            .build();
        let from = from
            .parse()
            .map_err(|e| anyhow::anyhow!("TIJORI_MAIL_FROM {from:?} is not an address: {e}"))?;
        Ok(SmtpMailer { transport, from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| format!("bad recipient {to:?}: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .body(body.to_owned())
            .map_err(|e| format!("could not build the mail: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_refused_clearly() {
        assert!(SmtpMailer::new("smtp://localhost:25", "tijori <no-reply@example.com>").is_ok());
        assert!(SmtpMailer::new("http://nope", "a@example.com").is_err());
        let err = SmtpMailer::new("smtp://localhost:25", "not an address")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("TIJORI_MAIL_FROM"), "{err}");
    }
}

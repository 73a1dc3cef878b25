//! Server-to-server notifications after a payment's outcome: the `callback_url` GET
//! (chapa.md §3.2) and the signed webhook POST (§5), each in a background tokio task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::store::{Payment, Status};
use super::{Action, ChapaControl};
use crate::time::chapa_timestamp;

/// A webhook to deliver: the exact body bytes (compact JSON) are signed and sent.
#[derive(Clone, Debug)]
pub(crate) struct Webhook {
    pub tx_ref: String,
    pub event: String,
    pub body: Vec<u8>,
}

/// What to send after an action.
pub(crate) struct Notifications {
    /// `(tx_ref, url)` of the callback GET, if the payment has a `callback_url`.
    pub(crate) callback: Option<(String, String)>,
    webhook: Option<Webhook>,
}

impl Notifications {
    /// After pay / fail / cancel. chapa.md §14 q6: the docs describe the callback
    /// only on success; the sandbox also calls it on failure and cancel, with
    /// `status=failed` / `status=cancelled`, so clients that ignore it (and verify
    /// instead) are exercised.
    pub(crate) fn after(payment: &Payment, action: Action, webhook_url: Option<String>) -> Self {
        let (event, status) = match action {
            Action::Pay => ("charge.success", "success"),
            // chapa.md §5.2 / §14 q3: the documented literal event and status.
            Action::Fail | Action::Cancel => ("charge.failed/cancelled", "failed/cancelled"),
        };
        let callback = payment.req.callback_url.as_ref().map(|url| {
            let status = match payment.status {
                Status::Cancelled => "cancelled",
                other => other.as_str(),
            };
            let mut url = url::Url::parse(url).expect("callback_url was validated");
            url.query_pairs_mut()
                .append_pair("trx_ref", &payment.req.tx_ref)
                .append_pair("ref_id", &payment.reference)
                .append_pair("status", status);
            (payment.req.tx_ref.clone(), url.to_string())
        });
        Notifications {
            callback,
            webhook: webhook_url.map(|_| webhook(payment, event, status)),
        }
    }

    /// After a refund: `charge.refunded` (chapa.md §5.2).
    pub(crate) fn refunded(payment: &Payment, webhook_url: Option<String>) -> Self {
        Notifications {
            callback: None,
            webhook: webhook_url.map(|_| webhook(payment, "charge.refunded", "refunded")),
        }
    }
}

fn webhook(payment: &Payment, event: &str, status: &str) -> Webhook {
    let body = payment.webhook_body(event, status);
    Webhook {
        tx_ref: payment.req.tx_ref.clone(),
        event: event.to_owned(),
        body: serde_json::to_vec(&body).expect("JSON serializes"),
    }
}

/// `hex(HMAC_SHA256(key, message))`, lowercase (chapa.md §5.3).
pub(crate) fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Spawns the deliveries. Outside a tokio runtime nothing is sent.
pub(crate) fn dispatch(control: ChapaControl, notifications: Notifications) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("chapa sandbox: no tokio runtime, callback and webhook not sent");
        return;
    };
    if let Some((tx_ref, url)) = notifications.callback {
        let control = control.clone();
        runtime.spawn(async move { callback(&control, &tx_ref, &url).await });
    }
    if let Some(webhook) = notifications.webhook {
        runtime.spawn(async move { schedule(control, webhook).await });
    }
}

/// `GET callback_url?trx_ref=…&ref_id=…&status=…` once (chapa.md §3.2; the docs
/// document no retry for it).
async fn callback(control: &ChapaControl, tx_ref: &str, url: &str) {
    let result = control.http().get(url).send().await;
    let entry = match &result {
        Ok(response) => json!({"url": url, "status": response.status().as_u16(), "at": now()}),
        Err(e) => json!({"url": url, "error": e.to_string(), "at": now()}),
    };
    tracing::info!(tx_ref, %entry, "chapa sandbox: callback");
    if let Some(p) = control.lock().get_mut(tx_ref) {
        p.callbacks.push(entry);
    }
}

static HOLD_NUMBER: AtomicU64 = AtomicU64::new(1);

/// Applies the delay / out-of-order / twice switches, then delivers.
async fn schedule(control: ChapaControl, webhook: Webhook) {
    let settings = control.settings();
    if settings.webhook_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(settings.webhook_delay_ms)).await;
    }
    if !settings.webhook_out_of_order {
        deliver_maybe_twice(&control, &webhook).await;
        return;
    }
    let previous = control.held().take();
    match previous {
        Some((_, older)) => {
            // Newest first, then the one that was held back.
            deliver_maybe_twice(&control, &webhook).await;
            deliver_maybe_twice(&control, &older).await;
        }
        None => {
            let number = HOLD_NUMBER.fetch_add(1, Ordering::Relaxed);
            *control.held() = Some((number, webhook));
            tokio::time::sleep(Duration::from_millis(settings.webhook_hold_ms)).await;
            let mine = {
                let mut held = control.held();
                match held.as_ref() {
                    Some((n, _)) if *n == number => held.take(),
                    _ => None,
                }
            };
            if let Some((_, webhook)) = mine {
                deliver_maybe_twice(&control, &webhook).await;
            }
        }
    }
}

async fn deliver_maybe_twice(control: &ChapaControl, webhook: &Webhook) {
    deliver(control, webhook).await;
    if control.settings().webhook_twice {
        deliver(control, webhook).await;
    }
}

/// First attempt now; when it is not answered with 200, redeliveries continue in
/// their own task following `webhook_retry_ms` (chapa.md §5.1).
async fn deliver(control: &ChapaControl, webhook: &Webhook) {
    if attempt(control, webhook, 1).await {
        return;
    }
    let control = control.clone();
    let webhook = webhook.clone();
    tokio::spawn(async move {
        let schedule = control.settings().webhook_retry_ms;
        for (i, delay) in schedule.into_iter().enumerate() {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            if attempt(&control, &webhook, i as u32 + 2).await {
                return;
            }
        }
        tracing::warn!(tx_ref = %webhook.tx_ref, event = %webhook.event, "chapa sandbox: webhook given up");
    });
}

/// One POST; true when answered with 200. The URL, secret and signature switch are
/// read at each attempt.
async fn attempt(control: &ChapaControl, webhook: &Webhook, number: u32) -> bool {
    let settings = control.settings();
    let Some(url) = settings.webhook_url else {
        return true;
    };
    let secret = if settings.webhook_bad_signature {
        format!("{}-wrong", settings.webhook_secret)
    } else {
        settings.webhook_secret
    };
    // chapa.md §5.3: chapa-signature = HMAC(S, S); x-chapa-signature = HMAC(S, body).
    let chapa_signature = hmac_hex(secret.as_bytes(), secret.as_bytes());
    let x_chapa_signature = hmac_hex(secret.as_bytes(), &webhook.body);
    let result = control
        .http()
        .post(&url)
        .header("content-type", "application/json")
        .header("chapa-signature", chapa_signature)
        .header("x-chapa-signature", x_chapa_signature)
        .body(webhook.body.clone())
        .send()
        .await;
    let (ok, entry) = match &result {
        Ok(response) => (
            response.status() == reqwest::StatusCode::OK,
            json!({"event": webhook.event, "attempt": number, "status": response.status().as_u16(), "at": now()}),
        ),
        Err(e) => (
            false,
            json!({"event": webhook.event, "attempt": number, "error": e.to_string(), "at": now()}),
        ),
    };
    tracing::info!(tx_ref = %webhook.tx_ref, %entry, "chapa sandbox: webhook");
    if let Some(p) = control.lock().get_mut(&webhook.tx_ref) {
        p.webhooks.push(entry);
    }
    ok
}

fn now() -> Value {
    Value::String(chapa_timestamp(Utc::now()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hmac_matches_rfc4231_case_2() {
        assert_eq!(
            super::hmac_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use tijori_core::gateway::{
    Checkout, CheckoutRequest, Gateway, GatewayAnswer, GatewayError, GatewayKind, GatewayStatus,
    RawAnswer, RefundRequest, WebhookError, WebhookNotice,
};
use tijori_core::money::{Currency, Money};
use url::Url;

const KIND: GatewayKind = GatewayKind::Chapa;

/// Chapa's hosted checkout. Takes ETB and USD.
pub struct ChapaGateway {
    client: chapa::Client,
    /// Where Chapa calls back after a payment (a signal, verified before use).
    callback_url: Url,
    /// The dashboard's webhook secret; without one, no webhook is believed.
    webhook_secret: Option<SecretString>,
}

impl ChapaGateway {
    pub fn new(client: chapa::Client, callback_url: Url) -> Self {
        ChapaGateway {
            client,
            callback_url,
            webhook_secret: None,
        }
    }

    pub fn with_webhook_secret(mut self, secret: SecretString) -> Self {
        self.webhook_secret = Some(secret);
        self
    }
}

fn raw(r: &chapa::RawAnswer) -> RawAnswer {
    RawAnswer {
        http_status: r.http_status,
        body: r.body.clone(),
    }
}

fn error(e: chapa::Error) -> GatewayError {
    use chapa::Error as E;
    let reason = e.reason();
    let kept = e.raw().map(raw);
    match e {
        E::Rejected { .. } | E::InvalidInput { .. } => GatewayError::Rejected {
            gateway: KIND,
            reason,
            raw: kept,
        },
        E::Unauthorized { .. } => GatewayError::Unauthorized {
            gateway: KIND,
            reason,
            raw: kept,
        },
        E::NotFound { .. } => GatewayError::NotFound {
            gateway: KIND,
            reason,
            raw: kept,
        },
        E::Timeout => GatewayError::Timeout { gateway: KIND },
        E::Unreachable { .. } => GatewayError::Unreachable {
            gateway: KIND,
            reason,
        },
        E::ServerError { .. } | E::InvalidAnswer { .. } => GatewayError::BadAnswer {
            gateway: KIND,
            reason,
            raw: kept,
        },
    }
}

fn rejected(reason: String) -> GatewayError {
    GatewayError::Rejected {
        gateway: KIND,
        reason,
        raw: None,
    }
}

#[async_trait]
impl Gateway for ChapaGateway {
    fn kind(&self) -> GatewayKind {
        KIND
    }

    fn supports(&self, currency: Currency) -> bool {
        matches!(currency, Currency::Etb | Currency::Usd)
    }

    async fn initiate(&self, request: &CheckoutRequest) -> Result<Checkout, GatewayError> {
        let minor = u64::try_from(request.amount.minor())
            .map_err(|_| rejected("amount must not be negative".into()))?;
        // Our payment id is the tx_ref: unique by construction, and within the
        // characters Chapa accepts ([A-Za-z0-9_-]).
        let tx_ref = request.payment_id.as_str();
        // Chapa documents no parameters on the browser's return (chapa.md §3.1), so
        // the return URL carries the tx_ref itself: the page needs to know which
        // payment to look up.
        let mut return_url = Url::parse(&request.return_url)
            .map_err(|e| rejected(format!("return_url is not a URL: {e}")))?;
        return_url.query_pairs_mut().append_pair("tx_ref", tx_ref);

        let mut body = chapa::InitializeRequest::new(
            chapa::Amount::from_minor(minor),
            request.amount.currency().code(),
            tx_ref,
        );
        body.email = Some(request.customer_email.clone());
        body.first_name = Some(request.customer_name.clone());
        body.callback_url = Some(self.callback_url.clone());
        body.return_url = Some(return_url);
        let initialized = self.client.initialize(&body).await.map_err(error)?;
        Ok(Checkout {
            provider_ref: tx_ref.to_owned(),
            payment_url: initialized.checkout_url.to_string(),
            // Chapa's checkout links do not expire on a documented schedule.
            expires_at: None,
            raw: raw(&initialized.raw),
        })
    }

    async fn lookup(&self, tx_ref: &str, _amount: Money) -> Result<GatewayAnswer, GatewayError> {
        use chapa::PaymentStatus as P;
        let v = self.client.verify(tx_ref).await.map_err(error)?;
        let status = match &v.status {
            // Both the envelope and data must say success (chapa.md §4.1, §11.2).
            P::Success if v.is_paid() => GatewayStatus::Paid,
            P::Success => GatewayStatus::Unrecognised(format!(
                "data.status success under envelope status {:?}",
                v.envelope_status
            )),
            P::NotPaidYet => GatewayStatus::Unpaid,
            P::Pending => GatewayStatus::Pending,
            // A failed attempt is not final for the tx_ref: the customer may retry on
            // the same checkout (chapa.md §3.3); a later Paid still completes it.
            P::Failed | P::FailedOrCancelled => GatewayStatus::Failed,
            P::Cancelled => GatewayStatus::Canceled,
            P::Refunded | P::Reversed => GatewayStatus::Refunded,
            P::Other(s) => GatewayStatus::Unrecognised(s.clone()),
        };
        let amount_minor = match v.amount {
            Some(a) => i64::try_from(a.minor()).map_err(|_| GatewayError::BadAnswer {
                gateway: KIND,
                reason: format!("amount {a} is out of range"),
                raw: Some(raw(&v.raw)),
            })?,
            None => 0,
        };
        // Chapa takes ETB and USD only; a paid answer in anything else is one we cannot
        // act on (a 502 to the caller, the payment left open and the answer kept).
        let currency = v
            .currency
            .as_deref()
            .map(|c| c.parse::<Currency>().map_err(|_| c));
        let currency = match currency {
            Some(Ok(c)) => Some(c),
            Some(Err(other)) if status == GatewayStatus::Paid => {
                return Err(GatewayError::BadAnswer {
                    gateway: KIND,
                    reason: format!("paid in an unknown currency {other:?}"),
                    raw: Some(raw(&v.raw)),
                })
            }
            _ => None,
        };
        Ok(GatewayAnswer {
            status,
            amount_minor,
            currency,
            transaction_id: v.reference,
            raw: raw(&v.raw),
        })
    }

    /// Chapa processes a refund in 1-3 business days, signals it with a
    /// `charge.refunded` webhook, and its verify has no partially-refunded status
    /// (chapa.md §6, §5.2).
    fn refunds_show_at_once(&self) -> bool {
        false
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RawAnswer, GatewayError> {
        let mut body = if request.full {
            chapa::RefundRequest::full()
        } else {
            chapa::RefundRequest::partial(chapa::Amount::from_minor(
                u64::try_from(request.amount.minor())
                    .map_err(|_| rejected("amount must not be negative".into()))?,
            ))
        }
        .with_reference(request.refund_id.clone());
        if let Some(reason) = &request.reason {
            body = body.with_reason(reason.clone());
        }
        let done = self
            .client
            .refund(&request.transaction_id, &body)
            .await
            .map_err(error)?;
        Ok(raw(&done.raw))
    }

    fn read_webhook(
        &self,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<WebhookNotice, WebhookError> {
        let secret = self
            .webhook_secret
            .as_ref()
            .map(|s| s.expose_secret().as_bytes())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                WebhookError::Unauthenticated("no Chapa webhook secret is configured".into())
            })?;
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            // Only the signature headers matter; anything unrepresentable is dropped,
            // which at worst makes a signature "missing".
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                map.append(name, value);
            }
        }
        let event = chapa::parse_webhook(secret, body, &map).map_err(|e| match e {
            chapa::WebhookError::Signature(s) => WebhookError::Unauthenticated(s.to_string()),
            other => WebhookError::Malformed(other.to_string()),
        })?;
        Ok(WebhookNotice {
            event: event_name(&event.event),
            reference: event.merchant_reference().map(str::to_owned),
            status: event.status.as_ref().map(status_name),
            claims_paid: event.event == chapa::EventKind::ChargeSuccess
                || event.status.as_ref().is_some_and(|s| s.is_success()),
            unrelated: event.is_payout(),
        })
    }
}

fn event_name(e: &chapa::EventKind) -> String {
    use chapa::EventKind as E;
    match e {
        E::ChargeSuccess => "charge.success".into(),
        E::ChargeRefunded => "charge.refunded".into(),
        E::ChargeReversed => "charge.reversed".into(),
        E::ChargeFailedOrCancelled => "charge.failed/cancelled".into(),
        E::PayoutSuccess => "payout.success".into(),
        E::PayoutFailedOrCancelled => "payout.failed/cancelled".into(),
        E::Other(s) => s.clone(),
    }
}

fn status_name(s: &chapa::PaymentStatus) -> String {
    use chapa::PaymentStatus as P;
    match s {
        P::Success => "success".into(),
        P::Pending => "pending".into(),
        P::NotPaidYet => "not paid yet".into(),
        P::Failed => "failed".into(),
        P::Cancelled => "cancelled".into(),
        P::FailedOrCancelled => "failed/cancelled".into(),
        P::Refunded => "refunded".into(),
        P::Reversed => "reversed".into(),
        P::Other(s) => s.clone(),
    }
}

use async_trait::async_trait;
use chrono::Utc;
use tijori_core::gateway::{
    Checkout, CheckoutRequest, Gateway, GatewayAnswer, GatewayError, GatewayKind, GatewayStatus,
    RawAnswer, RefundRequest,
};
use tijori_core::money::{Currency, Money};
use url::Url;

const KIND: GatewayKind = GatewayKind::Khalti;

/// Khalti's KPG-2 hosted checkout. Takes NPR only.
pub struct KhaltiGateway {
    client: khalti::Client,
}

impl KhaltiGateway {
    pub fn new(client: khalti::Client) -> Self {
        KhaltiGateway { client }
    }
}

fn raw(r: &khalti::RawAnswer) -> RawAnswer {
    RawAnswer {
        http_status: r.http_status,
        body: r.body.clone(),
    }
}

fn error(e: khalti::Error) -> GatewayError {
    use khalti::Error as E;
    let reason = e.reason();
    match e {
        E::Rejected { raw: r, .. } => GatewayError::Rejected {
            gateway: KIND,
            reason,
            raw: Some(raw(&r)),
        },
        E::InvalidInput { .. } => GatewayError::Rejected {
            gateway: KIND,
            reason,
            raw: None,
        },
        E::Unauthorized { raw: r, .. } => GatewayError::Unauthorized {
            gateway: KIND,
            reason,
            raw: Some(raw(&r)),
        },
        E::NotFound { raw: r, .. } => GatewayError::NotFound {
            gateway: KIND,
            reason,
            raw: Some(raw(&r)),
        },
        E::Timeout => GatewayError::Timeout { gateway: KIND },
        E::Unreachable { .. } => GatewayError::Unreachable {
            gateway: KIND,
            reason,
        },
        E::ServerError { raw: r, .. } | E::InvalidAnswer { raw: r, .. } => {
            GatewayError::BadAnswer {
                gateway: KIND,
                reason,
                raw: Some(raw(&r)),
            }
        }
    }
}

fn url(field: &str, value: &str) -> Result<Url, GatewayError> {
    Url::parse(value).map_err(|e| GatewayError::Rejected {
        gateway: KIND,
        reason: format!("{field} {value:?} is not a valid URL: {e}"),
        raw: None,
    })
}

#[async_trait]
impl Gateway for KhaltiGateway {
    fn kind(&self) -> GatewayKind {
        KIND
    }

    fn supports(&self, currency: Currency) -> bool {
        currency == Currency::Npr
    }

    async fn initiate(&self, request: &CheckoutRequest) -> Result<Checkout, GatewayError> {
        let amount = u64::try_from(request.amount.minor()).map_err(|_| GatewayError::Rejected {
            gateway: KIND,
            reason: "amount must not be negative".into(),
            raw: None,
        })?;
        let mut body = khalti::InitiateRequest::new(
            url("return_url", &request.return_url)?,
            url("website_url", &request.website_url)?,
            khalti::Paisa::new(amount),
            request.payment_id.as_str(),
            request.description.as_str(),
        );
        body.customer_info = Some(khalti::CustomerInfo {
            name: Some(request.customer_name.clone()),
            email: Some(request.customer_email.clone()),
            phone: None,
        });
        let initiated = self.client.initiate(&body).await.map_err(error)?;
        Ok(Checkout {
            provider_ref: initiated.pidx,
            payment_url: initiated.payment_url.to_string(),
            expires_at: Some(initiated.expires_at.with_timezone(&Utc)),
            raw: raw(&initiated.raw),
        })
    }

    async fn lookup(&self, pidx: &str, _amount: Money) -> Result<GatewayAnswer, GatewayError> {
        use khalti::LookupStatus as L;
        let lookup = self.client.lookup(pidx).await.map_err(error)?;
        let status = match &lookup.status {
            L::Completed => GatewayStatus::Paid,
            L::Initiated => GatewayStatus::Unpaid,
            L::Pending => GatewayStatus::Pending,
            L::UserCanceled | L::Canceled => GatewayStatus::Canceled,
            L::Expired => GatewayStatus::Expired,
            L::Failed => GatewayStatus::Failed,
            L::Refunded => GatewayStatus::Refunded,
            L::PartiallyRefunded => GatewayStatus::PartiallyRefunded,
            L::Other(s) => GatewayStatus::Unrecognised(s.clone()),
        };
        let amount_minor =
            i64::try_from(lookup.total_amount.get()).map_err(|_| GatewayError::BadAnswer {
                gateway: KIND,
                reason: format!("total_amount {} is out of range", lookup.total_amount.get()),
                raw: Some(raw(&lookup.raw)),
            })?;
        Ok(GatewayAnswer {
            status,
            amount_minor,
            // Khalti takes NPR only; its lookup names no currency.
            currency: None,
            transaction_id: lookup.transaction_id,
            raw: raw(&lookup.raw),
        })
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RawAnswer, GatewayError> {
        let amount = if request.full {
            None
        } else {
            Some(khalti::Paisa::new(
                u64::try_from(request.amount.minor()).map_err(|_| GatewayError::Rejected {
                    gateway: KIND,
                    reason: "amount must not be negative".into(),
                    raw: None,
                })?,
            ))
        };
        let done = self
            .client
            .refund(
                &request.transaction_id,
                &khalti::RefundRequest {
                    amount,
                    mobile: None,
                },
            )
            .await
            .map_err(error)?;
        Ok(raw(&done.raw))
    }

    async fn capture_token(
        &self,
        token: &str,
        amount: Money,
    ) -> Result<GatewayAnswer, GatewayError> {
        let paisa = u64::try_from(amount.minor())
            .map(khalti::Paisa::new)
            .map_err(|_| GatewayError::Rejected {
                gateway: KIND,
                reason: "amount must not be negative".into(),
                raw: None,
            })?;
        let v = self
            .client
            .verify_widget(token, paisa)
            .await
            .map_err(error)?;
        // Legacy transaction states (khalti.md §9.4): only Completed means the money
        // moved to the merchant; a refunded flag overrides it.
        let state = v.state_name.trim().to_ascii_lowercase();
        let status = match state.as_str() {
            _ if v.refunded => GatewayStatus::Refunded,
            "completed" | "complete" => GatewayStatus::Paid,
            "initiated" | "confirmed" => GatewayStatus::Pending,
            "refunded" => GatewayStatus::Refunded,
            "partially refunded" => GatewayStatus::PartiallyRefunded,
            "failed" | "disabled" => GatewayStatus::Failed,
            _ => GatewayStatus::Unrecognised(v.state_name.clone()),
        };
        let amount_minor = i64::try_from(v.amount.get()).map_err(|_| GatewayError::BadAnswer {
            gateway: KIND,
            reason: format!("amount {} is out of range", v.amount.get()),
            raw: Some(raw(&v.raw)),
        })?;
        Ok(GatewayAnswer {
            status,
            amount_minor,
            currency: None,
            transaction_id: Some(v.idx),
            raw: raw(&v.raw),
        })
    }
}

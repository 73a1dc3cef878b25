use async_trait::async_trait;
use tijori_core::gateway::{
    Checkout, CheckoutForm, CheckoutRequest, Gateway, GatewayAnswer, GatewayError, GatewayKind,
    GatewayStatus, RawAnswer, SignedReturn,
};
use tijori_core::money::{Currency, Money};
use url::Url;

const KIND: GatewayKind = GatewayKind::Esewa;

/// eSewa ePay v2: the browser posts a signed form to eSewa's hosted page (tijori's
/// `payment_url` is a page of its own that posts it), eSewa sends it back signed, and
/// only the status check settles anything. Takes NPR only.
pub struct EsewaGateway {
    client: esewa::Client,
}

impl EsewaGateway {
    /// The gateway over a configured client.
    pub fn new(client: esewa::Client) -> Self {
        EsewaGateway { client }
    }

    /// The client, for reading eSewa's signed success redirect (`Client::verify_callback`).
    pub fn client(&self) -> &esewa::Client {
        &self.client
    }

    fn form(&self, request: &CheckoutRequest) -> Result<esewa::SignedForm, GatewayError> {
        let amount = paisa(request.amount)?;
        let uuid = esewa::TransactionUuid::new(&transaction_uuid(request)).map_err(|e| {
            GatewayError::Rejected {
                gateway: KIND,
                reason: e.to_string(),
                raw: None,
            }
        })?;
        // eSewa appends `?data=` blindly (esewa.md §4.2): the success URL carries no
        // query of its own. The failure redirect carries nothing signed, so it names
        // the payment itself (§4.3).
        let success = url("success_url", &request.return_url)?;
        let mut failure = url("failure_url", &request.return_url)?;
        failure
            .query_pairs_mut()
            .append_pair("transaction_uuid", &transaction_uuid(request))
            .append_pair("esewa", "failure");
        self.client
            .sign_form(&esewa::FormRequest::new(amount, uuid, success, failure))
            .map_err(error)
    }
}

/// The payment's `transaction_uuid` at eSewa: its id with `-` for `_`, since eSewa
/// takes letters, digits and `-` only (esewa.md §3.2). Our ids have one `_`, after
/// their prefix, so the two name each other; it is the payment's provider_ref.
fn transaction_uuid(request: &CheckoutRequest) -> String {
    request.payment_id.as_str().replace('_', "-")
}

/// The transaction_uuid a `data` that does not verify claims, if it can be read at
/// all (for the operator's record; nothing is looked up on it).
fn claimed_uuid(data: &str) -> Option<String> {
    use base64::Engine as _;
    let text = data
        .replace("%3D", "=")
        .replace("%2B", "+")
        .replace("%2F", "/");
    let json = base64::engine::general_purpose::STANDARD
        .decode(text.trim_end_matches('='))
        .or_else(|_| {
            base64::engine::general_purpose::STANDARD_NO_PAD.decode(text.trim_end_matches('='))
        })
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&json).ok()?;
    value
        .get("transaction_uuid")?
        .as_str()
        .and_then(|u| esewa::TransactionUuid::new(u).ok())
        .map(|u| u.as_str().to_owned())
}

fn paisa(amount: Money) -> Result<esewa::Paisa, GatewayError> {
    esewa::Paisa::try_from(amount.minor()).map_err(|_| GatewayError::Rejected {
        gateway: KIND,
        reason: "amount must not be negative".into(),
        raw: None,
    })
}

fn raw(r: &esewa::RawAnswer) -> RawAnswer {
    RawAnswer {
        http_status: r.http_status,
        body: r.body.clone(),
    }
}

fn error(e: esewa::Error) -> GatewayError {
    use esewa::Error as E;
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
        E::Unavailable { raw: r, .. } => GatewayError::Unavailable {
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

fn checkout_form(form: &esewa::SignedForm) -> CheckoutForm {
    CheckoutForm {
        action: form.action.to_string(),
        fields: form
            .fields
            .pairs()
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect(),
    }
}

#[async_trait]
impl Gateway for EsewaGateway {
    fn kind(&self) -> GatewayKind {
        KIND
    }

    fn supports(&self, currency: Currency) -> bool {
        currency == Currency::Npr
    }

    /// Nothing is sent to eSewa: its checkout opens when the browser posts the signed
    /// form. The payment's reference at eSewa is its `transaction_uuid`, our id.
    async fn initiate(&self, request: &CheckoutRequest) -> Result<Checkout, GatewayError> {
        // Signed now, so a form that cannot be signed fails the initiate; the page
        // that posts it signs it again (`checkout_form`), the same.
        let form = self.form(request)?;
        Ok(Checkout {
            provider_ref: transaction_uuid(request),
            payment_url: format!(
                "{}/payments/{}/esewa/",
                request.website_url.trim_end_matches('/'),
                request.payment_id
            ),
            // eSewa names no expiry; `Payment::link_end` assumes the usual lifetime.
            expires_at: None,
            raw: RawAnswer {
                http_status: 0,
                body: format!("signed form for {}", form.action),
            },
        })
    }

    fn read_return(&self, query: &str) -> Option<SignedReturn> {
        let data = esewa::callback_data_from_query(query)?;
        Some(match self.client.verify_callback(data) {
            Ok(callback) => SignedReturn::Verified {
                amount_minor: i64::try_from(callback.total_amount.get()).unwrap_or(i64::MAX),
                reference: callback.transaction_uuid,
            },
            Err(e) => SignedReturn::Forged {
                reference: claimed_uuid(data),
                why: e.to_string(),
            },
        })
    }

    fn checkout_form(&self, request: &CheckoutRequest) -> Option<CheckoutForm> {
        self.form(request).ok().map(|f| checkout_form(&f))
    }

    async fn lookup(
        &self,
        transaction_uuid: &str,
        amount: Money,
    ) -> Result<GatewayAnswer, GatewayError> {
        use esewa::Status as S;
        let uuid =
            esewa::TransactionUuid::new(transaction_uuid).map_err(|e| GatewayError::Rejected {
                gateway: KIND,
                reason: e.to_string(),
                raw: None,
            })?;
        let answer = self
            .client
            .status(&uuid, paisa(amount)?)
            .await
            .map_err(error)?;
        let status = match &answer.status {
            S::Complete => GatewayStatus::Paid,
            // eSewa is still deciding; the reconciler asks again (it asks for a status
            // check when no answer came within five minutes, esewa.md §5).
            S::Pending | S::Ambiguous => GatewayStatus::Pending,
            // Also eSewa's answer before the form reached it: the payment stays open
            // until its link's lifetime ends, when the reconciler closes it.
            S::NotFound => GatewayStatus::Unpaid,
            S::Canceled => GatewayStatus::Canceled,
            S::FullRefund => GatewayStatus::Refunded,
            S::PartialRefund => GatewayStatus::PartiallyRefunded,
            S::Other(text) => GatewayStatus::Unrecognised(text.clone()),
        };
        // An answer without an amount is 0: a COMPLETE without one is held for review,
        // never fulfilled on trust.
        let amount_minor = answer
            .total_amount
            .map(|p| i64::try_from(p.get()))
            .transpose()
            .map_err(|_| GatewayError::BadAnswer {
                gateway: KIND,
                reason: "total_amount is out of range".into(),
                raw: Some(raw(&answer.raw)),
            })?
            .unwrap_or(0);
        Ok(GatewayAnswer {
            status,
            amount_minor,
            // eSewa takes NPR only; its status check names no currency.
            currency: None,
            transaction_id: answer.ref_id.clone(),
            raw: raw(&answer.raw),
        })
    }

    /// eSewa has no refund API: its refunds are made in eSewa's merchant portal (and
    /// recorded in tijori with their reference), or found by the status check
    /// (`FULL_REFUND`, `PARTIAL_REFUND`).
    fn has_refund_api(&self) -> bool {
        false
    }

    fn refunds_show_at_once(&self) -> bool {
        false
    }
}

//! What is sent to Chapa and what comes back.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use url::Url;

use crate::amount::Amount;
use crate::error::RawAnswer;

/// `POST transaction/initialize` (chapa.md §2.1), sent as JSON.
///
/// Build it with [`InitializeRequest::new`] and fill in the optional public fields.
#[derive(Clone, Debug, Serialize)]
pub struct InitializeRequest {
    /// What the customer pays, written as a decimal string in major units (`"500.50"`).
    pub amount: Amount,
    /// `ETB` or `USD`.
    pub currency: String,
    /// Customer email; Chapa refuses a malformed one with `validation.email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Customer first name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Customer last name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// `09xxxxxxxx` or `07xxxxxxxx` when present (chapa.md §2.1); not checked here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// The merchant's unique reference; must match `[A-Za-z0-9_-]{1,100}` (chapa.md §2.1:
    /// the server's rules are unknown, so the client keeps to what every SDK produces).
    pub tx_ref: String,
    /// Chapa calls it (GET, `trx_ref`/`ref_id`/`status`) after payment: a signal only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<Url>,
    /// Where the browser goes after payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_url: Option<Url>,
    /// Title/description/logo of the checkout page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customization: Option<Customization>,
    /// Free-form `meta` object (`hide_receipt`, `invoices`, …), echoed back by Chapa.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

impl InitializeRequest {
    /// The required fields; everything else starts empty.
    pub fn new(amount: Amount, currency: impl Into<String>, tx_ref: impl Into<String>) -> Self {
        InitializeRequest {
            amount,
            currency: currency.into(),
            email: None,
            first_name: None,
            last_name: None,
            phone_number: None,
            tx_ref: tx_ref.into(),
            callback_url: None,
            return_url: None,
            customization: None,
            meta: None,
        }
    }
}

/// The checkout page's texts (`customization`, chapa.md §2.1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Customization {
    /// Page title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Page description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Logo URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo: Option<String>,
}

/// A started payment: where to send the customer.
#[derive(Clone, Debug)]
pub struct Initialized {
    /// `https://checkout.chapa.co/checkout/payment/<token>`.
    pub checkout_url: Url,
    /// Chapa's message (`Hosted Link`), trimmed.
    pub message: Option<String>,
    /// The answer as received.
    pub raw: RawAnswer,
}

/// A payment status as Chapa writes it (verify `data.status`, webhook `status`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// `success`: paid.
    Success,
    /// `pending`: started, not finished.
    Pending,
    /// Not a Chapa status: verify answered `Payment not paid yet` (chapa.md §4.2), i.e.
    /// the transaction exists but nobody has paid it yet. See [`Client::verify`](crate::Client::verify).
    NotPaidYet,
    /// `failed`.
    Failed,
    /// `cancelled` (or `canceled`).
    Cancelled,
    /// The literal `failed/cancelled` the docs print (chapa.md §5.2).
    FailedOrCancelled,
    /// `refunded`.
    Refunded,
    /// `reversed`.
    Reversed,
    /// Anything else, verbatim.
    Other(String),
}

impl PaymentStatus {
    /// Reads Chapa's text (trimmed, case-insensitive); unknown values are kept as
    /// [`PaymentStatus::Other`].
    pub fn parse(text: &str) -> PaymentStatus {
        match text.trim().to_ascii_lowercase().as_str() {
            "success" => PaymentStatus::Success,
            "pending" => PaymentStatus::Pending,
            "failed" => PaymentStatus::Failed,
            "cancelled" | "canceled" => PaymentStatus::Cancelled,
            "failed/cancelled" | "failed/canceled" => PaymentStatus::FailedOrCancelled,
            "refunded" => PaymentStatus::Refunded,
            "reversed" => PaymentStatus::Reversed,
            _ => PaymentStatus::Other(text.to_string()),
        }
    }

    /// Whether this is [`PaymentStatus::Success`].
    pub fn is_success(&self) -> bool {
        matches!(self, PaymentStatus::Success)
    }

    /// Whether the attempt failed or was cancelled. Not necessarily final for the
    /// `tx_ref`: a customer may retry a failed payment (chapa.md §3.3).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            PaymentStatus::Failed | PaymentStatus::Cancelled | PaymentStatus::FailedOrCancelled
        )
    }
}

/// What `GET transaction/verify/{tx_ref}` said about a transaction (chapa.md §4).
///
/// When `status` is [`PaymentStatus::NotPaidYet`] only `tx_ref`, `message` and `raw`
/// are filled. For every other status `amount` and `currency` are present (the answer
/// is refused as [`Error::InvalidAnswer`](crate::Error::InvalidAnswer) otherwise) and
/// `tx_ref` is the one asked about.
#[derive(Clone, Debug)]
pub struct Verification {
    /// `data.status`, the payment's status.
    pub status: PaymentStatus,
    /// The top-level envelope `status` (`success`, `failed`, `null`…), verbatim; `None`
    /// for JSON `null` or absent.
    pub envelope_status: Option<String>,
    /// The merchant reference asked about.
    pub tx_ref: String,
    /// What the customer was charged for, in minor units.
    pub amount: Option<Amount>,
    /// `ETB` / `USD`.
    pub currency: Option<String>,
    /// Chapa's fee, in minor units.
    pub charge: Option<Amount>,
    /// Chapa's reference (`ref_id` in the callback); needed for a refund.
    pub reference: Option<String>,
    /// `test` or `live`.
    pub mode: Option<String>,
    /// Payment method (`test`, `telebirr`, `card`, …).
    pub method: Option<String>,
    /// `type`: `API`, `Payment Link`, …
    pub kind: Option<String>,
    /// Customer first name.
    pub first_name: Option<String>,
    /// Customer last name.
    pub last_name: Option<String>,
    /// Customer email.
    pub email: Option<String>,
    /// `customization` echoed back.
    pub customization: Option<Value>,
    /// `meta` echoed back.
    pub meta: Option<Value>,
    /// When Chapa created the transaction.
    pub created_at: Option<DateTime<Utc>>,
    /// When Chapa last changed it.
    pub updated_at: Option<DateTime<Utc>>,
    /// The envelope `message`, trimmed, when it is a string.
    pub message: Option<String>,
    /// The answer as received.
    pub raw: RawAnswer,
}

impl Verification {
    /// Reads a verify answer received some other way (kept from earlier, or in a
    /// benchmark) exactly as [`crate::Client::verify`] reads Chapa's: `asked_tx_ref`
    /// must be the transaction it is about.
    pub fn from_answer(
        raw: crate::RawAnswer,
        asked_tx_ref: &str,
    ) -> Result<Verification, crate::Error> {
        crate::client::interpret_verify(raw, asked_tx_ref)
    }
}

impl Verification {
    /// Paid according to both the envelope and `data` (chapa.md §4.1, §11.2): the
    /// top-level `status` and `data.status` are both `success`.
    pub fn is_paid(&self) -> bool {
        self.status.is_success()
            && self
                .envelope_status
                .as_deref()
                .is_some_and(|s| s.trim().eq_ignore_ascii_case("success"))
    }

    /// The check the docs require before giving value (chapa.md §4.1): paid, and the
    /// `tx_ref`, amount and currency are exactly what was initialized. The caller should
    /// also compare [`Verification::mode`] with the key it uses.
    pub fn confirms(&self, tx_ref: &str, amount: Amount, currency: &str) -> bool {
        self.is_paid()
            && self.tx_ref == tx_ref
            && self.amount == Some(amount)
            && self
                .currency
                .as_deref()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case(currency.trim()))
    }
}

/// `POST refund/{reference}` (chapa.md §6), sent form-encoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefundRequest {
    /// Partial amount; `None` refunds everything.
    pub amount: Option<Amount>,
    /// Why.
    pub reason: Option<String>,
    /// The merchant's unique id for this refund (`reference`).
    pub reference: Option<String>,
    /// `meta[key]=value` pairs, echoed back in the answer and webhook.
    pub meta: BTreeMap<String, String>,
}

impl RefundRequest {
    /// A full refund with no reason.
    pub fn full() -> Self {
        RefundRequest::default()
    }

    /// A partial refund of `amount`.
    pub fn partial(amount: Amount) -> Self {
        RefundRequest {
            amount: Some(amount),
            ..RefundRequest::default()
        }
    }

    /// Sets the reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Sets the merchant's refund reference.
    pub fn with_reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }

    /// The form body, in a fixed order.
    pub(crate) fn to_form(&self) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        if let Some(reason) = &self.reason {
            form.append_pair("reason", reason);
        }
        if let Some(amount) = self.amount {
            form.append_pair("amount", &amount.to_string());
        }
        if let Some(reference) = &self.reference {
            form.append_pair("reference", reference);
        }
        for (key, value) in &self.meta {
            form.append_pair(&format!("meta[{key}]"), value);
        }
        form.finish()
    }
}

/// A refund Chapa accepted ("Refund initiated successfully…", chapa.md §6). The refund
/// completes later (`charge.refunded` webhook). Every `data` field is optional: a 2xx
/// success must not be reported as a failure over a missing detail, or the caller
/// might refund twice.
#[derive(Clone, Debug)]
pub struct Refunded {
    /// The envelope message, trimmed.
    pub message: Option<String>,
    /// `data.status`, e.g. `Refund Initiated`.
    pub status: Option<String>,
    /// `data.id`.
    pub id: Option<String>,
    /// The refund's own reference (`ref`, or `ref_id` in newer docs).
    pub refund_reference: Option<String>,
    /// The refunded payment's Chapa reference.
    pub chapa_reference: Option<String>,
    /// `bank_reference`.
    pub bank_reference: Option<String>,
    /// `merchant_reference`.
    pub merchant_reference: Option<String>,
    /// Refunded amount, in minor units.
    pub amount: Option<Amount>,
    /// Currency.
    pub currency: Option<String>,
    /// The answer as received.
    pub raw: RawAnswer,
}

//! Requests sent to Khalti and the answers it gives, as typed values.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use url::Url;

use crate::error::RawAnswer;
use crate::paisa::Paisa;

/// What to ask Khalti for when starting a payment (`POST epayment/initiate/`,
/// khalti.md §3.1).
///
/// Only the fields Khalti documents are modelled. Khalti validates the content itself
/// (minimum amount, breakdown sum, URL validity) and its refusal comes back as
/// [`Error::Rejected`](crate::Error::Rejected) with its own messages; the client does
/// not second-guess it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitiateRequest {
    /// Where Khalti sends the browser afterwards (with `?pidx=…&status=…`). Must accept GET.
    pub return_url: Url,
    /// The merchant's site.
    pub website_url: Url,
    /// Total payable, excluding Khalti's service charge. Khalti's minimum is 1000 paisa.
    pub amount: Paisa,
    /// The merchant's own id for this order; it is echoed back in the redirect.
    pub purchase_order_id: String,
    /// A human-readable name for the order, shown on Khalti's page.
    pub purchase_order_name: String,
    /// Who is paying, if known. Left out of the request when `None`.
    pub customer_info: Option<CustomerInfo>,
    /// Optional itemisation shown to the payer. When present, Khalti requires the sum
    /// to equal `amount` ("Amount Breakdown mismatch."). Not sent when empty.
    pub amount_breakdown: Vec<AmountBreakdown>,
    /// Optional product lines. Not sent when empty.
    pub product_details: Vec<ProductDetail>,
    /// Free-form metadata. Each entry is sent as a top-level `merchant_<key>` field
    /// (`"extra"` → `"merchant_extra"`); a key that already starts with `merchant_` is
    /// sent as is rather than doubled.
    pub merchant_extra: BTreeMap<String, String>,
}

impl InitiateRequest {
    /// A request with the five required fields and no optional ones.
    pub fn new(
        return_url: Url,
        website_url: Url,
        amount: Paisa,
        purchase_order_id: impl Into<String>,
        purchase_order_name: impl Into<String>,
    ) -> Self {
        InitiateRequest {
            return_url,
            website_url,
            amount,
            purchase_order_id: purchase_order_id.into(),
            purchase_order_name: purchase_order_name.into(),
            customer_info: None,
            amount_breakdown: Vec::new(),
            product_details: Vec::new(),
            merchant_extra: BTreeMap::new(),
        }
    }

    /// The JSON body Khalti expects.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::Map::new();
        body.insert("return_url".into(), self.return_url.as_str().into());
        body.insert("website_url".into(), self.website_url.as_str().into());
        body.insert("amount".into(), self.amount.get().into());
        body.insert(
            "purchase_order_id".into(),
            self.purchase_order_id.clone().into(),
        );
        body.insert(
            "purchase_order_name".into(),
            self.purchase_order_name.clone().into(),
        );
        if let Some(info) = &self.customer_info {
            body.insert("customer_info".into(), to_value(info));
        }
        if !self.amount_breakdown.is_empty() {
            body.insert("amount_breakdown".into(), to_value(&self.amount_breakdown));
        }
        if !self.product_details.is_empty() {
            body.insert("product_details".into(), to_value(&self.product_details));
        }
        for (key, value) in &self.merchant_extra {
            let key = if key.starts_with("merchant_") {
                key.clone()
            } else {
                format!("merchant_{key}")
            };
            body.insert(key, value.clone().into());
        }
        serde_json::Value::Object(body)
    }
}

fn to_value<T: Serialize>(value: &T) -> serde_json::Value {
    // These types are plain structs of strings and integers: serialising them cannot fail.
    serde_json::to_value(value).expect("request parts always serialise to JSON")
}

/// Who is paying, shown on Khalti's page. Every field is optional; absent ones are left
/// out of the JSON rather than sent as `null`, because Khalti's DRF serialiser answers
/// `null` with "This field may not be null." (khalti.md §3.3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CustomerInfo {
    /// Payer's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Payer's email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Payer's phone number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// One line of the amount breakdown (e.g. "Mark Price", "VAT").
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AmountBreakdown {
    /// What this part of the amount is.
    pub label: String,
    /// How much, in paisa.
    pub amount: Paisa,
}

/// One product line of the order (prices in paisa).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProductDetail {
    /// The merchant's product id.
    pub identity: String,
    /// Product name.
    pub name: String,
    /// `unit_price × quantity`.
    pub total_price: Paisa,
    /// How many.
    pub quantity: u32,
    /// Price of one.
    pub unit_price: Paisa,
}

/// Khalti accepted the payment request: send the payer's browser to `payment_url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Initiated {
    /// The payment id; every later call (lookup, the return redirect) refers to it.
    pub pidx: String,
    /// Khalti's hosted payment page for this payment.
    pub payment_url: Url,
    /// When the link stops working (Khalti sends Nepal time, `+05:45`).
    pub expires_at: DateTime<FixedOffset>,
    /// Seconds of validity from the moment of the answer (1800 in the sandbox).
    pub expires_in: u64,
    /// The answer as received.
    pub raw: RawAnswer,
}

/// The state of a payment as Khalti reports it (`POST epayment/lookup/`, khalti.md §5).
///
/// This is the only trustworthy source of a payment's outcome: the browser redirect is
/// unsigned and can be forged (khalti.md §4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// The payment id this answer is about (checked to be the one asked for).
    pub pidx: String,
    /// Total amount of the payment, in paisa. Compare it with what you expected before
    /// fulfilling.
    pub total_amount: Paisa,
    /// Where the payment stands. Fulfil only on [`LookupStatus::Completed`].
    pub status: LookupStatus,
    /// Khalti's transaction id, needed for a refund. `None` until the payment completes
    /// (an empty string from Khalti is also read as `None`).
    pub transaction_id: Option<String>,
    /// Khalti's fee for the merchant. Zero when Khalti leaves it out.
    pub fee: Paisa,
    /// Whether the payment has been refunded. `false` when Khalti leaves it out; the
    /// `status` is the authority on refunds.
    pub refunded: bool,
    /// The answer as received (HTTP 200, or 400 for Expired / User canceled).
    pub raw: RawAnswer,
}

impl Lookup {
    /// Reads a lookup answer received some other way (kept from earlier, or in a
    /// benchmark) exactly as [`crate::Client::lookup`] reads Khalti's: `asked_pidx`
    /// must be the payment it is about.
    pub fn from_answer(raw: crate::RawAnswer, asked_pidx: &str) -> Result<Lookup, crate::Error> {
        crate::client::interpret_lookup(raw, asked_pidx)
    }
}

/// A payment's status in a lookup answer (khalti.md §5.2).
///
/// Parsed case-insensitively, because Khalti's own docs spell some values two ways
/// ("Partially Refunded" / "Partially refunded").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupStatus {
    /// Created; the payer has not paid yet. Do not fulfil.
    Initiated,
    /// "Failed or pending" per Khalti: hold, do not fulfil, look up again later.
    Pending,
    /// Paid. The only status to fulfil on.
    Completed,
    /// Fully refunded.
    Refunded,
    /// Partly refunded.
    PartiallyRefunded,
    /// The link expired unpaid. Final failure (Khalti answers it with HTTP 400).
    Expired,
    /// The payer cancelled. Final failure (Khalti answers it with HTTP 400).
    UserCanceled,
    /// Former name of the cancel status (documented until March 2024). Final failure.
    Canceled,
    /// Former failure status (documented until March 2024). Final failure.
    Failed,
    /// Any other value, kept verbatim. Callers must not fulfil on it; treat it like
    /// `Pending` (hold and ask).
    Other(String),
}

impl LookupStatus {
    /// Reads a status string as Khalti sends it. Never fails: unknown values become
    /// [`LookupStatus::Other`].
    pub fn parse(value: &str) -> Self {
        let normalised = value
            .split(|c: char| c.is_whitespace() || c == '_')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        match normalised.as_str() {
            "initiated" => LookupStatus::Initiated,
            "pending" => LookupStatus::Pending,
            "completed" => LookupStatus::Completed,
            "refunded" => LookupStatus::Refunded,
            "partially refunded" => LookupStatus::PartiallyRefunded,
            "expired" => LookupStatus::Expired,
            "user canceled" | "user cancelled" => LookupStatus::UserCanceled,
            "canceled" | "cancelled" => LookupStatus::Canceled,
            "failed" => LookupStatus::Failed,
            _ => LookupStatus::Other(value.to_string()),
        }
    }

    /// The spelling used in Khalti's docs (or the verbatim value for `Other`).
    pub fn as_str(&self) -> &str {
        match self {
            LookupStatus::Initiated => "Initiated",
            LookupStatus::Pending => "Pending",
            LookupStatus::Completed => "Completed",
            LookupStatus::Refunded => "Refunded",
            LookupStatus::PartiallyRefunded => "Partially Refunded",
            LookupStatus::Expired => "Expired",
            LookupStatus::UserCanceled => "User canceled",
            LookupStatus::Canceled => "Canceled",
            LookupStatus::Failed => "Failed",
            LookupStatus::Other(value) => value,
        }
    }

    /// True only for `Completed`: the single status Khalti says to fulfil on.
    pub fn is_completed(&self) -> bool {
        matches!(self, LookupStatus::Completed)
    }

    /// True for the statuses Khalti says "must be treated as failed" (Expired,
    /// User canceled, and the older Canceled and Failed). These never turn into a
    /// payment later.
    pub fn is_failed(&self) -> bool {
        matches!(
            self,
            LookupStatus::Expired
                | LookupStatus::UserCanceled
                | LookupStatus::Canceled
                | LookupStatus::Failed
        )
    }
}

impl fmt::Display for LookupStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for LookupStatus {
    fn from(value: &str) -> Self {
        LookupStatus::parse(value)
    }
}

/// What to refund (khalti.md §6). Both fields empty means a full wallet refund.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RefundRequest {
    /// Refund only this much (partial refund). `None` refunds the whole transaction.
    /// Sent as an integer in paisa: the docs' note says paisa, their example `50.00`
    /// contradicts it, and khalti.md §6 recommends the integer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Paisa>,
    /// The payer's Khalti-registered mobile number. Khalti requires it for payments
    /// made through a bank; leave it `None` for wallet payments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
}

/// Khalti accepted the refund.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refunded {
    /// Khalti's message, e.g. `Transaction refund successful.` (empty if it sent none).
    pub detail: String,
    /// The answer as received.
    pub raw: RawAnswer,
}

/// The verified legacy (KPG-1 widget) transaction, from `POST payment/verify/`
/// (khalti.md §9.3). A success answer means the money has moved to the merchant;
/// still compare `amount` with the price before fulfilling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WidgetVerification {
    /// Khalti's transaction id.
    pub idx: String,
    /// The amount of the transaction, in paisa.
    pub amount: Paisa,
    /// Khalti's fee, when sent.
    pub fee_amount: Option<Paisa>,
    /// Transaction state, e.g. `Completed` (legacy states: Initiated, Confirmed,
    /// Completed, Disabled, Refunded, Partially refunded, Failed).
    pub state_name: String,
    /// Transaction type, e.g. `Wallet payment`, when sent.
    pub type_name: Option<String>,
    /// Whether the transaction has been refunded (`false` when Khalti leaves it out).
    pub refunded: bool,
    /// When the transaction was created, when sent.
    pub created_on: Option<DateTime<FixedOffset>>,
    /// The payer's (masked) mobile, when sent.
    pub user_mobile: Option<String>,
    /// The answer as received.
    pub raw: RawAnswer,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parsing_is_case_and_space_insensitive() {
        assert_eq!(
            LookupStatus::parse("Partially Refunded"),
            LookupStatus::PartiallyRefunded
        );
        assert_eq!(
            LookupStatus::parse("Partially refunded"),
            LookupStatus::PartiallyRefunded
        );
        assert_eq!(
            LookupStatus::parse("User canceled"),
            LookupStatus::UserCanceled
        );
        assert_eq!(
            LookupStatus::parse("USER_CANCELED"),
            LookupStatus::UserCanceled
        );
        assert_eq!(LookupStatus::parse("completed"), LookupStatus::Completed);
        assert_eq!(
            LookupStatus::parse("Completed-ish"),
            LookupStatus::Other("Completed-ish".into())
        );
        assert!(!LookupStatus::parse("Completed-ish").is_completed());
        assert!(LookupStatus::parse("Expired").is_failed());
        assert!(!LookupStatus::parse("Pending").is_failed());
        assert_eq!(LookupStatus::UserCanceled.to_string(), "User canceled");
    }

    #[test]
    fn initiate_body_omits_empty_optionals_and_prefixes_merchant_fields() {
        let mut req = InitiateRequest::new(
            "https://example.com/payment/".parse().unwrap(),
            "https://example.com/".parse().unwrap(),
            Paisa::new(1000),
            "o-1",
            "Order 1",
        );
        req.merchant_extra.insert("username".into(), "ram".into());
        req.merchant_extra
            .insert("merchant_extra".into(), "kept".into());
        req.customer_info = Some(CustomerInfo {
            name: Some("Ram".into()),
            ..CustomerInfo::default()
        });
        let body = req.to_json();
        assert_eq!(
            body,
            serde_json::json!({
                "return_url": "https://example.com/payment/",
                "website_url": "https://example.com/",
                "amount": 1000,
                "purchase_order_id": "o-1",
                "purchase_order_name": "Order 1",
                "customer_info": {"name": "Ram"},
                "merchant_username": "ram",
                "merchant_extra": "kept"
            })
        );
    }
}

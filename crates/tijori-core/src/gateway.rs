//! The Gateway port: what tijori needs from a hosted-checkout wallet, in tijori's own
//! terms. Adapters (crate `tijori-gateways`) translate each gateway client into this.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::PaymentId;
use crate::money::{Currency, Money};

/// Which gateway a payment goes through. Stored on the payment; with its provider_ref
/// it names the payment at that gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayKind {
    /// Khalti: the KPG-2 hosted checkout (and the legacy KPG-1 widget), NPR only.
    Khalti,
    /// Chapa: a hosted checkout in ETB or USD, with signed webhooks.
    Chapa,
    /// eSewa ePay v2: a signed form the browser posts to eSewa's hosted page, NPR only;
    /// no webhooks and no refund API.
    Esewa,
}

impl GatewayKind {
    /// Its name in the database and on the wire (`khalti`, `chapa`); `FromStr` reads
    /// it back.
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayKind::Khalti => "khalti",
            GatewayKind::Chapa => "chapa",
            GatewayKind::Esewa => "esewa",
        }
    }

    /// Its name as its customers write it ("eSewa", not "Esewa"), for pages and mail.
    pub fn display_name(self) -> &'static str {
        match self {
            GatewayKind::Khalti => "Khalti",
            GatewayKind::Chapa => "Chapa",
            GatewayKind::Esewa => "eSewa",
        }
    }
}

impl fmt::Display for GatewayKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GatewayKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "khalti" => Ok(GatewayKind::Khalti),
            "chapa" => Ok(GatewayKind::Chapa),
            "esewa" => Ok(GatewayKind::Esewa),
            other => Err(format!(
                "unknown gateway {other:?}: expected \"khalti\", \"chapa\" or \"esewa\""
            )),
        }
    }
}

/// The exact answer a gateway gave, kept on the payment for audit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawAnswer {
    /// 0 when the record is not a gateway's HTTP reply: a return redirect, a callback,
    /// or a note tijori made itself (the reconciler closing an expired checkout).
    pub http_status: u16,
    /// The body exactly as received; for a status-0 record, the signal or tijori's note.
    pub body: String,
}

/// What tijori asks a gateway to open a hosted checkout for.
#[derive(Clone, Debug)]
pub struct CheckoutRequest {
    /// Sent as the gateway's order reference (Khalti's purchase_order_id; at Chapa it
    /// is the tx_ref itself).
    pub payment_id: PaymentId,
    /// The whole charge; its currency must be one the gateway `supports`.
    pub amount: Money,
    /// What is bought, in words ("Basic subscription (30 days)"); Khalti shows it on
    /// its page as the order name.
    pub description: String,
    /// Where the gateway sends the browser back to.
    pub return_url: String,
    /// Our site's root; Khalti requires it, Chapa takes none.
    pub website_url: String,
    /// The customer's username, sent as the payer's name.
    pub customer_name: String,
    /// The customer's email, sent as the payer's.
    pub customer_email: String,
}

/// What tijori asks a gateway to refund.
#[derive(Clone, Debug)]
pub struct RefundRequest {
    /// The gateway's transaction reference (Khalti's transaction_id or widget idx,
    /// Chapa's reference).
    pub transaction_id: String,
    /// How much; the whole payment when `full`.
    pub amount: Money,
    /// Ask for the gateway's refund of everything instead of `amount`; set only when
    /// nothing of the payment was refunded before.
    pub full: bool,
    /// The operator's reason, passed on where the gateway takes one (Chapa).
    pub reason: Option<String>,
    /// Our id for the refund, where the gateway keeps one (Chapa).
    pub refund_id: String,
}

/// An opened checkout: the gateway's reference (Khalti's pidx, Chapa's tx_ref) and
/// the page to send the customer to.
#[derive(Clone, Debug)]
pub struct Checkout {
    /// What the payment is looked up by from now on (`Gateway::lookup`).
    pub provider_ref: String,
    /// The gateway's hosted page, where the customer is sent to pay.
    pub payment_url: String,
    /// When the checkout stops taking money, where the gateway says (Khalti does);
    /// otherwise `Payment::link_end` assumes a fixed lifetime.
    pub expires_at: Option<DateTime<Utc>>,
    /// The initiate answer, kept for audit.
    pub raw: RawAnswer,
}

/// What a gateway's signed return redirect says (`Gateway::read_return`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignedReturn {
    /// Its signature holds: the payment it names and the amount it claims, in minor
    /// units.
    Verified {
        /// The payment's reference at the gateway (eSewa's transaction_uuid).
        reference: String,
        /// What it says was paid.
        amount_minor: i64,
    },
    /// It does not verify (a bad signature, a malformed or oversized `data`): it names
    /// nothing to look up. `reference` is what it claims, for the operator.
    Forged {
        /// The reference it claims, if one could be read.
        reference: Option<String>,
        /// Why it does not verify, in one line.
        why: String,
    },
}

/// A form the browser posts to a gateway to open its hosted page (eSewa's signed
/// form): where, and the exact fields, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutForm {
    /// The gateway's URL the form is posted to.
    pub action: String,
    /// Name and value of each field, exactly as signed.
    pub fields: Vec<(String, String)>,
}

/// A gateway's verdict on a payment, normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatewayStatus {
    /// Money received. The only status that is ever fulfilled.
    Paid,
    /// Created but not paid yet (Khalti's Initiated).
    Unpaid,
    /// The gateway is still deciding (Khalti's Pending): hold and look again later.
    Pending,
    /// The checkout was canceled, by the customer or the gateway. Money that arrives
    /// afterwards still counts.
    Canceled,
    /// The checkout expired unpaid (also what the reconciler records for one past its
    /// `link_end`). Money that arrives afterwards still counts.
    Expired,
    /// The attempt failed. At Chapa the customer may try again on the same checkout,
    /// so a later Paid still completes it.
    Failed,
    /// Refunded in full: what the payment bought is taken back.
    Refunded,
    /// Part of it was refunded: its share of what it bought is taken back (an order
    /// only goes back in full).
    PartiallyRefunded,
    /// A status the gateway's contract does not list. Never fulfilled; held for a
    /// later look, like Pending.
    Unrecognised(String),
}

/// A gateway's answer about a payment, normalised: what `payment::decide` settles it
/// on. tijori builds one itself for what it learns otherwise (a refund it made, a
/// checkout the reconciler closed).
#[derive(Clone, Debug)]
pub struct GatewayAnswer {
    /// Its verdict; only `Paid` for the exact amount (and currency) fulfils.
    pub status: GatewayStatus,
    /// The amount the gateway says it took, in minor units.
    pub amount_minor: i64,
    /// The currency it says it took the amount in, where its answer names one (a
    /// gateway with a single currency, like Khalti, does not).
    pub currency: Option<Currency>,
    /// The gateway's transaction id (needed for refunds), once there is one.
    pub transaction_id: Option<String>,
    /// The answer as received, kept on the payment for audit.
    pub raw: RawAnswer,
}

/// Why a call to a gateway did not produce an answer we can act on. Each variant is
/// something the caller can act on differently (DESIGN.md §4).
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// The gateway refused the request and said why (its validation errors).
    #[error("{gateway} rejected the request: {reason}")]
    Rejected {
        /// Which gateway refused.
        gateway: GatewayKind,
        /// One line fit to show the merchant: the gateway's own messages, or why the
        /// request was refused before it was sent.
        reason: String,
        /// Its answer, kept for audit; `None` when the request was refused before it
        /// was sent.
        raw: Option<RawAnswer>,
    },
    /// Our credentials were refused: the merchant's configuration is wrong.
    #[error("{gateway} refused our credentials: {reason}")]
    Unauthorized {
        /// Which gateway refused our key.
        gateway: GatewayKind,
        /// One line fit to show the merchant, with the gateway's own detail.
        reason: String,
        /// Its answer, kept for audit.
        raw: Option<RawAnswer>,
    },
    /// The gateway does not know this payment reference.
    #[error("{gateway} does not know this payment: {reason}")]
    NotFound {
        /// Which gateway does not know it.
        gateway: GatewayKind,
        /// One line fit to show the merchant, with the gateway's own detail.
        reason: String,
        /// Its answer, kept for audit.
        raw: Option<RawAnswer>,
    },
    /// No answer in time: the request may still have been processed, so a refund's
    /// outcome becomes unknown; a lookup is tried again only by background work.
    #[error("{gateway} did not answer in time")]
    Timeout {
        /// Which gateway did not answer.
        gateway: GatewayKind,
    },
    /// No connection, or it dropped before an answer came: a lookup is tried again; a
    /// refund's outcome becomes unknown.
    #[error("{gateway} could not be reached: {reason}")]
    Unreachable {
        /// Which gateway could not be reached.
        gateway: GatewayKind,
        /// The transport's error, in one line.
        reason: String,
    },
    /// It said it cannot serve now (eSewa's "Service is currently unavailable"): a
    /// lookup is tried again later; nothing about the payment is learned.
    #[error("{gateway} is unavailable: {reason}")]
    Unavailable {
        /// Which gateway is down.
        gateway: GatewayKind,
        /// Its own words, in one line.
        reason: String,
        /// Its answer, kept for audit.
        raw: Option<RawAnswer>,
    },
    /// It answered, but not in the shape its contract promises (garbage, a 5xx page).
    #[error("{gateway} gave an answer we cannot use: {reason}")]
    BadAnswer {
        /// Which gateway answered.
        gateway: GatewayKind,
        /// What is wrong with the answer, in one line.
        reason: String,
        /// The answer, kept for audit; a lookup is tried again when its status is 5xx.
        raw: Option<RawAnswer>,
    },
}

impl GatewayError {
    /// The gateway's answer behind the error, to keep for audit; `None` when there was
    /// none (a timeout, no connection, a request refused before it was sent).
    pub fn raw(&self) -> Option<&RawAnswer> {
        match self {
            GatewayError::Rejected { raw, .. }
            | GatewayError::Unauthorized { raw, .. }
            | GatewayError::NotFound { raw, .. }
            | GatewayError::Unavailable { raw, .. }
            | GatewayError::BadAnswer { raw, .. } => raw.as_ref(),
            _ => None,
        }
    }
}

/// A hosted-checkout gateway, as the use-cases call it. Implemented in `tijori-gateways`
/// over each gateway's client; `Gateways` holds the configured ones.
#[async_trait]
pub trait Gateway: Send + Sync {
    /// Which gateway this is: the key it is registered under in `Gateways`.
    fn kind(&self) -> GatewayKind;

    /// Whether it takes payments in `currency`; checked before a checkout is opened or
    /// a refund asked for.
    fn supports(&self, currency: Currency) -> bool;

    /// Opens a hosted checkout. Never retried blindly: a second call could open a
    /// second charge.
    async fn initiate(&self, request: &CheckoutRequest) -> Result<Checkout, GatewayError>;

    /// Asks the gateway what became of a payment, by its reference and the amount it
    /// was opened for (eSewa's status check names both; the others need only the
    /// reference). Safe to repeat.
    async fn lookup(
        &self,
        provider_ref: &str,
        amount: Money,
    ) -> Result<GatewayAnswer, GatewayError>;

    /// Reads a signed return redirect (eSewa's `data`) in `query`, checking its
    /// signature by the gateway's own rules; `None` when `query` carries none. It
    /// only says which payment to look up, and is evidence to compare with the
    /// payment: the lookup decides, never the redirect.
    fn read_return(&self, query: &str) -> Option<SignedReturn> {
        let _ = query;
        None
    }

    /// The form to post to the gateway to open a payment's checkout again (eSewa's
    /// signed form, rebuilt for tijori's page that posts it); `None` for a gateway
    /// whose checkout is a page of its own.
    fn checkout_form(&self, request: &CheckoutRequest) -> Option<CheckoutForm> {
        let _ = request;
        None
    }

    /// Refunds a paid payment, in full or `amount` of it, by the gateway's
    /// transaction reference. Never retried blindly: a second call could refund twice.
    async fn refund(&self, request: &RefundRequest) -> Result<RawAnswer, GatewayError> {
        let _ = request;
        Err(GatewayError::Rejected {
            gateway: self.kind(),
            reason: format!("{} refunds are not supported", self.kind()),
            raw: None,
        })
    }

    /// Whether tijori can ask this gateway for a refund. eSewa has no refund API: its
    /// refunds are made in its merchant portal and recorded here with their reference.
    fn has_refund_api(&self) -> bool {
        true
    }

    /// Whether a refund the gateway accepted shows in its look-up at once (Khalti's
    /// lookup reads `Refunded`/`Partially Refunded` straight away). Where it does
    /// not, a look-up that still reads "paid" proves nothing about a refund whose
    /// answer was lost, so such a refund is not called failed on it.
    fn refunds_show_at_once(&self) -> bool {
        true
    }

    /// Captures a payment the customer made in a client-side widget (Khalti's
    /// legacy KPG-1), given the widget's token and the amount it should be for.
    async fn capture_token(
        &self,
        token: &str,
        amount: Money,
    ) -> Result<GatewayAnswer, GatewayError> {
        let _ = (token, amount);
        Err(GatewayError::Rejected {
            gateway: self.kind(),
            reason: format!("{} has no payment widget", self.kind()),
            raw: None,
        })
    }

    /// Authenticates a webhook (before anything in it is believed) and reads what it
    /// is about. `headers` are the request's, name and value, in order.
    fn read_webhook(
        &self,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<WebhookNotice, WebhookError> {
        let _ = (headers, body);
        Err(WebhookError::Unsupported(self.kind()))
    }
}

/// What an authenticated webhook says. Still only a signal: the payment is settled on
/// what the gateway's own verify answers, never on this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookNotice {
    /// The event as the gateway names it (Chapa's `charge.success`); kept on the
    /// delivery and named in operator events.
    pub event: String,
    /// Our reference for the payment (Chapa's tx_ref), if the notice names one.
    pub reference: Option<String>,
    /// The payment status the notice states, in the gateway's words, if any; only
    /// kept on the delivery.
    pub status: Option<String>,
    /// The notice claims the payment succeeded.
    pub claims_paid: bool,
    /// About something other than a customer's payment (a payout): nothing to settle.
    pub unrelated: bool,
}

/// Why a webhook was not taken in; each is a different answer to the gateway.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The signature is missing or wrong: the body proves nothing and is not kept.
    #[error("webhook refused: {0}")]
    Unauthenticated(String),
    /// Signed, but not a notice we can read.
    #[error("webhook unreadable: {0}")]
    Malformed(String),
    /// The gateway is not configured here, or its adapter reads no webhooks. Refused
    /// before anything is recorded.
    #[error("{0} does not send webhooks here")]
    Unsupported(GatewayKind),
    /// Authentic, but we could not take it in now: the gateway should deliver it again.
    #[error("webhook not taken in: {0}")]
    Unavailable(String),
}

/// The gateways this tijori is configured with.
#[derive(Clone, Default)]
pub struct Gateways {
    by_kind: HashMap<GatewayKind, Arc<dyn Gateway>>,
    /// Each gateway's last call, noted by the measured wrappers (`/readyz` shows it).
    health: crate::telemetry::GatewayHealth,
}

impl Gateways {
    /// None yet: add each configured gateway with `with`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `gateway` under its `kind`, replacing one added before for that kind.
    /// Its API calls are counted and timed from here on (`telemetry::Measured`).
    pub fn with(mut self, gateway: Arc<dyn Gateway>) -> Self {
        let measured = crate::telemetry::Measured::new(gateway, self.health.clone());
        self.by_kind.insert(measured.kind(), Arc::new(measured));
        self
    }

    /// How each gateway's last call went, for the operator.
    pub fn health(&self) -> &crate::telemetry::GatewayHealth {
        &self.health
    }

    /// The gateway of `kind`, or `None` when this tijori is not configured with it.
    pub fn get(&self, kind: GatewayKind) -> Option<&Arc<dyn Gateway>> {
        self.by_kind.get(&kind)
    }

    /// Every configured gateway.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Gateway>> {
        self.by_kind.values()
    }

    /// The configured gateways that can take `currency`, Khalti first.
    pub fn for_currency(&self, currency: Currency) -> Vec<GatewayKind> {
        [GatewayKind::Khalti, GatewayKind::Esewa, GatewayKind::Chapa]
            .into_iter()
            .filter(|k| self.get(*k).is_some_and(|g| g.supports(currency)))
            .collect()
    }
}

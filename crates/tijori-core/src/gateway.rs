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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayKind {
    Khalti,
    Chapa,
}

impl GatewayKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayKind::Khalti => "khalti",
            GatewayKind::Chapa => "chapa",
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
            other => Err(format!(
                "unknown gateway {other:?}: expected \"khalti\" or \"chapa\""
            )),
        }
    }
}

/// The exact answer a gateway gave, kept on the payment for audit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawAnswer {
    pub http_status: u16,
    pub body: String,
}

/// What tijori asks a gateway to open a hosted checkout for.
#[derive(Clone, Debug)]
pub struct CheckoutRequest {
    pub payment_id: PaymentId,
    pub amount: Money,
    pub description: String,
    /// Where the gateway sends the browser back to.
    pub return_url: String,
    pub website_url: String,
    pub customer_name: String,
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
    pub full: bool,
    pub reason: Option<String>,
    /// Our id for the refund, where the gateway keeps one (Chapa).
    pub refund_id: String,
}

/// An opened checkout: the gateway's reference (Khalti's pidx, Chapa's tx_ref) and
/// the page to send the customer to.
#[derive(Clone, Debug)]
pub struct Checkout {
    pub provider_ref: String,
    pub payment_url: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub raw: RawAnswer,
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
    Canceled,
    Expired,
    Failed,
    Refunded,
    PartiallyRefunded,
    /// A status the gateway's contract does not list. Never fulfilled; held for a
    /// later look, like Pending.
    Unrecognised(String),
}

#[derive(Clone, Debug)]
pub struct GatewayAnswer {
    pub status: GatewayStatus,
    /// The amount the gateway says it took, in minor units.
    pub amount_minor: i64,
    /// The currency it says it took the amount in, where its answer names one (a
    /// gateway with a single currency, like Khalti, does not).
    pub currency: Option<Currency>,
    /// The gateway's transaction id (needed for refunds), once there is one.
    pub transaction_id: Option<String>,
    pub raw: RawAnswer,
}

/// Why a call to a gateway did not produce an answer we can act on. Each variant is
/// something the caller can act on differently (DESIGN.md §4).
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// The gateway refused the request and said why (its validation errors).
    #[error("{gateway} rejected the request: {reason}")]
    Rejected {
        gateway: GatewayKind,
        reason: String,
        raw: Option<RawAnswer>,
    },
    /// Our credentials were refused: the merchant's configuration is wrong.
    #[error("{gateway} refused our credentials: {reason}")]
    Unauthorized {
        gateway: GatewayKind,
        reason: String,
        raw: Option<RawAnswer>,
    },
    /// The gateway does not know this payment reference.
    #[error("{gateway} does not know this payment: {reason}")]
    NotFound {
        gateway: GatewayKind,
        reason: String,
        raw: Option<RawAnswer>,
    },
    #[error("{gateway} did not answer in time")]
    Timeout { gateway: GatewayKind },
    #[error("{gateway} could not be reached: {reason}")]
    Unreachable {
        gateway: GatewayKind,
        reason: String,
    },
    /// It answered, but not in the shape its contract promises (garbage, a 5xx page).
    #[error("{gateway} gave an answer we cannot use: {reason}")]
    BadAnswer {
        gateway: GatewayKind,
        reason: String,
        raw: Option<RawAnswer>,
    },
}

impl GatewayError {
    pub fn raw(&self) -> Option<&RawAnswer> {
        match self {
            GatewayError::Rejected { raw, .. }
            | GatewayError::Unauthorized { raw, .. }
            | GatewayError::NotFound { raw, .. }
            | GatewayError::BadAnswer { raw, .. } => raw.as_ref(),
            _ => None,
        }
    }
}

#[async_trait]
pub trait Gateway: Send + Sync {
    fn kind(&self) -> GatewayKind;

    fn supports(&self, currency: Currency) -> bool;

    /// Opens a hosted checkout. Never retried blindly: a second call could open a
    /// second charge.
    async fn initiate(&self, request: &CheckoutRequest) -> Result<Checkout, GatewayError>;

    /// Asks the gateway what became of a payment. Safe to repeat.
    async fn lookup(&self, provider_ref: &str) -> Result<GatewayAnswer, GatewayError>;

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
    pub event: String,
    /// Our reference for the payment (Chapa's tx_ref), if the notice names one.
    pub reference: Option<String>,
    pub status: Option<String>,
    /// The notice claims the payment succeeded.
    pub claims_paid: bool,
    /// About something other than a customer's payment (a payout): nothing to settle.
    pub unrelated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The signature is missing or wrong: the body proves nothing and is not kept.
    #[error("webhook refused: {0}")]
    Unauthenticated(String),
    /// Signed, but not a notice we can read.
    #[error("webhook unreadable: {0}")]
    Malformed(String),
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
}

impl Gateways {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, gateway: Arc<dyn Gateway>) -> Self {
        self.by_kind.insert(gateway.kind(), gateway);
        self
    }

    pub fn get(&self, kind: GatewayKind) -> Option<&Arc<dyn Gateway>> {
        self.by_kind.get(&kind)
    }

    /// The configured gateways that can take `currency`, Khalti first.
    pub fn for_currency(&self, currency: Currency) -> Vec<GatewayKind> {
        [GatewayKind::Khalti, GatewayKind::Chapa]
            .into_iter()
            .filter(|k| self.get(*k).is_some_and(|g| g.supports(currency)))
            .collect()
    }
}

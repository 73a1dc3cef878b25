//! Payments and their state machine, and the pure half of `settle`: deciding what a
//! gateway's answer means for a payment. The store applies the decision atomically.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::gateway::{GatewayAnswer, GatewayKind, GatewayStatus};
use crate::id::{OrderId, PaymentId, PlanId, UserId};
use crate::money::Money;
use crate::subscription::PlanChange;

/// Where a payment stands; [`decide`] says which gateway answer moves it where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Row created; the gateway has been (or is being) asked to open a checkout.
    Initiated,
    /// The gateway is still deciding; looked at again later.
    Pending,
    /// Paid the exact amount charged, and what it bought was granted.
    Completed,
    /// The gateway says paid, but not the amount we charged: never fulfilled
    /// automatically; an operator decides.
    NeedsReview,
    /// The customer canceled at the gateway. Not final: a later paid answer still
    /// completes it.
    Canceled,
    /// The checkout ran out unpaid (as the gateway said, or the reconciler after
    /// [`Payment::link_end`]). Not final: a later paid answer still completes it.
    Expired,
    /// The checkout could not be opened, or the gateway reports the payment failed.
    Failed,
    /// Refunded in full, through tijori or at the gateway; what it bought is taken
    /// back.
    Refunded,
    /// Refunded in part, and may be refunded further: a subscription loses the
    /// refunded share of its days, an order is not taken back.
    PartiallyRefunded,
}

impl PaymentStatus {
    /// Every status; parsing the stored text back (`FromStr`) searches it.
    pub const ALL: [PaymentStatus; 9] = [
        PaymentStatus::Initiated,
        PaymentStatus::Pending,
        PaymentStatus::Completed,
        PaymentStatus::NeedsReview,
        PaymentStatus::Canceled,
        PaymentStatus::Expired,
        PaymentStatus::Failed,
        PaymentStatus::Refunded,
        PaymentStatus::PartiallyRefunded,
    ];

    /// The status as the database stores it and the API shows it (snake_case, as
    /// serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Initiated => "initiated",
            PaymentStatus::Pending => "pending",
            PaymentStatus::Completed => "completed",
            PaymentStatus::NeedsReview => "needs_review",
            PaymentStatus::Canceled => "canceled",
            PaymentStatus::Expired => "expired",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::PartiallyRefunded => "partially_refunded",
        }
    }

    /// Still waiting for an outcome: worth asking the gateway about.
    pub fn is_open(self) -> bool {
        matches!(self, PaymentStatus::Initiated | PaymentStatus::Pending)
    }
}

/// How long a checkout without an expiry of its own (Chapa's: their links carry
/// none) is taken to stay payable.
pub const CHECKOUT_LIFETIME_HOURS: i64 = 24;

/// Gateways whose checkout takes another attempt after one failed, so a `failed`
/// answer is not their last word while the checkout lives. Chapa lets the customer
/// retry a failed payment on the same checkout (chapa.md §3.3); Khalti ends the pidx
/// (its `User canceled` and `Expired` are final), so a closed Khalti payment is not
/// looked up again.
pub const RETRY_AFTER_FAILURE: &[GatewayKind] = &[GatewayKind::Chapa];

/// The statuses in which a payment on some gateway is still worth looking up (while
/// its checkout lives, for the closed ones): the open ones, and `Failed` on a
/// gateway in [`RETRY_AFTER_FAILURE`]. The store selects stale payments by exactly
/// this rule; [`Payment::worth_looking_up`] is the same rule for one payment.
pub fn recheckable_statuses(gateway: GatewayKind) -> &'static [PaymentStatus] {
    if RETRY_AFTER_FAILURE.contains(&gateway) {
        &[S::Initiated, S::Pending, S::Failed]
    } else {
        OPEN
    }
}

/// Where a payment stands as its customer should hear it. The status alone is the
/// operator's view: "needs review" covers money that arrived after its order
/// expired (it will be refunded), money for an order another payment had paid (it
/// will be refunded) and an amount that differs (an operator decides); and a
/// refunded payment may have been refunded because it was not needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustomerOutcome {
    /// The checkout is open; no money has been seen.
    Waiting,
    /// The gateway is still deciding.
    Confirming,
    /// Paid, and what it bought was granted.
    Paid,
    /// The customer canceled at the gateway.
    Canceled,
    /// The checkout ran out unpaid.
    NotPaidInTime,
    /// The gateway refused it, or it could not be opened.
    Failed,
    /// Money arrived after its order expired or was canceled; it will be refunded.
    LateWillBeRefunded,
    /// Money arrived for an order another payment had already paid; it will be refunded.
    PaidTwiceWillBeRefunded,
    /// Money arrived that an operator must look at (an amount that differs).
    UnderReview,
    /// Refunded because the order did not need it (it arrived late, or twice).
    RefundedAsNotNeeded,
    /// Refunded in full.
    Refunded,
    /// Refunded in part.
    PartlyRefunded,
}

impl Payment {
    /// This payment's [`CustomerOutcome`]; `order` is the status of the order it
    /// paid for, when it was for one and the order is at hand.
    pub fn customer_outcome(&self, order: Option<crate::shop::OrderStatus>) -> CustomerOutcome {
        use crate::shop::{held_because, Held, OrderStatus};
        use CustomerOutcome as O;
        match self.status {
            S::Initiated => O::Waiting,
            S::Pending => O::Confirming,
            S::Completed => O::Paid,
            S::Canceled => O::Canceled,
            S::Expired => O::NotPaidInTime,
            S::Failed => O::Failed,
            S::NeedsReview => match (&self.purpose, held_because(self.status_reason.as_deref())) {
                (Purpose::Order { .. }, Held::Late) => O::LateWillBeRefunded,
                (Purpose::Order { .. }, Held::PaidTwice) => O::PaidTwiceWillBeRefunded,
                _ => O::UnderReview,
            },
            // The order's own refund marks the order refunded too; a payment refunded
            // while its order was not was money the order did not take.
            S::Refunded => match (&self.purpose, order) {
                (Purpose::Order { .. }, Some(o)) if o != OrderStatus::Refunded => {
                    O::RefundedAsNotNeeded
                }
                _ => O::Refunded,
            },
            S::PartiallyRefunded => O::PartlyRefunded,
        }
    }
}

impl Payment {
    /// What a settlement that left this payment where it is puts on the operator's
    /// list: money held for review is an operator's job, so it is listed in the
    /// settlement's transaction and cannot be settled and forgotten. `None` for any
    /// other status.
    pub fn operator_notice(&self) -> Option<String> {
        (self.status == PaymentStatus::NeedsReview).then(|| {
            self.status_reason
                .clone()
                .unwrap_or_else(|| "held for review".into())
        })
    }

    /// Whether money arriving for it would still count: it is open, or was seen
    /// canceled, expired or failed (the gateway may yet report it paid).
    pub fn may_still_be_paid(&self) -> bool {
        UNFULFILLED.contains(&self.status)
    }

    /// When its checkout stops taking money: the gateway's own expiry, or
    /// [`CHECKOUT_LIFETIME_HOURS`] after it was opened for a gateway that gives none.
    pub fn link_end(&self) -> DateTime<Utc> {
        self.expires_at
            .unwrap_or(self.created_at + chrono::Duration::hours(CHECKOUT_LIFETIME_HOURS))
    }

    /// Whether asking the gateway about it may still change anything: it is open,
    /// or it is a failed attempt on a gateway that takes another on the same
    /// checkout ([`RETRY_AFTER_FAILURE`]) and that checkout still lives. A payment
    /// whose checkout never opened has nothing to look up.
    pub fn worth_looking_up(&self, now: DateTime<Utc>) -> bool {
        if self.provider_ref.is_none() || !recheckable_statuses(self.gateway).contains(&self.status)
        {
            return false;
        }
        self.status.is_open() || now < self.link_end()
    }

    /// The checkout a customer whose attempt failed can try again on (the same
    /// one: "Try again"), while the gateway still takes attempts there.
    pub fn retry_url(&self, now: DateTime<Utc>) -> Option<&str> {
        (self.status == S::Failed && self.worth_looking_up(now))
            .then_some(self.payment_url.as_deref())
            .flatten()
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PaymentStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PaymentStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown payment status {s:?}"))
    }
}

/// What a payment buys. Gateway and purpose are independent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Purpose {
    /// A plan's days, laid out with what the customer holds when it is fulfilled.
    Subscription {
        /// The plan whose days fulfilment grants.
        plan_id: PlanId,
        /// What the customer chose should happen if they hold another plan (stored
        /// with the payment, so the settle does what they were told before paying).
        change: PlanChange,
    },
    /// A shop order's total; fulfilling it marks the order paid.
    Order {
        /// The order paid for; the database allows one open payment per order and
        /// gateway.
        order_id: OrderId,
    },
}

impl Purpose {
    /// The stored `purpose` column: `subscription` or `order`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Purpose::Subscription { .. } => "subscription",
            Purpose::Order { .. } => "order",
        }
    }
}

/// One attempt to take money through a gateway (a hosted checkout, or Khalti's
/// widget), and where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    /// Ours, made before the gateway is asked: sent as Khalti's purchase_order_id, and
    /// used as Chapa's tx_ref.
    pub id: PaymentId,
    /// The customer paying; to any other signed-in user but an admin the payment
    /// does not exist.
    pub user_id: UserId,
    /// The gateway holding the checkout; every lookup of the payment goes there.
    pub gateway: GatewayKind,
    /// What fulfilling it grants.
    pub purpose: Purpose,
    /// What the customer is charged; a paid answer for another amount or currency is
    /// held for review.
    pub amount: Money,
    /// Where it stands; a gateway's answer moves it only through [`decide`] and the
    /// store's compare-and-set.
    pub status: PaymentStatus,
    /// How the customer pays: at the gateway's hosted checkout, or in Khalti's
    /// legacy widget on our page.
    pub checkout: CheckoutKind,
    /// Khalti's pidx or Chapa's tx_ref, once the checkout is open; for a widget
    /// payment, the widget's token (a token pays for one payment only).
    pub provider_ref: Option<String>,
    /// The gateway's transaction id, once it has one.
    pub provider_txn_id: Option<String>,
    /// The hosted checkout to send the customer to; `None` until the checkout opens,
    /// and for a widget payment.
    pub payment_url: Option<String>,
    /// When the gateway says the checkout stops taking money; `None` when it gives no
    /// expiry (see [`Payment::link_end`]).
    pub expires_at: Option<DateTime<Utc>>,
    /// Why the payment is in its status, in words for the customer or operator.
    pub status_reason: Option<String>,
    /// When the row was written, before the gateway was asked; a checkout without an
    /// expiry is taken to live [`CHECKOUT_LIFETIME_HOURS`] from then.
    pub created_at: DateTime<Utc>,
    /// When its status or checkout last changed; a lookup that changed nothing
    /// leaves it.
    pub updated_at: DateTime<Utc>,
}

/// How a payment is paid, as the `checkout` column stores it. It decides how the
/// payment is asked about: a hosted checkout is looked up by its reference, a widget
/// payment by capturing its token again (which the gateway answers with the same
/// transaction).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CheckoutKind {
    /// The gateway's hosted page (Khalti's KPG-2 ePayment, Chapa's checkout).
    #[default]
    Hosted,
    /// Khalti's legacy KPG-1 widget: the customer pays in a popup on our page and the
    /// browser hands us a token to capture.
    Widget,
}

impl CheckoutKind {
    /// The name in the `checkout` column.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckoutKind::Hosted => "hosted",
            CheckoutKind::Widget => "widget",
        }
    }

    /// Reads a stored name back; `None` for anything else.
    pub fn parse(s: &str) -> Option<CheckoutKind> {
        [CheckoutKind::Hosted, CheckoutKind::Widget]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// A status change `settle` wants, valid only from the listed statuses. The store
/// applies it as a compare-and-set, so of several concurrent settles of one payment
/// exactly one changes it (and fulfils it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The status the payment moves to, if it is still in one of `from`.
    pub to: PaymentStatus,
    /// The statuses the move applies from; a payment in any other stays as it is (the
    /// answer is still recorded).
    pub from: &'static [PaymentStatus],
    /// What the move does besides the status, in the same transaction.
    pub effect: Effect,
    /// Becomes the payment's `status_reason` (`None` clears it).
    pub reason: Option<String>,
}

/// What a [`Transition`] does besides moving the status, applied by the store in
/// the same transaction as the move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Only the status and its reason change.
    None,
    /// Grant what was bought (exactly once per payment).
    Fulfil,
    /// Take back what the refunds of this payment paid for, if it granted anything:
    /// all its unused days when refunded in full, their share of its days when in
    /// part (`subscription::take_back`). An order is only taken back in full.
    Revoke,
}

use PaymentStatus as S;

/// Statuses from which money arriving still counts. A payment we saw canceled or
/// expired may yet turn out paid (the gateway is the authority); the customer's money
/// must not be lost for that.
const UNFULFILLED: &[PaymentStatus] =
    &[S::Initiated, S::Pending, S::Canceled, S::Expired, S::Failed];
const OPEN: &[PaymentStatus] = &[S::Initiated, S::Pending];
const OPEN_OR_PAID: &[PaymentStatus] = &[
    S::Initiated,
    S::Pending,
    S::Completed,
    S::NeedsReview,
    S::PartiallyRefunded,
];

/// The status table of DESIGN.md §1. `None` means the answer changes nothing (it is
/// still recorded for audit).
pub fn decide(payment: &Payment, answer: &GatewayAnswer) -> Option<Transition> {
    let t = |to, from, effect, reason: Option<String>| {
        Some(Transition {
            to,
            from,
            effect,
            reason,
        })
    };
    // 500.00 ETB is not 500.00 USD: the currency must match as well as the number.
    let exact = answer.amount_minor == payment.amount.minor()
        && answer
            .currency
            .is_none_or(|c| c == payment.amount.currency());
    match &answer.status {
        GatewayStatus::Paid if exact => t(S::Completed, UNFULFILLED, Effect::Fulfil, None),
        GatewayStatus::Paid => t(
            S::NeedsReview,
            UNFULFILLED,
            Effect::None,
            Some(format!(
                "{} reports {} minor units{} paid, but {} was charged",
                payment.gateway,
                answer.amount_minor,
                answer
                    .currency
                    .map(|c| format!(" of {c}"))
                    .unwrap_or_default(),
                payment.amount
            )),
        ),
        GatewayStatus::Unpaid => None,
        GatewayStatus::Pending => t(S::Pending, &[S::Initiated], Effect::None, None),
        GatewayStatus::Unrecognised(s) => t(
            S::Pending,
            &[S::Initiated],
            Effect::None,
            Some(format!(
                "{} reported an unrecognised status {s:?}",
                payment.gateway
            )),
        ),
        GatewayStatus::Canceled => t(
            S::Canceled,
            OPEN,
            Effect::None,
            Some("Canceled by the customer".into()),
        ),
        GatewayStatus::Expired => t(
            S::Expired,
            OPEN,
            Effect::None,
            Some("The payment link expired before it was paid".into()),
        ),
        GatewayStatus::Failed => t(
            S::Failed,
            OPEN,
            Effect::None,
            Some(format!("{} reports the payment failed", payment.gateway)),
        ),
        GatewayStatus::Refunded => t(
            S::Refunded,
            OPEN_OR_PAID,
            Effect::Revoke,
            Some("Refunded".into()),
        ),
        GatewayStatus::PartiallyRefunded => t(
            S::PartiallyRefunded,
            &[S::Initiated, S::Pending, S::Completed, S::NeedsReview],
            Effect::Revoke,
            Some("Partially refunded".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::RawAnswer;
    use crate::money::Currency;

    fn payment(status: PaymentStatus) -> Payment {
        let now = Utc::now();
        Payment {
            id: PaymentId::generate(),
            user_id: UserId::generate(),
            gateway: GatewayKind::Khalti,
            purpose: Purpose::Subscription {
                plan_id: PlanId::generate(),
                change: PlanChange::Queue,
            },
            amount: Money::from_minor(50_000, Currency::Npr).unwrap(),
            status,
            checkout: CheckoutKind::Hosted,
            provider_ref: Some("pidx".into()),
            provider_txn_id: None,
            payment_url: None,
            expires_at: None,
            status_reason: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn answer(status: GatewayStatus, amount_minor: i64) -> GatewayAnswer {
        GatewayAnswer {
            status,
            amount_minor,
            currency: None,
            transaction_id: None,
            raw: RawAnswer {
                http_status: 200,
                body: "{}".into(),
            },
        }
    }

    #[test]
    fn the_right_number_in_the_wrong_currency_is_held_for_review() {
        let p = payment(S::Initiated); // NPR 500.00
        let mut usd = answer(GatewayStatus::Paid, 50_000);
        usd.currency = Some(Currency::Usd);
        let t = decide(&p, &usd).unwrap();
        assert_eq!((t.to, t.effect), (S::NeedsReview, Effect::None));
        assert!(t.reason.unwrap().contains("of USD"));
        let mut npr = answer(GatewayStatus::Paid, 50_000);
        npr.currency = Some(Currency::Npr);
        assert_eq!(decide(&p, &npr).unwrap().effect, Effect::Fulfil);
    }

    #[test]
    fn only_the_exact_amount_paid_is_fulfilled() {
        let p = payment(S::Initiated);
        let paid = decide(&p, &answer(GatewayStatus::Paid, 50_000)).unwrap();
        assert_eq!((paid.to, paid.effect), (S::Completed, Effect::Fulfil));
        for wrong in [49_999, 50_001, 0, 500] {
            let t = decide(&p, &answer(GatewayStatus::Paid, wrong)).unwrap();
            assert_eq!(
                (t.to, t.effect),
                (S::NeedsReview, Effect::None),
                "amount {wrong}"
            );
        }
    }

    #[test]
    fn completion_never_applies_to_a_completed_or_refunded_payment() {
        let t = decide(&payment(S::Initiated), &answer(GatewayStatus::Paid, 50_000)).unwrap();
        for st in [
            S::Completed,
            S::NeedsReview,
            S::Refunded,
            S::PartiallyRefunded,
        ] {
            assert!(!t.from.contains(&st), "{st} must not be completable again");
        }
    }

    #[test]
    fn the_status_table() {
        let p = payment(S::Initiated);
        let to = |s| decide(&p, &answer(s, 50_000)).map(|t| (t.to, t.effect));
        assert_eq!(to(GatewayStatus::Unpaid), None);
        assert_eq!(to(GatewayStatus::Pending), Some((S::Pending, Effect::None)));
        assert_eq!(
            to(GatewayStatus::Canceled),
            Some((S::Canceled, Effect::None))
        );
        assert_eq!(to(GatewayStatus::Expired), Some((S::Expired, Effect::None)));
        assert_eq!(
            to(GatewayStatus::Refunded),
            Some((S::Refunded, Effect::Revoke))
        );
        assert_eq!(
            to(GatewayStatus::PartiallyRefunded),
            Some((S::PartiallyRefunded, Effect::Revoke))
        );
        assert_eq!(
            to(GatewayStatus::Unrecognised("Weird".into())),
            Some((S::Pending, Effect::None))
        );
    }

    #[test]
    fn only_a_failed_chapa_attempt_stays_worth_looking_up_and_only_while_its_checkout_lives() {
        let mut p = payment(S::Failed);
        let opened = p.created_at;
        let alive = opened + chrono::Duration::hours(CHECKOUT_LIFETIME_HOURS)
            - chrono::Duration::seconds(1);
        let dead = opened + chrono::Duration::hours(CHECKOUT_LIFETIME_HOURS);
        // Khalti ends the pidx: closed is closed.
        for st in [S::Failed, S::Canceled, S::Expired, S::Completed] {
            p.status = st;
            assert!(!p.worth_looking_up(opened), "khalti {st}");
        }
        p.gateway = GatewayKind::Chapa;
        p.payment_url = Some("https://checkout.chapa.co/checkout/payment/x".into());
        p.status = S::Failed;
        assert!(p.worth_looking_up(alive));
        assert_eq!(p.retry_url(alive), p.payment_url.as_deref());
        assert!(!p.worth_looking_up(dead));
        assert_eq!(p.retry_url(dead), None);
        for st in [S::Canceled, S::Expired, S::Completed, S::Refunded] {
            p.status = st;
            assert!(!p.worth_looking_up(alive), "chapa {st}");
        }
        // Open ones always are; one whose checkout never opened never is.
        p.status = S::Initiated;
        assert!(p.worth_looking_up(dead));
        assert_eq!(p.retry_url(alive), None);
        p.provider_ref = None;
        p.status = S::Failed;
        assert!(!p.worth_looking_up(alive));
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for s in PaymentStatus::ALL {
            assert_eq!(s.as_str().parse::<PaymentStatus>(), Ok(s));
        }
    }

    #[test]
    fn only_money_held_for_review_goes_on_the_operators_list() {
        for status in PaymentStatus::ALL {
            let mut p = payment(status);
            assert_eq!(
                p.operator_notice().is_some(),
                status == PaymentStatus::NeedsReview,
                "{status}"
            );
            p.status_reason = Some("paid NPR 1 for NPR 500".into());
            if status == PaymentStatus::NeedsReview {
                assert_eq!(
                    p.operator_notice().as_deref(),
                    Some("paid NPR 1 for NPR 500")
                );
            }
        }
    }
}

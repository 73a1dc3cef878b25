//! Outgoing events: what tijori tells the merchant's own systems (their app, mailer,
//! warehouse) when something happened to a payment, a subscription, an order or a
//! refund. An event is written in the same database transaction as the change that
//! causes it (an outbox), so a change is never made without its event nor an event
//! sent for a change that rolled back; it is then delivered to every enabled webhook
//! endpoint that wants its type, signed as the Standard Webhooks specification says,
//! and retried with backoff for about three days.
//!
//! The rules here are pure: which events a settled payment raises, when a failed
//! delivery is tried again, when an endpoint that keeps failing is switched off.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;

use crate::id::{EventId, OrderId, PaymentId, RefundId, UserId, WebhookEndpointId};
use crate::payment::{Payment, PaymentStatus, Purpose};

/// What happened, as the `type` of an event's body names it (DESIGN.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A payment was paid in full and what it bought was granted.
    PaymentCompleted,
    /// A payment ended without money: failed, canceled by the customer, or its
    /// checkout expired (the payment's `status` says which). Not always final: money
    /// that still arrives completes it, and `payment.completed` follows.
    PaymentFailed,
    /// A payment became refunded or partly refunded. Every refund also has its own
    /// `refund.succeeded`.
    PaymentRefunded,
    /// A customer with no paid time ahead paid for a plan: their subscription starts.
    SubscriptionActivated,
    /// A customer who still had paid time ahead paid for more (the same plan, a plan
    /// queued after it, or a switch now).
    SubscriptionRenewed,
    /// The renewal reminder went out: the subscription ends soon.
    SubscriptionExpiring,
    /// The subscription ended, nothing being queued after it (sent with the expiry
    /// notice).
    SubscriptionExpired,
    /// A refund took back paid days (all of them, or the refunded share).
    SubscriptionRevoked,
    /// An order was paid and is the customer's.
    OrderPaid,
    /// An unpaid order ran out of time and its stock went back on the shelf.
    OrderExpired,
    /// The customer canceled their unpaid order and its stock went back on the shelf.
    OrderCanceled,
    /// A refund went through (the gateway took it, a look-up found it, or an operator
    /// settled it so).
    RefundSucceeded,
    /// A refund did not happen: the gateway refused it or it was found not to have.
    RefundFailed,
}

impl EventType {
    /// Every type, for parsing and for the API's list of what an endpoint may want.
    pub const ALL: [EventType; 13] = [
        EventType::PaymentCompleted,
        EventType::PaymentFailed,
        EventType::PaymentRefunded,
        EventType::SubscriptionActivated,
        EventType::SubscriptionRenewed,
        EventType::SubscriptionExpiring,
        EventType::SubscriptionExpired,
        EventType::SubscriptionRevoked,
        EventType::OrderPaid,
        EventType::OrderExpired,
        EventType::OrderCanceled,
        EventType::RefundSucceeded,
        EventType::RefundFailed,
    ];

    /// The name on the wire and in the database (`payment.completed`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PaymentCompleted => "payment.completed",
            EventType::PaymentFailed => "payment.failed",
            EventType::PaymentRefunded => "payment.refunded",
            EventType::SubscriptionActivated => "subscription.activated",
            EventType::SubscriptionRenewed => "subscription.renewed",
            EventType::SubscriptionExpiring => "subscription.expiring",
            EventType::SubscriptionExpired => "subscription.expired",
            EventType::SubscriptionRevoked => "subscription.revoked",
            EventType::OrderPaid => "order.paid",
            EventType::OrderExpired => "order.expired",
            EventType::OrderCanceled => "order.canceled",
            EventType::RefundSucceeded => "refund.succeeded",
            EventType::RefundFailed => "refund.failed",
        }
    }

    /// Reads a name; `None` for anything else.
    pub fn parse(s: &str) -> Option<EventType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// What the event's `data` describes.
    pub fn subject(self) -> Subject {
        match self {
            EventType::PaymentCompleted | EventType::PaymentFailed | EventType::PaymentRefunded => {
                Subject::Payment
            }
            EventType::SubscriptionActivated
            | EventType::SubscriptionRenewed
            | EventType::SubscriptionExpiring
            | EventType::SubscriptionExpired
            | EventType::SubscriptionRevoked => Subject::Subscription,
            EventType::OrderPaid | EventType::OrderExpired | EventType::OrderCanceled => {
                Subject::Order
            }
            EventType::RefundSucceeded | EventType::RefundFailed => Subject::Refund,
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The resource an event's `data` is: the same shape the API answers for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// `data` is the payment (`GET /api/payments/{id}`'s shape).
    Payment,
    /// `data` is the customer's subscription (`GET /api/subscriptions/me/`'s shape),
    /// with the user and the payment that caused it.
    Subscription,
    /// `data` is the order.
    Order,
    /// `data` is the refund.
    Refund,
}

/// An event to write, with the change that causes it. It names what it is about;
/// its body is made from those when it is first delivered (and then kept, so every
/// endpoint and every retry sends the same body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Fresh; the `webhook-id` of its deliveries.
    pub id: EventId,
    /// What happened.
    pub kind: EventType,
    /// The customer it concerns (every event concerns one).
    pub user: Option<UserId>,
    /// The payment it concerns, if any.
    pub payment: Option<PaymentId>,
    /// The order it concerns, if any.
    pub order: Option<OrderId>,
    /// The refund it concerns, if any.
    pub refund: Option<RefundId>,
}

impl NewEvent {
    /// An event about a payment (and what it bought).
    pub fn about_payment(kind: EventType, payment: &Payment) -> NewEvent {
        NewEvent {
            id: EventId::generate(),
            kind,
            user: Some(payment.user_id.clone()),
            payment: Some(payment.id.clone()),
            order: match &payment.purpose {
                Purpose::Order { order_id } => Some(order_id.clone()),
                Purpose::Subscription { .. } => None,
            },
            refund: None,
        }
    }

    /// An event about a refund of a payment.
    pub fn about_refund(kind: EventType, refund: &RefundId, payment: &PaymentId) -> NewEvent {
        NewEvent {
            id: EventId::generate(),
            kind,
            user: None,
            payment: Some(payment.clone()),
            order: None,
            refund: Some(refund.clone()),
        }
    }

    /// An event about a user's subscription, with nothing else to name (a reminder,
    /// an expiry).
    pub fn about_subscription(kind: EventType, user: &UserId) -> NewEvent {
        NewEvent {
            id: EventId::generate(),
            kind,
            user: Some(user.clone()),
            payment: None,
            order: None,
            refund: None,
        }
    }

    /// An event about an order with no payment to name (one that expired unpaid).
    pub fn about_order(kind: EventType, order: &OrderId, user: &UserId) -> NewEvent {
        NewEvent {
            id: EventId::generate(),
            kind,
            user: Some(user.clone()),
            payment: None,
            order: Some(order.clone()),
            refund: None,
        }
    }
}

/// What a subscription payment's grant did to the customer's paid time, which says
/// whether it activates or renews.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granted {
    /// The payment is not for a subscription, or granted nothing.
    Nothing,
    /// Paid time starts now: there was none ahead.
    Activated,
    /// Paid time added to time still ahead.
    Renewed,
}

impl Granted {
    /// Whether a grant at `now` renews or activates: it renews when the customer's
    /// paid time (the last segment laid out before the grant) runs past `now`.
    pub fn at(paid_until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Granted {
        match paid_until {
            Some(end) if end > now => Granted::Renewed,
            _ => Granted::Activated,
        }
    }
}

/// The events a payment's settlement raises, in the order they happened: the
/// payment's own, then what it did to a subscription or an order. `payment` is the
/// payment after the move; `granted` what fulfilling it did to a subscription;
/// `revoked` whether a refund took paid days back.
pub fn settled(payment: &Payment, granted: Granted, revoked: bool) -> Vec<NewEvent> {
    let about = |kind| NewEvent::about_payment(kind, payment);
    let subscription = matches!(payment.purpose, Purpose::Subscription { .. });
    let mut events = Vec::new();
    match payment.status {
        PaymentStatus::Completed => {
            events.push(about(EventType::PaymentCompleted));
            match granted {
                Granted::Activated => events.push(about(EventType::SubscriptionActivated)),
                Granted::Renewed => events.push(about(EventType::SubscriptionRenewed)),
                Granted::Nothing => {}
            }
            if !subscription {
                events.push(about(EventType::OrderPaid));
            }
        }
        PaymentStatus::Failed | PaymentStatus::Canceled | PaymentStatus::Expired => {
            events.push(about(EventType::PaymentFailed));
        }
        PaymentStatus::Refunded | PaymentStatus::PartiallyRefunded => {
            events.push(about(EventType::PaymentRefunded));
            if revoked {
                events.push(about(EventType::SubscriptionRevoked));
            }
        }
        // Nothing the merchant's systems act on: money held for an operator raises
        // an operator event, and an open payment has not happened yet.
        PaymentStatus::NeedsReview | PaymentStatus::Initiated | PaymentStatus::Pending => {}
    }
    events
}

/// What an endpoint wants: every type, or those listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// Every type, including types added later.
    All,
    /// Only these (at least one; no repeats).
    Only(Vec<EventType>),
}

impl Wanted {
    /// Whether an event of `kind` goes to the endpoint.
    pub fn includes(&self, kind: EventType) -> bool {
        match self {
            Wanted::All => true,
            Wanted::Only(types) => types.contains(&kind),
        }
    }

    /// The names, as the API shows them (`["*"]` for all).
    pub fn names(&self) -> Vec<&'static str> {
        match self {
            Wanted::All => vec!["*"],
            Wanted::Only(types) => types.iter().map(|t| t.as_str()).collect(),
        }
    }

    /// Reads the API's list: absent, empty or `["*"]` is every type; an unknown name
    /// is an error naming it.
    pub fn parse<S: AsRef<str>>(names: Option<&[S]>) -> Result<Wanted, String> {
        let Some(names) = names else {
            return Ok(Wanted::All);
        };
        // Every name is checked, `*` or not: a typo beside `*` is still a typo the
        // merchant wants to hear about.
        let mut types = Vec::new();
        let mut all = names.is_empty();
        for name in names.iter().map(AsRef::as_ref) {
            if name == "*" {
                all = true;
                continue;
            }
            let t =
                EventType::parse(name).ok_or_else(|| format!("{name:?} is not an event type"))?;
            if !types.contains(&t) {
                types.push(t);
            }
        }
        Ok(if all {
            Wanted::All
        } else {
            Wanted::Only(types)
        })
    }

    /// As stored: `None` for every type, else the names between commas with a comma
    /// at each end (`,order.paid,refund.failed,`), so "wants this type" is one
    /// substring test in SQL on both databases.
    pub fn stored(&self) -> Option<String> {
        match self {
            Wanted::All => None,
            Wanted::Only(types) => Some(format!(
                ",{},",
                types
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )),
        }
    }

    /// Reads the stored form back (names it does not know are skipped: a type a
    /// later version added and this one does not send).
    pub fn from_stored(stored: Option<&str>) -> Wanted {
        match stored {
            None => Wanted::All,
            Some(s) => Wanted::Only(s.split(',').filter_map(EventType::parse).collect()),
        }
    }

    /// What `stored` matches an event of `kind` by (`,payment.completed,`).
    pub fn needle(kind: EventType) -> String {
        format!(",{},", kind.as_str())
    }
}

/// A URL of the merchant's that receives events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Ours (`we_…`).
    pub id: WebhookEndpointId,
    /// Where events are POSTed: http(s), checked against private addresses when
    /// created and at every delivery.
    pub url: String,
    /// Which events it receives.
    pub wants: Wanted,
    /// The operator's words for it ("warehouse", "CRM").
    pub description: String,
    /// A disabled endpoint receives nothing (and nothing is queued for it).
    pub enabled: bool,
    /// Why it was disabled by tijori (three days of failures); `None` when enabled or
    /// disabled by an operator.
    pub disabled_reason: Option<String>,
    /// Since when every delivery to it has failed; `None` after a success.
    pub failing_since: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// An endpoint's signing secrets: the current one and, for a day after a rotation,
/// the one before (both sign, so a receiver can switch over at leisure).
#[derive(Clone)]
pub struct EndpointSecrets {
    /// The current secret (`whsec_…`).
    pub current: String,
    /// The previous secret, while it still signs.
    pub previous: Option<String>,
    /// Until when the previous secret signs.
    pub previous_until: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for EndpointSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log.
        f.write_str("EndpointSecrets(..)")
    }
}

impl EndpointSecrets {
    /// How long the previous secret keeps signing after a rotation.
    pub const OVERLAP_HOURS: i64 = 24;

    /// The secrets that sign a delivery at `now`: the current one, and the previous
    /// one while its day lasts.
    pub fn signing(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut secrets = vec![self.current.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous, self.previous_until) {
            if now < until {
                secrets.push(previous);
            }
        }
        secrets
    }
}

/// An event as stored: what it names, and its body once made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Its id (the `webhook-id`).
    pub id: EventId,
    /// What happened.
    pub kind: EventType,
    /// The customer it concerns, if named.
    pub user: Option<UserId>,
    /// The payment it concerns, if any.
    pub payment: Option<PaymentId>,
    /// The order it concerns, if any.
    pub order: Option<OrderId>,
    /// The refund it concerns, if any.
    pub refund: Option<RefundId>,
    /// The body as first delivered; `None` until then.
    pub body: Option<String>,
    /// When it happened (the `timestamp` of its body).
    pub created_at: DateTime<Utc>,
}

/// One try at delivering an event to an endpoint, as recorded for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// The event sent.
    pub event: EventId,
    /// Where to.
    pub endpoint: WebhookEndpointId,
    /// Its number among the tries of this event at this endpoint (from 1).
    pub attempt: u32,
    /// When it was made.
    pub attempted_at: DateTime<Utc>,
    /// The receiver's HTTP status; `None` if none came (refused, timed out,
    /// unreachable).
    pub http_status: Option<u16>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// The first KiB of the answer's body.
    pub response: String,
    /// Why it failed before an answer, if it did.
    pub error: Option<String>,
    /// A 2xx answer: delivered.
    pub delivered: bool,
}

/// A try at delivering an event with everything it settles, recorded in one
/// transaction: the body sent (kept, if it is the event's first), the try, the
/// endpoint's run of failures, and the job that made it (done, queued again, or dead).
/// Every event takes this path, so it is one write, not four.
#[derive(Clone, Debug)]
pub struct FinishedDelivery {
    /// The try.
    pub attempt: DeliveryAttempt,
    /// The body sent, to keep as the event's if none was kept before (its first try).
    pub body: Option<String>,
    /// The delivery job's id.
    pub job: i64,
    /// The worker holding the job.
    pub worker: String,
    /// If it was not delivered: when the job tries again (`None`: it gave up).
    pub retry_at: Option<DateTime<Utc>>,
    /// If it was not delivered: why, for the job's record.
    pub error: String,
}

/// How long after a failed try the next one is made: after try 1 fails, 5 s; then
/// 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, 10 h, 16 h and 30 h, each spread by up to a
/// tenth either way so that deliveries that failed together (a receiver down) do not
/// all come back at once. The last try comes more than three days (75 h at the
/// least) after the first, so an endpoint that failed them all has failed for
/// `DISABLE_AFTER_FAILING_HOURS` by then and is disabled.
pub const RETRY_AFTER_SECS: [i64; 10] = [
    5,
    5 * 60,
    30 * 60,
    2 * 3_600,
    5 * 3_600,
    10 * 3_600,
    10 * 3_600,
    10 * 3_600,
    16 * 3_600,
    30 * 3_600,
];

/// How many tries an event gets at one endpoint: the first and one per retry.
pub const MAX_ATTEMPTS: u32 = RETRY_AFTER_SECS.len() as u32 + 1;

/// When to try again after try number `attempts` failed (1 is the first try), with
/// `spread` in -1..=1 choosing where in ±10 % the wait falls; `None` once every try
/// is spent.
pub fn retry_at(attempts: u32, now: DateTime<Utc>, spread: f64) -> Option<DateTime<Utc>> {
    let wait = *RETRY_AFTER_SECS.get(usize::try_from(attempts.checked_sub(1)?).ok()?)?;
    let millis = (wait as f64 * 1_000.0 * (1.0 + 0.1 * spread.clamp(-1.0, 1.0))) as i64;
    Some(now + Duration::milliseconds(millis))
}

/// `retry_at` with a random spread.
pub fn jittered_retry_at(attempts: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    retry_at(attempts, now, rand::thread_rng().gen_range(-1.0..=1.0))
}

/// An endpoint every delivery to which has failed for this long is disabled (and an
/// operator told): its receiver is gone, and retrying for ever helps nobody.
pub const DISABLE_AFTER_FAILING_HOURS: i64 = 72;

/// Whether an endpoint failing since `failing_since` should be disabled at `now`.
pub fn should_disable(failing_since: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    failing_since.is_some_and(|since| now - since >= Duration::hours(DISABLE_AFTER_FAILING_HOURS))
}

/// What an event concerns, read when its body is made: the resources its `data`
/// shows, as they stand.
#[derive(Clone, Debug, Default)]
pub struct Concerning {
    /// The customer.
    pub user: Option<crate::account::User>,
    /// The payment.
    pub payment: Option<Payment>,
    /// The order (of an order's event, or the order a payment paid for).
    pub order: Option<crate::shop::Order>,
    /// The refund.
    pub refund: Option<crate::store::Refund>,
    /// What the customer holds (of a subscription's event).
    pub subscription: Option<crate::service::Holding>,
}

/// Makes an event's `data` in the API's shapes. A port, because the wire shapes live
/// in the web crate (`tijori_web::events`), and an event must show a payment as
/// `GET /api/payments/{id}` does.
pub trait EventRenderer: Send + Sync {
    /// The `data` of an event of `kind` about `about`; `now` decides what is active.
    fn data(&self, kind: EventType, about: &Concerning, now: DateTime<Utc>) -> serde_json::Value;
}

/// One delivery to send: the body, what signs it, and its Standard Webhooks ids.
pub struct Message<'a> {
    /// The `webhook-id` (the event's id): the same on every try.
    pub id: &'a EventId,
    /// The `webhook-timestamp`: when this try is made, in unix seconds.
    pub timestamp: i64,
    /// The body (`{"type", "id", "timestamp", "data"}`), the same on every try.
    pub body: &'a str,
    /// The secrets that sign it (`whsec_…`): one, or two during a rotation.
    pub secrets: Vec<&'a str>,
}

/// How a try went, as the sender saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The receiver's HTTP status, if one came.
    pub http_status: Option<u16>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// The first KiB of the answer's body.
    pub response: String,
    /// Why no answer came (refused, timed out, unreachable, redirected).
    pub error: Option<String>,
}

impl Sent {
    /// Delivered: a 2xx answer.
    pub fn delivered(&self) -> bool {
        self.error.is_none() && self.http_status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Signs and POSTs deliveries, and says which URLs it will POST to. A port: the
/// binary implements it over the `webhook-out` crate (Standard Webhooks signing, a
/// guard against private addresses, no redirects, a 15 s limit).
#[async_trait::async_trait]
pub trait EventSender: Send + Sync {
    /// Checks a URL an operator gives for an endpoint: `http(s)`, and not a private
    /// or loopback address, nor a name resolving only to such addresses, unless this
    /// deployment allows them. `Err` says why not.
    async fn check_url(&self, url: &str) -> Result<String, String>;
    /// A fresh signing secret (`whsec_` and 32 random bytes in base64).
    fn new_secret(&self) -> String;
    /// Sends one delivery (never fails: a failure is in `Sent`).
    async fn send(&self, url: &str, message: &Message<'_>) -> Sent;
}

/// An event's body as every delivery of it sends it.
pub fn body(event: &Event, data: serde_json::Value) -> String {
    serde_json::json!({
        "type": event.kind.as_str(),
        "id": event.id.as_str(),
        "timestamp": event.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn payment(status: PaymentStatus, order: bool) -> Payment {
        use crate::gateway::GatewayKind;
        use crate::id::PlanId;
        use crate::money::{Currency, Money};
        use crate::payment::CheckoutKind;
        use crate::subscription::PlanChange;
        let now = Utc::now();
        Payment {
            id: PaymentId::generate(),
            user_id: UserId::generate(),
            gateway: GatewayKind::Khalti,
            purpose: if order {
                Purpose::Order {
                    order_id: OrderId::generate(),
                }
            } else {
                Purpose::Subscription {
                    plan_id: PlanId::generate(),
                    change: PlanChange::Queue,
                }
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

    fn kinds(events: &[NewEvent]) -> Vec<EventType> {
        events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn a_settlement_raises_what_happened() {
        use EventType as T;
        use PaymentStatus as S;
        let sub = payment(S::Completed, false);
        assert_eq!(
            kinds(&settled(&sub, Granted::Activated, false)),
            [T::PaymentCompleted, T::SubscriptionActivated]
        );
        assert_eq!(
            kinds(&settled(&sub, Granted::Renewed, false)),
            [T::PaymentCompleted, T::SubscriptionRenewed]
        );
        let order = payment(S::Completed, true);
        let events = settled(&order, Granted::Nothing, false);
        assert_eq!(kinds(&events), [T::PaymentCompleted, T::OrderPaid]);
        assert!(events
            .iter()
            .all(|e| e.order.is_some() && e.payment == Some(order.id.clone())));
        for s in [S::Failed, S::Canceled, S::Expired] {
            assert_eq!(
                kinds(&settled(&payment(s, false), Granted::Nothing, false)),
                [T::PaymentFailed]
            );
        }
        assert_eq!(
            kinds(&settled(
                &payment(S::PartiallyRefunded, false),
                Granted::Nothing,
                true
            )),
            [T::PaymentRefunded, T::SubscriptionRevoked]
        );
        assert_eq!(
            kinds(&settled(
                &payment(S::Refunded, true),
                Granted::Nothing,
                false
            )),
            [T::PaymentRefunded]
        );
        for s in [S::NeedsReview, S::Pending, S::Initiated] {
            assert!(settled(&payment(s, true), Granted::Nothing, false).is_empty());
        }
        // Every event of one settlement has its own id (its own `webhook-id`).
        let events = settled(&sub, Granted::Activated, false);
        assert_ne!(events[0].id, events[1].id);
    }

    #[test]
    fn a_grant_renews_only_time_still_ahead() {
        let now = Utc::now();
        assert_eq!(Granted::at(None, now), Granted::Activated);
        assert_eq!(Granted::at(Some(now), now), Granted::Activated);
        assert_eq!(
            Granted::at(Some(now + Duration::seconds(1)), now),
            Granted::Renewed
        );
    }

    #[test]
    fn names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("payment.paid"), None);
    }

    #[test]
    fn wanted_parses_and_stores() {
        assert_eq!(Wanted::parse::<&str>(None), Ok(Wanted::All));
        assert_eq!(Wanted::parse(Some(&["*"][..])), Ok(Wanted::All));
        let only = Wanted::parse(Some(&["order.paid", "refund.failed", "order.paid"][..])).unwrap();
        assert_eq!(
            only,
            Wanted::Only(vec![EventType::OrderPaid, EventType::RefundFailed])
        );
        let stored = only.stored().unwrap();
        assert_eq!(stored, ",order.paid,refund.failed,");
        assert_eq!(Wanted::from_stored(Some(&stored)), only);
        assert!(stored.contains(&Wanted::needle(EventType::OrderPaid)));
        // `order.paid` must not match a name it is part of.
        assert!(!stored.contains(&Wanted::needle(EventType::PaymentCompleted)));
        // A typo is refused beside `*` too.
        assert!(Wanted::parse(Some(&["*", "order.shipped"][..])).is_err());
        let e = Wanted::parse(Some(&["order.shipped"][..])).unwrap_err();
        assert!(e.contains("order.shipped"), "{e}");
    }

    #[test]
    fn previous_secret_signs_for_a_day() {
        let now = Utc::now();
        let s = EndpointSecrets {
            current: "new".into(),
            previous: Some("old".into()),
            previous_until: Some(now + Duration::hours(24)),
        };
        assert_eq!(s.signing(now), vec!["new", "old"]);
        assert_eq!(s.signing(now + Duration::hours(24)), vec!["new"]);
        assert_eq!(format!("{s:?}"), "EndpointSecrets(..)");
    }

    #[test]
    fn retries_follow_the_schedule_for_about_three_days() {
        let now = Utc::now();
        assert_eq!(retry_at(1, now, 0.0), Some(now + Duration::seconds(5)));
        assert_eq!(retry_at(2, now, 0.0), Some(now + Duration::minutes(5)));
        assert_eq!(retry_at(MAX_ATTEMPTS, now, 0.0), None);
        assert_eq!(retry_at(0, now, 0.0), None);
        // Even with every wait cut by a tenth, the last try is past the point where
        // an endpoint failing all along is disabled.
        let total: i64 = RETRY_AFTER_SECS.iter().sum();
        assert!(
            total * 9 / 10 >= DISABLE_AFTER_FAILING_HOURS * 3_600,
            "{total}"
        );
        assert!(total <= 4 * 24 * 3_600, "{total}");
    }

    proptest! {
        #[test]
        fn a_retry_is_within_a_tenth_of_its_wait(attempts in 1u32..=MAX_ATTEMPTS - 1, spread in -5.0f64..5.0) {
            let now = Utc::now();
            let wait = RETRY_AFTER_SECS[attempts as usize - 1] * 1_000;
            let at = retry_at(attempts, now, spread).unwrap();
            let got = (at - now).num_milliseconds();
            prop_assert!(got >= wait * 9 / 10 && got <= wait * 11 / 10, "{} vs {}", got, wait);
        }

        #[test]
        fn disabled_only_after_three_days_of_failures(hours in 0i64..200) {
            let now = Utc::now();
            prop_assert_eq!(should_disable(Some(now - Duration::hours(hours)), now), hours >= 72);
            prop_assert!(!should_disable(None, now));
        }
    }
}

//! What the operator's area reads to run a shop: lists of payments, orders, customers
//! and subscriptions with one shape of search, filter and paging; a payment's whole
//! audit trail; and the revenue and the counts of the overview. Every count and sum is
//! made by the database (`store::BackOfficeStore`); this module holds the types, and
//! the few rules that are not SQL (which statuses a filter may name, how a day's sums
//! become collected, refunded and net).

use chrono::{DateTime, NaiveDate, Utc};

use crate::account::User;
use crate::gateway::GatewayKind;
use crate::id::{OrderId, PaymentId, UserId};
use crate::money::Currency;
use crate::payment::{Payment, PaymentStatus};
use crate::shop::OrderStatus;

/// The most rows a list page shows at once: a page stays light on a phone and its
/// query bounded, whatever a link asks for.
pub const MAX_PAGE_SIZE: u32 = 100;

/// The most rows one CSV export holds. An export of more says so (the page shows the
/// total beside the link), rather than holding the database for minutes.
pub const MAX_EXPORT_ROWS: u32 = 10_000;

/// Which rows of a list, and which page of them. Every field narrows the list; none
/// given is every row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// An id (payment, order, user), a gateway's reference (Khalti's pidx, Chapa's
    /// tx_ref, eSewa's transaction_uuid) or transaction id, matched exactly; or part of
    /// a username or e-mail, matched without regard to case.
    pub search: Option<String>,
    /// A status of the listed thing, already checked ([`PaymentStatus`],
    /// [`OrderStatus`], [`CustomerState`] or [`SubscriptionState`] by its name).
    pub status: Option<String>,
    /// Only what was paid (or tried) through this gateway.
    pub gateway: Option<GatewayKind>,
    /// From this instant on (the list's date: when a payment or order was made, a
    /// customer joined, a subscription ends).
    pub from: Option<DateTime<Utc>>,
    /// Before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Rows skipped (the page's start).
    pub offset: u32,
    /// At most this many rows; at most [`MAX_PAGE_SIZE`] on a page, or
    /// [`MAX_EXPORT_ROWS`] for an export.
    pub limit: u32,
}

/// A page of a list, and how many rows the whole list has (counted by the database).
#[derive(Clone, Debug)]
pub struct Listed<T> {
    /// The rows of the page asked for, newest first.
    pub rows: Vec<T>,
    /// How many rows match the filter, on every page together.
    pub total: i64,
}

/// A payment in the operator's list: the payment and whose it is.
#[derive(Clone, Debug)]
pub struct PaymentLine {
    /// The payment as stored.
    pub payment: Payment,
    /// Its customer's username, to search and read by.
    pub username: String,
    /// Its customer's e-mail.
    pub email: String,
}

/// An order in the operator's list.
#[derive(Clone, Debug)]
pub struct OrderLine {
    /// The order's id.
    pub id: OrderId,
    /// Where it stands.
    pub status: OrderStatus,
    /// What it costs, in minor units of `currency`.
    pub total_minor: i64,
    /// The order's currency.
    pub currency: Currency,
    /// The payment that paid it, once paid.
    pub paid_payment_id: Option<PaymentId>,
    /// How many units it holds (all its items together).
    pub units: i64,
    /// Its customer's username.
    pub username: String,
    /// Its customer's e-mail.
    pub email: String,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
}

/// A customer in the operator's list, with what the database counted of them.
#[derive(Clone, Debug)]
pub struct CustomerLine {
    /// The account.
    pub user: User,
    /// Their payments, whatever became of them.
    pub payments: i64,
    /// Of those, the ones that brought money (completed, or refunded since).
    pub paid: i64,
    /// Their orders.
    pub orders: i64,
    /// When their latest run of paid time ends, if they ever subscribed.
    pub subscribed_until: Option<DateTime<Utc>>,
}

/// A subscription in the operator's list: a customer's latest run of paid time.
#[derive(Clone, Debug)]
pub struct SubscriptionLine {
    /// Whose.
    pub user_id: UserId,
    /// Their username.
    pub username: String,
    /// Their e-mail.
    pub email: String,
    /// The plan the run's latest period paid for.
    pub plan_name: String,
    /// When the run started.
    pub start_at: DateTime<Utc>,
    /// When it ends (the renewal date).
    pub end_at: DateTime<Utc>,
}

/// A customer filter's status: whether their paid time runs now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustomerState {
    /// Their latest run of paid time has not ended.
    Subscribed,
    /// They never subscribed, or their paid time ended.
    NotSubscribed,
}

/// A subscription filter's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Running now.
    Active,
    /// Running now and ending within a week: a renewal due.
    RenewalDue,
    /// Ended.
    Ended,
}

macro_rules! named {
    ($t:ty { $($v:ident => $n:literal),* $(,)? }) => {
        impl $t {
            /// Every state, in the order a filter offers them.
            pub const ALL: &'static [$t] = &[$(<$t>::$v),*];
            /// Its name in links and forms.
            pub fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => $n),* }
            }
            /// Reads a name; `None` for anything else.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|x| x.as_str() == s)
            }
        }
    };
}
named!(CustomerState { Subscribed => "subscribed", NotSubscribed => "not_subscribed" });
named!(SubscriptionState { Active => "active", RenewalDue => "renewal_due", Ended => "ended" });

/// The statuses a payment filter may name: every status a payment can have.
pub fn payment_status(name: &str) -> Option<PaymentStatus> {
    name.parse().ok()
}

/// The statuses an order filter may name.
pub fn order_status(name: &str) -> Option<OrderStatus> {
    name.parse().ok()
}

/// The payment statuses whose money arrived and was taken: what "collected" counts.
/// A payment held for review is not in it (its money is to be refunded or accepted by
/// hand, and its amount may not be what was paid); one refunded since still is, and
/// its refunds are counted as refunded.
pub const COLLECTED: [PaymentStatus; 3] = [
    PaymentStatus::Completed,
    PaymentStatus::PartiallyRefunded,
    PaymentStatus::Refunded,
];

/// One day's money through one gateway in one currency, summed by the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevenueDay {
    /// The day, in UTC.
    pub day: NaiveDate,
    /// Through which gateway.
    pub gateway: GatewayKind,
    /// In which currency (sums are never mixed across currencies).
    pub currency: Currency,
    /// Paid that day by payments in [`COLLECTED`], in minor units.
    pub collected_minor: i64,
    /// Refunds that went through that day, in minor units.
    pub refunded_minor: i64,
}

impl RevenueDay {
    /// What stayed: collected less refunded (negative on a day of refunds only).
    pub fn net_minor(&self) -> i64 {
        self.collected_minor - self.refunded_minor
    }
}

/// The overview's counts, each made by the database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShopCounts {
    /// Customers whose paid time runs now.
    pub active_subscriptions: i64,
    /// Of those, the ones whose paid time ends within the week: renewals due.
    pub renewals_due: i64,
    /// Payments whose outcome has not arrived (initiated or pending).
    pub payments_open: i64,
    /// Payments whose money arrived but is held for an operator's review.
    pub payments_held: i64,
}

/// An entry of a payment's audit trail besides the gateway's answers: a webhook
/// delivery that named it.
#[derive(Clone, Debug)]
pub struct DeliveryOfPayment {
    /// The delivery's row.
    pub id: i64,
    /// The gateway that sent it.
    pub gateway: String,
    /// Its event (Chapa's `charge.success`, ...).
    pub event: Option<String>,
    /// The status it claimed (a signal only).
    pub status: Option<String>,
    /// Whether an identical body came before.
    pub duplicate: bool,
    /// What handling it came to.
    pub outcome: Option<String>,
    /// What an operator should know.
    pub detail: Option<String>,
    /// The raw body, as received.
    pub body: String,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
}

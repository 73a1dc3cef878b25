//! Receipts: what a customer keeps as proof of a payment, numbered for the merchant's
//! books. Issued once per paid payment (the store's unique key), mailed once, and
//! shown on a page that prints to PDF.

use chrono::{DateTime, Utc};

use crate::id::PaymentId;
use crate::mail::{local_time, zone_for};
use crate::money::{Currency, Money};
use crate::payment::Payment;
use crate::store::{Refund, RefundStatus};

/// A receipt as issued: its number and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// 1, 2, 3…: the merchant's sequence, without gaps.
    pub number: i64,
    /// The paid payment it is for (one receipt each).
    pub payment_id: PaymentId,
    /// When it was issued: its date, as printed.
    pub issued_at: DateTime<Utc>,
}

impl Receipt {
    /// The number as printed: "R-000042". Six digits keep early receipts sortable;
    /// more simply widen it.
    pub fn printed_number(&self) -> String {
        format!("R-{:06}", self.number)
    }
}

/// Who issues receipts: the merchant's name and address as configured.
#[derive(Clone, Debug, Default)]
pub struct Merchant {
    /// The business's name, printed at the top.
    pub name: String,
    /// Lines of the postal address (and a tax number, if the merchant adds one).
    pub address: String,
}

/// How long after a payment completes its receipt is still mailed: a tijori that
/// was stopped for longer, or one upgraded with years of paid payments, does not
/// mail old receipts (their pages still work).
pub const RECEIPT_MAIL_WINDOW_DAYS: i64 = 2;

/// The money refunded so far: the sum of the refunds that succeeded (one still being
/// asked, of unknown outcome, or refused gave nothing back); `None` when nothing was.
pub fn refunded(currency: Currency, refunds: &[Refund]) -> Option<Money> {
    let minor = refunds
        .iter()
        .filter(|r| r.status == RefundStatus::Succeeded)
        .try_fold(0i64, |sum, r| sum.checked_add(r.amount.minor()))?;
    (minor > 0)
        .then(|| Money::from_minor(minor, currency).ok())
        .flatten()
}

/// What a receipt's mail says. `item` names what was bought ("Basic plan, 30 days";
/// "2 × Coffee"); `time_zone` is the customer's choice, if any.
pub fn compose_mail(
    receipt: &Receipt,
    payment: &Payment,
    item: &str,
    merchant: &Merchant,
    username: &str,
    time_zone: Option<&str>,
    public_url: &str,
) -> (String, String) {
    let zone = zone_for(time_zone, payment.amount.currency());
    let when = local_time(receipt.issued_at, zone);
    let gateway = payment.gateway.display_name();
    let transaction = payment
        .provider_txn_id
        .as_deref()
        .or(payment.provider_ref.as_deref())
        .unwrap_or("-");
    let from = if merchant.name.is_empty() {
        "us"
    } else {
        merchant.name.as_str()
    };
    (
        format!("Your receipt {} from {from}", receipt.printed_number()),
        format!(
            "Hello {username},\n\nThank you for your payment. This is your receipt.\n\n\
             Receipt:      {number}\n\
             Date:         {when}\n\
             Item:         {item}\n\
             Amount paid:  {amount}\n\
             Paid with:    {gateway}\n\
             Transaction:  {transaction}\n\n\
             See or print it: {public_url}/payments/{id}/receipt/\n\n\
             {merchant_name}\n{address}\n",
            number = receipt.printed_number(),
            amount = payment.amount.for_people(),
            id = payment.id,
            merchant_name = merchant.name,
            address = merchant.address,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    mod properties {
        use proptest::prelude::*;

        use super::super::*;
        use crate::id::{RefundId, UserId};

        fn refund(minor: i64, status: RefundStatus) -> Refund {
            Refund {
                id: RefundId::generate(),
                payment_id: PaymentId::generate(),
                amount: Money::from_minor(minor, Currency::Npr).unwrap(),
                reason: None,
                status,
                detail: None,
                requested_by: UserId::generate(),
                restock: false,
                resolved_by: None,
                resolved_at: None,
                resolution: None,
                created_at: Utc::now(),
                updated_at: Utc::now(),
            }
        }

        fn status() -> impl Strategy<Value = RefundStatus> {
            prop_oneof![
                Just(RefundStatus::Requested),
                Just(RefundStatus::Succeeded),
                Just(RefundStatus::Failed),
                Just(RefundStatus::Unknown),
            ]
        }

        proptest! {
            /// What a receipt says was refunded is exactly what went back: the
            /// succeeded refunds, none of the others, and nothing when none did.
            #[test]
            fn only_succeeded_refunds_count(lines in prop::collection::vec((1i64..10_000_000, status()), 0..8)) {
                let refunds: Vec<Refund> = lines.iter().map(|(m, s)| refund(*m, *s)).collect();
                let expected: i64 = lines
                    .iter()
                    .filter(|(_, s)| *s == RefundStatus::Succeeded)
                    .map(|(m, _)| m)
                    .sum();
                let got = refunded(Currency::Npr, &refunds);
                prop_assert_eq!(got.map(Money::minor), (expected > 0).then_some(expected));
            }
        }
    }

    #[test]
    fn numbers_print_with_six_digits_and_grow_beyond() {
        let r = |number| Receipt {
            number,
            payment_id: PaymentId::generate(),
            issued_at: Utc::now(),
        };
        assert_eq!(r(42).printed_number(), "R-000042");
        assert_eq!(r(1_234_567).printed_number(), "R-1234567");
    }
}

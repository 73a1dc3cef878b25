//! What customers read about their payments and orders, in one place. Each text is
//! English and is also the key of its translations (see `i18n`): pages show
//! it with `t(…)` in the visitor's language; the API's `message` is English.
//!
//! Templates hold the pages' own sentences; what is said about a payment, which the
//! API's `message` and several pages share, is here.

use serde::Serialize;
use tijori_core::payment::{CustomerOutcome, Payment, Purpose};
use tijori_core::shop::OrderStatus;

use crate::i18n::tr;

/// A payment's status in a customer's words, for a table cell or a badge.
pub fn payment_status(outcome: CustomerOutcome) -> &'static str {
    use CustomerOutcome as O;
    match outcome {
        O::Waiting => tr("waiting for payment"),
        O::Confirming => tr("being confirmed"),
        O::Paid => tr("paid"),
        O::Canceled => tr("canceled"),
        O::NotPaidInTime => tr("not paid in time"),
        O::Failed => tr("failed"),
        O::LateWillBeRefunded => tr("received late, to be refunded"),
        O::PaidTwiceWillBeRefunded => tr("paid twice, to be refunded"),
        O::UnderReview => tr("under review"),
        O::RefundedAsNotNeeded | O::Refunded => tr("refunded"),
        O::PartlyRefunded => tr("partly refunded"),
    }
}

/// The style a status is shown in: good, waiting, or not done.
pub fn payment_tone(outcome: CustomerOutcome) -> &'static str {
    use CustomerOutcome as O;
    match outcome {
        O::Paid => "success",
        O::Waiting | O::Confirming | O::UnderReview => "pending",
        O::LateWillBeRefunded | O::PaidTwiceWillBeRefunded => "review",
        O::Canceled
        | O::NotPaidInTime
        | O::Failed
        | O::RefundedAsNotNeeded
        | O::Refunded
        | O::PartlyRefunded => "failed",
    }
}

/// An order's status in a customer's words. `shown` is the status a customer should
/// see (a pending order past its expiry is expired).
pub fn order_status(shown: OrderStatus) -> &'static str {
    match shown {
        OrderStatus::Pending => tr("waiting for payment"),
        OrderStatus::Paid => tr("paid"),
        OrderStatus::Expired => tr("expired"),
        OrderStatus::Canceled => tr("canceled"),
        OrderStatus::Refunded => tr("refunded"),
    }
}

/// A sentence about a payment: its text names the gateway as `{gateway}`, so that a
/// translation may put the name where its grammar wants it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sentence {
    /// The English text, which is also its key in the catalogs.
    pub text: &'static str,
    /// The gateway's name as its customers write it ("eSewa").
    pub gateway: &'static str,
}

impl Sentence {
    /// The sentence in English, its gateway named.
    pub fn in_english(&self) -> String {
        self.text.replace("{gateway}", self.gateway)
    }
}

/// What a customer is told about a payment, in a sentence or two. `order` is the
/// status of the order it was for, when at hand: it tells money that arrived late
/// from money an operator must look at.
pub fn payment_message(payment: &Payment, order: Option<OrderStatus>) -> Sentence {
    let for_order = matches!(payment.purpose, Purpose::Order { .. });
    Sentence {
        text: message_text(payment.customer_outcome(order), for_order),
        gateway: payment.gateway.display_name(),
    }
}

fn message_text(outcome: CustomerOutcome, for_order: bool) -> &'static str {
    use CustomerOutcome as O;
    match outcome {
        O::Paid if for_order => tr("Payment received. Your order is paid."),
        O::Paid => tr("Payment received. Your subscription is active."),
        O::Waiting => tr("We have not received your payment yet. If you paid, it can take a moment; we will keep checking."),
        O::Confirming => tr("{gateway} is still processing your payment. We will keep checking and update you."),
        O::UnderReview => tr("We received a payment that does not match the amount due. Our team will review it and contact you; nothing more is needed from you."),
        O::LateWillBeRefunded => tr("We received your payment, but it arrived after your order had expired and its items are no longer held for you. We will refund it in full to your {gateway} account; you do not need to do anything."),
        O::PaidTwiceWillBeRefunded => tr("We received this payment, but your order had already been paid. We will refund this one in full to your {gateway} account; you do not need to do anything."),
        O::RefundedAsNotNeeded => tr("This payment arrived after your order could no longer take it, so we refunded it in full to your {gateway} account."),
        O::Canceled => tr("You canceled the payment at {gateway}. You have not been charged."),
        O::NotPaidInTime => tr("The payment link expired before it was paid. You have not been charged."),
        O::Failed => tr("The payment did not go through at {gateway}. You have not been charged."),
        O::Refunded => tr("This payment was refunded in full to your {gateway} account."),
        O::PartlyRefunded => tr("Part of this payment was refunded to your {gateway} account."),
    }
}

/// The return page's headline for a payment's outcome.
pub fn payment_headline(outcome: CustomerOutcome) -> &'static str {
    use CustomerOutcome as O;
    match outcome {
        O::Paid => tr("Payment successful"),
        O::Waiting | O::Confirming => tr("Confirming your payment…"),
        O::Canceled => tr("Payment canceled"),
        O::NotPaidInTime => tr("Payment link expired"),
        O::Failed => tr("Payment failed"),
        O::LateWillBeRefunded | O::PaidTwiceWillBeRefunded => {
            tr("Payment received, to be refunded")
        }
        O::UnderReview => tr("Payment under review"),
        O::RefundedAsNotNeeded | O::Refunded => tr("Payment refunded"),
        O::PartlyRefunded => tr("Payment partly refunded"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentence_names_its_gateway_in_english() {
        let s = Sentence {
            text: message_text(CustomerOutcome::Canceled, false),
            gateway: "eSewa",
        };
        assert_eq!(
            s.in_english(),
            "You canceled the payment at eSewa. You have not been charged."
        );
    }
}

//! What customers read, in one place per language. English is the only language
//! today; a translation is another module with the same functions (and a choice of
//! module by the visitor's language), not edits scattered through the handlers.
//!
//! Templates hold the pages' own sentences; what is said about a payment, which the
//! API's `message` and several pages share, is here.

use tijori_core::payment::{CustomerOutcome, Payment, Purpose};
use tijori_core::shop::OrderStatus;

/// A payment's status in a customer's words, for a table cell or a badge.
pub fn payment_status(outcome: CustomerOutcome) -> &'static str {
    use CustomerOutcome as O;
    match outcome {
        O::Waiting => "waiting for payment",
        O::Confirming => "being confirmed",
        O::Paid => "paid",
        O::Canceled => "canceled",
        O::NotPaidInTime => "not paid in time",
        O::Failed => "failed",
        O::LateWillBeRefunded => "received late, to be refunded",
        O::PaidTwiceWillBeRefunded => "paid twice, to be refunded",
        O::UnderReview => "under review",
        O::RefundedAsNotNeeded | O::Refunded => "refunded",
        O::PartlyRefunded => "partly refunded",
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
        OrderStatus::Pending => "waiting for payment",
        OrderStatus::Paid => "paid",
        OrderStatus::Expired => "expired",
        OrderStatus::Canceled => "canceled",
        OrderStatus::Refunded => "refunded",
    }
}

/// What a customer is told about a payment, in a sentence or two. `order` is the
/// status of the order it was for, when at hand: it tells money that arrived late
/// from money an operator must look at.
pub fn payment_message(payment: &Payment, order: Option<OrderStatus>) -> String {
    use CustomerOutcome as O;
    let at = payment.gateway.display_name();
    match payment.customer_outcome(order) {
        O::Paid => match payment.purpose {
            Purpose::Subscription { .. } => "Payment received. Your subscription is active.".into(),
            Purpose::Order { .. } => "Payment received. Your order is paid.".into(),
        },
        O::Waiting => "We have not received your payment yet. If you paid, it can take a moment; we will keep checking.".into(),
        O::Confirming => format!("{at} is still processing your payment. We will keep checking and update you."),
        O::UnderReview => "We received a payment that does not match the amount due. Our team will review it and contact you; nothing more is needed from you.".into(),
        O::LateWillBeRefunded => format!("We received your payment, but it arrived after your order had expired and its items are no longer held for you. We will refund it in full to your {at} account; you do not need to do anything."),
        O::PaidTwiceWillBeRefunded => format!("We received this payment, but your order had already been paid. We will refund this one in full to your {at} account; you do not need to do anything."),
        O::RefundedAsNotNeeded => format!("This payment arrived after your order could no longer take it, so we refunded it in full to your {at} account."),
        O::Canceled => format!("You canceled the payment at {at}. You have not been charged."),
        O::NotPaidInTime => "The payment link expired before it was paid. You have not been charged.".into(),
        O::Failed => format!("The payment did not go through at {at}. You have not been charged."),
        O::Refunded => format!("This payment was refunded in full to your {at} account."),
        O::PartlyRefunded => format!("Part of this payment was refunded to your {at} account."),
    }
}

/// The return page's headline for a payment's outcome.
pub fn payment_headline(outcome: CustomerOutcome) -> &'static str {
    use CustomerOutcome as O;
    match outcome {
        O::Paid => "Payment successful",
        O::Waiting | O::Confirming => "Confirming your payment…",
        O::Canceled => "Payment canceled",
        O::NotPaidInTime => "Payment link expired",
        O::Failed => "Payment failed",
        O::LateWillBeRefunded | O::PaidTwiceWillBeRefunded => "Payment received, to be refunded",
        O::UnderReview => "Payment under review",
        O::RefundedAsNotNeeded | O::Refunded => "Payment refunded",
        O::PartlyRefunded => "Payment partly refunded",
    }
}

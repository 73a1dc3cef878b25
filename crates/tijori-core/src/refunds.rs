//! What a gateway's answer about a payment says about a refund of it whose outcome
//! we never heard (the refund call timed out or got a 5xx). Pure: the service looks
//! the payment up and applies what this decides.

use crate::gateway::GatewayStatus;

/// A refund still `requested` this long after it was asked for lost its process
/// mid-call: when the payment's next refund is asked for, its outcome becomes
/// unknown (it stops counting as in flight and blocking) and it is looked up like
/// any unknown refund. A gateway call ends within its timeouts, far sooner.
pub const ABANDONED_REQUEST_MINUTES: i64 = 5;

/// Why an abandoned request's outcome is unknown, for the operator.
pub const ABANDONED_REQUEST_DETAIL: &str = "no outcome was recorded";

/// What became of a refund whose answer was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundOutcome {
    /// The money went back: settle it as succeeded (the payment is then refunded or
    /// partially refunded, with the same effects as a refund answered at once).
    Succeeded,
    /// It did not happen: the payment is as it was, and may be refunded again.
    Failed,
    /// The answer cannot tell (yet): ask again later, or an operator decides.
    StillUnknown,
}

/// The refund in question and what is known of the payment's other refunds, in
/// minor units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownRefund {
    /// What the customer paid.
    pub paid: i64,
    /// What earlier refunds of ours are known to have given back.
    pub succeeded_before: i64,
    /// What this refund asked for.
    pub amount: i64,
}

/// Decides an unknown refund's outcome from the gateway's current status of the
/// payment. `shows_at_once`: the gateway's look-up reflects a refund as soon as it
/// is accepted (Khalti's does; Chapa's refunds take days and a partial one never
/// shows in its verify), so "not refunded" there proves the refund did not happen.
///
/// The rule never calls a refund succeeded when the gateway's answer rules it out,
/// nor failed when the answer could include it.
pub fn unknown_refund_outcome(
    refund: UnknownRefund,
    gateway: &GatewayStatus,
    shows_at_once: bool,
) -> RefundOutcome {
    let would_complete = refund.succeeded_before + refund.amount >= refund.paid;
    match gateway {
        // Everything went back, this refund's money with it.
        GatewayStatus::Refunded => RefundOutcome::Succeeded,
        GatewayStatus::PartiallyRefunded => {
            if would_complete {
                // Had it happened, the payment would read fully refunded.
                if shows_at_once {
                    RefundOutcome::Failed
                } else {
                    RefundOutcome::StillUnknown
                }
            } else if refund.succeeded_before == 0 {
                // Nothing of ours had gone back before, and now some has.
                RefundOutcome::Succeeded
            } else {
                // It read partially refunded before this refund too: no telling.
                RefundOutcome::StillUnknown
            }
        }
        // Paid and not refunded at all.
        GatewayStatus::Paid if shows_at_once && refund.succeeded_before == 0 => {
            RefundOutcome::Failed
        }
        _ => RefundOutcome::StillUnknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn status() -> impl Strategy<Value = GatewayStatus> {
        prop_oneof![
            Just(GatewayStatus::Paid),
            Just(GatewayStatus::Refunded),
            Just(GatewayStatus::PartiallyRefunded),
            Just(GatewayStatus::Pending),
            Just(GatewayStatus::Unpaid),
            Just(GatewayStatus::Failed),
            Just(GatewayStatus::Unrecognised("Weird".into())),
        ]
    }

    /// A payment and a refund that fit in it: succeeded_before + amount <= paid.
    fn refund() -> impl Strategy<Value = UnknownRefund> {
        (1i64..10_000_000)
            .prop_flat_map(|paid| (Just(paid), 0..paid))
            .prop_flat_map(|(paid, before)| (Just(paid), Just(before), 1..=paid - before))
            .prop_map(|(paid, succeeded_before, amount)| UnknownRefund {
                paid,
                succeeded_before,
                amount,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Money rules: a refund is never called succeeded unless the gateway
        /// reports money gone back, and never in an amount the gateway's status
        /// contradicts; never called failed when the gateway reports everything
        /// refunded; and a gateway that is not prompt never has a refund failed for
        /// looking unrefunded.
        #[test]
        fn outcomes_never_contradict_the_gateway(r in refund(), s in status(), at_once: bool) {
            let out = unknown_refund_outcome(r, &s, at_once);
            let total = r.succeeded_before + r.amount;
            match out {
                RefundOutcome::Succeeded => {
                    prop_assert!(matches!(s, GatewayStatus::Refunded | GatewayStatus::PartiallyRefunded));
                    if s == GatewayStatus::PartiallyRefunded {
                        // Partially refunded is less than everything.
                        prop_assert!(total < r.paid);
                    }
                }
                RefundOutcome::Failed => {
                    prop_assert!(at_once);
                    prop_assert!(s != GatewayStatus::Refunded);
                    if s == GatewayStatus::PartiallyRefunded {
                        prop_assert!(total >= r.paid);
                    }
                }
                RefundOutcome::StillUnknown => {}
            }
            // Never refunded, never paid: nothing to conclude from those.
            if !matches!(s, GatewayStatus::Refunded | GatewayStatus::PartiallyRefunded | GatewayStatus::Paid) {
                prop_assert_eq!(out, RefundOutcome::StillUnknown);
            }
        }

        /// A prompt gateway (Khalti) that still calls a never-refunded payment paid
        /// has not refunded it: the outcome is decided, the payment unblocked.
        #[test]
        fn a_prompt_gateway_decides_a_first_refund(r in refund(), s in status()) {
            let first = UnknownRefund { succeeded_before: 0, ..r };
            let out = unknown_refund_outcome(first, &s, true);
            match s {
                GatewayStatus::Refunded => prop_assert_eq!(out, RefundOutcome::Succeeded),
                GatewayStatus::Paid => prop_assert_eq!(out, RefundOutcome::Failed),
                GatewayStatus::PartiallyRefunded if first.amount < first.paid =>
                    prop_assert_eq!(out, RefundOutcome::Succeeded),
                GatewayStatus::PartiallyRefunded => prop_assert_eq!(out, RefundOutcome::Failed),
                _ => prop_assert_eq!(out, RefundOutcome::StillUnknown),
            }
        }
    }

    #[test]
    fn examples() {
        let r = UnknownRefund {
            paid: 50_000,
            succeeded_before: 0,
            amount: 50_000,
        };
        let at = |s, once| unknown_refund_outcome(r, &s, once);
        assert_eq!(at(GatewayStatus::Refunded, true), RefundOutcome::Succeeded);
        assert_eq!(at(GatewayStatus::Paid, true), RefundOutcome::Failed);
        // Chapa: a refund takes days to show; "still paid" proves nothing.
        assert_eq!(at(GatewayStatus::Paid, false), RefundOutcome::StillUnknown);
        let partial = UnknownRefund {
            amount: 20_000,
            ..r
        };
        assert_eq!(
            unknown_refund_outcome(partial, &GatewayStatus::PartiallyRefunded, true),
            RefundOutcome::Succeeded
        );
        let second = UnknownRefund {
            succeeded_before: 20_000,
            ..partial
        };
        assert_eq!(
            unknown_refund_outcome(second, &GatewayStatus::PartiallyRefunded, true),
            RefundOutcome::StillUnknown
        );
    }
}

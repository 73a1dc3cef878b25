//! The browser's return from a gateway's checkout (`/payment-success/?…`): a signal,
//! never proof. Anyone can load that URL as often as they like, signed in or not, so
//! what it costs is bounded here: the query kept for audit is capped, and it makes at
//! most one gateway lookup per payment every few seconds.

use crate::telemetry::SettledVia;
use chrono::{DateTime, Duration, Utc};
use tracing::warn;

use super::{PaymentKey, Tijori};
use crate::account::User;
use crate::error::{Error, Result};
use crate::gateway::{GatewayError, SignedReturn};
use crate::payment::Payment;
use crate::store::OperatorEventKind;

/// The least time between two gateway lookups the return page makes for one payment,
/// however often it is loaded (a reload loop, or a stranger replaying the URL).
pub const RETURN_LOOKUP_EVERY_SECS: i64 = 5;

/// The most of a return redirect's or Chapa callback's query string kept on the
/// payment's audit trail: the gateway's own parameters fit many times.
pub const MAX_RETURN_QUERY_BYTES: usize = 2_048;

/// Whether the return page may look a payment up now, given when anything last did
/// (`checked_at`): at most once per [`RETURN_LOOKUP_EVERY_SECS`].
pub fn return_lookup_due(checked_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    checked_at.is_none_or(|at| at <= return_lookup_cutoff(now))
}

/// The latest `checked_at` after which a return lookup is not due (the store's
/// compare-and-set applies [`return_lookup_due`] with it).
pub fn return_lookup_cutoff(now: DateTime<Utc>) -> DateTime<Utc> {
    now - Duration::seconds(RETURN_LOOKUP_EVERY_SECS)
}

/// At most [`MAX_RETURN_QUERY_BYTES`] of `query`, cut at a character boundary.
pub fn kept_return_query(query: &str) -> &str {
    if query.len() <= MAX_RETURN_QUERY_BYTES {
        return query;
    }
    let mut cut = MAX_RETURN_QUERY_BYTES;
    while !query.is_char_boundary(cut) {
        cut -= 1;
    }
    &query[..cut]
}

/// What a return came to: the payment as it now stands, and why the gateway could not
/// be asked, when it could not.
#[derive(Debug)]
pub struct Returned {
    /// After the lookup, or as it stood when none was made or the gateway could not
    /// answer.
    pub payment: Payment,
    /// Why the gateway could not answer now; the payment stays as it was, to be asked
    /// again.
    pub gateway_problem: Option<GatewayError>,
}

impl Tijori {
    /// The payment a gateway's signed return redirect names (eSewa's success redirect
    /// carries its reference only inside its signed `data`); `None` when no gateway
    /// reads one in `query`, or when it does not verify (it names nothing then).
    ///
    /// The redirect is evidence, never a verdict: one that does not verify, or that
    /// claims another amount than the payment's, grants nothing and is put on the
    /// operator's list (one open note per payment, so that a stranger replaying a URL
    /// cannot fill it).
    pub async fn signed_return(&self, query: &str) -> Result<Option<PaymentKey>> {
        let query = kept_return_query(query);
        for gw in self.gateways.iter() {
            let Some(read) = gw.read_return(query) else {
                continue;
            };
            let kind = gw.kind();
            return match read {
                SignedReturn::Verified {
                    reference,
                    amount_minor,
                } => {
                    if let Some(p) = self.store.payment_by_provider_ref(kind, &reference).await? {
                        if p.amount.minor() != amount_minor {
                            let detail = format!(
                                "{kind}'s signed return for payment {} says {amount_minor} minor \
                                 units were paid, but the payment is for {}: nothing was \
                                 granted on it",
                                p.id, p.amount
                            );
                            self.note_suspect_return(&p, &detail).await?;
                        }
                    }
                    Ok(Some(PaymentKey::ProviderRef(kind, reference)))
                }
                SignedReturn::Forged { reference, why } => {
                    warn!(gateway = %kind, reason = %why, "a signed return that does not verify: ignored");
                    if let Some(reference) = reference {
                        if let Some(p) =
                            self.store.payment_by_provider_ref(kind, &reference).await?
                        {
                            let detail = format!(
                                "a return for payment {} whose {kind} signature does not verify \
                                 ({why}): nothing was granted on it",
                                p.id
                            );
                            self.note_suspect_return(&p, &detail).await?;
                        }
                    }
                    Ok(None)
                }
            };
        }
        Ok(None)
    }

    /// One open note per payment: a stranger replaying a URL adds nothing more until
    /// the operator resolves it.
    async fn note_suspect_return(&self, payment: &Payment, detail: &str) -> Result<()> {
        self.store
            .record_operator_event_once(
                OperatorEventKind::ReturnSuspect,
                &payment.id,
                detail,
                self.now(),
            )
            .await?;
        Ok(())
    }

    /// The browser came back from the gateway naming `key`: the signal is recorded
    /// (capped) and the payment looked up at its gateway, when that can still change
    /// something and no lookup was made in the last few seconds. The visitor need not
    /// be signed in (a session may expire while paying): looking up is harmless, since
    /// only the gateway's answer settles anything. A signed-in `viewer` is shown only
    /// their own payments (any, for an admin); someone else's is not theirs to
    /// signal, and is `None` like a reference we do not know.
    pub async fn payment_returned(
        &self,
        key: &PaymentKey,
        query: &str,
        viewer: Option<&User>,
    ) -> Result<Option<Returned>> {
        let payment = match key {
            PaymentKey::Id(id) => self.store.payment(id).await?,
            PaymentKey::ProviderRef(gw, r) => self.store.payment_by_provider_ref(*gw, r).await?,
        };
        let Some(payment) =
            payment.filter(|p| viewer.is_none_or(|v| v.is_admin || v.id == p.user_id))
        else {
            return Ok(None);
        };
        let now = self.now();
        if !payment.worth_looking_up(now) {
            return Ok(Some(Returned {
                payment,
                gateway_problem: None,
            }));
        }
        // The signal is kept with the lookup it causes, so at most one a payment
        // every few seconds however often the page is loaded: anyone who knows a
        // reference could otherwise grow the audit trail without bound.
        let due = self
            .store
            .claim_lookup(&payment.id, now, return_lookup_cutoff(now))
            .await?;
        if due {
            self.record_return_signal(&payment.id, query).await?;
        } else {
            // Looked at a moment ago (by a callback, a webhook, another load of this
            // page): that answer, if it is in, is the payment as it now stands.
            let payment = self.store.payment(&payment.id).await?.unwrap_or(payment);
            return Ok(Some(Returned {
                payment,
                gateway_problem: None,
            }));
        }
        match self
            .check_at_gateway(payment.clone(), SettledVia::Return)
            .await
        {
            Ok(settled) => Ok(Some(Returned {
                payment: settled.payment,
                gateway_problem: None,
            })),
            // The gateway could not answer now; the payment stays as it was, to be
            // asked again (by the page's own polling, or the reconciler).
            Err(Error::Gateway(e)) => {
                warn!(payment = %payment.id, error = %e, "return page: lookup failed");
                Ok(Some(Returned {
                    payment,
                    gateway_problem: Some(e),
                }))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_return_looks_up_at_most_once_every_few_seconds() {
        let now = Utc::now();
        assert!(return_lookup_due(None, now));
        assert!(!return_lookup_due(Some(now), now));
        assert!(!return_lookup_due(
            Some(now - Duration::seconds(RETURN_LOOKUP_EVERY_SECS - 1)),
            now
        ));
        assert!(return_lookup_due(
            Some(now - Duration::seconds(RETURN_LOOKUP_EVERY_SECS)),
            now
        ));
    }

    #[test]
    fn the_kept_query_is_capped_at_a_character_boundary() {
        assert_eq!(
            kept_return_query("pidx=abc&status=Completed"),
            "pidx=abc&status=Completed"
        );
        let long = "x".repeat(5_000);
        assert_eq!(kept_return_query(&long).len(), MAX_RETURN_QUERY_BYTES);
        let wide = "é".repeat(2_000); // two bytes each
        let kept = kept_return_query(&wide);
        assert!(kept.len() <= MAX_RETURN_QUERY_BYTES && kept.chars().all(|c| c == 'é'));
    }
}

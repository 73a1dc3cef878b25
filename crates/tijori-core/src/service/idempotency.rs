//! Idempotency keys: a repeated request answers as the first did, and a request
//! that takes over a key whose holder died finds what that holder left.

use tracing::{info, warn};

use crate::error::Result;
use crate::id::UserId;
use crate::idempotency::{Attempt, Claim, Claimant, IdempotencyKey, StoredResponse};
use crate::payment::{Payment, PaymentStatus};

use super::*;

impl Tijori {
    // Idempotency keys -----------------------------------------------------------
    /// Claims `key` for this process (see `Store::claim_idempotency_key`).
    pub async fn claim_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> Result<Claim> {
        let now = self.now();
        let claimant = Claimant::new(self.instance.clone(), now);
        Ok(self
            .store
            .claim_idempotency_key(user, key, fingerprint, &claimant, now)
            .await?)
    }

    /// The attempt a claimed key stands for, for the use-case the request runs.
    pub fn attempt(&self, user: &UserId, key: &IdempotencyKey, claim: &Claim) -> Option<Attempt> {
        let left = match claim {
            Claim::New => Default::default(),
            Claim::TakenOver(left) => left.clone(),
            _ => return None,
        };
        Some(Attempt {
            user: user.clone(),
            key: key.clone(),
            holder: self.instance.clone(),
            left,
        })
    }

    /// Keeps the response to replay for the key's repeats, if this process still holds
    /// the key (a successor's answer is never overwritten).
    pub async fn complete_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        response: &StoredResponse,
    ) -> Result<()> {
        Ok(self
            .store
            .complete_idempotency_key(user, key, &self.instance, response)
            .await?)
    }

    /// Forgets a claim whose request did not complete, so a retry runs again (if this
    /// process still holds the key).
    pub async fn release_idempotency_key(&self, user: &UserId, key: &IdempotencyKey) -> Result<()> {
        Ok(self
            .store
            .release_idempotency_key(user, key, &self.instance)
            .await?)
    }

    /// What a previous holder of the request's key left of a checkout: the payment,
    /// if its checkout opened (handed back rather than opening a second one for the
    /// same key). One whose checkout never opened (the process died before or during
    /// the gateway call) is closed now, so it blocks nothing; the gateway may hold a
    /// checkout for it that nobody was ever sent to.
    pub(super) async fn left_checkout(&self, attempt: Option<&Attempt>) -> Result<Option<Payment>> {
        let Some(id) = attempt.and_then(|a| a.left.payment.as_ref()) else {
            return Ok(None);
        };
        let Some(payment) = self.store.payment(id).await? else {
            return Ok(None);
        };
        if payment.provider_ref.is_some() && payment.payment_url.is_some() {
            info!(payment = %payment.id, "idempotent retry: reusing the checkout its first attempt opened");
            return Ok(Some(payment));
        }
        if payment.status == PaymentStatus::Initiated {
            warn!(payment = %payment.id, "idempotent retry: closing the payment its first attempt left unopened");
            match self
                .fail_initiation(
                    &payment.id,
                    "the request opening its checkout stopped before the gateway answered",
                    None,
                )
                .await
            {
                Ok(_) | Err(crate::store::StoreError::NotFound(_)) => {
                    self.announce_change(&payment.id)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }
}

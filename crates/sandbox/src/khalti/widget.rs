//! Legacy KPG-1 ("widget") transactions and their lifecycle (khalti.md §9).
//!
//! ```text
//! payment/initiate/ ──▶ Initiated ──(payment/confirm/, OTP)──▶ Confirmed ──(payment/verify/)──▶ Completed
//! _sandbox/widget/tokens ─────────────────────────────────────▶ Confirmed
//! Completed ──(refund partial)──▶ Partially refunded ──(refund rest)──▶ Refunded
//! Completed ──(refund full)──▶ Refunded
//! ```
//!
//! khalti.md §9.3: the money moves to the merchant only on verify (Confirmed →
//! Completed). A widget transaction never expires in the sandbox (khalti.md says
//! nothing about a KPG-1 token's lifetime).

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::store::{mask_mobile, KhaltiState, RefundError};
use crate::ids::short_id_from;
use crate::time::khalti_timestamp;

/// `type.idx` of a wallet payment: the value in khalti.md §9.3's sample. It names the
/// transaction type, so it is the same for every transaction.
const WALLET_PAYMENT_TYPE_IDX: &str = "e476BL6jt9kgagEmsakyTL";
/// `state.idx` of `Completed`, from khalti.md §9.3's sample (a state identifier).
const COMPLETED_STATE_IDX: &str = "DhvMj9hdRufLqkP8ZY4d8g";
/// The merchant of every simulated transaction (khalti.md §9.3's sample).
const MERCHANT_IDX: &str = "UM75Gm2gWmZvA4TPwkwZye";
const MERCHANT_NAME: &str = "Test Merchant";
const MERCHANT_MOBILE: &str = "testmerchant@khalti.com";
/// The name of every test wallet's owner (khalti.md §9.3's sample).
const USER_NAME: &str = "Test User";

/// Legacy transaction states (khalti.md §9.4 "Legacy transaction states"). The
/// sandbox never produces Disabled or Failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WidgetState {
    Initiated,
    Confirmed,
    Completed,
    Refunded,
    PartiallyRefunded,
}

impl WidgetState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WidgetState::Initiated => "Initiated",
            WidgetState::Confirmed => "Confirmed",
            WidgetState::Completed => "Completed",
            WidgetState::Refunded => "Refunded",
            // khalti.md §9.4 spells the legacy state "Partially refunded".
            WidgetState::PartiallyRefunded => "Partially refunded",
        }
    }
}

impl fmt::Display for WidgetState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a widget state change was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WidgetError {
    NotFound,
    AmountMismatch,
    WrongState(WidgetState),
}

/// The fields of a valid `payment/initiate/` (or of a minted token).
#[derive(Clone, Debug)]
pub(crate) struct NewWidgetTxn {
    pub mobile: String,
    pub amount: i64,
    pub product_identity: String,
    pub product_name: String,
    pub product_url: Option<String>,
    pub merchant_extra: Map<String, Value>,
}

#[derive(Clone, Debug)]
pub(crate) struct WidgetTxn {
    /// What the client gets from initiate and the merchant sends to verify.
    pub token: String,
    /// The transaction's id (verify's `idx`, the refund route's `{transaction_id}`).
    pub idx: String,
    seq: u64,
    pub req: NewWidgetTxn,
    pub state: WidgetState,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub verified_at: Option<DateTime<Utc>>,
    pub refunded_amount: i64,
    /// Successful verify calls (a repeated verify answers the same record).
    pub verifications: u32,
    /// Created by the `_sandbox/widget/tokens` control rather than initiate + confirm.
    pub minted: bool,
}

impl WidgetTxn {
    /// `payment/confirm/`'s answer (khalti.md §9.2), plus `idx` and `product_url`: the
    /// widget's `onSuccess` payload (khalti.md §9.1) carries them next to the same
    /// fields, so the SDK gets them from here. `mobile` is masked as in that payload.
    pub(crate) fn confirm_body(&self) -> Value {
        let mut body = json!({
            "idx": self.idx,
            "token": self.token,
            "amount": self.req.amount,
            "mobile": mask_mobile(&self.req.mobile),
            "product_identity": self.req.product_identity,
            "product_name": self.req.product_name,
        });
        if let Some(url) = &self.req.product_url {
            body["product_url"] = json!(url);
        }
        body
    }

    /// The transaction record `payment/verify/` answers (khalti.md §9.3), for a
    /// Completed transaction. Everything in it is fixed once the transaction
    /// completes, so a repeated verify gets the very same record.
    pub(crate) fn verify_record(&self) -> Value {
        json!({
            "idx": self.idx,
            "type": { "idx": WALLET_PAYMENT_TYPE_IDX, "name": "Wallet payment" },
            "state": { "idx": COMPLETED_STATE_IDX, "name": "Completed", "template": "is complete" },
            "amount": self.req.amount,
            "fee_amount": fee(self.req.amount),
            "refunded": false,
            "created_on": khalti_timestamp(self.created_at),
            "ebanker": null,
            "user": {
                "idx": user_idx(&self.req.mobile),
                "name": USER_NAME,
                "mobile": mask_mobile_verify(&self.req.mobile),
            },
            "merchant": { "idx": MERCHANT_IDX, "name": MERCHANT_NAME, "mobile": MERCHANT_MOBILE },
        })
    }

    /// `payment/status/`'s answer for this transaction (khalti.md §9.4, bodies
    /// verbatim, "Transaciton" misspellings included).
    pub(crate) fn status_body(&self) -> Value {
        match self.state {
            WidgetState::Initiated => {
                json!({"status": true, "detail": "Transaciton initiated.", "state": "Initiated"})
            }
            WidgetState::Confirmed => {
                json!({"status": true, "detail": "Transaciton not verified.", "state": "Confirmed"})
            }
            WidgetState::Completed => {
                json!({"status": true, "detail": "Transaction complete.", "state": "Complete"})
            }
            WidgetState::Refunded => {
                json!({"status": false, "detail": "Transaciton refunded.", "state": "Refunded"})
            }
            WidgetState::PartiallyRefunded => json!({
                "status": false, "detail": "Transaction partially refunded.", "state": "Partially refunded"
            }),
        }
    }

    /// The sandbox's full record of the transaction (test controls only).
    pub(crate) fn record(&self) -> Value {
        json!({
            "token": self.token,
            "idx": self.idx,
            "state": self.state.as_str(),
            "amount": self.req.amount,
            "mobile": self.req.mobile,
            "masked_mobile": mask_mobile(&self.req.mobile),
            "product_identity": self.req.product_identity,
            "product_name": self.req.product_name,
            "product_url": self.req.product_url,
            "merchant_extra": self.req.merchant_extra,
            "created_on": khalti_timestamp(self.created_at),
            "confirmed_at": self.confirmed_at.map(khalti_timestamp),
            "verified_at": self.verified_at.map(khalti_timestamp),
            "refunded_amount": self.refunded_amount,
            "verify_count": self.verifications,
            "minted": self.minted,
        })
    }
}

/// `fee_amount`: 3 %, rounded half up; khalti.md §9.3's sample charges 30 on 1000.
/// The real rate is per merchant.
fn fee(amount: i64) -> i64 {
    (i128::from(amount) * 3 + 50)
        .div_euclid(100)
        .try_into()
        .unwrap_or(i64::MAX)
}

/// `98XXXXXXX` + the last digit (khalti.md §9.3's verify sample: `98XXXXXXX9`).
pub(crate) fn mask_mobile_verify(mobile: &str) -> String {
    let last = mobile.chars().last().map(String::from).unwrap_or_default();
    format!("98XXXXXXX{last}")
}

/// A stable `user.idx` per wallet, so the same test wallet always shows the same user.
fn user_idx(mobile: &str) -> String {
    let digest = Sha256::digest(mobile.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    short_id_from(u128::from_be_bytes(bytes))
}

/// All widget transactions, by token.
#[derive(Default)]
pub(crate) struct WidgetStore {
    txns: HashMap<String, WidgetTxn>,
    /// idx → token
    by_idx: HashMap<String, String>,
    seq: u64,
}

impl WidgetStore {
    /// Whether `id` is a token or an idx here.
    pub(crate) fn uses_id(&self, id: &str) -> bool {
        self.txns.contains_key(id) || self.by_idx.contains_key(id)
    }

    pub(crate) fn get(&self, token: &str) -> Option<&WidgetTxn> {
        self.txns.get(token)
    }

    /// By token, or else by idx (khalti.md §9.4: status takes either).
    pub(crate) fn find(&self, token_or_idx: &str) -> Option<&WidgetTxn> {
        self.txns.get(token_or_idx).or_else(|| {
            self.by_idx
                .get(token_or_idx)
                .and_then(|token| self.txns.get(token))
        })
    }

    pub(crate) fn has_idx(&self, idx: &str) -> bool {
        self.by_idx.contains_key(idx)
    }

    /// The `limit` most recent transactions, newest first.
    pub(crate) fn recent(&self, limit: usize) -> Vec<&WidgetTxn> {
        let mut all: Vec<&WidgetTxn> = self.txns.values().collect();
        all.sort_by_key(|t| std::cmp::Reverse(t.seq));
        all.truncate(limit);
        all
    }
}

impl KhaltiState {
    /// `payment/initiate/`: stores a new `Initiated` transaction (in the real flow the
    /// wallet now gets the OTP).
    pub(crate) fn widget_initiate(&mut self, req: NewWidgetTxn, now: DateTime<Utc>) -> &WidgetTxn {
        let token = self.fresh_id();
        let idx = loop {
            let idx = self.fresh_id();
            if idx != token {
                break idx;
            }
        };
        let widget = &mut self.widget;
        widget.seq += 1;
        let txn = WidgetTxn {
            token: token.clone(),
            idx: idx.clone(),
            seq: widget.seq,
            req,
            state: WidgetState::Initiated,
            created_at: now,
            confirmed_at: None,
            verified_at: None,
            refunded_amount: 0,
            verifications: 0,
            minted: false,
        };
        widget.by_idx.insert(idx, token.clone());
        widget.txns.entry(token).or_insert(txn)
    }

    /// `payment/confirm/` with the right OTP and MPIN: `Initiated` → `Confirmed`.
    pub(crate) fn widget_confirm(
        &mut self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<&WidgetTxn, WidgetError> {
        let txn = self
            .widget
            .txns
            .get_mut(token)
            .ok_or(WidgetError::NotFound)?;
        if txn.state != WidgetState::Initiated {
            return Err(WidgetError::WrongState(txn.state));
        }
        txn.state = WidgetState::Confirmed;
        txn.confirmed_at = Some(now);
        Ok(txn)
    }

    /// The `_sandbox/widget/tokens` control: a transaction already `Confirmed`, as if
    /// the customer had finished the widget.
    pub(crate) fn widget_mint(&mut self, req: NewWidgetTxn, now: DateTime<Utc>) -> &WidgetTxn {
        let token = self.widget_initiate(req, now).token.clone();
        let txn = self
            .widget
            .txns
            .get_mut(&token)
            .expect("just created the transaction");
        txn.state = WidgetState::Confirmed;
        txn.confirmed_at = Some(now);
        txn.minted = true;
        txn
    }

    /// `payment/verify/`: checks the amount, then `Confirmed` → `Completed`. A
    /// `Completed` transaction verifies again with the same result (see
    /// `widget_api::verify` for why).
    pub(crate) fn widget_verify(
        &mut self,
        token: &str,
        amount: i64,
        now: DateTime<Utc>,
    ) -> Result<&WidgetTxn, WidgetError> {
        let txn = self
            .widget
            .txns
            .get_mut(token)
            .ok_or(WidgetError::NotFound)?;
        if txn.req.amount != amount {
            return Err(WidgetError::AmountMismatch);
        }
        match txn.state {
            WidgetState::Confirmed => {
                txn.state = WidgetState::Completed;
                txn.verified_at = Some(now);
            }
            WidgetState::Completed => {}
            other => return Err(WidgetError::WrongState(other)),
        }
        txn.verifications += 1;
        Ok(txn)
    }

    /// Refund `amount` paisa (all that is left when `None`) of a widget transaction,
    /// by idx, through the same refund route as ePayment (khalti.md §6; §9.5 shows
    /// legacy transactions under the same `merchant-transaction/<idx>/` resource).
    pub(crate) fn widget_refund(
        &mut self,
        idx: &str,
        amount: Option<i64>,
    ) -> Result<&WidgetTxn, RefundError> {
        let token = self
            .widget
            .by_idx
            .get(idx)
            .cloned()
            .ok_or(RefundError::NotFound)?;
        let txn = self
            .widget
            .txns
            .get_mut(&token)
            .ok_or(RefundError::NotFound)?;
        match txn.state {
            WidgetState::Completed | WidgetState::PartiallyRefunded => {}
            WidgetState::Refunded => return Err(RefundError::AlreadyRefunded),
            other => return Err(RefundError::NotRefundable(other.as_str())),
        }
        let refundable = txn.req.amount - txn.refunded_amount;
        let amount = amount.unwrap_or(refundable);
        if amount > refundable {
            return Err(RefundError::AmountTooLarge { refundable });
        }
        txn.refunded_amount += amount;
        txn.state = if txn.refunded_amount >= txn.req.amount {
            WidgetState::Refunded
        } else {
            WidgetState::PartiallyRefunded
        };
        Ok(txn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::khalti::KhaltiSettings;

    fn request(amount: i64) -> NewWidgetTxn {
        NewWidgetTxn {
            mobile: "9800000001".into(),
            amount,
            product_identity: "1234567890".into(),
            product_name: "Dragon".into(),
            product_url: None,
            merchant_extra: Map::new(),
        }
    }

    #[test]
    fn masks_like_the_verify_sample() {
        assert_eq!(mask_mobile_verify("9800000009"), "98XXXXXXX9");
        assert_eq!(mask_mobile_verify(""), "98XXXXXXX");
    }

    #[test]
    fn fee_matches_the_sample() {
        assert_eq!(fee(1000), 30);
        assert_eq!(fee(1050), 32); // 31.5 rounds up
        assert!(fee(i64::MAX) > 0, "no overflow");
    }

    #[test]
    fn user_idx_is_stable_per_wallet() {
        assert_eq!(user_idx("9800000001"), user_idx("9800000001"));
        assert_ne!(user_idx("9800000001"), user_idx("9800000002"));
        assert_eq!(user_idx("9800000001").len(), 22);
    }

    #[test]
    fn initiate_confirm_verify_then_verify_again() {
        let now = Utc::now();
        let mut state = KhaltiState::new(KhaltiSettings::default());
        let token = state.widget_initiate(request(1000), now).token.clone();
        assert_eq!(
            state.widget_verify(&token, 1000, now).unwrap_err(),
            WidgetError::WrongState(WidgetState::Initiated)
        );
        state.widget_confirm(&token, now).unwrap();
        assert_eq!(
            state.widget_confirm(&token, now).unwrap_err(),
            WidgetError::WrongState(WidgetState::Confirmed)
        );
        assert_eq!(
            state.widget_verify(&token, 999, now).unwrap_err(),
            WidgetError::AmountMismatch
        );
        let first = state
            .widget_verify(&token, 1000, now)
            .unwrap()
            .verify_record();
        let later = now + chrono::Duration::seconds(5);
        let second = state.widget_verify(&token, 1000, later).unwrap();
        assert_eq!(second.verifications, 2);
        assert_eq!(second.verify_record(), first);
        assert_eq!(
            state.widget_verify("nope", 1000, now).unwrap_err(),
            WidgetError::NotFound
        );
    }

    #[test]
    fn ids_are_distinct_and_findable() {
        let now = Utc::now();
        let mut state = KhaltiState::new(KhaltiSettings::default());
        let txn = state.widget_mint(request(2000), now);
        let (token, idx) = (txn.token.clone(), txn.idx.clone());
        assert_ne!(token, idx);
        assert_eq!(txn.state, WidgetState::Confirmed);
        assert_eq!(state.widget.find(&idx).unwrap().token, token);
        assert_eq!(state.widget.find(&token).unwrap().idx, idx);
        assert!(state.widget.get(&idx).is_none(), "get takes tokens only");
    }

    #[test]
    fn refunds_need_a_completed_transaction() {
        let now = Utc::now();
        let mut state = KhaltiState::new(KhaltiSettings::default());
        let txn = state.widget_mint(request(2000), now);
        let (token, idx) = (txn.token.clone(), txn.idx.clone());
        assert_eq!(
            state.widget_refund(&idx, None).unwrap_err(),
            RefundError::NotRefundable("Confirmed")
        );
        state.widget_verify(&token, 2000, now).unwrap();
        assert_eq!(
            state.widget_refund(&idx, Some(500)).unwrap().state,
            WidgetState::PartiallyRefunded
        );
        assert_eq!(
            state.widget_refund(&idx, Some(5000)).unwrap_err(),
            RefundError::AmountTooLarge { refundable: 1500 }
        );
        assert_eq!(
            state.widget_refund(&idx, None).unwrap().state,
            WidgetState::Refunded
        );
        assert_eq!(
            state.widget_refund(&idx, None).unwrap_err(),
            RefundError::AlreadyRefunded
        );
        assert_eq!(
            state.widget_verify(&token, 2000, now).unwrap_err(),
            WidgetError::WrongState(WidgetState::Refunded)
        );
    }
}

//! In-memory payments and their lifecycle (khalti.md §5.3).
//!
//! ```text
//! initiate ──▶ Initiated ──(pay)──▶ Completed ──(refund full)──▶ Refunded
//!                 │   └──(pay, pending_lookups > 0)──▶ Pending ──(N lookups)──▶ Completed
//!                 ├──(cancel)──────────▶ User canceled   (terminal)
//!                 └──(now ≥ expires_at)─▶ Expired        (terminal, evaluated lazily)
//! Completed ──(refund partial)──▶ Partially Refunded ──(refund rest)──▶ Refunded
//! ```

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use url::Url;

use super::widget::WidgetStore;
use super::{Fault, KhaltiSettings};
use crate::ids::short_id;
use crate::time::khalti_timestamp;

/// Lookup `status` values (khalti.md §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Initiated,
    Pending,
    Completed,
    Refunded,
    PartiallyRefunded,
    Expired,
    UserCanceled,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Initiated => "Initiated",
            Status::Pending => "Pending",
            Status::Completed => "Completed",
            Status::Refunded => "Refunded",
            // khalti.md §5.2: the docs' status table spells it "Partially Refunded"
            // (the prose says "Partially refunded"); we use the table's spelling.
            Status::PartiallyRefunded => "Partially Refunded",
            Status::Expired => "Expired",
            Status::UserCanceled => "User canceled",
        }
    }

    /// `transaction_id` is visible in lookup only once the money moved (§5.1).
    fn shows_transaction(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Refunded | Status::PartiallyRefunded
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a state change was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransitionError {
    NotFound,
    WrongState {
        status: Status,
        wanted: &'static str,
    },
}

impl fmt::Display for TransitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionError::NotFound => f.write_str("no such payment"),
            TransitionError::WrongState { status, wanted } => {
                write!(f, "cannot {wanted} a payment that is {status}")
            }
        }
    }
}

/// Why a refund was refused (the bodies are ours: khalti.md §6 / §12 q8 document none).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RefundError {
    NotFound,
    AlreadyRefunded,
    /// The transaction's status (ePayment) or state (legacy widget).
    NotRefundable(&'static str),
    AmountTooLarge {
        refundable: i64,
    },
}

impl std::fmt::Display for RefundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefundError::NotFound => f.write_str("no such transaction"),
            RefundError::AlreadyRefunded => f.write_str("already refunded"),
            RefundError::NotRefundable(s) => write!(f, "a {s} transaction cannot be refunded"),
            RefundError::AmountTooLarge { refundable } => {
                write!(f, "at most {refundable} paisa can be refunded")
            }
        }
    }
}

/// The fields of a valid initiate request.
#[derive(Clone, Debug)]
pub(crate) struct NewPayment {
    pub return_url: String,
    pub website_url: String,
    pub amount: i64,
    pub purchase_order_id: String,
    pub purchase_order_name: String,
    pub customer_info: Option<Value>,
    pub amount_breakdown: Option<Value>,
    pub product_details: Option<Value>,
    pub modes: Option<Value>,
    pub merchant_extra: Map<String, Value>,
}

#[derive(Clone, Debug)]
pub(crate) struct Payment {
    pub pidx: String,
    seq: u64,
    pub req: NewPayment,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub expires_in: u64,
    pub status: Status,
    pub transaction_id: Option<String>,
    /// Full Khalti ID of the payer (the redirect and pages show it masked).
    pub mobile: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub pending_lookups_left: u32,
    pub refunded_amount: i64,
    pub lookups: u32,
    /// Where the checkout sent (or would send) the browser after pay/cancel.
    pub redirect_url: Option<String>,
}

impl Payment {
    /// Expiry is evaluated lazily, whenever the payment is touched (khalti.md §11).
    fn refresh(&mut self, now: DateTime<Utc>) {
        if self.status == Status::Initiated && now >= self.expires_at {
            self.status = Status::Expired;
            self.finished_at = Some(self.expires_at);
        }
    }

    pub(crate) fn masked_mobile(&self) -> Option<String> {
        self.mobile.as_deref().map(mask_mobile)
    }

    /// The six documented lookup fields (khalti.md §5.1) and the HTTP status.
    ///
    /// khalti.md §12 q3: we do not add `purchase_order_id`, `purchase_order_name` or
    /// `extra_merchant_params`; the docs show only these six, and a client that
    /// needs more would break against the real API.
    pub(crate) fn lookup_body(&self) -> Value {
        json!({
            "pidx": self.pidx,
            "total_amount": self.req.amount,
            "status": self.status.as_str(),
            "transaction_id": if self.status.shows_transaction() { self.transaction_id.clone() } else { None },
            "fee": 0,
            // khalti.md §5.2 / §12 q8 leave `refunded` open for Partially Refunded; we
            // answer true as soon as any money went back.
            "refunded": matches!(self.status, Status::Refunded | Status::PartiallyRefunded),
        })
    }

    /// The sandbox's full record of the payment (test controls only).
    pub(crate) fn record(&self, public_url: &Url) -> Value {
        json!({
            "pidx": self.pidx,
            "status": self.status.as_str(),
            "payment_url": payment_url(public_url, &self.pidx),
            "amount": self.req.amount,
            "return_url": self.req.return_url,
            "website_url": self.req.website_url,
            "purchase_order_id": self.req.purchase_order_id,
            "purchase_order_name": self.req.purchase_order_name,
            "customer_info": self.req.customer_info,
            "amount_breakdown": self.req.amount_breakdown,
            "product_details": self.req.product_details,
            "modes": self.req.modes,
            "merchant_extra": self.req.merchant_extra,
            "created_at": khalti_timestamp(self.created_at),
            "expires_at": khalti_timestamp(self.expires_at),
            "expires_in": self.expires_in,
            "transaction_id": self.transaction_id,
            "mobile": self.mobile,
            "masked_mobile": self.masked_mobile(),
            "paid_at": self.paid_at.map(khalti_timestamp),
            "finished_at": self.finished_at.map(khalti_timestamp),
            "refunded_amount": self.refunded_amount,
            "pending_lookups_left": self.pending_lookups_left,
            "lookup_count": self.lookups,
            "redirect_url": self.redirect_url,
        })
    }

    /// The browser redirect to `return_url` after pay (`status` `Completed` or
    /// `Pending`) or cancel, with exactly the khalti.md §4.2 parameters in the
    /// documented order.
    fn return_redirect(&self) -> String {
        let amount = self.req.amount.to_string();
        let order_id = self.req.purchase_order_id.as_str();
        let order_name = self.req.purchase_order_name.as_str();
        let status = self.status.as_str();
        if self.status == Status::UserCanceled {
            // Cancel sample order (§4.2); ids and mobile empty (§4.3).
            return append_query(
                &self.req.return_url,
                &[
                    ("pidx", &self.pidx),
                    ("transaction_id", ""),
                    ("tidx", ""),
                    ("amount", &amount),
                    ("total_amount", &amount),
                    ("mobile", ""),
                    ("status", status),
                    ("purchase_order_id", order_id),
                    ("purchase_order_name", order_name),
                ],
            );
        }
        // Success sample order (§4.2). For `Pending` (pending_lookups > 0) we send the
        // same parameters with status=Pending: the user paid with the wallet, so the
        // transaction id exists, even though lookup hides it until Completed (§5.1).
        // khalti.md documents no Pending sample; this is our choice.
        let txn = self.transaction_id.as_deref().unwrap_or("");
        let mobile = self.masked_mobile().unwrap_or_default();
        append_query(
            &self.req.return_url,
            &[
                ("pidx", &self.pidx),
                ("txnId", txn),
                ("amount", &amount),
                ("total_amount", &amount),
                ("status", status),
                ("mobile", &mobile),
                ("tidx", txn),
                ("purchase_order_id", order_id),
                ("purchase_order_name", order_name),
                ("transaction_id", txn),
            ],
        )
    }
}

/// `98XXXXX` + the last 3 digits (khalti.md §4.2: `98XXXXX904`).
pub(crate) fn mask_mobile(mobile: &str) -> String {
    let digits: Vec<char> = mobile.chars().collect();
    let tail: String = digits[digits.len().saturating_sub(3)..].iter().collect();
    format!("98XXXXX{tail}")
}

/// `{public_url}khalti/pay/?pidx=<pidx>`
pub(crate) fn payment_url(public_url: &Url, pidx: &str) -> String {
    format!("{public_url}khalti/pay/?pidx={}", encode_component(pidx))
}

/// Appends `params` to `url`'s query (with `&` when it already has one), before any
/// `#fragment`. Values are percent-encoded with `%20` for spaces (khalti.md §4.2 /
/// §12 q5: the wire encoding of `User canceled` is unconfirmed; we use `%20`).
pub(crate) fn append_query(url: &str, params: &[(&str, &str)]) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let mut out = String::from(base);
    if !base.contains('?') {
        out.push('?');
    } else if !(base.ends_with('?') || base.ends_with('&')) {
        out.push('&');
    }
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&encode_component(name));
        out.push('=');
        out.push_str(&encode_component(value));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// All Khalti simulator state.
pub(crate) struct KhaltiState {
    pub settings: KhaltiSettings,
    payments: HashMap<String, Payment>,
    /// transaction_id → pidx
    by_transaction: HashMap<String, String>,
    seq: u64,
    /// Legacy KPG-1 widget transactions (khalti.md §9).
    pub widget: WidgetStore,
}

impl KhaltiState {
    pub(crate) fn new(settings: KhaltiSettings) -> Self {
        KhaltiState {
            settings,
            payments: HashMap::new(),
            by_transaction: HashMap::new(),
            seq: 0,
            widget: WidgetStore::default(),
        }
    }

    /// The fault for this API call, counting down `fault_count`.
    pub(crate) fn take_fault(&mut self) -> Fault {
        let fault = self.settings.fault;
        if fault == Fault::None || self.settings.fault_count == 0 {
            return fault;
        }
        self.settings.fault_count -= 1;
        if self.settings.fault_count == 0 {
            // That was the last one; 0 would otherwise mean "until changed".
            self.settings.fault = Fault::None;
        }
        fault
    }

    /// A new id, unused by any payment, transaction or widget token.
    pub(crate) fn fresh_id(&self) -> String {
        loop {
            let id = short_id();
            if !self.payments.contains_key(&id)
                && !self.by_transaction.contains_key(&id)
                && !self.widget.uses_id(&id)
            {
                return id;
            }
        }
    }

    /// Stores a new `Initiated` payment. khalti.md §3.1 / §12 q6: a duplicate
    /// `purchase_order_id` is accepted and gets its own `pidx`.
    pub(crate) fn create(&mut self, req: NewPayment, now: DateTime<Utc>) -> &Payment {
        let pidx = self.fresh_id();
        self.seq += 1;
        let expires_in = self.settings.expires_in_secs;
        // Absurd lifetimes saturate instead of panicking.
        let expires_at = i64::try_from(expires_in)
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .and_then(|lifetime| now.checked_add_signed(lifetime))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let payment = Payment {
            pidx: pidx.clone(),
            seq: self.seq,
            req,
            created_at: now,
            expires_at,
            expires_in,
            status: Status::Initiated,
            transaction_id: None,
            mobile: None,
            paid_at: None,
            finished_at: None,
            pending_lookups_left: 0,
            refunded_amount: 0,
            lookups: 0,
            redirect_url: None,
        };
        self.payments.entry(pidx).or_insert(payment)
    }

    /// A payment, with expiry applied.
    pub(crate) fn get(&mut self, pidx: &str, now: DateTime<Utc>) -> Option<&mut Payment> {
        let payment = self.payments.get_mut(pidx)?;
        payment.refresh(now);
        Some(payment)
    }

    /// The `limit` most recent payments, newest first, with expiry applied.
    pub(crate) fn recent(&mut self, limit: usize, now: DateTime<Utc>) -> Vec<&Payment> {
        let mut all: Vec<&mut Payment> = self.payments.values_mut().collect();
        all.sort_by_key(|p| std::cmp::Reverse(p.seq));
        all.truncate(limit);
        all.into_iter()
            .map(|p| {
                p.refresh(now);
                &*p
            })
            .collect()
    }

    /// Lookup: applies expiry and the "answer Pending first" countdown, then returns
    /// the payment. `None` for an unknown pidx.
    pub(crate) fn lookup(&mut self, pidx: &str, now: DateTime<Utc>) -> Option<&Payment> {
        if self.settings.auto_complete
            && self
                .get(pidx, now)
                .is_some_and(|p| p.status == Status::Initiated)
        {
            // Paid as if on the checkout page (settings.auto_complete).
            let _ = self.pay(pidx, "9800000001", now);
        }
        let payment = self.get(pidx, now)?;
        payment.lookups += 1;
        if payment.status == Status::Pending {
            if payment.pending_lookups_left == 0 {
                payment.status = Status::Completed;
            } else {
                payment.pending_lookups_left -= 1;
            }
        }
        Some(payment)
    }

    /// The user pays with wallet `mobile` on the checkout page. Only an `Initiated`
    /// payment can be paid (khalti.md §5.3: terminal states stay terminal).
    pub(crate) fn pay(
        &mut self,
        pidx: &str,
        mobile: &str,
        now: DateTime<Utc>,
    ) -> Result<&Payment, TransitionError> {
        let pending = self.settings.pending_lookups;
        let txn = self.fresh_id();
        let payment = self.get(pidx, now).ok_or(TransitionError::NotFound)?;
        if payment.status != Status::Initiated {
            return Err(TransitionError::WrongState {
                status: payment.status,
                wanted: "pay",
            });
        }
        payment.status = if pending > 0 {
            Status::Pending
        } else {
            Status::Completed
        };
        payment.pending_lookups_left = pending;
        payment.transaction_id = Some(txn.clone());
        payment.mobile = Some(mobile.to_owned());
        payment.paid_at = Some(now);
        payment.finished_at = Some(now);
        payment.redirect_url = Some(payment.return_redirect());
        self.by_transaction.insert(txn, pidx.to_owned());
        Ok(&self.payments[pidx])
    }

    /// Test control "complete": pay an `Initiated` payment, or settle a `Pending` one.
    pub(crate) fn complete(
        &mut self,
        pidx: &str,
        mobile: &str,
        now: DateTime<Utc>,
    ) -> Result<&Payment, TransitionError> {
        let payment = self.get(pidx, now).ok_or(TransitionError::NotFound)?;
        if payment.status == Status::Pending {
            payment.status = Status::Completed;
            payment.pending_lookups_left = 0;
            return Ok(&self.payments[pidx]);
        }
        self.pay(pidx, mobile, now)
    }

    /// The user presses Cancel on the checkout page.
    pub(crate) fn cancel(
        &mut self,
        pidx: &str,
        now: DateTime<Utc>,
    ) -> Result<&Payment, TransitionError> {
        let payment = self.get(pidx, now).ok_or(TransitionError::NotFound)?;
        if payment.status != Status::Initiated {
            return Err(TransitionError::WrongState {
                status: payment.status,
                wanted: "cancel",
            });
        }
        payment.status = Status::UserCanceled;
        payment.finished_at = Some(now);
        payment.redirect_url = Some(payment.return_redirect());
        Ok(payment)
    }

    /// Test control "expire": move an `Initiated` payment's expiry into the past.
    pub(crate) fn expire(
        &mut self,
        pidx: &str,
        now: DateTime<Utc>,
    ) -> Result<&Payment, TransitionError> {
        let payment = self.get(pidx, now).ok_or(TransitionError::NotFound)?;
        if payment.status != Status::Initiated {
            return Err(TransitionError::WrongState {
                status: payment.status,
                wanted: "expire",
            });
        }
        payment.expires_at = now - chrono::Duration::seconds(1);
        payment.refresh(now);
        Ok(payment)
    }

    /// A refund the merchant makes in Khalti's dashboard (khalti.md §6: "Refunds can
    /// also be issued from the merchant dashboard"): the same as the refund API, found
    /// by pidx.
    pub(crate) fn dashboard_refund(
        &mut self,
        pidx: &str,
        amount: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<&Payment, RefundError> {
        let transaction_id = self
            .get(pidx, now)
            .ok_or(RefundError::NotFound)?
            .transaction_id
            .clone()
            .ok_or(RefundError::NotRefundable("Initiated"))?;
        self.refund(&transaction_id, amount, now)
    }

    /// Refund `amount` paisa (all that is left when `None`) of a transaction.
    pub(crate) fn refund(
        &mut self,
        transaction_id: &str,
        amount: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<&Payment, RefundError> {
        let pidx = self
            .by_transaction
            .get(transaction_id)
            .cloned()
            .ok_or(RefundError::NotFound)?;
        let payment = self.get(&pidx, now).ok_or(RefundError::NotFound)?;
        match payment.status {
            Status::Completed | Status::PartiallyRefunded => {}
            Status::Refunded => return Err(RefundError::AlreadyRefunded),
            other => return Err(RefundError::NotRefundable(other.as_str())),
        }
        let refundable = payment.req.amount - payment.refunded_amount;
        let amount = amount.unwrap_or(refundable);
        if amount > refundable {
            return Err(RefundError::AmountTooLarge { refundable });
        }
        payment.refunded_amount += amount;
        payment.status = if payment.refunded_amount >= payment.req.amount {
            Status::Refunded
        } else {
            Status::PartiallyRefunded
        };
        Ok(payment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> NewPayment {
        NewPayment {
            return_url: "https://example.com/payment/".into(),
            website_url: "https://example.com/".into(),
            amount: 1000,
            purchase_order_id: "test12".into(),
            purchase_order_name: "test".into(),
            customer_info: None,
            amount_breakdown: None,
            product_details: None,
            modes: None,
            merchant_extra: Map::new(),
        }
    }

    #[test]
    fn masks_mobile() {
        assert_eq!(mask_mobile("9800000904"), "98XXXXX904");
        assert_eq!(mask_mobile("12"), "98XXXXX12");
    }

    #[test]
    fn appends_query_like_khalti() {
        assert_eq!(
            append_query("http://example.com/", &[("a", "x y"), ("b", "1&2")]),
            "http://example.com/?a=x%20y&b=1%262"
        );
        assert_eq!(
            append_query("http://e.com/r?order=5#top", &[("a", "1")]),
            "http://e.com/r?order=5&a=1#top"
        );
        assert_eq!(
            append_query("http://e.com/r?", &[("a", "1")]),
            "http://e.com/r?a=1"
        );
    }

    #[test]
    fn success_and_cancel_redirects_match_the_documented_samples() {
        let now = Utc::now();
        let mut state = KhaltiState::new(KhaltiSettings::default());
        let pidx = state.create(request(), now).pidx.clone();
        let p = state.pay(&pidx, "9800000904", now).unwrap();
        let txn = p.transaction_id.clone().unwrap();
        assert_eq!(
            p.redirect_url.as_deref().unwrap(),
            format!(
                "https://example.com/payment/?pidx={pidx}&txnId={txn}&amount=1000&total_amount=1000&status=Completed&mobile=98XXXXX904&tidx={txn}&purchase_order_id=test12&purchase_order_name=test&transaction_id={txn}"
            )
        );

        let pidx = state.create(request(), now).pidx.clone();
        let p = state.cancel(&pidx, now).unwrap();
        assert_eq!(
            p.redirect_url.as_deref().unwrap(),
            format!(
                "https://example.com/payment/?pidx={pidx}&transaction_id=&tidx=&amount=1000&total_amount=1000&mobile=&status=User%20canceled&purchase_order_id=test12&purchase_order_name=test"
            )
        );
    }

    #[test]
    fn terminal_states_stay_terminal() {
        let now = Utc::now();
        let mut state = KhaltiState::new(KhaltiSettings::default());
        let pidx = state.create(request(), now).pidx.clone();
        state.cancel(&pidx, now).unwrap();
        assert!(matches!(
            state.pay(&pidx, "9800000001", now),
            Err(TransitionError::WrongState {
                status: Status::UserCanceled,
                ..
            })
        ));
        assert!(state.expire(&pidx, now).is_err());
        assert_eq!(state.get(&pidx, now).unwrap().status, Status::UserCanceled);
    }

    #[test]
    fn huge_lifetime_does_not_panic() {
        let mut state = KhaltiState::new(KhaltiSettings {
            expires_in_secs: u64::MAX,
            ..KhaltiSettings::default()
        });
        let now = Utc::now();
        let p = state.create(request(), now);
        assert!(p.expires_at > now);
        assert_eq!(p.status, Status::Initiated);
    }

    #[test]
    fn pending_counts_down_then_completes() {
        let now = Utc::now();
        let mut state = KhaltiState::new(KhaltiSettings {
            pending_lookups: 2,
            ..KhaltiSettings::default()
        });
        let pidx = state.create(request(), now).pidx.clone();
        state.pay(&pidx, "9800000001", now).unwrap();
        let statuses: Vec<Status> = (0..3)
            .map(|_| state.lookup(&pidx, now).unwrap().status)
            .collect();
        assert_eq!(
            statuses,
            [Status::Pending, Status::Pending, Status::Completed]
        );
    }

    #[test]
    fn fault_count_counts_down_and_resets() {
        let mut state = KhaltiState::new(KhaltiSettings {
            fault: Fault::Garbage,
            fault_count: 2,
            ..KhaltiSettings::default()
        });
        assert_eq!(state.take_fault(), Fault::Garbage);
        assert_eq!(state.settings.fault_count, 1);
        assert_eq!(state.take_fault(), Fault::Garbage);
        assert_eq!(state.take_fault(), Fault::None);
        assert_eq!(state.settings.fault, Fault::None);
        assert_eq!(state.settings.fault_count, 0);
    }

    #[test]
    fn refunds_partially_then_fully() {
        let now = Utc::now();
        let mut state = KhaltiState::new(KhaltiSettings::default());
        let pidx = state.create(request(), now).pidx.clone();
        let txn = state
            .pay(&pidx, "9800000001", now)
            .unwrap()
            .transaction_id
            .clone()
            .unwrap();
        assert_eq!(
            state.refund(&txn, Some(2000), now).unwrap_err(),
            RefundError::AmountTooLarge { refundable: 1000 }
        );
        assert_eq!(
            state.refund(&txn, Some(400), now).unwrap().status,
            Status::PartiallyRefunded
        );
        assert_eq!(
            state.refund(&txn, None, now).unwrap().status,
            Status::Refunded
        );
        assert_eq!(
            state.refund(&txn, None, now).unwrap_err(),
            RefundError::AlreadyRefunded
        );
    }
}

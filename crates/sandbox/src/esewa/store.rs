//! In-memory eSewa payments, keyed by the merchant's `transaction_uuid`, and the
//! lifecycle of esewa.md §5.5.
//!
//! The store is bounded: past [`CAPACITY`] payments the oldest are forgotten (the
//! status API then answers `NOT_FOUND` for them, as eSewa does for a session it no
//! longer knows), so a long load test cannot exhaust memory.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use url::Url;

use super::sign::{self, RESPONSE_SIGNED_FIELD_NAMES};
use super::{EsewaFault, EsewaOutcome, EsewaSettings};
use crate::time::khalti_timestamp;

/// How many payments the sandbox remembers.
pub(crate) const CAPACITY: usize = 20_000;

/// The seven statuses of the status API (esewa.md §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Pending,
    Complete,
    FullRefund,
    PartialRefund,
    Ambiguous,
    NotFound,
    Canceled,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Complete => "COMPLETE",
            Status::FullRefund => "FULL_REFUND",
            Status::PartialRefund => "PARTIAL_REFUND",
            Status::Ambiguous => "AMBIGUOUS",
            Status::NotFound => "NOT_FOUND",
            Status::Canceled => "CANCELED",
        }
    }
}

/// A form that passed every check (esewa.md §3.2). Money is kept as the text posted
/// (what was signed) and as paisa.
#[derive(Clone, Debug)]
pub(crate) struct NewPayment {
    pub transaction_uuid: String,
    pub product_code: String,
    pub amount: String,
    pub tax_amount: String,
    pub product_service_charge: String,
    pub product_delivery_charge: String,
    pub total_amount: String,
    pub total_paisa: i64,
    pub success_url: String,
    pub failure_url: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Payment {
    pub req: NewPayment,
    pub status: Status,
    /// eSewa's reference: the success redirect's `transaction_code` and the status
    /// API's `ref_id` (esewa.md §11 q17: one value for both). Set once the payment
    /// leaves the hosted page (paid, cancelled, ambiguous).
    pub ref_id: Option<String>,
    /// The test eSewa ID that pressed Pay; `None` until then, after a Cancel (which
    /// needs no login) and for payments moved by a control.
    pub payer: Option<String>,
    /// `complete_after_checks` for this payment: a `PENDING` or `AMBIGUOUS` payment
    /// turns `COMPLETE` after this many more status checks; `None` stays as it is.
    pub settle_after: Option<u32>,
    /// Status API calls that found this payment.
    pub checks: u32,
    /// Where the browser was (or would have been) sent last: the signed success URL or
    /// `failure_url`; `None` before the payer acted and after `expire`.
    pub redirect_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The success redirect's JSON, keys in eSewa's order, every value a string
/// (esewa.md §4.2, "what actually travels").
#[derive(Serialize)]
struct SuccessData<'a> {
    transaction_code: &'a str,
    status: &'a str,
    total_amount: &'a str,
    transaction_uuid: &'a str,
    product_code: &'a str,
    signed_field_names: &'a str,
    signature: &'a str,
}

impl Payment {
    /// Can the hosted page still take this payment? Only while `PENDING` and not yet
    /// sent anywhere: a payment left `PENDING` by Pay (in process) is not payable again.
    pub(crate) fn payable(&self) -> bool {
        self.status == Status::Pending && self.redirect_url.is_none()
    }

    /// The record of the sandbox-only controls.
    pub(crate) fn record(&self, public_url: &Url) -> Value {
        json!({
            "transaction_uuid": self.req.transaction_uuid,
            "product_code": self.req.product_code,
            "status": self.status.as_str(),
            "ref_id": self.ref_id,
            "amount": self.req.amount,
            "tax_amount": self.req.tax_amount,
            "product_service_charge": self.req.product_service_charge,
            "product_delivery_charge": self.req.product_delivery_charge,
            "total_amount": self.req.total_amount,
            "total_paisa": self.req.total_paisa,
            "success_url": self.req.success_url,
            "failure_url": self.req.failure_url,
            "payer": self.payer,
            "checks": self.checks,
            "settle_after_checks": self.settle_after,
            "redirect_url": self.redirect_url,
            "checkout_url": checkout_url(public_url, &self.req.transaction_uuid),
            "created_at": khalti_timestamp(self.created_at),
            "updated_at": khalti_timestamp(self.updated_at),
        })
    }
}

/// The base64 JSON of the success redirect, signed with `secret` over
/// [`RESPONSE_SIGNED_FIELD_NAMES`]. With `group_thousands` the `total_amount` shown
/// has thousands separators while the signature covers the plain text (esewa.md §4.2
/// step 5: the one grouped sample verifies over `2700.0`).
pub(crate) fn success_data(
    transaction_code: &str,
    total_paisa: i64,
    transaction_uuid: &str,
    product_code: &str,
    secret: &str,
    group_thousands: bool,
) -> String {
    let plain = sign::callback_amount(total_paisa);
    let message = sign::message([
        ("transaction_code", transaction_code),
        ("status", Status::Complete.as_str()),
        ("total_amount", plain.as_str()),
        ("transaction_uuid", transaction_uuid),
        ("product_code", product_code),
        ("signed_field_names", RESPONSE_SIGNED_FIELD_NAMES),
    ]);
    let signature = sign::sign(secret, &message);
    let shown = if group_thousands {
        sign::grouped(&plain)
    } else {
        plain
    };
    let json = serde_json::to_string(&SuccessData {
        transaction_code,
        status: Status::Complete.as_str(),
        total_amount: &shown,
        transaction_uuid,
        product_code,
        signed_field_names: RESPONSE_SIGNED_FIELD_NAMES,
        signature: &signature,
    })
    .expect("a struct of strings serializes");
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(json)
}

/// `{public_url}esewa/checkout/{uuid}`: the hosted page (esewa.md §13). The uuid is
/// `[A-Za-z0-9-]`, so it needs no escaping.
pub(crate) fn checkout_url(public_url: &Url, transaction_uuid: &str) -> String {
    format!("{public_url}esewa/checkout/{transaction_uuid}")
}

/// What a control, the hosted page or auto-complete does to a payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Paid: `COMPLETE`, signed success redirect. From `PENDING` or `AMBIGUOUS`.
    Complete,
    /// In process: stays `PENDING`, failure redirect (esewa.md §4.3: eSewa sends
    /// PENDING payments to `failure_url`). From `PENDING`.
    Pending,
    /// Halted between systems: `AMBIGUOUS`, failure redirect (esewa.md §11 q12).
    /// From `PENDING`.
    Ambiguous,
    /// Cancelled by the payer or reversed by eSewa: `CANCELED`, failure redirect
    /// (esewa.md §11 q11). From `PENDING` or `AMBIGUOUS`.
    Cancel,
    /// The session lapsed: `NOT_FOUND` (esewa.md §11 q11: no redirect). From `PENDING`.
    Expire,
    /// Refunded in full by eSewa: `FULL_REFUND`. From `COMPLETE` or `PARTIAL_REFUND`.
    Refund,
    /// Partly refunded by eSewa: `PARTIAL_REFUND`. From `COMPLETE` or `PARTIAL_REFUND`.
    PartialRefund,
}

impl Action {
    pub(crate) fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "complete" => Action::Complete,
            "pending" => Action::Pending,
            "ambiguous" => Action::Ambiguous,
            "cancel" => Action::Cancel,
            "expire" => Action::Expire,
            "refund" => Action::Refund,
            "partial_refund" => Action::PartialRefund,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Complete => "complete",
            Action::Pending => "pending",
            Action::Ambiguous => "ambiguous",
            Action::Cancel => "cancel",
            Action::Expire => "expire",
            Action::Refund => "refund",
            Action::PartialRefund => "partial_refund",
        }
    }

    /// What the payer's Pay turns into under the `outcome` switch.
    pub(crate) fn of_outcome(outcome: EsewaOutcome) -> Action {
        match outcome {
            EsewaOutcome::Complete => Action::Complete,
            EsewaOutcome::Pending => Action::Pending,
            EsewaOutcome::Ambiguous => Action::Ambiguous,
            EsewaOutcome::Canceled => Action::Cancel,
            EsewaOutcome::NotFound => Action::Expire,
        }
    }

    /// The statuses this action may start from; every other status is final for it
    /// (esewa.md §13: "Terminal states stay terminal").
    fn allowed_from(self, status: Status) -> bool {
        use Status as S;
        match self {
            Action::Complete | Action::Cancel => matches!(status, S::Pending | S::Ambiguous),
            Action::Pending | Action::Ambiguous | Action::Expire => status == S::Pending,
            Action::Refund | Action::PartialRefund => {
                matches!(status, S::Complete | S::PartialRefund)
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransitionError {
    NotFound,
    WrongState { status: Status, action: Action },
}

impl fmt::Display for TransitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionError::NotFound => f.write_str("no such payment"),
            TransitionError::WrongState { status, action } => write!(
                f,
                "payment is {} and cannot be {}",
                status.as_str(),
                match action {
                    Action::Complete => "completed",
                    Action::Pending => "left pending",
                    Action::Ambiguous => "made ambiguous",
                    Action::Cancel => "canceled",
                    Action::Expire => "expired",
                    Action::Refund => "refunded",
                    Action::PartialRefund => "partially refunded",
                }
            ),
        }
    }
}

/// A second form for a `transaction_uuid` that is not a re-post of the same
/// still-open payment (esewa.md §11 q18).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DuplicateUuid;

/// All eSewa simulator state.
pub(crate) struct EsewaState {
    pub settings: EsewaSettings,
    payments: HashMap<String, Payment>,
    /// Insertion order, oldest first: for "recent" and for eviction.
    order: VecDeque<String>,
    /// Every `ref_id` in use, so a new one is unique.
    refs: HashSet<String>,
    capacity: usize,
}

impl EsewaState {
    pub(crate) fn new(settings: EsewaSettings) -> Self {
        EsewaState::with_capacity(settings, CAPACITY)
    }

    pub(crate) fn with_capacity(settings: EsewaSettings, capacity: usize) -> Self {
        EsewaState {
            settings,
            payments: HashMap::new(),
            order: VecDeque::new(),
            refs: HashSet::new(),
            capacity: capacity.max(1),
        }
    }

    /// The fault for this status API call, counting down `fault_count` like the other
    /// sandboxes.
    pub(crate) fn take_fault(&mut self) -> EsewaFault {
        let fault = self.settings.fault;
        if fault == EsewaFault::None || self.settings.fault_count == 0 {
            return fault;
        }
        self.settings.fault_count -= 1;
        if self.settings.fault_count == 0 {
            // That was the last one; 0 would otherwise mean "until changed".
            self.settings.fault = EsewaFault::None;
        }
        fault
    }

    /// The outcome of this Pay, counting down `outcome_count` the same way.
    pub(crate) fn take_outcome(&mut self) -> EsewaOutcome {
        let outcome = self.settings.outcome;
        if outcome == EsewaOutcome::Complete || self.settings.outcome_count == 0 {
            return outcome;
        }
        self.settings.outcome_count -= 1;
        if self.settings.outcome_count == 0 {
            self.settings.outcome = EsewaOutcome::Complete;
        }
        outcome
    }

    /// Stores a new `PENDING` payment, or answers the existing one when the form is
    /// a re-post of a payment still waiting on the hosted page with the same total and
    /// product code (esewa.md §11 q18); any other reuse of the uuid is refused.
    pub(crate) fn create(
        &mut self,
        req: NewPayment,
        now: DateTime<Utc>,
    ) -> Result<&Payment, DuplicateUuid> {
        let uuid = req.transaction_uuid.clone();
        if let Some(existing) = self.payments.get(&uuid) {
            let same = existing.payable()
                && existing.req.total_paisa == req.total_paisa
                && existing.req.product_code == req.product_code;
            return if same {
                Ok(&self.payments[&uuid])
            } else {
                Err(DuplicateUuid)
            };
        }
        while self.payments.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.payments.remove(&oldest) {
                if let Some(r) = gone.ref_id {
                    self.refs.remove(&r);
                }
            }
        }
        self.order.push_back(uuid.clone());
        Ok(self.payments.entry(uuid).or_insert(Payment {
            req,
            status: Status::Pending,
            ref_id: None,
            payer: None,
            settle_after: None,
            checks: 0,
            redirect_url: None,
            created_at: now,
            updated_at: now,
        }))
    }

    pub(crate) fn get(&self, uuid: &str) -> Option<&Payment> {
        self.payments.get(uuid)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.payments.len()
    }

    /// The `limit` most recent payments, newest first.
    pub(crate) fn recent(&self, limit: usize) -> Vec<&Payment> {
        self.order
            .iter()
            .rev()
            .filter_map(|uuid| self.payments.get(uuid))
            .take(limit)
            .collect()
    }

    /// Applies `action`. `payer` records who pressed Pay (the hosted page, auto
    /// mode); `settle_after` arms `complete_after_checks` on a `PENDING` or
    /// `AMBIGUOUS` result. The success redirect is signed with the current settings'
    /// secret; an expired payment gets no redirect unless `payer` is given (the payer
    /// on the page is then sent to `failure_url`, esewa.md §4.1).
    pub(crate) fn apply(
        &mut self,
        uuid: &str,
        action: Action,
        payer: Option<&str>,
        settle_after: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<&Payment, TransitionError> {
        let status = self
            .payments
            .get(uuid)
            .ok_or(TransitionError::NotFound)?
            .status;
        if !action.allowed_from(status) {
            return Err(TransitionError::WrongState { status, action });
        }
        // One reference per payment, given when it leaves the hosted page.
        let gives_ref = matches!(
            action,
            Action::Complete | Action::Ambiguous | Action::Cancel | Action::Pending
        );
        let fresh_ref = (gives_ref && self.payments.get(uuid).is_some_and(|p| p.ref_id.is_none()))
            .then(|| self.fresh_ref());
        if let Some(r) = &fresh_ref {
            self.refs.insert(r.clone());
        }
        let secret = self.settings.secret_key.clone();
        let group = self.settings.group_thousands;
        let payment = self
            .payments
            .get_mut(uuid)
            .ok_or(TransitionError::NotFound)?;
        if fresh_ref.is_some() {
            payment.ref_id = fresh_ref;
        }
        if let Some(payer) = payer {
            payment.payer = Some(payer.to_owned());
        }
        payment.updated_at = now;
        payment.settle_after = None;
        match action {
            Action::Complete => {
                payment.status = Status::Complete;
                payment.redirect_url = Some(success_redirect(payment, &secret, group));
            }
            Action::Pending | Action::Ambiguous => {
                if action == Action::Ambiguous {
                    payment.status = Status::Ambiguous;
                }
                payment.settle_after = settle_after;
                payment.redirect_url = Some(payment.req.failure_url.clone());
            }
            Action::Cancel => {
                payment.status = Status::Canceled;
                payment.redirect_url = Some(payment.req.failure_url.clone());
            }
            Action::Expire => {
                payment.status = Status::NotFound;
                payment.redirect_url = payer.map(|_| payment.req.failure_url.clone());
            }
            Action::Refund => payment.status = Status::FullRefund,
            Action::PartialRefund => payment.status = Status::PartialRefund,
        }
        Ok(payment)
    }

    /// A status check (esewa.md §5): the payment with this uuid whose total is
    /// `total_paisa`, after counting the check and settling a payment armed with
    /// `complete_after_checks`. `None` (the API's `NOT_FOUND`) for an unknown uuid or
    /// another amount (esewa.md §11 q14).
    pub(crate) fn check(
        &mut self,
        uuid: &str,
        total_paisa: i64,
        now: DateTime<Utc>,
    ) -> Option<&Payment> {
        let payment = self.payments.get(uuid)?;
        if payment.req.total_paisa != total_paisa {
            return None;
        }
        let settle = payment.settle_after == Some(0)
            && matches!(payment.status, Status::Pending | Status::Ambiguous);
        if settle {
            let _ = self.apply(uuid, Action::Complete, None, None, now);
        }
        let payment = self.payments.get_mut(uuid)?;
        payment.checks += 1;
        if let Some(n) = payment.settle_after.as_mut() {
            *n = n.saturating_sub(1);
        }
        Some(payment)
    }

    /// `0` and six of `[0-9A-Z]`, like `000AWEO` and `0006TY3` (esewa.md §11 q17),
    /// unused by any stored payment.
    fn fresh_ref(&self) -> String {
        use rand::Rng;
        const CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut rng = rand::thread_rng();
        loop {
            let r: String = std::iter::once('0')
                .chain((0..6).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char))
                .collect();
            if !self.refs.contains(&r) {
                return r;
            }
        }
    }
}

/// `success_url?data=<base64>`: appended blindly, even to a URL that already has a
/// query (esewa.md §11 q8), with the base64 percent-encoded (§11 q9).
fn success_redirect(payment: &Payment, secret: &str, group_thousands: bool) -> String {
    let data = success_data(
        payment.ref_id.as_deref().unwrap_or_default(),
        payment.req.total_paisa,
        &payment.req.transaction_uuid,
        &payment.req.product_code,
        secret,
        group_thousands,
    );
    format!(
        "{}?data={}",
        payment.req.success_url,
        sign::encode_component(&data)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uuid: &str) -> NewPayment {
        NewPayment {
            transaction_uuid: uuid.to_owned(),
            product_code: "EPAYTEST".to_owned(),
            amount: "100".to_owned(),
            tax_amount: "10".to_owned(),
            product_service_charge: "0".to_owned(),
            product_delivery_charge: "0".to_owned(),
            total_amount: "110".to_owned(),
            total_paisa: 11_000,
            success_url: "https://merchant.example/ok".to_owned(),
            failure_url: "https://merchant.example/fail".to_owned(),
        }
    }

    #[test]
    fn success_data_is_the_docs_sample() {
        // esewa.md §4.2: the docs' base64 sample decodes to exactly this line.
        let data = success_data(
            "000AWEO",
            100_000,
            "250610-162413",
            "EPAYTEST",
            "8gBm/:&EnhH.1/q",
            false,
        );
        use base64::Engine;
        let json = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"transaction_code":"000AWEO","status":"COMPLETE","total_amount":"1000.0","transaction_uuid":"250610-162413","product_code":"EPAYTEST","signed_field_names":"transaction_code,status,total_amount,transaction_uuid,product_code,signed_field_names","signature":"62GcfZTmVkzhtUeh+QJ1AqiJrjoWWGof3U+eTPTZ7fA="}"#
        );
    }

    #[test]
    fn lifecycle_and_terminal_states() {
        let now = Utc::now();
        let mut state = EsewaState::new(EsewaSettings::default());
        state.create(request("a"), now).unwrap();
        assert_eq!(
            state
                .apply("a", Action::Refund, None, None, now)
                .unwrap_err(),
            TransitionError::WrongState {
                status: Status::Pending,
                action: Action::Refund
            }
        );
        let p = state
            .apply("a", Action::Ambiguous, None, None, now)
            .unwrap();
        assert_eq!(p.status, Status::Ambiguous);
        let r = p.ref_id.clone().unwrap();
        assert!(r.len() == 7 && r.starts_with('0'), "{r}");
        let p = state.apply("a", Action::Complete, None, None, now).unwrap();
        assert_eq!(p.ref_id.as_deref(), Some(r.as_str()), "one ref per payment");
        assert!(p
            .redirect_url
            .as_deref()
            .unwrap()
            .starts_with("https://merchant.example/ok?data="));
        state
            .apply("a", Action::PartialRefund, None, None, now)
            .unwrap();
        state
            .apply("a", Action::PartialRefund, None, None, now)
            .unwrap();
        state.apply("a", Action::Refund, None, None, now).unwrap();
        for action in [
            Action::Complete,
            Action::Cancel,
            Action::Expire,
            Action::Refund,
        ] {
            assert!(state.apply("a", action, None, None, now).is_err());
        }

        state.create(request("b"), now).unwrap();
        let p = state.apply("b", Action::Expire, None, None, now).unwrap();
        assert_eq!((p.status, p.redirect_url.clone()), (Status::NotFound, None));
        assert!(state.apply("b", Action::Complete, None, None, now).is_err());
        assert_eq!(
            state
                .apply("zzz", Action::Complete, None, None, now)
                .unwrap_err(),
            TransitionError::NotFound
        );
    }

    #[test]
    fn a_uuid_is_reused_only_by_a_repost_of_the_same_open_payment() {
        let now = Utc::now();
        let mut state = EsewaState::new(EsewaSettings::default());
        state.create(request("u"), now).unwrap();
        state.create(request("u"), now).unwrap();
        assert_eq!(state.len(), 1);
        let mut other = request("u");
        other.total_paisa = 12_000;
        assert_eq!(state.create(other, now).unwrap_err(), DuplicateUuid);
        state
            .apply("u", Action::Cancel, Some("9806800001"), None, now)
            .unwrap();
        assert_eq!(state.create(request("u"), now).unwrap_err(), DuplicateUuid);
    }

    #[test]
    fn settles_after_the_armed_number_of_checks() {
        let now = Utc::now();
        let mut state = EsewaState::new(EsewaSettings::default());
        state.create(request("p"), now).unwrap();
        state
            .apply("p", Action::Pending, Some("9806800001"), Some(2), now)
            .unwrap();
        let seen: Vec<Status> = (0..4)
            .map(|_| state.check("p", 11_000, now).unwrap().status)
            .collect();
        assert_eq!(
            seen,
            [
                Status::Pending,
                Status::Pending,
                Status::Complete,
                Status::Complete
            ]
        );
        assert!(state.check("p", 11_001, now).is_none(), "another amount");
        assert!(state.check("q", 11_000, now).is_none(), "unknown uuid");
    }

    #[test]
    fn the_store_is_bounded() {
        let now = Utc::now();
        let mut state = EsewaState::with_capacity(EsewaSettings::default(), 3);
        for uuid in ["1", "2", "3", "4", "5"] {
            state.create(request(uuid), now).unwrap();
        }
        assert_eq!(state.len(), 3);
        assert!(state.get("1").is_none() && state.get("2").is_none());
        let recent: Vec<&str> = state
            .recent(10)
            .iter()
            .map(|p| p.req.transaction_uuid.as_str())
            .collect();
        assert_eq!(recent, ["5", "4", "3"]);
    }

    #[test]
    fn outcome_and_fault_count_down() {
        let mut state = EsewaState::new(EsewaSettings {
            outcome: EsewaOutcome::Ambiguous,
            outcome_count: 1,
            fault: EsewaFault::Outage,
            fault_count: 2,
            ..EsewaSettings::default()
        });
        assert_eq!(state.take_outcome(), EsewaOutcome::Ambiguous);
        assert_eq!(state.take_outcome(), EsewaOutcome::Complete);
        assert_eq!(state.take_fault(), EsewaFault::Outage);
        assert_eq!(state.take_fault(), EsewaFault::Outage);
        assert_eq!(state.take_fault(), EsewaFault::None);
        assert_eq!(state.settings.fault_count, 0);
    }
}

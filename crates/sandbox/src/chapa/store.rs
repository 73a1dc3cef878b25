//! In-memory Chapa transactions, keyed by the merchant's `tx_ref`.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use url::Url;

use super::{Action, ChapaSettings};
use crate::ids::alphanumeric;
use crate::khalti::Fault;
use crate::time::chapa_timestamp;

/// chapa.md §3.3: "retry failed payments up to 10 times".
pub(crate) const MAX_ATTEMPTS: u32 = 10;

/// A validated initialize request. Money is kept in cents (hundredths).
#[derive(Clone, Debug)]
pub(crate) struct NewPayment {
    pub tx_ref: String,
    pub amount: i64,
    pub currency: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone_number: Option<String>,
    pub callback_url: Option<String>,
    pub return_url: Option<String>,
    pub customization: Value,
    pub meta: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Initialized, not paid (possibly after failed attempts that may be retried).
    Pending,
    /// The last attempt failed; the customer may retry (chapa.md §3.3).
    Failed,
    /// Cancelled by the customer; the checkout link no longer works (§3.4).
    Cancelled,
    Success,
    /// Fully refunded (§6).
    Refunded,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Success => "success",
            Status::Refunded => "refunded",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Refund {
    pub id: u64,
    pub amount: i64,
    pub reference: String,
    pub merchant_reference: String,
    pub bank_reference: String,
    pub reason: Option<String>,
    pub meta: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub(crate) struct Payment {
    pub req: NewPayment,
    /// Chapa's reference: `AP` + 10 alphanumerics (chapa.md §1).
    pub reference: String,
    /// The checkout token in `checkout_url` (45 alphanumerics, chapa.md §1).
    pub checkout_id: String,
    pub status: Status,
    pub attempts: u32,
    /// Chapa's fee, cents.
    pub charge: i64,
    pub refunds: Vec<Refund>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Log of callback and webhook deliveries (sandbox-only, for tests).
    pub callbacks: Vec<Value>,
    pub webhooks: Vec<Value>,
}

impl Payment {
    pub(crate) fn refunded(&self) -> i64 {
        self.refunds.iter().map(|r| r.amount).sum()
    }

    /// Can the checkout page still take a payment?
    pub(crate) fn payable(&self) -> bool {
        match self.status {
            Status::Pending => true,
            Status::Failed => self.attempts < MAX_ATTEMPTS,
            _ => false,
        }
    }

    /// `data.status` in verify. chapa.md §4.1 lists `success`, `pending`, `failed`;
    /// §14 q5: a cancelled payment also reads `failed` there (the webhook says
    /// `failed/cancelled`).
    pub(crate) fn verify_status(&self) -> &'static str {
        match self.status {
            Status::Pending => "pending",
            Status::Failed | Status::Cancelled => "failed",
            Status::Success => "success",
            Status::Refunded => "refunded",
        }
    }

    /// `data` of a verify answer (chapa.md §4.1): money as JSON numbers.
    pub(crate) fn verify_data(&self) -> Value {
        json!({
            "first_name": self.req.first_name,
            "last_name": self.req.last_name,
            "email": self.req.email,
            "currency": self.req.currency,
            "amount": money_number(self.req.amount),
            "charge": money_number(self.charge),
            "mode": "test",
            "method": "test",
            "type": "API",
            "status": self.verify_status(),
            "reference": self.reference,
            "tx_ref": self.req.tx_ref,
            "customization": self.req.customization,
            "meta": self.req.meta,
            "created_at": chapa_timestamp(self.created_at),
            "updated_at": chapa_timestamp(self.updated_at),
        })
    }

    /// A flat transaction webhook body (chapa.md §5.2): money as 2-dp strings.
    pub(crate) fn webhook_body(&self, event: &str, status: &str) -> Value {
        json!({
            "event": event,
            "first_name": self.req.first_name.clone().unwrap_or_default(),
            "last_name": self.req.last_name.clone().unwrap_or_default(),
            "email": self.req.email,
            "mobile": self.req.phone_number,
            "currency": self.req.currency,
            "amount": money_string(self.req.amount),
            "charge": money_string(self.charge),
            "status": status,
            "mode": "test",
            "reference": self.reference,
            "created_at": chapa_timestamp(self.created_at),
            "updated_at": chapa_timestamp(self.updated_at),
            "type": "API",
            "tx_ref": self.req.tx_ref,
            "payment_method": "test",
            "customization": self.req.customization,
            "meta": self.req.meta,
        })
    }

    /// The sandbox-only record (`GET /chapa/_sandbox/payments/{tx_ref}`).
    pub(crate) fn record(&self, public_url: &Url) -> Value {
        json!({
            "tx_ref": self.req.tx_ref,
            "reference": self.reference,
            "status": self.status.as_str(),
            "attempts": self.attempts,
            "amount": money_string(self.req.amount),
            "charge": money_string(self.charge),
            "refunded": money_string(self.refunded()),
            "currency": self.req.currency,
            "email": self.req.email,
            "first_name": self.req.first_name,
            "last_name": self.req.last_name,
            "phone_number": self.req.phone_number,
            "callback_url": self.req.callback_url,
            "return_url": self.req.return_url,
            "customization": self.req.customization,
            "meta": self.req.meta,
            "checkout_url": checkout_url(public_url, &self.checkout_id),
            "refunds": self.refunds.iter().map(Refund::body).collect::<Vec<_>>(),
            "callbacks": self.callbacks,
            "webhooks": self.webhooks,
            "created_at": chapa_timestamp(self.created_at),
            "updated_at": chapa_timestamp(self.updated_at),
        })
    }
}

impl Refund {
    /// `data` of the refund answer (chapa.md §6).
    pub(crate) fn body_for(&self, payment: &Payment) -> Value {
        json!({
            "id": self.id,
            "chapa_reference": payment.reference,
            "bank_reference": self.bank_reference,
            "amount": money_string(self.amount),
            "ref": self.reference,
            "currency": payment.req.currency,
            "status": "Refund Initiated",
            "reason": self.reason,
            "merchant_reference": self.merchant_reference,
            "meta": self.meta,
            "created_at": chapa_timestamp(self.created_at),
            "updated_at": chapa_timestamp(self.created_at),
        })
    }

    fn body(&self) -> Value {
        json!({
            "id": self.id,
            "amount": money_string(self.amount),
            "ref": self.reference,
            "merchant_reference": self.merchant_reference,
            "reason": self.reason,
            "created_at": chapa_timestamp(self.created_at),
        })
    }
}

/// `{public_url}chapa/checkout/{id}`
pub(crate) fn checkout_url(public_url: &Url, id: &str) -> String {
    format!("{public_url}chapa/checkout/{id}")
}

/// Cents as a JSON number: `100` for 100.00, `3.5` for 3.50 (chapa.md §4.1 sample).
pub(crate) fn money_number(cents: i64) -> Value {
    if cents % 100 == 0 {
        json!(cents / 100)
    } else {
        json!(cents as f64 / 100.0)
    }
}

/// Cents as a 2-dp string: `"400.00"` (chapa.md §5.2).
pub(crate) fn money_string(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransitionError {
    NotFound,
    NotPayable(Status),
}

impl fmt::Display for TransitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionError::NotFound => f.write_str("no such transaction"),
            TransitionError::NotPayable(status) => write!(
                f,
                "transaction is {} and can no longer be paid, failed or cancelled",
                status.as_str()
            ),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RefundError {
    NotFound,
    NotRefundable(Status),
    AmountTooLarge { refundable: i64 },
    DuplicateReference,
}

pub(crate) struct ChapaState {
    pub settings: ChapaSettings,
    payments: HashMap<String, Payment>,
    /// Chapa reference and checkout id → tx_ref.
    by_reference: HashMap<String, String>,
    by_checkout: HashMap<String, String>,
    /// Insertion order, for "recent".
    order: Vec<String>,
    next_refund_id: u64,
}

impl ChapaState {
    pub(crate) fn new(settings: ChapaSettings) -> Self {
        ChapaState {
            settings,
            payments: HashMap::new(),
            by_reference: HashMap::new(),
            by_checkout: HashMap::new(),
            order: Vec::new(),
            next_refund_id: 1,
        }
    }

    /// Counts down `fault_count` like the Khalti side.
    pub(crate) fn take_fault(&mut self) -> Fault {
        let fault = self.settings.fault;
        if fault == Fault::None || self.settings.fault_count == 0 {
            return fault;
        }
        self.settings.fault_count -= 1;
        if self.settings.fault_count == 0 {
            self.settings.fault = Fault::None;
        }
        fault
    }

    pub(crate) fn contains(&self, tx_ref: &str) -> bool {
        self.payments.contains_key(tx_ref)
    }

    /// Stores a new pending payment. The caller has checked that `tx_ref` is new.
    pub(crate) fn create(&mut self, req: NewPayment, now: DateTime<Utc>) -> &Payment {
        let reference = loop {
            let r = format!("AP{}", alphanumeric(10));
            if !self.by_reference.contains_key(&r) {
                break r;
            }
        };
        let checkout_id = loop {
            let id = alphanumeric(45);
            if !self.by_checkout.contains_key(&id) {
                break id;
            }
        };
        let charge = (req.amount * i64::from(self.settings.charge_basis_points) + 5_000) / 10_000;
        let tx_ref = req.tx_ref.clone();
        self.by_reference.insert(reference.clone(), tx_ref.clone());
        self.by_checkout.insert(checkout_id.clone(), tx_ref.clone());
        self.order.push(tx_ref.clone());
        self.payments.entry(tx_ref).or_insert(Payment {
            req,
            reference,
            checkout_id,
            status: Status::Pending,
            attempts: 0,
            charge,
            refunds: Vec::new(),
            created_at: now,
            updated_at: now,
            callbacks: Vec::new(),
            webhooks: Vec::new(),
        })
    }

    pub(crate) fn get(&self, tx_ref: &str) -> Option<&Payment> {
        self.payments.get(tx_ref)
    }

    pub(crate) fn get_mut(&mut self, tx_ref: &str) -> Option<&mut Payment> {
        self.payments.get_mut(tx_ref)
    }

    pub(crate) fn by_checkout(&self, id: &str) -> Option<&Payment> {
        self.by_checkout.get(id).and_then(|t| self.payments.get(t))
    }

    pub(crate) fn recent(&self, limit: usize) -> Vec<&Payment> {
        self.order
            .iter()
            .rev()
            .take(limit)
            .filter_map(|t| self.payments.get(t))
            .collect()
    }

    /// Pay, fail or cancel a payable transaction.
    pub(crate) fn apply(
        &mut self,
        tx_ref: &str,
        action: Action,
        now: DateTime<Utc>,
    ) -> Result<&Payment, TransitionError> {
        let payment = self
            .payments
            .get_mut(tx_ref)
            .ok_or(TransitionError::NotFound)?;
        if !payment.payable() {
            return Err(TransitionError::NotPayable(payment.status));
        }
        payment.status = match action {
            Action::Pay => Status::Success,
            Action::Fail => Status::Failed,
            Action::Cancel => Status::Cancelled,
        };
        if action != Action::Cancel {
            payment.attempts += 1;
        }
        payment.updated_at = now;
        Ok(payment)
    }

    /// Refunds `amount` cents (everything left when `None`) of a successful payment,
    /// found by Chapa reference or, chapa.md §14 q8, by `tx_ref`.
    pub(crate) fn refund(
        &mut self,
        reference: &str,
        amount: Option<i64>,
        reason: Option<String>,
        merchant_reference: Option<String>,
        meta: Value,
        now: DateTime<Utc>,
    ) -> Result<(&Payment, Refund), RefundError> {
        let tx_ref = self
            .by_reference
            .get(reference)
            .cloned()
            .unwrap_or_else(|| reference.to_owned());
        let duplicate = merchant_reference.as_ref().is_some_and(|m| {
            self.payments
                .values()
                .flat_map(|p| &p.refunds)
                .any(|r| &r.merchant_reference == m)
        });
        let id = self.next_refund_id;
        let payment = self
            .payments
            .get_mut(&tx_ref)
            .ok_or(RefundError::NotFound)?;
        if payment.status != Status::Success {
            return Err(RefundError::NotRefundable(payment.status));
        }
        if duplicate {
            return Err(RefundError::DuplicateReference);
        }
        let refundable = payment.req.amount - payment.refunded();
        let amount = amount.unwrap_or(refundable);
        if amount > refundable {
            return Err(RefundError::AmountTooLarge { refundable });
        }
        let refund = Refund {
            id,
            amount,
            reference: format!("MERC-DIS-REF-{}", alphanumeric(11)),
            merchant_reference: merchant_reference
                .unwrap_or_else(|| alphanumeric(12).to_ascii_uppercase()),
            bank_reference: alphanumeric(10).to_ascii_uppercase(),
            reason,
            meta,
            created_at: now,
        };
        payment.refunds.push(refund.clone());
        if payment.refunded() == payment.req.amount {
            payment.status = Status::Refunded;
        }
        payment.updated_at = now;
        self.next_refund_id += 1;
        Ok((payment, refund))
    }
}

/// An empty JSON object, the default `meta` of a refund.
pub(crate) fn empty_object() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(tx_ref: &str) -> NewPayment {
        NewPayment {
            tx_ref: tx_ref.to_owned(),
            amount: 10_000,
            currency: "ETB".to_owned(),
            email: None,
            first_name: None,
            last_name: None,
            phone_number: None,
            callback_url: None,
            return_url: None,
            customization: Value::Null,
            meta: Value::Null,
        }
    }

    #[test]
    fn money_formats() {
        assert_eq!(money_number(10_000), json!(100));
        assert_eq!(money_number(350), json!(3.5));
        assert_eq!(money_string(40_000), "400.00");
        assert_eq!(money_string(5), "0.05");
    }

    #[test]
    fn charge_and_refunds() {
        let now = Utc::now();
        let mut state = ChapaState::new(ChapaSettings::default());
        let p = state.create(request("t1"), now);
        assert_eq!(p.charge, 350);
        assert!(p.reference.starts_with("AP") && p.reference.len() == 12);
        let reference = p.reference.clone();
        assert_eq!(
            state
                .refund(&reference, None, None, None, Value::Null, now)
                .unwrap_err(),
            RefundError::NotRefundable(Status::Pending)
        );
        state.apply("t1", Action::Pay, now).unwrap();
        state
            .refund(
                &reference,
                Some(4_000),
                None,
                Some("r1".into()),
                Value::Null,
                now,
            )
            .unwrap();
        assert_eq!(
            state
                .refund("t1", None, None, Some("r1".into()), Value::Null, now)
                .unwrap_err(),
            RefundError::DuplicateReference
        );
        assert_eq!(
            state
                .refund("t1", Some(7_000), None, None, Value::Null, now)
                .unwrap_err(),
            RefundError::AmountTooLarge { refundable: 6_000 }
        );
        let (p, r) = state
            .refund("t1", None, None, None, Value::Null, now)
            .unwrap();
        assert_eq!(r.amount, 6_000);
        assert_eq!(p.status, Status::Refunded);
    }

    #[test]
    fn failed_attempts_can_be_retried_ten_times() {
        let now = Utc::now();
        let mut state = ChapaState::new(ChapaSettings::default());
        state.create(request("t2"), now);
        for _ in 0..MAX_ATTEMPTS {
            state.apply("t2", Action::Fail, now).unwrap();
        }
        assert_eq!(
            state.apply("t2", Action::Pay, now).unwrap_err(),
            TransitionError::NotPayable(Status::Failed)
        );
        state.create(request("t3"), now);
        state.apply("t3", Action::Fail, now).unwrap();
        assert_eq!(
            state.apply("t3", Action::Pay, now).unwrap().status,
            Status::Success
        );
    }
}

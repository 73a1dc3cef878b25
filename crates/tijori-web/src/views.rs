//! Wire types: the JSON shapes of DESIGN.md §4, converted from domain types here and
//! nowhere else.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tijori_core::payment::{Payment, PaymentStatus};
use tijori_core::service::Verification;
use tijori_core::subscription::{Plan, Subscription};

#[derive(Serialize)]
pub struct PlanView {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Decimal string in major units ("500.00"): never a float on the wire.
    pub price: String,
    pub currency: &'static str,
    pub duration_days: u32,
}

impl From<&Plan> for PlanView {
    fn from(p: &Plan) -> Self {
        PlanView {
            id: p.id.to_string(),
            name: p.name.clone(),
            description: p.description.clone(),
            price: p.price.to_major_string(),
            currency: p.price.currency().code(),
            duration_days: p.duration_days,
        }
    }
}

#[derive(Serialize)]
pub struct SubscriptionView {
    pub plan: PlanView,
    pub start_date: DateTime<Utc>,
    pub end_date: DateTime<Utc>,
    pub is_active: bool,
}

impl SubscriptionView {
    pub fn new(sub: &Subscription, plan: &Plan, now: DateTime<Utc>) -> Self {
        SubscriptionView {
            plan: plan.into(),
            start_date: sub.start_at,
            end_date: sub.end_at,
            is_active: sub.is_active(now),
        }
    }
}

#[derive(Serialize)]
pub struct PaymentView {
    pub id: String,
    pub status: PaymentStatus,
    pub gateway: &'static str,
    pub amount: String,
    pub currency: &'static str,
    pub purpose: &'static str,
    pub provider_ref: Option<String>,
    pub status_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Payment> for PaymentView {
    fn from(p: &Payment) -> Self {
        PaymentView {
            id: p.id.to_string(),
            status: p.status,
            gateway: p.gateway.as_str(),
            amount: p.amount.to_major_string(),
            currency: p.amount.currency().code(),
            purpose: p.purpose.as_str(),
            provider_ref: p.provider_ref.clone(),
            status_reason: p.status_reason.clone(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// The answer to "verify": DESIGN.md §1's table as HTTP.
#[derive(Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum VerifyView {
    Success {
        message: String,
        payment_id: String,
        subscription: Option<SubscriptionView>,
    },
    Pending {
        message: String,
        payment_id: String,
        payment_status: PaymentStatus,
    },
    Failed {
        message: String,
        payment_id: String,
        payment_status: PaymentStatus,
    },
}

/// What a customer is told about a payment in each status.
pub fn status_message(status: PaymentStatus, reason: Option<&str>) -> String {
    use PaymentStatus as S;
    let text = match status {
        S::Completed => "Payment received. Your subscription is active.",
        S::Initiated => "We have not received your payment yet. If you paid, it can take a moment; we will keep checking.",
        S::Pending => "Your payment is being processed by the gateway. We will keep checking and update you.",
        S::NeedsReview => "We received a payment that does not match the amount due. Our team will review it and contact you; nothing more is needed from you.",
        S::Canceled => "The payment was canceled. You have not been charged.",
        S::Expired => "The payment link expired before it was paid. You have not been charged.",
        S::Failed => return format!("The payment could not be completed{}", reason.map(|r| format!(": {r}")).unwrap_or_else(|| ".".into())),
        S::Refunded => "This payment was refunded.",
        S::PartiallyRefunded => "This payment was partly refunded.",
    };
    text.to_owned()
}

impl VerifyView {
    pub fn from_verification(v: &Verification, now: DateTime<Utc>) -> (StatusCode, VerifyView) {
        let p = &v.payment;
        let message = status_message(p.status, p.status_reason.as_deref());
        let payment_id = p.id.to_string();
        match p.status {
            PaymentStatus::Completed => (
                StatusCode::OK,
                VerifyView::Success {
                    message,
                    payment_id,
                    subscription: v
                        .subscription
                        .as_ref()
                        .map(|(s, plan)| SubscriptionView::new(s, plan, now)),
                },
            ),
            PaymentStatus::Initiated | PaymentStatus::Pending => (
                StatusCode::ACCEPTED,
                VerifyView::Pending {
                    message,
                    payment_id,
                    payment_status: p.status,
                },
            ),
            PaymentStatus::NeedsReview => (
                StatusCode::CONFLICT,
                VerifyView::Failed {
                    message,
                    payment_id,
                    payment_status: p.status,
                },
            ),
            _ => (
                StatusCode::BAD_REQUEST,
                VerifyView::Failed {
                    message,
                    payment_id,
                    payment_status: p.status,
                },
            ),
        }
    }
}

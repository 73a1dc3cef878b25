//! Wire types: the JSON shapes of DESIGN.md §4, converted from domain types here and
//! nowhere else.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tijori_core::payment::{Payment, PaymentStatus, Purpose};
use tijori_core::service::{Holding, Verification};
use tijori_core::shop::{Order, OrderStatus, Product};
use tijori_core::subscription::{ChangePreview, Plan};

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

/// `GET /api/subscriptions/me/`: the plan held now (or the last one, ended) and the
/// plans queued to follow it.
#[derive(Serialize)]
pub struct SubscriptionView {
    pub plan: PlanView,
    pub start_date: DateTime<Utc>,
    pub end_date: DateTime<Utc>,
    pub is_active: bool,
    pub queued: Vec<QueuedView>,
}

/// What a subscription payment will do, told before the customer pays: `new` (no
/// paid time ahead: starts now), `extend` (the same plan: runs on from the end),
/// `queue` (another plan: starts when the paid time ends) or `switch_now` (another
/// plan now, with the unused value of the old one as extra days).
#[derive(Serialize)]
pub struct ChangeView {
    pub mode: &'static str,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

impl From<&ChangePreview> for ChangeView {
    fn from(p: &ChangePreview) -> Self {
        ChangeView {
            mode: p.mode.as_str(),
            starts_at: p.starts_at,
            ends_at: p.ends_at,
        }
    }
}

/// A plan paid for that starts when the one before it ends.
#[derive(Serialize)]
pub struct QueuedView {
    pub plan: PlanView,
    pub start_date: DateTime<Utc>,
    pub end_date: DateTime<Utc>,
}

impl SubscriptionView {
    pub fn new(holding: &Holding, now: DateTime<Utc>) -> Self {
        let (sub, plan) = &holding.current;
        SubscriptionView {
            plan: plan.into(),
            start_date: sub.start_at,
            end_date: sub.end_at,
            is_active: sub.is_active(now),
            queued: holding
                .queued
                .iter()
                .map(|(q, plan)| QueuedView {
                    plan: plan.into(),
                    start_date: q.start_at,
                    end_date: q.end_at,
                })
                .collect(),
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
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
            plan_id: match &p.purpose {
                Purpose::Subscription { plan_id, .. } => Some(plan_id.to_string()),
                Purpose::Order { .. } => None,
            },
            order_id: match &p.purpose {
                Purpose::Order { order_id } => Some(order_id.to_string()),
                Purpose::Subscription { .. } => None,
            },
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
        #[serde(skip_serializing_if = "Option::is_none")]
        subscription: Option<SubscriptionView>,
        #[serde(skip_serializing_if = "Option::is_none")]
        order: Option<Box<OrderView>>,
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
pub fn status_message(payment: &Payment) -> String {
    use PaymentStatus as S;
    let reason = payment.status_reason.as_deref();
    let text = match payment.status {
        S::Completed => match payment.purpose {
            Purpose::Subscription { .. } => "Payment received. Your subscription is active.",
            Purpose::Order { .. } => "Payment received. Your order is paid.",
        },
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
        let message = status_message(p);
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
                        .map(|h| SubscriptionView::new(h, now)),
                    order: v.order.as_ref().map(|o| Box::new(OrderView::from(o))),
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

#[derive(Serialize)]
pub struct ProductView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub price: String,
    pub currency: &'static str,
    pub stock: u32,
}

impl From<&Product> for ProductView {
    fn from(p: &Product) -> Self {
        ProductView {
            id: p.id.to_string(),
            name: p.name.clone(),
            description: p.description.clone(),
            price: p.price.to_major_string(),
            currency: p.price.currency().code(),
            stock: p.stock,
        }
    }
}

#[derive(Serialize)]
pub struct OrderItemView {
    pub product_id: String,
    pub name: String,
    pub quantity: u32,
    pub unit_price: String,
    pub subtotal: String,
}

#[derive(Serialize)]
pub struct OrderView {
    pub id: String,
    pub status: OrderStatus,
    pub total: String,
    pub currency: &'static str,
    pub items: Vec<OrderItemView>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Order> for OrderView {
    fn from(o: &Order) -> Self {
        OrderView {
            id: o.id.to_string(),
            status: o.status,
            total: o.total.to_major_string(),
            currency: o.currency().code(),
            items: o
                .items
                .iter()
                .map(|i| OrderItemView {
                    product_id: i.product_id.to_string(),
                    name: i.name.clone(),
                    quantity: i.quantity,
                    unit_price: i.unit_price.to_major_string(),
                    subtotal: i.subtotal().to_major_string(),
                })
                .collect(),
            expires_at: o.expires_at,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// The signed form the browser posts to eSewa (DESIGN.md §4: `form: {action, fields}`),
/// its fields in the order they were signed.
#[derive(Clone, Debug)]
pub(crate) struct FormView {
    pub action: String,
    pub fields: Vec<(String, String)>,
}

impl From<tijori_core::gateway::CheckoutForm> for FormView {
    fn from(f: tijori_core::gateway::CheckoutForm) -> Self {
        FormView {
            action: f.action,
            fields: f.fields,
        }
    }
}

impl Serialize for FormView {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        /// The fields as a JSON object, in order.
        struct Fields<'a>(&'a [(String, String)]);
        impl Serialize for Fields<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
            }
        }
        let mut form = s.serialize_struct("FormView", 2)?;
        form.serialize_field("action", &self.action)?;
        form.serialize_field("fields", &Fields(&self.fields))?;
        form.end()
    }
}

//! Wire types: the JSON shapes of DESIGN.md §4, converted from domain types here and
//! nowhere else.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tijori_core::payment::{Payment, PaymentStatus, Purpose};
use tijori_core::service::{Holding, Verification};
use tijori_core::shop::{Order, OrderStatus, Product};
use tijori_core::subscription::{ChangePreview, Plan};
use utoipa::ToSchema;

/// A plan on offer.
#[derive(Serialize, ToSchema)]
#[schema(as = Plan)]
pub struct PlanView {
    #[schema(examples("plan_0193b0c4e7a27c3e9b5f0d1e2a3b4c5d"))]
    pub id: String,
    pub name: String,
    pub description: String,
    /// Decimal string in major units: never a float on the wire.
    #[schema(examples("500.00"))]
    pub price: String,
    #[schema(schema_with = crate::openapi::currency)]
    pub currency: &'static str,
    #[schema(minimum = 1)]
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

/// The plan held now (or the last one held, with `is_active` false once it ended) and
/// the paid plans queued after it, in order. A stretch of one plan paid by several
/// payments is one entry.
#[derive(Serialize, ToSchema)]
#[schema(as = Subscription)]
pub struct SubscriptionView {
    pub plan: PlanView,
    pub start_date: DateTime<Utc>,
    pub end_date: DateTime<Utc>,
    pub is_active: bool,
    pub queued: Vec<QueuedView>,
}

/// What a subscription payment will do to the customer's paid time, if paid now.
#[derive(Serialize, ToSchema)]
#[schema(as = PlanChange)]
pub struct ChangeView {
    #[schema(schema_with = crate::openapi::change_mode)]
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

/// A paid plan that starts when the one before it ends.
#[derive(Serialize, ToSchema)]
#[schema(as = QueuedPlan)]
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

/// A payment: one attempt to take money through a gateway, and where it stands.
#[derive(Serialize, ToSchema)]
#[schema(as = Payment)]
pub struct PaymentView {
    #[schema(examples("pay_0193b0c4e7a27c3e9b5f0d1e2a3b4c5d"))]
    pub id: String,
    #[schema(value_type = crate::openapi::PaymentStatusName)]
    pub status: PaymentStatus,
    #[schema(schema_with = crate::openapi::gateway)]
    pub gateway: &'static str,
    #[schema(examples("500.00"))]
    pub amount: String,
    #[schema(schema_with = crate::openapi::currency)]
    pub currency: &'static str,
    #[schema(schema_with = crate::openapi::purpose)]
    pub purpose: &'static str,
    /// For a subscription payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub plan_id: Option<String>,
    /// For an order payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub order_id: Option<String>,
    /// Khalti's pidx, Chapa's tx_ref or eSewa's transaction_uuid.
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

/// The answer to "verify": DESIGN.md §1's table as HTTP. `status` says which:
/// `success` (paid: what it bought is granted), `pending` (not settled yet: check
/// again later) or `failed` (with the payment's status).
#[derive(Serialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
#[schema(as = VerifyResult)]
pub enum VerifyView {
    Success {
        /// For the customer.
        message: String,
        payment_id: String,
        /// For a subscription payment: what the customer now holds.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        subscription: Option<SubscriptionView>,
        /// For an order payment.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        order: Option<Box<OrderView>>,
    },
    Pending {
        /// For the customer.
        message: String,
        payment_id: String,
        #[schema(value_type = crate::openapi::PaymentStatusName)]
        payment_status: PaymentStatus,
    },
    Failed {
        /// For the customer.
        message: String,
        payment_id: String,
        #[schema(value_type = crate::openapi::PaymentStatusName)]
        payment_status: PaymentStatus,
    },
}

impl VerifyView {
    pub fn from_verification(v: &Verification, now: DateTime<Utc>) -> (StatusCode, VerifyView) {
        let p = &v.payment;
        let message =
            crate::words::payment_message(p, v.order.as_ref().map(|o| o.status)).in_english();
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

/// A product for sale.
#[derive(Serialize, ToSchema)]
#[schema(as = Product)]
pub struct ProductView {
    #[schema(examples("prod_0193b0c4e7a27c3e9b5f0d1e2a3b4c5d"))]
    pub id: String,
    pub name: String,
    pub description: String,
    /// Decimal string in major units.
    #[schema(examples("850.00"))]
    pub price: String,
    #[schema(schema_with = crate::openapi::currency)]
    pub currency: &'static str,
    /// Units not reserved by an order.
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

/// One line of an order.
#[derive(Serialize, ToSchema)]
pub struct OrderItemView {
    pub product_id: String,
    /// As ordered.
    pub name: String,
    #[schema(minimum = 1)]
    pub quantity: u32,
    /// The price when ordered.
    pub unit_price: String,
    pub subtotal: String,
}

/// An order: products reserved for the customer until it is paid or expires.
#[derive(Serialize, ToSchema)]
#[schema(as = Order)]
pub struct OrderView {
    #[schema(examples("ord_0193b0c4e7a27c3e9b5f0d1e2a3b4c5d"))]
    pub id: String,
    #[schema(value_type = crate::openapi::OrderStatusName)]
    pub status: OrderStatus,
    #[schema(examples("1700.00"))]
    pub total: String,
    #[schema(schema_with = crate::openapi::currency)]
    pub currency: &'static str,
    #[schema(inline)]
    pub items: Vec<OrderItemView>,
    /// An unpaid order gives its stock back after this.
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

/// Written by hand, as its `Serialize` is: `fields` is an object, in signing order.
impl utoipa::PartialSchema for FormView {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .description(Some(
                "eSewa only: the signed form the browser must POST to eSewa \
                 (payment_url/checkout_url is tijori's page that posts it).",
            ))
            .property(
                "action",
                ObjectBuilder::new().schema_type(Type::String).format(Some(
                    utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Uri),
                )),
            )
            .required("action")
            .property(
                "fields",
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .description(Some("The exact fields, signed.")),
            )
            .required("fields")
            .into()
    }
}

impl ToSchema for FormView {}

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

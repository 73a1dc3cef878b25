//! The shop's use-cases: products, orders, and paying for an order.

use crate::telemetry::SettledVia;
use chrono::Duration;
use tracing::{info, warn};

use super::Tijori;
use crate::account::{invalid, User};
use crate::error::{Error, Result};
use crate::gateway::GatewayKind;
use crate::id::{OrderId, UserId};
use crate::idempotency::Attempt;
use crate::payment::{Payment, PaymentStatus, Purpose};
use crate::shop::{NewOrder, NewProduct, Order, OrderRequest, Product, ReserveError};
use crate::store::StoreError;

/// A payment row whose checkout never opened (the process died during the gateway
/// call) stops blocking its order after this long.
const STALE_INITIATION_SECS: i64 = 120;

impl Tijori {
    /// Adds a product after validating it (the CLI's `product create`); nothing here
    /// checks that the caller is an admin.
    pub async fn create_product(&self, product: NewProduct) -> Result<Product> {
        product.validate()?;
        Ok(self.store.create_product(product, self.now()).await?)
    }

    /// The products for sale (the active ones), cheapest first.
    pub async fn products(&self) -> Result<Vec<Product>> {
        Ok(self.store.products().await?)
    }

    /// Creates an order for the caller, reserving its stock. Under an idempotency key
    /// a previous holder of which created the order, that order is the answer again
    /// (its stock stays reserved once).
    pub async fn create_order(
        &self,
        user: &User,
        request: &OrderRequest,
        attempt: Option<&Attempt>,
    ) -> Result<Order> {
        if let Some(id) = attempt.and_then(|a| a.left.order.as_ref()) {
            if let Some(order) = self.store.order(id).await? {
                info!(order = %order.id, "idempotent retry: the order its first attempt created");
                return Ok(order);
            }
        }
        let now = self.now();
        let id = OrderId::generate();
        // The caps are checked by the store, inside the transaction that reserves.
        let order = self
            .store
            .create_order_for(
                &NewOrder {
                    id,
                    user: user.id.clone(),
                    request: request.clone(),
                    caps: self.settings.order_caps,
                    expires_at: now + self.settings.order_ttl,
                },
                now,
                attempt,
            )
            .await?
            .map_err(|e| match e {
                ReserveError::OutOfStock { .. } => Error::Conflict {
                    code: "insufficient_stock",
                    message: e.to_string(),
                },
                ReserveError::TooManyUnpaidOrders { .. } => Error::Conflict {
                    code: "too_many_pending_orders",
                    message: e.to_string(),
                },
                ReserveError::TooManyUnits { .. } => Error::Conflict {
                    code: "too_many_units",
                    message: e.to_string(),
                },
                ReserveError::UnknownProduct { .. } => invalid("items", e.to_string()).into(),
                ReserveError::MixedCurrencies(..) => invalid("items", e.to_string()).into(),
            })?;
        info!(order = %order.id, user = %user.id, total = %order.total, "order created");
        Ok(order)
    }

    /// The caller's own order (any order, for an admin).
    pub async fn order_for(&self, user: &User, order_id: &OrderId) -> Result<Order> {
        self.store
            .order(order_id)
            .await?
            .filter(|o| o.user_id == user.id || user.is_admin)
            .ok_or(Error::NotFound("order"))
    }

    /// The user's orders, newest first, at most `limit`.
    pub async fn orders_of(&self, user: &UserId, limit: u32) -> Result<Vec<Order>> {
        Ok(self.store.orders_for_user(user, limit).await?)
    }

    /// Opens a checkout for the caller's pending order, or hands back the one already
    /// open on this gateway: a second click on Pay must not become a second payment.
    pub async fn initialize_order_payment(
        &self,
        user: &User,
        order_id: &str,
        gateway: Option<GatewayKind>,
        attempt: Option<&Attempt>,
    ) -> Result<Payment> {
        // Paying is for the order's owner only, admins included.
        let order = match OrderId::parse(order_id) {
            Some(id) => self.store.order(&id).await?,
            None => None,
        }
        .filter(|o| o.user_id == user.id)
        .ok_or(Error::NotFound("order"))?;
        if order.items.is_empty() {
            return Err(invalid("order_id", "the order has no items").into());
        }
        let now = self.now();
        if !order.is_payable(now) {
            let status = if order.status.as_str() == "pending" {
                "expired"
            } else {
                order.status.as_str()
            };
            return Err(Error::Conflict {
                code: "order_not_pending",
                message: format!("the order is {status}, so it cannot be paid"),
            });
        }
        // Unnamed, the gateway is the one for the order's currency (Chapa first: the
        // shop's home gateway). Checked before looking for an open checkout, so the
        // answer for a gateway that cannot take the currency does not depend on what
        // happened before.
        let gateway = match gateway {
            Some(g) => g,
            None => {
                let fits = self.gateways.for_currency(order.currency());
                if fits.contains(&GatewayKind::Chapa) {
                    GatewayKind::Chapa
                } else {
                    *fits.first().ok_or_else(|| {
                        Error::Unsupported(format!(
                            "no configured gateway takes {}",
                            order.currency()
                        ))
                    })?
                }
            }
        };
        self.gateway_for(gateway, order.currency())?;

        // A previous holder of this request's key that died mid-checkout: its opened
        // checkout is found below like any open one; an unopened one is closed now
        // rather than blocking the order for minutes.
        self.left_checkout(attempt).await?;
        if let Some(open) = self
            .store
            .open_payment_for_order(&order.id, gateway)
            .await?
        {
            if let Some(reused) = self.reuse_or_close(open).await? {
                return Ok(reused);
            }
        }
        let purpose = Purpose::Order {
            order_id: order.id.clone(),
        };
        let description = order_description(&order);
        match self
            .open_checkout(user, purpose, order.total, description, gateway, attempt)
            .await
        {
            // Another request for the same order won the race to open a checkout
            // (the database allows one open payment per order and gateway).
            Err(Error::Conflict { .. }) => {
                let open = self
                    .store
                    .open_payment_for_order(&order.id, gateway)
                    .await?
                    .ok_or(Error::Conflict {
                        code: "payment_in_progress",
                        message: "a payment for this order is being opened; try again".into(),
                    })?;
                self.reuse_or_close(open).await?.ok_or(Error::Conflict {
                    code: "payment_in_progress",
                    message: "a payment for this order is being opened; try again".into(),
                })
            }
            other => other,
        }
    }

    /// The order's latest payment attempt that failed on a checkout the gateway
    /// still takes another attempt on (Chapa's), if any: the order page's "Try
    /// again", which sends the customer back to that same checkout.
    pub async fn retryable_payment(&self, order: &Order) -> Result<Option<Payment>> {
        let now = self.now();
        Ok(self
            .store
            .payments_for_user(&order.user_id, 50)
            .await?
            .into_iter()
            .filter(|p| matches!(&p.purpose, Purpose::Order { order_id } if *order_id == order.id))
            .max_by_key(|p| p.created_at)
            .filter(|p| p.retry_url(now).is_some()))
    }

    /// An open payment for the order: returned if its checkout can still be used;
    /// closed (and `None`) if it is dead, so a new one can be opened.
    async fn reuse_or_close(&self, open: Payment) -> Result<Option<Payment>> {
        let now = self.now();
        if open.provider_ref.is_none() {
            if now - open.created_at < Duration::seconds(STALE_INITIATION_SECS) {
                return Err(Error::Conflict {
                    code: "payment_in_progress",
                    message: "a payment for this order is being opened; try again shortly".into(),
                });
            }
            warn!(payment = %open.id, "closing a payment whose checkout never opened");
            match self
                .fail_initiation(&open.id, "the checkout never opened", None)
                .await
            {
                Ok(_) | Err(StoreError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        let link_alive = open.expires_at.is_none_or(|at| now < at);
        if link_alive && open.payment_url.is_some() {
            return Ok(Some(open));
        }
        // The link expired: ask the gateway, which closes the payment (or finds it
        // paid after all).
        let settled = self.check_at_gateway(open, SettledVia::Checkout).await?;
        match settled.payment.status {
            PaymentStatus::Completed => Err(Error::Conflict {
                code: "order_not_pending",
                message: "the order has just been paid".into(),
            }),
            s if s.is_open() => Err(Error::Conflict {
                code: "payment_in_progress",
                message: "the previous checkout for this order is still open at the gateway".into(),
            }),
            _ => Ok(None),
        }
    }
}

fn order_description(order: &Order) -> String {
    let mut names: Vec<String> = order
        .items
        .iter()
        .map(crate::shop::OrderItem::in_words)
        .collect();
    if names.len() > 3 {
        let more = names.len() - 3;
        names.truncate(3);
        names.push(format!("{more} more"));
    }
    format!("Order {}: {}", order.id, names.join(", "))
}

//! `/payments/{id}/receipt/`: a paid payment's receipt, numbered for the merchant's
//! books, in the customer's time zone, with its refunds; it prints to PDF from the
//! browser (a print stylesheet drops the site's navigation).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use minijinja::context;
use serde::Serialize;
use tijori_core::id::PaymentId;
use tijori_core::mail::{local_time, zone_for};
use tijori_core::store::RefundStatus;

use super::{Page, PageResult, SignedIn};
use crate::extract::parse_id;
use crate::AppState;

pub(super) const TEMPLATES: &[(&str, &str)] = &[("receipt.html", include_str!("receipt.html"))];

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/payments/{id}/receipt/", get(receipt))
}

/// A refund as the receipt lists it.
#[derive(Serialize)]
struct RefundLine {
    when: String,
    amount: String,
    status: &'static str,
}

async fn receipt(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    Path(id): Path<String>,
) -> PageResult {
    let id: PaymentId = parse_id(&id)?;
    let r = state.tijori.receipt_for(&s.user, &id).await?;
    let payment = &r.payment;
    // The payer's zone (an operator printing it sees the customer's dates).
    let payer_zone = if payment.user_id == s.user.id {
        s.user.time_zone.clone()
    } else {
        None
    };
    let zone = zone_for(payer_zone.as_deref(), payment.amount.currency());
    let refunds: Vec<RefundLine> = r
        .refunds
        .iter()
        .map(|f| RefundLine {
            when: local_time(f.created_at, zone),
            amount: f.amount.for_people(),
            status: match f.status {
                RefundStatus::Succeeded => "refunded",
                RefundStatus::Requested | RefundStatus::Unknown => "being refunded",
                RefundStatus::Failed => "not refunded",
            },
        })
        .collect();
    let net = r.refunded.and_then(|refunded| {
        tijori_core::money::Money::from_minor(
            payment.amount.minor() - refunded.minor(),
            payment.amount.currency(),
        )
        .ok()
    });
    Ok(Page::new(
        "receipt.html",
        context! {
            number => r.receipt.printed_number(),
            issued => local_time(r.receipt.issued_at, zone),
            merchant_name => r.merchant.name,
            merchant_address => r.merchant.address.lines().collect::<Vec<_>>(),
            item => r.item,
            amount => payment.amount.for_people(),
            gateway => payment.gateway.display_name(),
            // Khalti's transaction_id, Chapa's reference, eSewa's ref_id: what the
            // customer sees in their wallet's history, not our pidx or tx_ref.
            transaction => payment.provider_txn_id,
            reference => payment.provider_ref,
            payment_id => payment.id.to_string(),
            refunds,
            refunded => r.refunded.map(|m| m.for_people()),
            net => net.map(|m| m.for_people()),
        },
    ))
}

//! `/admin/revenue/`: money collected, refunded and net per day over the last 30 or
//! 90 days, per gateway and currency, drawn as server-rendered SVG bar charts (no
//! script, nothing from another site); and the overview's counts. The database sums;
//! this module only lays the sums out (integers throughout, formatted at the end).

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use chrono::{Duration, NaiveDate};
use minijinja::context;
use serde::{Deserialize, Serialize};
use tijori_core::back_office::RevenueDay;
use tijori_core::gateway::GatewayKind;
use tijori_core::money::{Currency, Money};
use tijori_core::service::REVENUE_WINDOWS;

use super::{Admin, Page, PageResult};
use crate::i18n::tr;
use crate::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/admin/revenue/", get(page))
}

#[derive(Deserialize)]
struct Window {
    #[serde(default)]
    days: Option<String>,
}

async fn page(State(state): State<AppState>, _: Admin, Query(w): Query<Window>) -> PageResult {
    // Only the windows offered; anything else is the first.
    let days = w
        .days
        .as_deref()
        .and_then(|d| d.parse::<u32>().ok())
        .filter(|d| REVENUE_WINDOWS.contains(d))
        .unwrap_or(REVENUE_WINDOWS[0]);
    let sums = state.tijori.revenue(days).await?;
    let counts = state.tijori.shop_counts().await?;
    let first = state.tijori.revenue_since(days).date_naive();
    let series = series(&sums, first, days);
    Ok(Page::new(
        "admin_revenue.html",
        context! {
            days, windows => REVENUE_WINDOWS, series,
            first => first.to_string(),
            counts => context! {
                active_subscriptions => counts.active_subscriptions,
                renewals_due => counts.renewals_due,
                payments_open => counts.payments_open,
                payments_held => counts.payments_held,
            },
        },
    ))
}

/// One gateway's money in one currency over the window: its totals, its chart and its
/// days.
#[derive(Serialize)]
struct Series {
    /// `chapa-ETB`: for ids in the page.
    key: String,
    gateway: &'static str,
    currency: &'static str,
    collected: String,
    refunded: String,
    net: String,
    /// The same totals in minor units, for tests and scripts reading the page.
    collected_minor: i64,
    refunded_minor: i64,
    net_minor: i64,
    chart: Chart,
    /// Days with money, newest first.
    days: Vec<DayRow>,
}

#[derive(Serialize)]
struct DayRow {
    day: String,
    collected: String,
    refunded: String,
    net: String,
}

fn major(minor: i64, currency: Currency) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    Money::from_minor(minor.abs(), currency)
        .map(|m| format!("{sign}{}", m.to_major_string()))
        .unwrap_or_else(|_| minor.to_string())
}

/// The database's sums laid out per gateway and currency, every day of the window
/// present in the chart (a day without money is a gap, not a missing day).
fn series(sums: &[RevenueDay], first: NaiveDate, days: u32) -> Vec<Series> {
    // Keyed by names: gateways and currencies sort by them, so the page's order is
    // stable.
    let mut by: BTreeMap<(&'static str, &'static str), Vec<&RevenueDay>> = BTreeMap::new();
    for d in sums {
        by.entry((d.gateway.as_str(), d.currency.code()))
            .or_default()
            .push(d);
    }
    by.into_iter()
        .map(|((gateway, _), ds)| {
            let currency = ds[0].currency;
            let collected: i64 = ds.iter().map(|d| d.collected_minor).sum();
            let refunded: i64 = ds.iter().map(|d| d.refunded_minor).sum();
            let mut rows: Vec<DayRow> = ds
                .iter()
                .map(|d| DayRow {
                    day: d.day.to_string(),
                    collected: major(d.collected_minor, currency),
                    refunded: major(d.refunded_minor, currency),
                    net: major(d.net_minor(), currency),
                })
                .collect();
            rows.reverse();
            Series {
                key: format!("{gateway}-{}", currency.code()),
                gateway: gateway_label(gateway),
                currency: currency.code(),
                collected: major(collected, currency),
                refunded: major(refunded, currency),
                net: major(collected - refunded, currency),
                collected_minor: collected,
                refunded_minor: refunded,
                net_minor: collected - refunded,
                chart: chart(&ds, first, days, currency),
                days: rows,
            }
        })
        .collect()
}

fn gateway_label(name: &'static str) -> &'static str {
    match name.parse::<GatewayKind>() {
        Ok(g) => g.display_name(),
        Err(_) => name,
    }
}

/// A bar chart as the template draws it in SVG: collected above the axis, refunded
/// below, one slot per day. Coordinates are in the SVG's own units; the SVG scales to
/// its box's width, so it fits a phone.
#[derive(Serialize)]
struct Chart {
    width: u32,
    height: u32,
    /// Where the axis (zero) is.
    axis_y: u32,
    bars: Vec<Bar>,
    /// The largest day's collected and refunded, as labels for the top and bottom.
    top_label: String,
    bottom_label: String,
    /// Labels under the first and last day.
    first_day: String,
    last_day: String,
}

#[derive(Serialize)]
struct Bar {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    /// "collected" or "refunded", the bar's class (its colour).
    kind: &'static str,
    /// Its tooltip, a text naming the `day` and the `amount`.
    title: &'static str,
    day: String,
    amount: String,
}

const CHART_WIDTH: u32 = 720;
const ABOVE: u32 = 140;
const BELOW: u32 = 60;

fn chart(
    days_with_money: &[&RevenueDay],
    first: NaiveDate,
    days: u32,
    currency: Currency,
) -> Chart {
    let top = days_with_money
        .iter()
        .map(|d| d.collected_minor)
        .max()
        .unwrap_or(0)
        .max(1);
    let bottom = days_with_money
        .iter()
        .map(|d| d.refunded_minor)
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = CHART_WIDTH / days.max(1);
    let bar_width = (slot * 3 / 4).max(1);
    // Heights scale in integers: minor units times pixels over the largest value.
    let scale = |minor: i64, max: i64, room: u32| -> u32 {
        u32::try_from(i128::from(minor) * i128::from(room) / i128::from(max)).unwrap_or(room)
    };
    let mut bars = Vec::new();
    for d in days_with_money {
        let index = (d.day - first).num_days();
        let Ok(index) = u32::try_from(index) else {
            continue;
        };
        let x = index * slot + (slot - bar_width) / 2;
        if d.collected_minor > 0 {
            let h = scale(d.collected_minor, top, ABOVE).max(1);
            bars.push(Bar {
                x,
                y: ABOVE - h,
                width: bar_width,
                height: h,
                kind: "collected",
                title: tr("{day}: collected {amount}"),
                day: d.day.to_string(),
                amount: major(d.collected_minor, currency),
            });
        }
        if d.refunded_minor > 0 {
            let h = scale(d.refunded_minor, bottom, BELOW).max(1);
            bars.push(Bar {
                x,
                y: ABOVE,
                width: bar_width,
                height: h,
                kind: "refunded",
                title: tr("{day}: refunded {amount}"),
                day: d.day.to_string(),
                amount: major(d.refunded_minor, currency),
            });
        }
    }
    let last = first + Duration::days(i64::from(days.max(1)) - 1);
    Chart {
        width: CHART_WIDTH,
        height: ABOVE + BELOW,
        axis_y: ABOVE,
        bars,
        top_label: major(if top > 1 { top } else { 0 }, currency),
        bottom_label: major(if bottom > 1 { bottom } else { 0 }, currency),
        first_day: first.to_string(),
        last_day: last.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: &str, collected: i64, refunded: i64) -> RevenueDay {
        RevenueDay {
            day: d.parse().unwrap(),
            gateway: GatewayKind::Chapa,
            currency: Currency::Etb,
            collected_minor: collected,
            refunded_minor: refunded,
        }
    }

    #[test]
    fn a_series_sums_its_days_and_its_chart_places_them() {
        let first: NaiveDate = "2030-01-01".parse().unwrap();
        let sums = [
            day("2030-01-01", 100_000, 0),
            day("2030-01-30", 50_000, 30_000),
        ];
        let s = series(&sums, first, 30);
        assert_eq!(s.len(), 1);
        let s = &s[0];
        assert_eq!(
            (s.collected_minor, s.refunded_minor, s.net_minor),
            (150_000, 30_000, 120_000)
        );
        assert_eq!(s.net, "1200.00");
        let bars = &s.chart.bars;
        assert_eq!(bars.len(), 3);
        // The biggest day fills the room above the axis; the later day sits further right.
        assert_eq!((bars[0].y, bars[0].height), (0, ABOVE));
        assert!(bars[1].x > bars[0].x && bars[1].height == ABOVE / 2);
        assert_eq!(
            (bars[2].kind, bars[2].y, bars[2].height),
            ("refunded", ABOVE, BELOW)
        );
        assert!(bars.iter().all(|b| b.x + b.width <= CHART_WIDTH));
    }

    #[test]
    fn a_day_of_refunds_only_is_negative() {
        assert_eq!(major(-1_050, Currency::Npr), "-10.50");
    }
}

//! Demo data for the embedded default, so a newcomer can pay for something at once.

use tijori_core::money::{Currency, Money};
use tijori_core::subscription::NewPlan;
use tijori_core::{Error, Tijori};

pub const DEMO_USERNAME: &str = "demo";
pub const DEMO_PASSWORD: &str = "demo-password";

/// Adds three plans if there are none, and the demo user if it is missing. Running it
/// again changes nothing.
pub async fn seed(tijori: &Tijori) -> anyhow::Result<()> {
    if tijori.plans().await?.is_empty() {
        for (name, description, price, days) in [
            ("Basic", "Everything you need to get started.", "500", 30),
            (
                "Standard",
                "Three months, for a little less per month.",
                "1200",
                90,
            ),
            ("Premium", "A whole year at the best price.", "4000", 365),
        ] {
            tijori
                .create_plan(NewPlan {
                    name: name.into(),
                    description: description.into(),
                    price: Money::parse_major(price, Currency::Npr)?,
                    duration_days: days,
                })
                .await?;
        }
    }
    match tijori
        .create_user(DEMO_USERNAME, "demo@example.com", DEMO_PASSWORD, false)
        .await
    {
        Ok(_) | Err(Error::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

//! Demo data for the embedded default, so a newcomer can pay for something at once.

use tijori_core::money::{Currency, Money};
use tijori_core::shop::NewProduct;
use tijori_core::subscription::NewPlan;
use tijori_core::{Error, Tijori};

pub const DEMO_USERNAME: &str = "demo";
pub const DEMO_PASSWORD: &str = "demo-password";

/// Adds three plans if there are none, four products (two in ETB for Chapa, two in
/// NPR for Khalti) if there are none, and the demo user if it is missing. Running it
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
    if tijori.products().await?.is_empty() {
        for (name, description, price, currency, stock) in [
            (
                "Yirgacheffe coffee, 1 kg",
                "Washed, floral, roasted in Addis Ababa.",
                "850",
                Currency::Etb,
                25,
            ),
            (
                "Jebena coffee pot",
                "Hand-made clay pot for the coffee ceremony.",
                "1200",
                Currency::Etb,
                8,
            ),
            (
                "Ilam tea, 250 g",
                "First-flush orthodox tea from eastern Nepal.",
                "650",
                Currency::Npr,
                40,
            ),
            (
                "Dhaka topi",
                "The traditional Nepali cap, hand-woven dhaka cloth.",
                "1500",
                Currency::Npr,
                10,
            ),
        ] {
            tijori
                .create_product(NewProduct {
                    name: name.into(),
                    description: description.into(),
                    price: Money::parse_major(price, currency)?,
                    stock,
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

//! Typed ids. Each is a prefixed, time-ordered UUIDv7 in text (`pay_0193…`): portable
//! across SQLite and PostgreSQL, sortable by creation, and self-describing in logs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What every typed id can do, so that the edge (a URL path, a form) parses any of
/// them the same way.
pub trait TypedId: Sized {
    /// What it names, for "… not found".
    const NOUN: &'static str;

    /// Accepts only well-formed ids of this kind.
    fn parse(s: &str) -> Option<Self>;
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $noun:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        /// Parsed as `parse` does: a malformed id in a body, a query or a job's
        /// payload is refused where it is read, not looked for in the database.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                $name::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format_args!("{text:?} is not a {} id", $noun))
                })
            }
        }

        impl $name {
            /// What every id of this kind starts with (before `_`).
            pub const PREFIX: &'static str = $prefix;

            /// A new id, ordered after every one generated before it.
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// Accepts only well-formed ids of this kind, so a malformed id from a URL or
            /// body is rejected at the edge instead of reaching the database.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?.strip_prefix('_')?;
                (rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| Self(s.to_owned()))
            }

            /// For values read back from our own database.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }

            /// The whole id, prefix included (`pay_0193…`): as stored, and as `parse`
            /// accepts it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TypedId for $name {
            const NOUN: &'static str = $noun;

            fn parse(s: &str) -> Option<Self> {
                $name::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

typed_id!(
    /// An account: a customer or an operator.
    UserId, "usr", "user"
);
typed_id!(
    /// A plan on offer (a price for a number of days).
    PlanId, "plan", "plan"
);
typed_id!(
    /// A payment: one checkout at one gateway.
    PaymentId, "pay", "payment"
);
typed_id!(
    /// A product in the shop.
    ProductId, "prod", "product"
);
typed_id!(
    /// A shop order (what its payments pay for).
    OrderId, "ord", "order"
);
typed_id!(
    /// A refund an operator asked a gateway for.
    RefundId, "rfd", "refund"
);
typed_id!(
    /// Something that happened which the merchant's own systems are told of (an
    /// outgoing event); also the `webhook-id` every delivery of it carries, by which
    /// a receiver drops a repeat.
    EventId, "evt", "event"
);
typed_id!(
    /// A URL of the merchant's where events are delivered.
    WebhookEndpointId, "we", "webhook endpoint"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_others_do_not() {
        let id = PaymentId::generate();
        assert_eq!(PaymentId::parse(id.as_str()), Some(id.clone()));
        assert!(UserId::parse(id.as_str()).is_none(), "prefix must match");
        assert!(PaymentId::parse("pay_123").is_none());
        assert!(PaymentId::parse("pay_' OR 1=1 --xxxxxxxxxxxxxxxxxxxx").is_none());
    }

    #[test]
    fn ids_sort_by_creation() {
        let a = PaymentId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = PaymentId::generate();
        assert!(a < b);
    }

    #[test]
    fn ids_deserialize_only_when_well_formed() {
        let id = PaymentId::generate();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<PaymentId>(&json).unwrap(), id);
        for bad in [r#""pay_123""#, r#""usr_0193""#, r#""""#, "42"] {
            assert!(
                serde_json::from_str::<PaymentId>(bad).is_err(),
                "{bad} was accepted"
            );
        }
        let e = serde_json::from_str::<RefundId>(r#""rfd_x""#).unwrap_err();
        assert!(e.to_string().contains("is not a refund id"), "{e}");
    }
}

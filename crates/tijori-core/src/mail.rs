//! Mail to customers (renewal reminders, expiry notices) and the time zones dates in
//! it are shown in.
//!
//! Every mail is first written to the outbox table in the same transaction as the
//! notice it carries, so a reminder is recorded once and never lost; a job then
//! delivers it through the configured `Mailer` (SMTP), or, with none configured,
//! leaves it in the outbox for the operator to read. Nothing goes silently nowhere.

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;

use crate::id::UserId;
use crate::money::Currency;

/// Sends one mail. Implementations: SMTP (lettre) in the binary.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Delivers one plain-text mail. An `Err` is kept on the outbox row as its error, and
    /// the mail stays queued for its delivery job to try again.
    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String>;
}

/// What a notice is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// The subscription ends in a few days: renew.
    Reminder,
    /// The subscription has ended.
    Expired,
}

impl NoticeKind {
    /// The name the notices table stores; with user and period end, the notice's key.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Reminder => "reminder",
            NoticeKind::Expired => "expired",
        }
    }
}

/// A subscription due a notice, as the store finds it.
#[derive(Clone, Debug)]
pub struct DueNotice {
    /// Which mail `compose` writes; part of the notice's identity (see `period_end`).
    pub kind: NoticeKind,
    /// The subscriber; part of the notice's identity, and its outbox mail is filed under them.
    pub user_id: UserId,
    /// Greets the customer in the mail.
    pub username: String,
    /// The account's address; the outbox mail goes to it.
    pub email: String,
    /// The zone the customer chose. `None`, or a name `offset_of` does not know, falls
    /// back to the zone of `plan_currency`'s country (see `zone_for`).
    pub time_zone: Option<String>,
    /// Named in the mail's subject and body.
    pub plan_name: String,
    /// Only picks the time zone when the customer chose none; the mail shows no price.
    pub plan_currency: Currency,
    /// The end of the period the notice is about (its identity, with user and kind).
    pub period_end: DateTime<Utc>,
}

/// A mail in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OutboxMail {
    /// `mail_` and a UUIDv7; also the payload and unique key of its delivery job.
    pub id: String,
    /// The customer it was written for.
    pub user_id: UserId,
    /// The account's address when the mail was written.
    pub to: String,
    /// From `compose`: names the plan and whether it ends soon or has ended.
    pub subject: String,
    /// Plain text from `compose`, with the date in the customer's time zone.
    pub body: String,
    /// `queued` (to deliver), `sent` (handed to SMTP), or `kept` (no SMTP configured:
    /// the outbox is where it is read).
    pub status: String,
    /// Why the last delivery attempt failed, while the mail waits (still `queued`) for
    /// another; cleared once it is `sent` or `kept`.
    pub error: Option<String>,
    /// When it was written, in the same transaction as its notice.
    pub created_at: DateTime<Utc>,
    /// When it was handed to SMTP; `None` while queued and for kept mail.
    pub sent_at: Option<DateTime<Utc>>,
}

/// The time zones our customers live in. Neither observes daylight saving, so a
/// fixed offset is exact.
pub fn offset_of(zone: &str) -> Option<(&'static str, FixedOffset)> {
    match zone {
        "Asia/Kathmandu" => Some(("Asia/Kathmandu", FixedOffset::east_opt(5 * 3600 + 45 * 60)?)),
        "Africa/Addis_Ababa" => Some(("Africa/Addis_Ababa", FixedOffset::east_opt(3 * 3600)?)),
        "UTC" | "Etc/UTC" => Some(("UTC", FixedOffset::east_opt(0)?)),
        _ => None,
    }
}

/// Expiry notices are not sent for periods that ended longer ago than this: a tijori
/// started after a long stop does not mail about old news.
pub const EXPIRED_NOTICE_WINDOW_DAYS: i64 = 7;

/// The zones a customer may choose, by the names `offset_of` stores them under
/// ("Etc/UTC" becomes "UTC"); the sign-up form lists them.
pub const TIME_ZONES: [&str; 3] = ["Asia/Kathmandu", "Africa/Addis_Ababa", "UTC"];

/// A user's zone: the one they chose, else the one of the country whose currency
/// they pay in (NPR: Nepal; ETB: Ethiopia; USD, most often Ethiopia too via Chapa).
pub fn zone_for(chosen: Option<&str>, currency: Currency) -> (&'static str, FixedOffset) {
    chosen
        .and_then(offset_of)
        .unwrap_or_else(|| match currency {
            Currency::Npr => offset_of("Asia/Kathmandu").expect("known zone"),
            Currency::Etb | Currency::Usd => offset_of("Africa/Addis_Ababa").expect("known zone"),
        })
}

/// "Sunday 21 December 2026, 14:05 (Asia/Kathmandu, UTC+05:45)".
pub fn local_time(at: DateTime<Utc>, zone: (&str, FixedOffset)) -> String {
    let local = at.with_timezone(&zone.1);
    format!(
        "{} ({}, UTC{})",
        local.format("%A %-d %B %Y, %H:%M"),
        zone.0,
        zone.1
    )
}

/// The mail for a notice.
pub fn compose(notice: &DueNotice, public_url: &str) -> (String, String) {
    let zone = zone_for(notice.time_zone.as_deref(), notice.plan_currency);
    let when = local_time(notice.period_end, zone);
    match notice.kind {
        NoticeKind::Reminder => (
            format!("Your {} subscription ends soon", notice.plan_name),
            format!(
                "Hello {},\n\nYour {} subscription ends on {when}.\n\nRenew it before then to keep \
                 it without a break (the days you have left are kept):\n{public_url}/\n\n— tijori\n",
                notice.username, notice.plan_name
            ),
        ),
        NoticeKind::Expired => (
            format!("Your {} subscription has ended", notice.plan_name),
            format!(
                "Hello {},\n\nYour {} subscription ended on {when}.\n\nYou can subscribe again \
                 at any time:\n{public_url}/\n\n— tijori\n",
                notice.username, notice.plan_name
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nepal_is_five_forty_five_ahead() {
        let at = DateTime::parse_from_rfc3339("2026-12-21T08:20:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let text = local_time(at, zone_for(None, Currency::Npr));
        assert_eq!(
            text,
            "Monday 21 December 2026, 14:05 (Asia/Kathmandu, UTC+05:45)"
        );
        let addis = local_time(at, zone_for(None, Currency::Etb));
        assert!(
            addis.contains("11:20 (Africa/Addis_Ababa, UTC+03:00)"),
            "{addis}"
        );
        let chosen = local_time(at, zone_for(Some("UTC"), Currency::Npr));
        assert!(chosen.contains("08:20 (UTC"), "{chosen}");
    }
}

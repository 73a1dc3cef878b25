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

/// A time zone tijori knows: one row of `ZONES`, so its id, the other spellings it
/// is sent as, the name people call it and its offset are kept together.
struct KnownZone {
    /// The IANA name stored on the account and given to the browser's `Intl`.
    id: &'static str,
    /// Other names for the same zone that arrive from browsers and systems.
    aliases: &'static [&'static str],
    /// What people call it: CLDR's long English name, the one Chromium's
    /// `Intl.DateTimeFormat(.., { timeZoneName: "long" })` shows, so mail and pages agree.
    name: &'static str,
    /// Offset east of UTC. None of these zones observes daylight saving, so a fixed
    /// offset is exact all year.
    offset: FixedOffset,
}

/// An offset known to be in range: checked when the crate is compiled, not at run time.
const fn east(seconds: i32) -> FixedOffset {
    match FixedOffset::east_opt(seconds) {
        Some(offset) => offset,
        None => panic!("a UTC offset is less than a day"),
    }
}

/// The time zones our customers live in: Nepal (Khalti, eSewa), Ethiopia (Chapa), and
/// UTC for anyone else.
const ZONES: [KnownZone; 3] = [
    KnownZone {
        id: "Asia/Kathmandu",
        // Chromium (through ICU, which keeps CLDR's ids) still reports Nepal as
        // "Asia/Katmandu", the old spelling IANA has kept only as a link; a Nepali
        // customer's browser sends that.
        aliases: &["Asia/Katmandu"],
        name: "Nepal Time",
        offset: east(5 * 3600 + 45 * 60),
    },
    KnownZone {
        id: "Africa/Addis_Ababa",
        aliases: &[],
        name: "East Africa Time",
        offset: east(3 * 3600),
    },
    KnownZone {
        id: "UTC",
        // What Linux systems and some browsers call it.
        aliases: &["Etc/UTC"],
        name: "Coordinated Universal Time",
        offset: east(0),
    },
];

/// The row for `zone`, by its id or one of its aliases.
fn known(zone: &str) -> Option<&'static KnownZone> {
    let zones: &'static [KnownZone] = &ZONES;
    zones
        .iter()
        .find(|z| z.id == zone || z.aliases.contains(&zone))
}

/// Reads a zone as a browser, a form or the database names it, and gives its
/// canonical id (what to store: "Asia/Katmandu" becomes "Asia/Kathmandu", "Etc/UTC"
/// becomes "UTC") and its offset; `None` for a zone our customers do not live in.
/// Every place a zone is read goes through here, so each accepts the same spellings.
pub fn offset_of(zone: &str) -> Option<(&'static str, FixedOffset)> {
    known(zone).map(|z| (z.id, z.offset))
}

/// The name people call `zone` by ("Nepal Time" for Asia/Kathmandu, "East Africa Time"
/// for Africa/Addis_Ababa, "Coordinated Universal Time" for UTC), for mail and pages
/// that show a zone to a customer instead of its IANA id. Takes what `offset_of` takes;
/// `None` for a zone it does not know.
pub fn zone_name(zone: &str) -> Option<&'static str> {
    known(zone).map(|z| z.name)
}

/// Expiry notices are not sent for periods that ended longer ago than this: a tijori
/// started after a long stop does not mail about old news.
pub const EXPIRED_NOTICE_WINDOW_DAYS: i64 = 7;

/// The zones a customer may choose, by the ids `offset_of` stores them under
/// ("Etc/UTC" becomes "UTC"); the sign-up form lists them, and errors name them.
pub const TIME_ZONES: [&str; 3] = [ZONES[0].id, ZONES[1].id, ZONES[2].id];

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

/// "Monday 21 December 2026, 14:05 Nepal Time (UTC+05:45)": a moment as a customer
/// reads it in mail, in `zone` (as `zone_for` or `offset_of` gives it). The zone is
/// named as people call it, and the offset follows so the time is exact for a reader
/// elsewhere. A zone without a name (not one of ours) shows its id instead.
pub fn local_time(at: DateTime<Utc>, zone: (&str, FixedOffset)) -> String {
    let local = at.with_timezone(&zone.1);
    format!(
        "{} {} (UTC{})",
        local.format("%A %-d %B %Y, %H:%M"),
        zone_name(zone.0).unwrap_or(zone.0),
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
            "Monday 21 December 2026, 14:05 Nepal Time (UTC+05:45)"
        );
        let addis = local_time(at, zone_for(None, Currency::Etb));
        assert_eq!(
            addis,
            "Monday 21 December 2026, 11:20 East Africa Time (UTC+03:00)"
        );
        let chosen = local_time(at, zone_for(Some("UTC"), Currency::Npr));
        assert_eq!(
            chosen,
            "Monday 21 December 2026, 08:20 Coordinated Universal Time (UTC+00:00)"
        );
    }

    #[test]
    fn zones_are_named_as_people_call_them() {
        assert_eq!(zone_name("Asia/Kathmandu"), Some("Nepal Time"));
        assert_eq!(zone_name("Africa/Addis_Ababa"), Some("East Africa Time"));
        assert_eq!(zone_name("UTC"), Some("Coordinated Universal Time"));
        assert_eq!(zone_name("Asia/Katmandu"), Some("Nepal Time"));
        assert_eq!(zone_name("Europe/London"), None);
        for zone in TIME_ZONES {
            assert!(zone_name(zone).is_some(), "{zone} has a name");
        }
    }

    #[test]
    fn legacy_names_are_read_and_stored_canonically() {
        let nepal = offset_of("Asia/Kathmandu").unwrap();
        assert_eq!(offset_of("Asia/Katmandu"), Some(nepal));
        assert_eq!(nepal.0, "Asia/Kathmandu");
        assert_eq!(offset_of("Etc/UTC").unwrap().0, "UTC");
        assert_eq!(offset_of("Asia/Kolkata"), None);
        assert_eq!(offset_of(""), None);
        // Every zone offered is one `offset_of` keeps as it is, so a stored choice
        // reads back unchanged.
        for zone in TIME_ZONES {
            assert_eq!(offset_of(zone).unwrap().0, zone);
        }
        // A customer whose browser said "Asia/Katmandu" gets Nepal's time in mail.
        let at = DateTime::parse_from_rfc3339("2026-12-21T08:20:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let text = local_time(at, zone_for(Some("Asia/Katmandu"), Currency::Etb));
        assert!(text.ends_with("14:05 Nepal Time (UTC+05:45)"), "{text}");
    }
}

//! Time formatting in Nepal time (UTC+05:45), as Khalti shows it.

use chrono::{DateTime, FixedOffset, Utc};

/// Nepal Standard Time, UTC+05:45.
pub(crate) fn nepal() -> FixedOffset {
    FixedOffset::east_opt(5 * 3600 + 45 * 60).expect("valid offset")
}

/// `2023-05-25T16:26:16.471649+05:45` (khalti.md §3.2).
pub(crate) fn khalti_timestamp(t: DateTime<Utc>) -> String {
    t.with_timezone(&nepal())
        .format("%Y-%m-%dT%H:%M:%S%.6f+05:45")
        .to_string()
}

/// `2023-05-25 16:26:16` in Nepal time, for pages.
pub(crate) fn human(t: DateTime<Utc>) -> String {
    t.with_timezone(&nepal())
        .format("%Y-%m-%d %H:%M:%S NPT")
        .to_string()
}

/// `2023-02-02T07:05:23.000000Z` (chapa.md §1: Laravel style; every sample has zero
/// microseconds, so the sub-second part is dropped like Chapa's database does).
pub(crate) fn chapa_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S.000000Z").to_string()
}

/// `2023-02-02 07:05:23 UTC`, for pages.
pub(crate) fn human_utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_like_khalti() {
        let t = Utc.with_ymd_and_hms(2023, 5, 25, 10, 41, 16).unwrap()
            + chrono::Duration::microseconds(471_649);
        assert_eq!(khalti_timestamp(t), "2023-05-25T16:26:16.471649+05:45");
        assert_eq!(human(t), "2023-05-25 16:26:16 NPT");
        assert_eq!(chapa_timestamp(t), "2023-05-25T10:41:16.000000Z");
    }
}

//! Notices (renewal reminders, expiry notices) and the mail outbox. Every statement
//! once, for both backends (see `db.rs`).

use chrono::{DateTime, Duration, Utc};

use tijori_core::events::{EventType, NewEvent};
use tijori_core::id::UserId;
use tijori_core::jobs::{DeliverMail, NewJob};
use tijori_core::mail::{DueNotice, NoticeKind, OutboxMail, EXPIRED_NOTICE_WINDOW_DAYS};
use tijori_core::store::{StoreError, StoreResult};

use crate::db::{ctx, query, Conn};
use crate::rows::{corrupt, DueRow, MailRow, MAIL_COLUMNS};

pub(crate) async fn due_notices(
    c: &mut impl Conn,
    now: DateTime<Utc>,
    remind_within: Duration,
    limit: u32,
) -> StoreResult<Vec<DueNotice>> {
    let mut due = Vec::new();
    for (kind, from, to) in [
        (NoticeKind::Reminder, now, now + remind_within),
        (
            NoticeKind::Expired,
            now - Duration::days(EXPIRED_NOTICE_WINDOW_DAYS),
            now,
        ),
    ] {
        // (from, to]: a reminder for a period ending after now; an expiry notice for
        // one that ended by now.
        let rows = query(
            "SELECT s.user_id, u.username, u.email, u.time_zone, p.name AS plan_name, \
             p.currency, s.end_at \
             FROM subscriptions s JOIN users u ON u.id = s.user_id \
             JOIN plans p ON p.id = s.plan_id \
             WHERE s.end_at > $1 AND s.end_at <= $2 AND NOT EXISTS ( \
                 SELECT 1 FROM notices n WHERE n.user_id = s.user_id AND n.kind = $3 \
                 AND n.period_end = s.end_at) \
             ORDER BY s.end_at LIMIT $4",
        )
        .bind(from)
        .bind(to)
        .bind(kind.as_str())
        .bind(i64::from(limit))
        .fetch_all::<DueRow>(c)
        .await
        .map_err(ctx("failed to find due notices"))?;
        for r in rows {
            due.push(DueNotice {
                kind,
                plan_currency: r
                    .currency
                    .parse()
                    .map_err(|_| corrupt("plan currency", &r.currency))?,
                user_id: UserId::from_trusted(r.user_id),
                username: r.username,
                email: r.email,
                time_zone: r.time_zone,
                plan_name: r.plan_name,
                period_end: r.end_at,
            });
        }
    }
    Ok(due)
}

/// Records `notice` and puts `mail` in the outbox with its delivery's job; `false`
/// if the notice was recorded before. In one transaction (the caller's).
pub(crate) async fn record_notice(
    c: &mut impl Conn,
    notice: &DueNotice,
    mail: &OutboxMail,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    // The primary key makes the notice once per user, kind and period, however many
    // workers find it due at the same time.
    let fresh = query(
        "INSERT INTO notices (user_id, kind, period_end, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, kind, period_end) DO NOTHING",
    )
    .bind(notice.user_id.as_str())
    .bind(notice.kind.as_str())
    .bind(notice.period_end)
    .bind(now)
    .execute(c)
    .await
    .map_err(ctx("failed to record a notice"))?
        == 1;
    if !fresh {
        return Ok(false);
    }
    queue_mail(c, mail, now).await?;
    let kind = match notice.kind {
        NoticeKind::Reminder => EventType::SubscriptionExpiring,
        NoticeKind::Expired => EventType::SubscriptionExpired,
    };
    let event = NewEvent::about_subscription(kind, &notice.user_id);
    crate::events::emit(c, &[event], now).await?;
    Ok(true)
}

/// Puts `mail` in the outbox with the job that delivers it, in the caller's
/// transaction: there is no mail without its job. Every kind of customer mail
/// (notices, receipts, reset links) is written here.
pub(crate) async fn queue_mail(
    c: &mut impl Conn,
    mail: &OutboxMail,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    query(&format!(
        "INSERT INTO outbox ({MAIL_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, 'queued', NULL, $6, NULL)"
    ))
    .bind(&mail.id)
    .bind(mail.user_id.as_str())
    .bind(&mail.to)
    .bind(&mail.subject)
    .bind(&mail.body)
    .bind(now)
    .execute(c)
    .await
    .map_err(ctx("failed to put a mail in the outbox"))?;
    let job = NewJob::of(
        &DeliverMail {
            mail: mail.id.clone(),
        },
        now,
    );
    crate::jobs::insert_job(c, &job, now).await?;
    Ok(())
}

pub(crate) async fn outbox_mail(c: &mut impl Conn, id: &str) -> StoreResult<Option<OutboxMail>> {
    Ok(
        query(&format!("SELECT {MAIL_COLUMNS} FROM outbox WHERE id = $1"))
            .bind(id)
            .fetch_optional::<MailRow>(c)
            .await
            .map_err(ctx("failed to load a mail"))?
            .map(OutboxMail::from),
    )
}

pub(crate) async fn mark_mail(
    c: &mut impl Conn,
    id: &str,
    status: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let done = query(
        "UPDATE outbox SET status = $2, error = $3, \
         sent_at = CASE WHEN $2 = 'sent' THEN $4 ELSE sent_at END WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(error)
    .bind(now)
    .execute(c)
    .await
    .map_err(ctx("failed to mark a mail"))?;
    if done == 0 {
        return Err(StoreError::NotFound("mail"));
    }
    Ok(())
}

pub(crate) async fn outbox(c: &mut impl Conn, limit: u32) -> StoreResult<Vec<OutboxMail>> {
    Ok(query(&format!(
        "SELECT {MAIL_COLUMNS} FROM outbox ORDER BY created_at DESC, id DESC LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all::<MailRow>(c)
    .await
    .map_err(ctx("failed to list the outbox"))?
    .into_iter()
    .map(OutboxMail::from)
    .collect())
}

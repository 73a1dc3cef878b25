//! What a customer changes on their own account (password, e-mail) and the password
//! reset by e-mail link: every statement once, for both backends (see `db.rs`).

use chrono::{DateTime, Utc};

use tijori_core::account::{Email, PasswordHashString, TokenHash, User};
use tijori_core::id::UserId;
use tijori_core::mail::OutboxMail;
use tijori_core::store::{StoreError, StoreResult};

use crate::db::{ctx, db_err, query, Conn};
use crate::rows::{UserRow, USER_COLUMNS};

pub(crate) async fn user_by_email(c: &mut impl Conn, email: &Email) -> StoreResult<Option<User>> {
    Ok(query(&format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.email = $1"
    ))
    .bind(email.as_str())
    .fetch_optional::<UserRow>(c)
    .await
    .map_err(ctx("failed to look up a user by e-mail"))?
    .map(User::from))
}

/// Every API token and session of the user ends, but the session `keep`.
async fn sign_out_everywhere(
    c: &mut impl Conn,
    user: &UserId,
    keep: Option<&TokenHash>,
) -> StoreResult<()> {
    query("DELETE FROM api_tokens WHERE user_id = $1")
        .bind(user.as_str())
        .execute(c)
        .await
        .map_err(ctx("failed to end the user's API tokens"))?;
    // No session hash is empty, so "" keeps none.
    query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
        .bind(user.as_str())
        .bind(keep.map_or("", |k| k.0.as_str()))
        .execute(c)
        .await
        .map_err(ctx("failed to end the user's sessions"))?;
    Ok(())
}

pub(crate) async fn change_password(
    c: &mut impl Conn,
    id: &UserId,
    hash: &PasswordHashString,
    keep: Option<&TokenHash>,
) -> StoreResult<()> {
    crate::accounts::set_password(c, id, hash).await?;
    sign_out_everywhere(c, id, keep).await?;
    // A reset link asked for before the change must not undo it.
    query("DELETE FROM password_resets WHERE user_id = $1")
        .bind(id.as_str())
        .execute(c)
        .await
        .map_err(ctx("failed to end the user's reset links"))?;
    Ok(())
}

pub(crate) async fn set_email(c: &mut impl Conn, id: &UserId, email: &Email) -> StoreResult<()> {
    let done = query("UPDATE users SET email = $2 WHERE id = $1")
        .bind(id.as_str())
        .bind(email.as_str())
        .execute(c)
        .await
        .map_err(db_err("failed to change an e-mail address", "email"))?;
    if done == 0 {
        return Err(StoreError::NotFound("user"));
    }
    Ok(())
}

pub(crate) async fn create_password_reset(
    c: &mut impl Conn,
    user: &UserId,
    token: &TokenHash,
    expires_at: DateTime<Utc>,
    mail: &OutboxMail,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    // Only the newest link works: an older mail lying in an inbox opens nothing.
    query("DELETE FROM password_resets WHERE user_id = $1")
        .bind(user.as_str())
        .execute(c)
        .await
        .map_err(ctx("failed to end earlier reset links"))?;
    query(
        "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at, used_at) \
         VALUES ($1, $2, $3, $4, NULL)",
    )
    .bind(&token.0)
    .bind(user.as_str())
    .bind(now)
    .bind(expires_at)
    .execute(c)
    .await
    .map_err(db_err("failed to store a reset link", "reset link"))?;
    crate::mail::queue_mail(c, mail, now).await?;
    Ok(())
}

pub(crate) async fn password_reset(
    c: &mut impl Conn,
    token: &TokenHash,
    now: DateTime<Utc>,
) -> StoreResult<Option<User>> {
    Ok(query(&format!(
        "SELECT {USER_COLUMNS} FROM password_resets r JOIN users u ON u.id = r.user_id \
         WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > $2"
    ))
    .bind(&token.0)
    .bind(now)
    .fetch_optional::<UserRow>(c)
    .await
    .map_err(ctx("failed to look up a reset link"))?
    .map(User::from))
}

pub(crate) async fn use_password_reset(
    c: &mut impl Conn,
    token: &TokenHash,
    hash: &PasswordHashString,
    now: DateTime<Utc>,
) -> StoreResult<Option<User>> {
    // The compare-and-set that makes a link single use: of two requests with the
    // same link, one moves the row and the other finds it used.
    let used = query(
        "UPDATE password_resets SET used_at = $2 \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id",
    )
    .bind(&token.0)
    .bind(now)
    .fetch_optional::<(String,)>(c)
    .await
    .map_err(ctx("failed to use a reset link"))?;
    let Some((user,)) = used else {
        return Ok(None);
    };
    let user = UserId::from_trusted(user);
    crate::accounts::set_password(c, &user, hash).await?;
    sign_out_everywhere(c, &user, None).await?;
    query("DELETE FROM password_resets WHERE user_id = $1 AND token_hash <> $2")
        .bind(user.as_str())
        .bind(&token.0)
        .execute(c)
        .await
        .map_err(ctx("failed to end the user's other reset links"))?;
    crate::accounts::user(c, &user).await
}

pub(crate) async fn set_mail_body(c: &mut impl Conn, id: &str, body: &str) -> StoreResult<()> {
    query("UPDATE outbox SET body = $2 WHERE id = $1")
        .bind(id)
        .bind(body)
        .execute(c)
        .await
        .map_err(ctx("failed to rewrite a mail"))?;
    Ok(())
}

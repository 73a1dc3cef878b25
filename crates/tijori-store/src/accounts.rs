//! Users, API tokens, browser sessions, time zones and plans: every statement once,
//! for both backends (see `db.rs`).

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use tijori_core::account::{PasswordHashString, Session, TokenHash, User, Username};
use tijori_core::id::{PlanId, UserId};
use tijori_core::store::{NewUser, StoreError, StoreResult};
use tijori_core::subscription::{NewPlan, Plan};

use crate::db::{ctx, db_err, query, Conn};
use crate::rows::{time, FromSqlite, PlanRow, UserRow, PLAN_COLUMNS, USER_COLUMNS};

pub(crate) async fn create_user(
    c: &mut impl Conn,
    user: NewUser,
    now: DateTime<Utc>,
) -> StoreResult<User> {
    let id = UserId::generate();
    query(
        "INSERT INTO users (id, username, email, password_hash, is_admin, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.as_str())
    .bind(user.username.as_str())
    .bind(user.email.as_str())
    .bind(&user.password_hash.0)
    .bind(user.is_admin)
    .bind(now)
    .execute(c)
    .await
    .map_err(db_err("failed to insert user", "user"))?;
    Ok(User {
        id,
        username: user.username,
        email: user.email,
        is_admin: user.is_admin,
        created_at: now,
        time_zone: None,
    })
}

pub(crate) async fn user(c: &mut impl Conn, id: &UserId) -> StoreResult<Option<User>> {
    Ok(query(&format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional::<UserRow>(c)
    .await
    .map_err(ctx("failed to load user"))?
    .map(User::from))
}

/// A user's row with their password hash, for signing in.
#[derive(FromRow)]
struct CredentialsRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

impl FromSqlite for CredentialsRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(CredentialsRow {
            user: UserRow::from_sqlite(r)?,
            password_hash: r.get("password_hash")?,
        })
    }
}

pub(crate) async fn user_credentials(
    c: &mut impl Conn,
    username: &Username,
) -> StoreResult<Option<(User, PasswordHashString)>> {
    Ok(query(&format!(
        "SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.username = $1"
    ))
    .bind(username.as_str())
    .fetch_optional::<CredentialsRow>(c)
    .await
    .map_err(ctx("failed to load credentials"))?
    .map(|r| (r.user.into(), PasswordHashString(r.password_hash))))
}

pub(crate) async fn set_password(
    c: &mut impl Conn,
    id: &UserId,
    hash: &PasswordHashString,
) -> StoreResult<()> {
    let done = query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(id.as_str())
        .bind(&hash.0)
        .execute(c)
        .await
        .map_err(ctx("failed to set password"))?;
    if done == 0 {
        return Err(StoreError::NotFound("user"));
    }
    Ok(())
}

pub(crate) async fn set_time_zone(c: &mut impl Conn, user: &UserId, zone: &str) -> StoreResult<()> {
    query("UPDATE users SET time_zone = $2 WHERE id = $1")
        .bind(user.as_str())
        .bind(zone)
        .execute(c)
        .await
        .map_err(ctx("failed to set a time zone"))?;
    Ok(())
}

pub(crate) async fn create_api_token(
    c: &mut impl Conn,
    user: &UserId,
    token: &TokenHash,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    query(
        "INSERT INTO api_tokens (token_hash, user_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&token.0)
    .bind(user.as_str())
    .bind(now)
    .bind(expires_at)
    .execute(c)
    .await
    .map_err(db_err("failed to store API token", "token"))?;
    // Issuing a token is a natural moment to forget the user's expired ones.
    query("DELETE FROM api_tokens WHERE user_id = $1 AND expires_at <= $2")
        .bind(user.as_str())
        .bind(now)
        .execute(c)
        .await
        .map_err(ctx("failed to prune expired API tokens"))?;
    Ok(())
}

pub(crate) async fn user_by_api_token(
    c: &mut impl Conn,
    token: &TokenHash,
    now: DateTime<Utc>,
) -> StoreResult<Option<User>> {
    Ok(query(&format!(
        "SELECT {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)"
    ))
    .bind(&token.0)
    .bind(now)
    .fetch_optional::<UserRow>(c)
    .await
    .map_err(ctx("failed to look up API token"))?
    .map(User::from))
}

pub(crate) async fn delete_api_token(c: &mut impl Conn, token: &TokenHash) -> StoreResult<()> {
    query("DELETE FROM api_tokens WHERE token_hash = $1")
        .bind(&token.0)
        .execute(c)
        .await
        .map_err(ctx("failed to delete API token"))?;
    Ok(())
}

pub(crate) async fn create_session(
    c: &mut impl Conn,
    user: &UserId,
    token: &TokenHash,
    csrf_token: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    query(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&token.0)
    .bind(user.as_str())
    .bind(csrf_token)
    .bind(now)
    .bind(expires_at)
    .execute(c)
    .await
    .map_err(db_err("failed to store session", "session"))?;
    // Signing in is a natural moment to forget the user's sessions that ended.
    query("DELETE FROM sessions WHERE user_id = $1 AND expires_at <= $2")
        .bind(user.as_str())
        .bind(now)
        .execute(c)
        .await
        .map_err(ctx("failed to prune expired sessions"))?;
    Ok(())
}

/// A session's row with its user.
#[derive(FromRow)]
struct SessionRow {
    #[sqlx(flatten)]
    user: UserRow,
    csrf_token: String,
    expires_at: DateTime<Utc>,
}

impl FromSqlite for SessionRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(SessionRow {
            user: UserRow::from_sqlite(r)?,
            csrf_token: r.get("csrf_token")?,
            expires_at: time(r, "expires_at")?,
        })
    }
}

pub(crate) async fn session(
    c: &mut impl Conn,
    token: &TokenHash,
    now: DateTime<Utc>,
) -> StoreResult<Option<Session>> {
    Ok(query(&format!(
        "SELECT {USER_COLUMNS}, s.csrf_token, s.expires_at FROM sessions s \
         JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2"
    ))
    .bind(&token.0)
    .bind(now)
    .fetch_optional::<SessionRow>(c)
    .await
    .map_err(ctx("failed to look up session"))?
    .map(|r| Session {
        user: r.user.into(),
        csrf_token: r.csrf_token,
        expires_at: r.expires_at,
    }))
}

pub(crate) async fn delete_session(c: &mut impl Conn, token: &TokenHash) -> StoreResult<()> {
    query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(&token.0)
        .execute(c)
        .await
        .map_err(ctx("failed to delete session"))?;
    Ok(())
}

pub(crate) async fn prune_expired_credentials(
    c: &mut impl Conn,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<(u64, u64)> {
    let tokens = query(
        "DELETE FROM api_tokens WHERE token_hash IN \
         (SELECT token_hash FROM api_tokens WHERE expires_at <= $1 LIMIT $2)",
    )
    .bind(now)
    .bind(i64::from(limit))
    .execute(c)
    .await
    .map_err(ctx("failed to prune expired API tokens"))?;
    let sessions = query(
        "DELETE FROM sessions WHERE token_hash IN \
         (SELECT token_hash FROM sessions WHERE expires_at <= $1 LIMIT $2)",
    )
    .bind(now)
    .bind(i64::from(limit))
    .execute(c)
    .await
    .map_err(ctx("failed to prune expired sessions"))?;
    Ok((tokens, sessions))
}

pub(crate) async fn create_plan(
    c: &mut impl Conn,
    plan: NewPlan,
    now: DateTime<Utc>,
) -> StoreResult<Plan> {
    let id = PlanId::generate();
    let days = i32::try_from(plan.duration_days).map_err(|_| {
        StoreError::Database(anyhow::anyhow!(
            "plan duration {} is too long",
            plan.duration_days
        ))
    })?;
    query(
        "INSERT INTO plans (id, name, description, price_minor, currency, duration_days, \
         active, created_at) VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7)",
    )
    .bind(id.as_str())
    .bind(&plan.name)
    .bind(&plan.description)
    .bind(plan.price.minor())
    .bind(plan.price.currency().code())
    .bind(days)
    .bind(now)
    .execute(c)
    .await
    .map_err(db_err("failed to insert plan", "plan"))?;
    Ok(Plan {
        id,
        name: plan.name,
        description: plan.description,
        price: plan.price,
        duration_days: plan.duration_days,
        active: true,
        created_at: now,
    })
}

pub(crate) async fn plans(c: &mut impl Conn) -> StoreResult<Vec<Plan>> {
    query(&format!(
        "SELECT {PLAN_COLUMNS} FROM plans WHERE active ORDER BY price_minor, id"
    ))
    .fetch_all::<PlanRow>(c)
    .await
    .map_err(ctx("failed to list plans"))?
    .into_iter()
    .map(Plan::try_from)
    .collect()
}

pub(crate) async fn plan(c: &mut impl Conn, id: &PlanId) -> StoreResult<Option<Plan>> {
    query(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional::<PlanRow>(c)
        .await
        .map_err(ctx("failed to load plan"))?
        .map(Plan::try_from)
        .transpose()
}

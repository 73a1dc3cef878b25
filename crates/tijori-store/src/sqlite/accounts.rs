//! Users, API tokens, browser sessions and plans.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use tijori_core::account::{PasswordHashString, Session, TokenHash, User, Username};
use tijori_core::id::{PlanId, UserId};
use tijori_core::store::{NewUser, StoreError, StoreResult};
use tijori_core::subscription::{NewPlan, Plan};

use super::{all, db_err, exec, exec_or, one, one_with, ts};
use crate::rows::{FromSqlite, PlanRow, UserRow, PLAN_COLUMNS, USER_COLUMNS};

pub(super) fn create_user(c: &Connection, user: NewUser, now: DateTime<Utc>) -> StoreResult<User> {
    let id = UserId::generate();
    exec_or(
        c,
        "INSERT INTO users (id, username, email, password_hash, is_admin, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id.as_str(),
            user.username.as_str(),
            user.email.as_str(),
            user.password_hash.0,
            user.is_admin,
            ts(now)
        ],
        db_err("failed to insert user", "user"),
    )?;
    Ok(User {
        id,
        username: user.username,
        email: user.email,
        is_admin: user.is_admin,
        created_at: now,
        time_zone: None,
    })
}

pub(super) fn user(c: &Connection, id: &UserId) -> StoreResult<Option<User>> {
    Ok(one::<UserRow>(
        c,
        &format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?1"),
        [id.as_str()],
        "failed to load user",
    )?
    .map(User::from))
}

pub(super) fn user_credentials(
    c: &Connection,
    username: &Username,
) -> StoreResult<Option<(User, PasswordHashString)>> {
    one_with(
        c,
        &format!("SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.username = ?1"),
        [username.as_str()],
        |r| {
            Ok((
                User::from(UserRow::from_sqlite(r)?),
                PasswordHashString(r.get("password_hash")?),
            ))
        },
        "failed to load credentials",
    )
}

pub(super) fn set_password(
    c: &Connection,
    id: &UserId,
    hash: &PasswordHashString,
) -> StoreResult<()> {
    let done = exec(
        c,
        "UPDATE users SET password_hash = ?2 WHERE id = ?1",
        params![id.as_str(), hash.0],
        "failed to set password",
    )?;
    if done == 0 {
        return Err(StoreError::NotFound("user"));
    }
    Ok(())
}

pub(super) fn create_api_token(
    c: &Connection,
    user: &UserId,
    token: &TokenHash,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    exec_or(
        c,
        "INSERT INTO api_tokens (token_hash, user_id, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4)",
        params![token.0, user.as_str(), ts(now), ts(expires_at)],
        db_err("failed to store API token", "token"),
    )?;
    // Issuing a token is a natural moment to forget the user's expired ones.
    exec(
        c,
        "DELETE FROM api_tokens WHERE user_id = ?1 AND expires_at <= ?2",
        params![user.as_str(), ts(now)],
        "failed to prune expired API tokens",
    )?;
    Ok(())
}

pub(super) fn user_by_api_token(
    c: &Connection,
    token: &TokenHash,
    now: DateTime<Utc>,
) -> StoreResult<Option<User>> {
    Ok(one::<UserRow>(
        c,
        &format!(
            "SELECT {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = ?1 AND (t.expires_at IS NULL OR t.expires_at > ?2)"
        ),
        params![token.0, ts(now)],
        "failed to look up API token",
    )?
    .map(User::from))
}

pub(super) fn delete_api_token(c: &Connection, token: &TokenHash) -> StoreResult<()> {
    exec(
        c,
        "DELETE FROM api_tokens WHERE token_hash = ?1",
        [&token.0],
        "failed to delete API token",
    )
    .map(drop)
}

pub(super) fn prune_expired_credentials(
    c: &Connection,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<(u64, u64)> {
    let tokens = exec(
        c,
        "DELETE FROM api_tokens WHERE token_hash IN \
         (SELECT token_hash FROM api_tokens WHERE expires_at <= ?1 LIMIT ?2)",
        params![ts(now), i64::from(limit)],
        "failed to prune expired API tokens",
    )?;
    let sessions = exec(
        c,
        "DELETE FROM sessions WHERE token_hash IN \
         (SELECT token_hash FROM sessions WHERE expires_at <= ?1 LIMIT ?2)",
        params![ts(now), i64::from(limit)],
        "failed to prune expired sessions",
    )?;
    Ok((tokens as u64, sessions as u64))
}

pub(super) fn create_session(
    c: &Connection,
    user: &UserId,
    token: &TokenHash,
    csrf_token: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    exec_or(
        c,
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![token.0, user.as_str(), csrf_token, ts(now), ts(expires_at)],
        db_err("failed to store session", "session"),
    )?;
    // Signing in is a natural moment to forget the user's sessions that ended.
    exec(
        c,
        "DELETE FROM sessions WHERE user_id = ?1 AND expires_at <= ?2",
        params![user.as_str(), ts(now)],
        "failed to prune expired sessions",
    )?;
    Ok(())
}

pub(super) fn session(
    c: &Connection,
    token: &TokenHash,
    now: DateTime<Utc>,
) -> StoreResult<Option<Session>> {
    one_with(
        c,
        &format!(
            "SELECT {USER_COLUMNS}, s.csrf_token, s.expires_at FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1 AND s.expires_at > ?2"
        ),
        params![token.0, ts(now)],
        |r| {
            let expires_at: String = r.get("expires_at")?;
            Ok(Session {
                user: UserRow::from_sqlite(r)?.into(),
                csrf_token: r.get("csrf_token")?,
                expires_at: super::parse_ts(&expires_at).ok_or_else(|| {
                    rusqlite::Error::InvalidColumnType(
                        0,
                        "expires_at".into(),
                        rusqlite::types::Type::Text,
                    )
                })?,
            })
        },
        "failed to look up session",
    )
}

pub(super) fn delete_session(c: &Connection, token: &TokenHash) -> StoreResult<()> {
    exec(
        c,
        "DELETE FROM sessions WHERE token_hash = ?1",
        [&token.0],
        "failed to delete session",
    )
    .map(drop)
}

pub(super) fn create_plan(c: &Connection, plan: NewPlan, now: DateTime<Utc>) -> StoreResult<Plan> {
    let id = PlanId::generate();
    let days = i32::try_from(plan.duration_days).map_err(|_| {
        StoreError::Database(anyhow::anyhow!(
            "plan duration {} is too long",
            plan.duration_days
        ))
    })?;
    exec_or(
        c,
        "INSERT INTO plans (id, name, description, price_minor, currency, duration_days, \
         active, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, TRUE, ?7)",
        params![
            id.as_str(),
            plan.name,
            plan.description,
            plan.price.minor(),
            plan.price.currency().code(),
            days,
            ts(now)
        ],
        db_err("failed to insert plan", "plan"),
    )?;
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

pub(super) fn plans(c: &Connection) -> StoreResult<Vec<Plan>> {
    all::<PlanRow>(
        c,
        &format!("SELECT {PLAN_COLUMNS} FROM plans WHERE active ORDER BY price_minor, id"),
        [],
        "failed to list plans",
    )?
    .into_iter()
    .map(Plan::try_from)
    .collect()
}

pub(super) fn plan(c: &Connection, id: &PlanId) -> StoreResult<Option<Plan>> {
    one::<PlanRow>(
        c,
        &format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = ?1"),
        [id.as_str()],
        "failed to load plan",
    )?
    .map(Plan::try_from)
    .transpose()
}

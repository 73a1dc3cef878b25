//! Users, tokens, sessions and plans: `AccountStore` on SQLite, through the statements
//! in `crate::accounts`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::account::{Email, PasswordHashString, Session, TokenHash, User, Username};
use tijori_core::id::{PlanId, UserId};
use tijori_core::mail::OutboxMail;
use tijori_core::store::{AccountStore, NewUser, StoreResult};
use tijori_core::subscription::{NewPlan, Plan};

use super::SqliteStore;
use crate::{account_basics, accounts};

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_user(&self, user: NewUser, now: DateTime<Utc>) -> StoreResult<User> {
        self.write_with(async move |c| accounts::create_user(c, user, now).await)
            .await
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        self.read_with(async |c| accounts::user(c, id).await)
    }

    async fn user_credentials(
        &self,
        username: &Username,
    ) -> StoreResult<Option<(User, PasswordHashString)>> {
        self.read_with(async |c| accounts::user_credentials(c, username).await)
    }

    async fn set_password(&self, id: &UserId, hash: &PasswordHashString) -> StoreResult<()> {
        let (id, hash) = (id.clone(), hash.clone());
        self.write_with(async move |c| accounts::set_password(c, &id, &hash).await)
            .await
    }

    async fn create_api_token(
        &self,
        user: &UserId,
        token: &TokenHash,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (user, token) = (user.clone(), token.clone());
        self.write_with(async move |c| {
            accounts::create_api_token(c, &user, &token, expires_at, now).await
        })
        .await
    }

    async fn user_by_api_token(
        &self,
        token: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        self.read_with(async |c| accounts::user_by_api_token(c, token, now).await)
    }

    async fn delete_api_token(&self, token: &TokenHash) -> StoreResult<()> {
        let token = token.clone();
        self.write_with(async move |c| accounts::delete_api_token(c, &token).await)
            .await
    }

    async fn create_session(
        &self,
        user: &UserId,
        token: &TokenHash,
        csrf_token: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (user, token, csrf_token) = (user.clone(), token.clone(), csrf_token.to_owned());
        self.write_with(async move |c| {
            accounts::create_session(c, &user, &token, &csrf_token, expires_at, now).await
        })
        .await
    }

    async fn session(&self, token: &TokenHash, now: DateTime<Utc>) -> StoreResult<Option<Session>> {
        self.read_with(async |c| accounts::session(c, token, now).await)
    }

    async fn delete_session(&self, token: &TokenHash) -> StoreResult<()> {
        let token = token.clone();
        self.write_with(async move |c| accounts::delete_session(c, &token).await)
            .await
    }

    async fn prune_expired_credentials(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<(u64, u64)> {
        self.write_with(async move |c| accounts::prune_expired_credentials(c, now, limit).await)
            .await
    }

    async fn set_time_zone(&self, user: &UserId, zone: &str) -> StoreResult<()> {
        let (user, zone) = (user.clone(), zone.to_owned());
        self.write_with(async move |c| accounts::set_time_zone(c, &user, &zone).await)
            .await
    }

    async fn create_plan(&self, plan: NewPlan, now: DateTime<Utc>) -> StoreResult<Plan> {
        self.write_with(async move |c| accounts::create_plan(c, plan, now).await)
            .await
    }

    async fn plans(&self) -> StoreResult<Vec<Plan>> {
        self.read_with(async |c| accounts::plans(c).await)
    }

    async fn plan(&self, id: &PlanId) -> StoreResult<Option<Plan>> {
        self.read_with(async |c| accounts::plan(c, id).await)
    }

    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        self.read_with(async |c| account_basics::user_by_email(c, email).await)
    }

    async fn change_password(
        &self,
        id: &UserId,
        hash: &PasswordHashString,
        keep: Option<&TokenHash>,
    ) -> StoreResult<()> {
        let (id, hash, keep) = (id.clone(), hash.clone(), keep.cloned());
        self.write_with(async move |c| {
            account_basics::change_password(c, &id, &hash, keep.as_ref()).await
        })
        .await
    }

    async fn set_email(&self, id: &UserId, email: &Email) -> StoreResult<()> {
        let (id, email) = (id.clone(), email.clone());
        self.write_with(async move |c| account_basics::set_email(c, &id, &email).await)
            .await
    }

    async fn create_password_reset(
        &self,
        user: &UserId,
        token: &TokenHash,
        expires_at: DateTime<Utc>,
        mail: &OutboxMail,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (user, token, mail) = (user.clone(), token.clone(), mail.clone());
        self.write_with(async move |c| {
            account_basics::create_password_reset(c, &user, &token, expires_at, &mail, now).await
        })
        .await
    }

    async fn password_reset(
        &self,
        token: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        self.read_with(async |c| account_basics::password_reset(c, token, now).await)
    }

    async fn use_password_reset(
        &self,
        token: &TokenHash,
        hash: &PasswordHashString,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        let (token, hash) = (token.clone(), hash.clone());
        self.write_with(async move |c| {
            account_basics::use_password_reset(c, &token, &hash, now).await
        })
        .await
    }

    async fn set_mail_body(&self, id: &str, body: &str) -> StoreResult<()> {
        let (id, body) = (id.to_owned(), body.to_owned());
        self.write_with(async move |c| account_basics::set_mail_body(c, &id, &body).await)
            .await
    }
}

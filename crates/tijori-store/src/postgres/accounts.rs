//! Users, tokens, sessions and plans: `AccountStore` on PostgreSQL, through the
//! statements in `crate::accounts`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::account::{Email, PasswordHashString, Session, TokenHash, User, Username};
use tijori_core::id::{PlanId, UserId};
use tijori_core::mail::OutboxMail;
use tijori_core::store::{AccountStore, NewUser, StoreResult};
use tijori_core::subscription::{NewPlan, Plan};

use super::PgStore;
use crate::{account_basics, accounts};

#[async_trait]
impl AccountStore for PgStore {
    async fn create_user(&self, user: NewUser, now: DateTime<Utc>) -> StoreResult<User> {
        accounts::create_user(&mut self.pool(), user, now).await
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        accounts::user(&mut self.pool(), id).await
    }

    async fn user_credentials(
        &self,
        username: &Username,
    ) -> StoreResult<Option<(User, PasswordHashString)>> {
        accounts::user_credentials(&mut self.pool(), username).await
    }

    async fn set_password(&self, id: &UserId, hash: &PasswordHashString) -> StoreResult<()> {
        accounts::set_password(&mut self.pool(), id, hash).await
    }

    async fn create_api_token(
        &self,
        user: &UserId,
        token: &TokenHash,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        accounts::create_api_token(&mut self.pool(), user, token, expires_at, now).await
    }

    async fn user_by_api_token(
        &self,
        token: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        accounts::user_by_api_token(&mut self.pool(), token, now).await
    }

    async fn delete_api_token(&self, token: &TokenHash) -> StoreResult<()> {
        accounts::delete_api_token(&mut self.pool(), token).await
    }

    async fn create_session(
        &self,
        user: &UserId,
        token: &TokenHash,
        csrf_token: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        accounts::create_session(&mut self.pool(), user, token, csrf_token, expires_at, now).await
    }

    async fn session(&self, token: &TokenHash, now: DateTime<Utc>) -> StoreResult<Option<Session>> {
        accounts::session(&mut self.pool(), token, now).await
    }

    async fn delete_session(&self, token: &TokenHash) -> StoreResult<()> {
        accounts::delete_session(&mut self.pool(), token).await
    }

    async fn prune_expired_credentials(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<(u64, u64)> {
        accounts::prune_expired_credentials(&mut self.pool(), now, limit).await
    }

    async fn set_time_zone(&self, user: &UserId, zone: &str) -> StoreResult<()> {
        accounts::set_time_zone(&mut self.pool(), user, zone).await
    }

    async fn create_plan(&self, plan: NewPlan, now: DateTime<Utc>) -> StoreResult<Plan> {
        accounts::create_plan(&mut self.pool(), plan, now).await
    }

    async fn plans(&self) -> StoreResult<Vec<Plan>> {
        accounts::plans(&mut self.pool()).await
    }

    async fn plan(&self, id: &PlanId) -> StoreResult<Option<Plan>> {
        accounts::plan(&mut self.pool(), id).await
    }

    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        account_basics::user_by_email(&mut self.pool(), email).await
    }

    async fn change_password(
        &self,
        id: &UserId,
        hash: &PasswordHashString,
        keep: Option<&TokenHash>,
    ) -> StoreResult<()> {
        self.write_with(async |tx| account_basics::change_password(tx, id, hash, keep).await)
            .await
    }

    async fn set_email(&self, id: &UserId, email: &Email) -> StoreResult<()> {
        account_basics::set_email(&mut self.pool(), id, email).await
    }

    async fn create_password_reset(
        &self,
        user: &UserId,
        token: &TokenHash,
        expires_at: DateTime<Utc>,
        mail: &OutboxMail,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.write_with(async |tx| {
            account_basics::create_password_reset(tx, user, token, expires_at, mail, now).await
        })
        .await
    }

    async fn password_reset(
        &self,
        token: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        account_basics::password_reset(&mut self.pool(), token, now).await
    }

    async fn use_password_reset(
        &self,
        token: &TokenHash,
        hash: &PasswordHashString,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        self.write_with(async |tx| account_basics::use_password_reset(tx, token, hash, now).await)
            .await
    }

    async fn set_mail_body(&self, id: &str, body: &str) -> StoreResult<()> {
        account_basics::set_mail_body(&mut self.pool(), id, body).await
    }
}

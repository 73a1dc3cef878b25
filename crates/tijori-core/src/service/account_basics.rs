//! What a customer does to their own account: change their password or e-mail
//! address (each behind their current password), reset a forgotten password by an
//! e-mail link, and cancel an order they have not paid.

use chrono::Duration;
use tracing::info;

use super::Tijori;
use crate::account::{invalid, Email, Password, SecretToken, TokenHash, User};
use crate::error::{Error, Result};
use crate::id::OrderId;
use crate::mail::OutboxMail;
use crate::shop::{Order, OrderStatus};
use crate::store::StoreError;

/// How long a password reset link works, in minutes: long enough to find the mail,
/// short enough that a mailbox read later opens nothing.
pub const PASSWORD_RESET_MINUTES: i64 = 30;

/// The page a reset link opens (under the public URL); its secret rides in the query,
/// which request logs leave out (they log the path).
pub const PASSWORD_RESET_PATH: &str = "/reset-password";

impl Tijori {
    /// Checks `current` against the user's password, as a field error on
    /// `current_password` (not `BadCredentials`: the user is signed in, and the form
    /// shows the error beside that field). Costs one hash, like signing in.
    async fn check_current_password(&self, user: &User, current: &str) -> Result<()> {
        let wrong = || invalid("current_password", "is not your current password");
        let password = Password::parse(current).map_err(|_| wrong())?;
        let (_, hash) = self
            .store
            .user_credentials(&user.username)
            .await?
            .ok_or(Error::NotFound("user"))?;
        if self.hasher.run(move || password.verify(&hash)).await? {
            Ok(())
        } else {
            Err(wrong().into())
        }
    }

    /// A signed-in user changes their password. The current one is required; the
    /// new one obeys the sign-up rules. Every other browser session and every API
    /// token of theirs ends (`keep` is the session that asked, when it is a browser's):
    /// whoever learned the old password is signed out, and API clients sign in again.
    pub async fn change_password(
        &self,
        user: &User,
        current: &str,
        new: &str,
        keep: Option<&str>,
    ) -> Result<()> {
        let new = Password::parse(new).map_err(|e| invalid("new_password", e.message))?;
        self.check_current_password(user, current).await?;
        let hash = self.hasher.run(move || new.hash()).await?;
        let keep = keep.map(|k| SecretToken::from_presented(k).hash());
        self.store
            .change_password(&user.id, &hash, keep.as_ref())
            .await?;
        info!(user = %user.id, "password changed; other sessions and API tokens ended");
        Ok(())
    }

    /// A signed-in user changes their e-mail address, checked as at sign-up, with
    /// their current password. An address another account has is `email_taken`.
    pub async fn change_email(&self, user: &User, current: &str, email: &str) -> Result<Email> {
        let email = Email::parse(email)?;
        self.check_current_password(user, current).await?;
        self.store
            .set_email(&user.id, &email)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => Error::Conflict {
                    code: "email_taken",
                    message: "another account already has that e-mail address".into(),
                },
                other => other.into(),
            })?;
        info!(user = %user.id, "e-mail address changed");
        Ok(email)
    }

    /// Someone asks for a password reset link for `email`. When an account has that
    /// address, a single-use link valid [`PASSWORD_RESET_MINUTES`] goes to it by mail
    /// (the outbox, then SMTP if configured); otherwise nothing happens. The caller
    /// answers the same either way (and should not wait for this to answer: see the
    /// web layer), so the form never tells who has an account.
    pub async fn request_password_reset(&self, email: &str) -> Result<()> {
        let Ok(email) = Email::parse(email) else {
            return Ok(());
        };
        let Some(user) = self.store.user_by_email(&email).await? else {
            return Ok(());
        };
        let token = SecretToken::generate();
        let now = self.now();
        let expires_at = now + Duration::minutes(PASSWORD_RESET_MINUTES);
        let link = format!(
            "{}{PASSWORD_RESET_PATH}?token={}",
            self.settings.public_url,
            token.expose()
        );
        let mail = OutboxMail {
            id: format!("mail_{}", uuid::Uuid::now_v7().simple()),
            user_id: user.id.clone(),
            to: user.email.as_str().to_owned(),
            subject: "Reset your password".into(),
            body: reset_mail(user.username.as_str(), &link),
            status: "queued".into(),
            error: None,
            created_at: now,
            sent_at: None,
        };
        self.store
            .create_password_reset(&user.id, &token.hash(), expires_at, &mail, now)
            .await?;
        // This process's worker delivers it now rather than at its next poll.
        self.jobs_queued.notify_one();
        info!(user = %user.id, "password reset link sent");
        Ok(())
    }

    /// Whose open reset link this is (for the page that asks for the new password);
    /// `None` for a link unknown, used or expired.
    pub async fn password_reset_user(&self, token: &str) -> Result<Option<User>> {
        Ok(self
            .store
            .password_reset(&reset_hash(token), self.now())
            .await?)
    }

    /// Sets a new password through a reset link, which works once. Every session and
    /// API token of the user ends. A link unknown, used or expired is
    /// `reset_link_invalid`; a new password that breaks the sign-up rules changes
    /// nothing and leaves the link open.
    pub async fn reset_password(&self, token: &str, new: &str) -> Result<User> {
        let dead = || Error::Refused {
            code: "reset_link_invalid",
            message: "this reset link has expired or was used already; ask for a new one".into(),
        };
        let new = Password::parse(new)?;
        let hash = reset_hash(token);
        // A cheap look first: a dead link costs no password hash.
        if self
            .store
            .password_reset(&hash, self.now())
            .await?
            .is_none()
        {
            return Err(dead());
        }
        let password_hash = self.hasher.run(move || new.hash()).await?;
        // The store's compare-and-set decides: of two uses at once, one wins.
        let user = self
            .store
            .use_password_reset(&hash, &password_hash, self.now())
            .await?
            .ok_or_else(dead)?;
        info!(user = %user.id, "password reset; every session and API token ended");
        Ok(user)
    }

    /// The customer cancels their own unpaid order: its stock goes back on the shelf
    /// at once, exactly once (whichever of this, the expiry job and a payment's
    /// settlement moves the order first wins; see `ShopStore::cancel_order`). Money
    /// that arrives for it later follows `shop::order_payment`. Someone else's order
    /// is `not_found`; one that is not pending (or has expired) is
    /// `order_not_pending`.
    pub async fn cancel_order(&self, user: &User, order_id: &OrderId) -> Result<Order> {
        // Only the owner cancels, admins included (they refund instead).
        let order = self
            .store
            .order(order_id)
            .await?
            .filter(|o| o.user_id == user.id)
            .ok_or(Error::NotFound("order"))?;
        let now = self.now();
        if !self.store.cancel_order(&order.id, &user.id, now).await? {
            let order = self
                .store
                .order(order_id)
                .await?
                .ok_or(Error::NotFound("order"))?;
            let status = match order.status {
                OrderStatus::Pending => "expired",
                s => s.as_str(),
            };
            return Err(Error::Conflict {
                code: "order_not_pending",
                message: format!("the order is {status}, so it cannot be canceled"),
            });
        }
        info!(order = %order.id, user = %user.id, "order canceled by its customer");
        self.store
            .order(order_id)
            .await?
            .ok_or(Error::NotFound("order"))
    }
}

/// A mail whose reset link's secret is blanked out, for the outbox's copy once SMTP
/// has taken the mail: the secret then lives only in the customer's inbox (and as
/// its hash). `None` for a mail without a reset link. Kept mail (no SMTP) keeps its
/// link: the outbox is then how the operator passes it on.
pub(super) fn without_reset_secret(body: &str) -> Option<String> {
    let marker = format!("{PASSWORD_RESET_PATH}?token=");
    let start = body.find(&marker)? + marker.len();
    let end = body[start..]
        .find(|c: char| c.is_whitespace())
        .map_or(body.len(), |n| start + n);
    Some(format!(
        "{}(removed once sent){}",
        &body[..start],
        &body[end..]
    ))
}

fn reset_hash(token: &str) -> TokenHash {
    // A token of any length is hashed to the same size: nothing presented reaches
    // the database as it came.
    SecretToken::from_presented(token).hash()
}

/// The reset mail, plain text.
fn reset_mail(username: &str, link: &str) -> String {
    format!(
        "Hello {username},\n\nSomeone, we hope you, asked to reset the password of your \
         account. To choose a new password, open this link within {PASSWORD_RESET_MINUTES} \
         minutes:\n\n{link}\n\nThe link works once. If you did not ask, you can ignore this \
         mail: your password stays as it is.\n\n— tijori\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reset_mail_carries_the_link_and_says_how_long_it_works() {
        let body = reset_mail("asha", "https://shop.example/reset-password?token=abc");
        assert!(body.contains("Hello asha,"));
        assert!(body.contains("\nhttps://shop.example/reset-password?token=abc\n"));
        assert!(body.contains("within 30 minutes"));
    }

    #[test]
    fn the_outbox_copy_of_a_sent_reset_mail_loses_its_secret() {
        let body = reset_mail("asha", "https://shop.example/reset-password?token=abc-_123");
        let kept = without_reset_secret(&body).unwrap();
        assert!(!kept.contains("abc-_123"), "{kept}");
        assert!(
            kept.contains("/reset-password?token=(removed once sent)\n"),
            "{kept}"
        );
        assert!(kept.starts_with("Hello asha,") && kept.ends_with("— tijori\n"));
        assert_eq!(without_reset_secret("Your plan ends soon"), None);
    }

    #[test]
    fn reset_secrets_are_kept_only_as_their_hash() {
        let token = SecretToken::generate();
        // 32 random bytes, URL-safe base64: 256 bits.
        assert_eq!(token.expose().len(), 43);
        let hash = reset_hash(token.expose());
        assert_eq!(hash.0.len(), 64);
        assert!(!hash.0.contains(token.expose()));
        assert_eq!(hash, token.hash());
    }
}

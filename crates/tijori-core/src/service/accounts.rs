//! Accounts: sign-up, sign-in, API tokens and browser sessions. Passwords are hashed
//! off the async threads, a few at a time (`Hasher`).

use std::sync::Arc;

use chrono::Duration;
use tracing::{info, warn};

use crate::account::{invalid, Email, Password, SecretToken, Session, User, Username};
use crate::error::{Error, Result};
use crate::id::UserId;
use crate::store::NewUser;

use super::*;

impl Tijori {
    // Accounts -------------------------------------------------------------------
    /// Creates an account, admins included (the CLI's `user create`); customers sign up
    /// through [`Tijori::register`]. A username or e-mail already registered is a
    /// `username_taken` conflict.
    pub async fn create_user(
        &self,
        username: &str,
        email: &str,
        password: &str,
        is_admin: bool,
    ) -> Result<User> {
        let username = Username::parse(username)?;
        let email = Email::parse(email)?;
        let password = Password::parse(password)?;
        let password_hash = self.hasher.run(move || password.hash()).await?;
        let user = self
            .store
            .create_user(
                NewUser {
                    username,
                    email,
                    password_hash,
                    is_admin,
                },
                self.now(),
            )
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Conflict(_) => Error::Conflict {
                    code: "username_taken",
                    message: "that username or e-mail is already registered".into(),
                },
                other => other.into(),
            })?;
        info!(user = %user.id, username = user.username.as_str(), "user created");
        Ok(user)
    }

    /// A customer signing up: `create_user` with the zone they chose for their
    /// dates, checked before anything is stored so a bad zone creates no account. A
    /// legacy spelling (Chromium's "Asia/Katmandu") is stored by its canonical id.
    pub async fn register(
        &self,
        username: &str,
        email: &str,
        password: &str,
        time_zone: Option<&str>,
    ) -> Result<User> {
        let zone = match time_zone.map(str::trim).filter(|z| !z.is_empty()) {
            Some(z) => Some(
                crate::mail::offset_of(z)
                    .ok_or_else(|| {
                        invalid(
                            "time_zone",
                            format!("must be one of {}", crate::mail::TIME_ZONES.join(", ")),
                        )
                    })?
                    .0,
            ),
            None => None,
        };
        let mut user = self.create_user(username, email, password, false).await?;
        if let Some(zone) = zone {
            self.store.set_time_zone(&user.id, zone).await?;
            user.time_zone = Some(zone.to_owned());
        }
        Ok(user)
    }

    /// Checks a username and password. A wrong username and a wrong password are the
    /// same answer, and take about as long, so neither leaks which accounts exist.
    pub async fn check_credentials(&self, username: &str, password: &str) -> Result<User> {
        let password = Password::parse(password).map_err(|_| Error::BadCredentials)?;
        let found = match Username::parse(username) {
            Ok(u) => self.store.user_credentials(&u).await?,
            Err(_) => None,
        };
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, dummy_hash().clone()),
        };
        let ok = self.hasher.run(move || password.verify(&hash)).await?;
        match user {
            Some(user) if ok => Ok(user),
            _ => Err(Error::BadCredentials),
        }
    }

    /// A new API token for the user, valid [`API_TOKEN_LIFETIME_DAYS`]. Only its hash
    /// is stored: this is the one time its secret is seen.
    pub async fn issue_api_token(&self, user: &UserId) -> Result<SecretToken> {
        let token = SecretToken::generate();
        let now = self.now();
        let expires = now + Duration::days(API_TOKEN_LIFETIME_DAYS);
        self.store
            .create_api_token(user, &token.hash(), expires, now)
            .await?;
        Ok(token)
    }

    /// The user a presented bearer token signs in; `None` for an unknown or expired
    /// one.
    pub async fn user_by_api_token(&self, presented: &str) -> Result<Option<User>> {
        Ok(self
            .store
            .user_by_api_token(&SecretToken::from_presented(presented).hash(), self.now())
            .await?)
    }

    /// Revokes an API token (signing an API client out).
    pub async fn revoke_api_token(&self, presented: &str) -> Result<()> {
        Ok(self
            .store
            .delete_api_token(&SecretToken::from_presented(presented).hash())
            .await?)
    }

    /// Opens a browser session: the cookie's secret and the session's CSRF token.
    pub async fn start_session(&self, user: &UserId) -> Result<(SecretToken, String)> {
        let token = SecretToken::generate();
        let csrf = SecretToken::generate().expose().to_owned();
        let now = self.now();
        let expires = now + Duration::days(SESSION_LIFETIME_DAYS);
        self.store
            .create_session(user, &token.hash(), &csrf, expires, now)
            .await?;
        Ok((token, csrf))
    }

    /// The live session a presented cookie secret opens; `None` for an unknown or
    /// expired one.
    pub async fn session(&self, presented: &str) -> Result<Option<Session>> {
        Ok(self
            .store
            .session(&SecretToken::from_presented(presented).hash(), self.now())
            .await?)
    }

    /// Signs a browser session out; an unknown secret is no error.
    pub async fn end_session(&self, presented: &str) -> Result<()> {
        Ok(self
            .store
            .delete_session(&SecretToken::from_presented(presented).hash())
            .await?)
    }
}

/// Runs password hashing off the async threads, at most one hash per core at a time:
/// each takes 19 MiB and tens of milliseconds, and sign-in is open to anyone. A flood
/// must neither spawn a thread (and its memory) per attempt nor build a queue whose
/// wait grows without end: a few hashes' worth wait their turn, and beyond that an
/// attempt is refused at once (503, try again in a second).
pub(crate) struct Hasher {
    permits: Arc<tokio::sync::Semaphore>,
    /// Hashes running or waiting for a permit.
    admitted: std::sync::atomic::AtomicUsize,
    most_admitted: usize,
}

impl Hasher {
    /// How many hashes may wait per core by default: about a second of work.
    pub const WAITING_PER_CORE: usize = 8;

    /// At most `waiting` hashes wait (by default [`Self::WAITING_PER_CORE`] a core).
    pub(super) fn new(waiting: Option<usize>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Hasher {
            permits: Arc::new(tokio::sync::Semaphore::new(cores)),
            admitted: std::sync::atomic::AtomicUsize::new(0),
            most_admitted: cores + waiting.unwrap_or(cores * Self::WAITING_PER_CORE),
        }
    }

    pub(super) async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        use std::sync::atomic::Ordering;
        /// Gives the place back however the hash ends (finished, failed, cancelled).
        struct Admitted(Arc<Hasher>);
        impl Drop for Admitted {
            fn drop(&mut self) {
                self.0.admitted.fetch_sub(1, Ordering::AcqRel);
            }
        }
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.most_admitted {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            warn!("password hashing is saturated: refusing a sign-in or sign-up (503)");
            return Err(Error::Overloaded {
                message: "too many sign-ins at once; try again in a moment",
                retry_after_secs: 1,
            });
        }
        let place = Admitted(Arc::clone(self));
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| Error::Internal(anyhow::anyhow!("hashing semaphore closed: {e}")))?;
        // The place and the permit go with the hash itself: a client that hangs up
        // cancels this future, not the hash, which keeps its core until it ends.
        tokio::task::spawn_blocking(move || {
            let _held = (place, permit);
            f()
        })
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("blocking task failed: {e}")))
    }
}

/// A real hash to verify against when the username is unknown, so that case costs
/// the same time as a wrong password.
fn dummy_hash() -> &'static crate::account::PasswordHashString {
    static HASH: std::sync::OnceLock<crate::account::PasswordHashString> =
        std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        Password::parse("not-a-real-password")
            .expect("valid")
            .hash()
    })
}

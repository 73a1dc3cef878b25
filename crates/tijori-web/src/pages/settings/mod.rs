//! `/account/settings/`: the signed-in customer changes their password, e-mail
//! address and time zone. Each is a form of its own, answered by a redirect back
//! here with a notice, or by the page again with the error beside its field.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::CookieJar;
use minijinja::{context, Value};
use serde::Deserialize;
use tijori_core::account::Session;
use tijori_core::mail::TIME_ZONES;

use super::{Page, PageResult, SignedIn};
use crate::error::ApiError;
use crate::extract::{check_csrf_field, Form, SESSION_COOKIE};
use crate::i18n::tr;
use crate::AppState;

pub(super) const TEMPLATES: &[(&str, &str)] = &[("settings.html", include_str!("settings.html"))];

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/account/settings/", get(settings_page))
        .route("/account/settings/password", post(change_password))
        .route("/account/settings/email", post(change_email))
        .route("/account/settings/time-zone", post(change_time_zone))
}

/// What was just saved, for the notice on the page it comes back to.
#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

fn done_text(done: &str) -> Option<&'static str> {
    match done {
        "password" => Some(tr("Your password has been changed. Every other device signed in to your account, and every API token, was signed out.")),
        "email" => Some(tr("Your e-mail address has been changed.")),
        "time_zone" => Some(tr("Your time zone has been saved.")),
        _ => None,
    }
}

/// The page, with `extra` (a form's error and what was typed) over what it shows.
fn settings(s: &Session, extra: Value) -> Page {
    let user = &s.user;
    Page::new(
        "settings.html",
        context! {
            email => user.email.as_str(),
            time_zone => user.time_zone.as_deref().unwrap_or(""),
            time_zones => TIME_ZONES,
            ..extra
        },
    )
}

async fn settings_page(SignedIn(s): SignedIn, Query(q): Query<DoneQuery>) -> Page {
    let done = q.done.as_deref().and_then(done_text);
    settings(&s, context! { done })
}

/// The field an error is about, for the form to put it beside: `field: message`
/// of a validation error, or the field a conflict is about.
fn field_of(e: &ApiError, fields: &[&'static str]) -> Option<&'static str> {
    match e.code {
        "validation_error" => fields
            .iter()
            .copied()
            .find(|f| e.detail.starts_with(&format!("{f}:"))),
        "email_taken" => fields.iter().copied().find(|f| *f == "email"),
        _ => None,
    }
}

/// The settings page again after `e`, on the form `form` (`password`, `email` or
/// `time_zone`), with the error beside its field when it names one.
fn failed(
    s: &Session,
    form: &str,
    e: &ApiError,
    fields: &[&'static str],
    typed: Value,
) -> Response {
    let error_field = field_of(e, fields);
    // "new_password: must be …" reads better beside its field as "Must be …".
    let message = match error_field
        .filter(|_| e.code == "validation_error")
        .and_then(|f| e.detail.strip_prefix(f))
        .and_then(|rest| rest.strip_prefix(':'))
    {
        Some(rest) => {
            let mut c = rest.trim().chars();
            match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect::<String>() + ".",
                None => e.detail.clone(),
            }
        }
        None => e.detail.clone(),
    };
    settings(s, context! { form, error => message, error_field, ..typed })
        .after(e)
        .into_response()
}

#[derive(Deserialize)]
struct PasswordForm {
    /// Missing is refused as wrong (403), not as a malformed form.
    #[serde(default)]
    csrf_token: String,
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    jar: CookieJar,
    Form(form): Form<PasswordForm>,
) -> PageResult<Response> {
    check_csrf_field(&s, &form.csrf_token)?;
    // This browser stays signed in; every other session and API token ends.
    let keep = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned());
    match state
        .tijori
        .change_password(
            &s.user,
            &form.current_password,
            &form.new_password,
            keep.as_deref(),
        )
        .await
    {
        Ok(()) => Ok(Redirect::to("/account/settings/?done=password").into_response()),
        Err(e) => Ok(failed(
            &s,
            "password",
            &e.into(),
            &["current_password", "new_password"],
            context! {},
        )),
    }
}

#[derive(Deserialize)]
struct EmailForm {
    #[serde(default)]
    csrf_token: String,
    email: String,
    current_password: String,
}

async fn change_email(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    Form(form): Form<EmailForm>,
) -> PageResult<Response> {
    check_csrf_field(&s, &form.csrf_token)?;
    match state
        .tijori
        .change_email(&s.user, &form.current_password, &form.email)
        .await
    {
        Ok(_) => Ok(Redirect::to("/account/settings/?done=email").into_response()),
        Err(e) => Ok(failed(
            &s,
            "email",
            &e.into(),
            &["email", "current_password"],
            context! { new_email => form.email },
        )),
    }
}

#[derive(Deserialize)]
struct TimeZoneForm {
    #[serde(default)]
    csrf_token: String,
    time_zone: String,
}

async fn change_time_zone(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    Form(form): Form<TimeZoneForm>,
) -> PageResult<Response> {
    check_csrf_field(&s, &form.csrf_token)?;
    match state
        .tijori
        .set_time_zone(&s.user.id, &form.time_zone)
        .await
    {
        Ok(()) => Ok(Redirect::to("/account/settings/?done=time_zone").into_response()),
        Err(e) => Ok(failed(
            &s,
            "time_zone",
            &e.into(),
            &["time_zone"],
            context! {},
        )),
    }
}

#[cfg(test)]
mod tests {
    use minijinja::context;

    use super::super::tests::{render, viewer};

    /// Each field has a label, and an error is tied to its field (`aria-invalid`,
    /// `aria-describedby` naming the message).
    #[test]
    fn errors_sit_beside_their_field() {
        let html = render(
            "settings.html",
            context! {
                viewer => viewer(false), email => "asha@example.com", time_zone => "UTC",
                time_zones => tijori_core::mail::TIME_ZONES,
                form => "password", error => "Is not your current password.",
                error_field => "current_password",
            },
        );
        assert!(
            html.contains(
                "id=\"pw-current\" name=\"current_password\" type=\"password\" \
                 autocomplete=\"current-password\" required aria-invalid=\"true\" \
                 aria-describedby=\"pw-current-error\""
            ),
            "{html}"
        );
        assert!(html.contains("id=\"pw-current-error\""), "{html}");
        // The e-mail form's password field is not marked.
        assert_eq!(html.matches(" aria-invalid=\"true\"").count(), 1, "{html}");
        for id in [
            "pw-current",
            "pw-new",
            "email",
            "email-password",
            "time_zone",
        ] {
            assert!(
                html.contains(&format!("<label for=\"{id}\"")),
                "{id}: {html}"
            );
        }
    }
}

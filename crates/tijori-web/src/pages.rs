//! The customer's pages: home (plans), sign in/up, the gateway's return page, and the
//! account page. Server-rendered; forms work without JavaScript, which only adds
//! live updates.

use axum::extract::{Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::CookieJar;
use minijinja::{context, Environment, Value};
use serde::{Deserialize, Serialize};
use tijori_core::account::Session;
use tijori_core::gateway::GatewayKind;
use tijori_core::payment::PaymentStatus;
use tijori_core::service::PaymentKey;

use crate::auth::{end_session_cookie, start_session};
use crate::error::ApiError;
use crate::extract::{check_csrf_field, Form, Visitor};
use crate::subscriptions::{parse_gateway, start_subscription};
use crate::views::{status_message, PaymentView, PlanView, SubscriptionView};
use crate::AppState;

pub struct Templates(Environment<'static>);

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("../templates/base.html")),
            ("home.html", include_str!("../templates/home.html")),
            ("login.html", include_str!("../templates/login.html")),
            ("register.html", include_str!("../templates/register.html")),
            (
                "payment_success.html",
                include_str!("../templates/payment_success.html"),
            ),
            ("account.html", include_str!("../templates/account.html")),
            ("error.html", include_str!("../templates/error.html")),
        ] {
            env.add_template(name, source)
                .expect("built-in templates parse");
        }
        Templates(env)
    }

    fn render(&self, name: &str, ctx: Value) -> Response {
        match self.0.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "failed to render page");
                (StatusCode::INTERNAL_SERVER_ERROR, "failed to render page").into_response()
            }
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/register", get(register_page).post(register))
        .route("/logout", post(logout))
        .route("/subscribe", post(subscribe))
        .route("/payment-success/", get(payment_success))
        .route("/account/", get(account))
}

/// What every page's layout needs to know about the visitor.
#[derive(Serialize)]
struct Viewer {
    username: String,
    csrf_token: String,
    is_admin: bool,
}

fn viewer(session: &Option<Session>) -> Option<Viewer> {
    session.as_ref().map(|s| Viewer {
        username: s.user.username.as_str().to_owned(),
        csrf_token: s.csrf_token.clone(),
        is_admin: s.user.is_admin,
    })
}

fn error_page(
    state: &AppState,
    session: &Option<Session>,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Response {
    let mut response = state.pages.render(
        "error.html",
        context! { viewer => viewer(session), title, message, status => status.as_u16() },
    );
    *response.status_mut() = status;
    response
}

/// Shows an API error as a page, in the customer's words.
fn api_error_page(state: &AppState, session: &Option<Session>, e: ApiError) -> Response {
    let title = match e.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        s if s.is_server_error() => "Something went wrong",
        _ => "That did not work",
    };
    error_page(state, session, e.status, title, &e.detail)
}

/// Only a local path may be a redirect target, or a crafted link could bounce a
/// customer to another site after signing in.
fn safe_next(next: Option<&str>) -> String {
    // Visible ASCII only: browsers drop tabs and newlines from URLs, so "/\t/evil"
    // would become the protocol-relative "//evil".
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.bytes().all(|b| (0x21..=0x7e).contains(&b)) =>
        {
            n.to_owned()
        }
        _ => "/account/".to_owned(),
    }
}

fn login_redirect(next: &str) -> Response {
    let q = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
    Redirect::to(&format!("/login?{q}")).into_response()
}

async fn home(State(state): State<AppState>, Visitor(session): Visitor) -> Response {
    let plans = match state.tijori.plans().await {
        Ok(plans) => plans,
        Err(e) => return api_error_page(&state, &session, e.into()),
    };
    let plans: Vec<PlanView> = plans.iter().map(PlanView::from).collect();
    state
        .pages
        .render("home.html", context! { viewer => viewer(&session), plans })
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_page(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    Query(q): Query<NextQuery>,
) -> Response {
    state.pages.render(
        "login.html",
        context! { viewer => viewer(&session), next => safe_next(q.next.as_deref()) },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let user = match state
        .tijori
        .check_credentials(&form.username, &form.password)
        .await
    {
        Ok(user) => user,
        Err(e) => {
            let error = ApiError::from(e).detail;
            let mut page = state.pages.render(
                "login.html",
                context! { viewer => None::<Viewer>, next, error, username => form.username },
            );
            *page.status_mut() = StatusCode::UNAUTHORIZED;
            return page;
        }
    };
    match start_session(&state, jar, &user).await {
        Ok((jar, _)) => (jar, Redirect::to(&next)).into_response(),
        Err(e) => api_error_page(&state, &None, e),
    }
}

async fn register_page(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    Query(q): Query<NextQuery>,
) -> Response {
    state.pages.render(
        "register.html",
        context! { viewer => viewer(&session), next => safe_next(q.next.as_deref()) },
    )
}

#[derive(Deserialize)]
struct RegisterForm {
    username: String,
    email: String,
    password: String,
    next: Option<String>,
}

async fn register(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(form): Form<RegisterForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let user = match state
        .tijori
        .create_user(&form.username, &form.email, &form.password, false)
        .await
    {
        Ok(user) => user,
        Err(e) => {
            let e = ApiError::from(e);
            let mut page = state.pages.render(
                "register.html",
                context! { viewer => None::<Viewer>, next, error => e.detail, username => form.username, email => form.email },
            );
            *page.status_mut() = e.status;
            return page;
        }
    };
    match start_session(&state, jar, &user).await {
        Ok((jar, _)) => (jar, Redirect::to(&next)).into_response(),
        Err(e) => api_error_page(&state, &None, e),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf_token: String,
}

async fn logout(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(s) = &session {
        if let Err(e) = check_csrf_field(s, &form.csrf_token) {
            return api_error_page(&state, &session, e);
        }
        if let Some(cookie) = jar.get(crate::extract::SESSION_COOKIE) {
            if let Err(e) = state.tijori.end_session(cookie.value()).await {
                return api_error_page(&state, &session, e.into());
            }
        }
    }
    (end_session_cookie(jar), Redirect::to("/")).into_response()
}

#[derive(Deserialize)]
struct SubscribeForm {
    plan_id: String,
    gateway: Option<String>,
    csrf_token: String,
}

/// The Subscribe button: opens the checkout and sends the browser to the gateway.
async fn subscribe(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    Form(form): Form<SubscribeForm>,
) -> Response {
    let Some(s) = &session else {
        return login_redirect("/");
    };
    if let Err(e) = check_csrf_field(s, &form.csrf_token) {
        return api_error_page(&state, &session, e);
    }
    let started = async {
        let gateway = parse_gateway(form.gateway.as_deref())?;
        start_subscription(&state, &s.user, &form.plan_id, gateway).await
    }
    .await;
    match started {
        Ok(view) => Redirect::to(view.payment_url()).into_response(),
        Err(e) => api_error_page(&state, &session, e),
    }
}

#[derive(Deserialize)]
struct ReturnQuery {
    pidx: Option<String>,
}

/// Where Khalti sends the browser back. The query string is a signal only: the
/// payment is looked up at the gateway before this page says anything about it.
async fn payment_success(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    RawQuery(raw_query): RawQuery,
    Query(q): Query<ReturnQuery>,
) -> Response {
    let Some(s) = &session else {
        let here = match &raw_query {
            Some(q) => format!("/payment-success/?{q}"),
            None => "/payment-success/".to_owned(),
        };
        return login_redirect(&here);
    };
    let Some(pidx) = q.pidx.filter(|p| !p.is_empty()) else {
        return error_page(&state, &session, StatusCode::BAD_REQUEST, "Missing payment reference", "This page needs the pidx the gateway sends back. Open it from the gateway's redirect, or see your payments on the account page.");
    };
    let key = PaymentKey::ProviderRef(GatewayKind::Khalti, pidx);
    let payment = match state.tijori.payment_for(&s.user, &key).await {
        Ok(p) => p,
        Err(e) => return api_error_page(&state, &session, e.into()),
    };
    if let Err(e) = state
        .tijori
        .record_return_signal(&payment.id, raw_query.as_deref().unwrap_or(""))
        .await
    {
        return api_error_page(&state, &session, e.into());
    }

    let now = state.tijori.now();
    let (payment, subscription, gateway_problem) =
        match state.tijori.verify_payment(payment.clone()).await {
            Ok(v) => (v.payment, v.subscription, None),
            // The gateway could not answer now; the payment stays open and this page
            // keeps asking.
            Err(tijori_core::Error::Gateway(e)) => (payment, None, Some(e.to_string())),
            Err(e) => return api_error_page(&state, &session, e.into()),
        };
    let outcome = match payment.status {
        PaymentStatus::Completed => "success",
        PaymentStatus::Initiated | PaymentStatus::Pending => "pending",
        PaymentStatus::NeedsReview => "review",
        _ => "failed",
    };
    state.pages.render(
        "payment_success.html",
        context! {
            viewer => viewer(&session),
            outcome,
            message => status_message(&payment),
            gateway_problem,
            payment => PaymentView::from(&payment),
            subscription => subscription.map(|(sub, plan)| SubscriptionView::new(&sub, &plan, now)),
        },
    )
}

async fn account(State(state): State<AppState>, Visitor(session): Visitor) -> Response {
    let Some(s) = &session else {
        return login_redirect("/account/");
    };
    let loaded = async {
        let sub = state.tijori.my_subscription(&s.user.id).await?;
        let payments = state.tijori.payment_history(&s.user.id, 50).await?;
        Ok::<_, tijori_core::Error>((sub, payments))
    }
    .await;
    let (sub, payments) = match loaded {
        Ok(x) => x,
        Err(e) => return api_error_page(&state, &session, e.into()),
    };
    let now = state.tijori.now();
    let payments: Vec<PaymentView> = payments.iter().map(PaymentView::from).collect();
    state.pages.render(
        "account.html",
        context! {
            viewer => viewer(&session),
            email => s.user.email.as_str(),
            subscription => sub.map(|(sub, plan)| SubscriptionView::new(&sub, &plan, now)),
            payments,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_redirect_targets() {
        assert_eq!(
            safe_next(Some("/payment-success/?pidx=x")),
            "/payment-success/?pidx=x"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "/caf\u{e9}",
        ] {
            assert_eq!(safe_next(Some(bad)), "/account/", "{bad}");
        }
        assert_eq!(safe_next(None), "/account/");
    }

    #[test]
    fn templates_parse() {
        super::Templates::new();
    }
}

#[cfg(test)]
mod render_tests {
    use minijinja::context;

    /// Filters and tests are resolved at render time, so a template that parses can
    /// still fail; render the form pages in their error state too.
    #[test]
    fn form_pages_render_with_errors() {
        let t = super::Templates::new();
        for name in ["login.html", "register.html"] {
            let out = t.0.get_template(name).unwrap().render(context! {
                viewer => None::<super::Viewer>, next => "/payment-success/?pidx=a&b=c",
                error => "wrong <username>", username => "demo", email => "d@example.com",
            });
            let html = out.unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(
                html.contains("wrong &lt;username&gt;"),
                "{name} escapes the error"
            );
            // `/` stays as is in a query value; HTML-escaped it reads `&#x2f;`.
            assert!(
                html.contains("next=&#x2f;payment-success&#x2f;%3Fpidx%3Da%26b%3Dc"),
                "{name}: {html}"
            );
        }
    }
}

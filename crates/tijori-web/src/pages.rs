//! The customer's pages: home (plans and products), sign in/up, the shop and its
//! cart, orders, the gateway's return page, the account page, and the operator's
//! admin page. Server-rendered; forms work without JavaScript, which only adds live
//! updates.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use chrono::{DateTime, Utc};
use minijinja::{context, Environment, Value};
use serde::{Deserialize, Serialize};
use tijori_core::account::Session;
use tijori_core::gateway::GatewayKind;
use tijori_core::id::{OrderId, ProductId, RefundId};
use tijori_core::money::{Currency, Money};
use tijori_core::payment::PaymentStatus;
use tijori_core::service::PaymentKey;
use tijori_core::shop::{Order, OrderRequest, OrderStatus, Product, MAX_ORDER_LINES, MAX_QUANTITY};
use tijori_core::store::OperatorEventKind;

use crate::admin::{DeliveryView, EventView};
use crate::auth::{end_session_cookie, start_session};
use crate::error::ApiError;
use crate::extract::{check_csrf_field, parse_id, ClientAddress, Form, Visitor};
use crate::shop::parse_optional_gateway;
use crate::subscriptions::{parse_change, parse_gateway, start_subscription};
use crate::views::{
    status_message, ChangeView, OrderView, PaymentView, PlanView, ProductView, SubscriptionView,
};
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
            ("macros.html", include_str!("../templates/macros.html")),
            ("shop.html", include_str!("../templates/shop.html")),
            ("cart.html", include_str!("../templates/cart.html")),
            ("order.html", include_str!("../templates/order.html")),
            ("admin.html", include_str!("../templates/admin.html")),
            (
                "admin_webhooks.html",
                include_str!("../templates/admin_webhooks.html"),
            ),
            (
                "esewa_form.html",
                include_str!("../templates/esewa_form.html"),
            ),
        ] {
            env.add_template(name, source)
                .expect("built-in templates parse");
        }
        // A gateway's name as its customers write it ("eSewa", not "Esewa").
        env.add_filter("gateway", |name: String| -> String {
            name.parse::<GatewayKind>()
                .map(|g| gateway_label(g).to_owned())
                .unwrap_or(name)
        });
        Templates(env)
    }

    /// A page. Never stored by a cache: pages carry the visitor's CSRF token and their
    /// own orders, payments and cart.
    fn render(&self, name: &str, ctx: Value) -> Response {
        match self.0.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => (
                [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
                Html(html),
            )
                .into_response(),
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
        .route("/payments/{id}/esewa/", get(esewa_form))
        .route("/account/", get(account))
        .route("/shop/", get(shop))
        .route("/cart/", get(cart))
        .route("/cart/add", post(cart_add))
        .route("/cart/update", post(cart_update))
        .route("/cart/checkout", post(cart_checkout))
        .route("/orders/{id}/", get(order_page))
        .route("/orders/{id}/pay", post(order_pay))
        .route("/admin/", get(admin_page))
        .route("/admin/events/{id}/resolve", post(admin_resolve))
        .route("/admin/jobs/{id}/retry", post(admin_retry_job))
        .route("/admin/refunds/{id}/recheck", post(admin_recheck_refund))
        .route("/admin/refunds/{id}/resolve", post(admin_resolve_refund))
        .merge(webhooks::router())
}

mod webhooks;

/// What every page's layout needs to know about the visitor.
#[derive(Serialize)]
struct Viewer {
    username: String,
    csrf_token: String,
    is_admin: bool,
    /// The zone the visitor chose; without one, pages show the browser's own.
    time_zone: Option<String>,
}

fn viewer(session: &Option<Session>) -> Option<Viewer> {
    session.as_ref().map(|s| Viewer {
        username: s.user.username.as_str().to_owned(),
        csrf_token: s.csrf_token.clone(),
        is_admin: s.user.is_admin,
        time_zone: s.user.time_zone.clone(),
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
        StatusCode::TOO_MANY_REQUESTS => "Slow down",
        _ => "That did not work",
    };
    let mut page = error_page(state, session, e.status, title, &e.detail);
    with_retry_after(&mut page, &e);
    page
}

/// A 429's or 503's `Retry-After`, on a page as on the API.
fn with_retry_after(page: &mut Response, e: &ApiError) {
    if let Some(seconds) = e.retry_after {
        page.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, seconds.into());
    }
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
    login_redirect_with(next, None)
}

/// Why a visitor is asked to sign in, when the sign-in page should say so. The page
/// shows our own words for each; nothing in the link is shown as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LoginNotice {
    /// Back from the gateway without a session: the payment was looked up.
    PaymentChecked,
}

impl LoginNotice {
    const ALL: [LoginNotice; 1] = [LoginNotice::PaymentChecked];

    fn code(self) -> &'static str {
        match self {
            LoginNotice::PaymentChecked => "payment_checked",
        }
    }

    fn text(self) -> &'static str {
        match self {
            LoginNotice::PaymentChecked => {
                "Welcome back. We have checked your payment with the gateway; sign in to see how it went."
            }
        }
    }

    fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.code() == code)
    }
}

fn login_redirect_with(next: &str, notice: Option<LoginNotice>) -> Response {
    let mut pairs = vec![("next", next)];
    if let Some(n) = notice {
        pairs.push(("notice", n.code()));
    }
    let q = serde_urlencoded::to_string(pairs).unwrap_or_default();
    Redirect::to(&format!("/login?{q}")).into_response()
}

/// A gateway as a page offers it: `id` goes in forms, `label` is for people.
#[derive(Serialize)]
struct GatewayChoice {
    id: &'static str,
    label: &'static str,
}

fn gateway_choices(state: &AppState, currency: Currency) -> Vec<GatewayChoice> {
    state
        .tijori
        .gateways()
        .for_currency(currency)
        .into_iter()
        .map(|g| GatewayChoice {
            id: g.as_str(),
            label: gateway_label(g),
        })
        .collect()
}

fn gateway_label(g: GatewayKind) -> &'static str {
    match g {
        GatewayKind::Khalti => "Khalti",
        GatewayKind::Chapa => "Chapa",
        GatewayKind::Esewa => "eSewa",
    }
}

/// A plan with the gateways that can take its currency.
#[derive(Serialize)]
struct PlanCard {
    #[serde(flatten)]
    plan: PlanView,
    gateways: Vec<GatewayChoice>,
    /// For a signed-in customer: what buying it does to their paid time by default,
    /// and, when they hold another plan, what "switch now" would do instead.
    change: Option<ChangeView>,
    switch_now: Option<ChangeView>,
}

/// A product as the shop shows it.
#[derive(Serialize)]
struct ProductCard {
    #[serde(flatten)]
    product: ProductView,
    /// The most one can add at once: what is in stock, within an order's limit.
    max_quantity: u32,
    gateways: Vec<GatewayChoice>,
}

fn product_cards(state: &AppState, products: &[Product]) -> Vec<ProductCard> {
    products
        .iter()
        .map(|p| ProductCard {
            product: p.into(),
            max_quantity: p.stock.clamp(1, MAX_QUANTITY),
            gateways: gateway_choices(state, p.price.currency()),
        })
        .collect()
}

async fn home(State(state): State<AppState>, Visitor(session): Visitor) -> Response {
    let loaded = async {
        let plans = state.tijori.plans().await?;
        let products = state.tijori.products().await?;
        let choices = match &session {
            Some(s) => state.tijori.plan_choices(&s.user.id, &plans).await?,
            None => Vec::new(),
        };
        Ok::<_, tijori_core::Error>((plans, products, choices))
    }
    .await;
    let (plans, products, mut choices) = match loaded {
        Ok(x) => x,
        Err(e) => return api_error_page(&state, &session, e.into()),
    };
    choices.resize(plans.len(), None);
    let plans: Vec<PlanCard> = plans
        .iter()
        .zip(choices)
        .map(|(p, choice)| PlanCard {
            plan: p.into(),
            gateways: gateway_choices(&state, p.price.currency()),
            change: choice.as_ref().map(|c| ChangeView::from(&c.default)),
            switch_now: choice
                .as_ref()
                .and_then(|c| c.switch_now.as_ref())
                .map(ChangeView::from),
        })
        .collect();
    state.pages.render(
        "home.html",
        context! { viewer => viewer(&session), plans, products => product_cards(&state, &products) },
    )
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
    notice: Option<String>,
}

async fn login_page(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    Query(q): Query<NextQuery>,
) -> Response {
    let notice = q
        .notice
        .as_deref()
        .and_then(LoginNotice::parse)
        .map(LoginNotice::text);
    state.pages.render(
        "login.html",
        context! { viewer => viewer(&session), next => safe_next(q.next.as_deref()), notice },
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
    ClientAddress(client): ClientAddress,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let checked = match state.limits.sign_in(client, &form.username) {
        Ok(()) => state
            .tijori
            .check_credentials(&form.username, &form.password)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    let user = match checked {
        Ok(user) => user,
        Err(e) => {
            let mut page = state.pages.render(
                "login.html",
                context! { viewer => None::<Viewer>, next, error => &e.detail, username => form.username },
            );
            *page.status_mut() = e.status;
            with_retry_after(&mut page, &e);
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
        context! { viewer => viewer(&session), next => safe_next(q.next.as_deref()), time_zones => tijori_core::mail::TIME_ZONES },
    )
}

#[derive(Deserialize)]
struct RegisterForm {
    username: String,
    email: String,
    password: String,
    time_zone: Option<String>,
    next: Option<String>,
}

async fn register(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    jar: CookieJar,
    Form(form): Form<RegisterForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let registered = match state.limits.sign_up(client) {
        Ok(()) => state
            .tijori
            .register(
                &form.username,
                &form.email,
                &form.password,
                form.time_zone.as_deref(),
            )
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    let user = match registered {
        Ok(user) => user,
        Err(e) => {
            let mut page = state.pages.render(
                "register.html",
                context! { viewer => None::<Viewer>, next, error => e.detail, username => form.username, email => form.email, time_zone => form.time_zone, time_zones => tijori_core::mail::TIME_ZONES },
            );
            *page.status_mut() = e.status;
            with_retry_after(&mut page, &e);
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
    /// "switch_now" when the customer ticked it; absent queues.
    change: Option<String>,
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
        let change = parse_change(form.change.as_deref())?;
        state
            .limits
            .checkout(crate::limits::Checkout::Initiate, &s.user)?;
        start_subscription(&state, &s.user, &form.plan_id, gateway, change, None).await
    }
    .await;
    match started {
        Ok(view) => Redirect::to(view.payment_url()).into_response(),
        Err(e) => api_error_page(&state, &session, e),
    }
}

/// The payment a return redirect names: Khalti's `pidx`, or Chapa's `tx_ref` (our
/// Chapa adapter puts it on the return URL) or `trx_ref` (what Chapa itself may
/// add). Read by hand, first value wins: a gateway that appends a parameter the URL
/// already has must not make the page fail.
fn return_key(raw_query: Option<&str>) -> Option<PaymentKey> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(raw_query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let first = |name: &str| {
        pairs
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    if let Some(pidx) = first("pidx") {
        return Some(PaymentKey::ProviderRef(GatewayKind::Khalti, pidx));
    }
    if let Some(uuid) = first("transaction_uuid") {
        // eSewa's failure redirect: the reference is ours, put in its failure_url.
        return Some(PaymentKey::ProviderRef(GatewayKind::Esewa, uuid));
    }
    first("tx_ref")
        .or_else(|| first("trx_ref"))
        .map(|tx_ref| PaymentKey::ProviderRef(GatewayKind::Chapa, tx_ref))
}

/// eSewa's checkout opens when the browser posts its signed form: this page (the
/// payment's `payment_url`) posts it, so a client that only redirects works as with the
/// other gateways. Public, as a gateway's hosted page is to whoever holds its link: the
/// form is signed, not secret, and only an open eSewa payment has one.
async fn esewa_form(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let form = match parse_id::<tijori_core::id::PaymentId>(&id) {
        Ok(id) => state.tijori.checkout_form_of(&id).await,
        Err(_) => Ok(None),
    };
    match form {
        Ok(Some(form)) => state.pages.render(
            "esewa_form.html",
            context! { action => form.action, fields => form.fields },
        ),
        Ok(None) => error_page(
            &state,
            &session,
            StatusCode::NOT_FOUND,
            "No eSewa payment to open",
            "This link opens an eSewa payment that is still waiting to be paid. See your payments on the account page.",
        ),
        Err(e) => api_error_page(&state, &session, e.into()),
    }
}

/// Where Khalti and Chapa send the browser back. The query string is a signal only:
/// the payment is looked up at the gateway (unless a webhook or callback already
/// settled it, or the page was loaded a moment ago) before this page says anything
/// about it. A visitor whose session expired while paying is not turned away first:
/// the lookup is made all the same (only the gateway's answer settles anything), and
/// then they are asked to sign in to see how it went.
async fn payment_success(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    RawQuery(raw_query): RawQuery,
) -> Response {
    let query = raw_query.as_deref().unwrap_or("");
    // eSewa's success redirect names its payment only inside its signed `data`.
    let key = match return_key(raw_query.as_deref()) {
        Some(key) => Some(key),
        None => match state.tijori.signed_return(query).await {
            Ok(key) => key,
            Err(e) => return api_error_page(&state, &session, e.into()),
        },
    };
    let returned = match &key {
        Some(key) => {
            let viewer = session.as_ref().map(|s| &s.user);
            state.tijori.payment_returned(key, query, viewer).await
        }
        None => Ok(None),
    };
    if session.is_none() {
        if let Err(e) = &returned {
            tracing::warn!(error = %e, "return page: the signal of a signed-out visitor could not be handled");
        }
        // The same answer whether or not the reference is known: a stranger learns
        // nothing from it.
        let here = match &raw_query {
            Some(q) => format!("/payment-success/?{q}"),
            None => "/payment-success/".to_owned(),
        };
        return login_redirect_with(&here, Some(LoginNotice::PaymentChecked));
    }
    if key.is_none() {
        return error_page(&state, &session, StatusCode::BAD_REQUEST, "Missing payment reference", "This page needs the payment reference the gateway sends back (pidx or tx_ref). Open it from the gateway's redirect, or see your payments on the account page.");
    }
    let returned = match returned {
        Ok(Some(r)) => r,
        // Someone else's payment is "not found", as everywhere.
        Ok(None) => {
            return api_error_page(
                &state,
                &session,
                tijori_core::Error::NotFound("payment").into(),
            )
        }
        Err(e) => return api_error_page(&state, &session, e.into()),
    };
    let gateway_problem = returned.gateway_problem.map(|e| e.to_string());
    let verification = match state.tijori.verification(returned.payment).await {
        Ok(v) => v,
        Err(e) => return api_error_page(&state, &session, e.into()),
    };
    let (payment, subscription, order) = (
        verification.payment,
        verification.subscription,
        verification.order,
    );
    let now = state.tijori.now();
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
            retry_url => payment.retry_url(now),
            payment => PaymentView::from(&payment),
            subscription => subscription.map(|h| SubscriptionView::new(&h, now)),
            order => order.map(|o| OrderView::from(&o)),
        },
    )
}

/// A payment as the account page lists it.
#[derive(Serialize)]
struct PaymentCard {
    #[serde(flatten)]
    payment: PaymentView,
    /// "Check payment status" is offered: looking it up can still change something
    /// (open, or a failed Chapa attempt whose checkout takes another).
    checkable: bool,
    /// The same checkout again, for a failed attempt the gateway lets them retry.
    retry_url: Option<String>,
}

impl PaymentCard {
    fn new(payment: &tijori_core::payment::Payment, now: DateTime<Utc>) -> Self {
        PaymentCard {
            payment: payment.into(),
            checkable: payment.worth_looking_up(now),
            retry_url: payment.retry_url(now).map(str::to_owned),
        }
    }
}

async fn account(State(state): State<AppState>, Visitor(session): Visitor) -> Response {
    let Some(s) = &session else {
        return login_redirect("/account/");
    };
    let loaded = async {
        let sub = state.tijori.my_holding(&s.user.id).await?;
        let payments = state.tijori.payment_history(&s.user.id, 50).await?;
        let orders = state.tijori.orders_of(&s.user.id, 50).await?;
        Ok::<_, tijori_core::Error>((sub, payments, orders))
    }
    .await;
    let (sub, payments, orders) = match loaded {
        Ok(x) => x,
        Err(e) => return api_error_page(&state, &session, e.into()),
    };
    let now = state.tijori.now();
    let payments: Vec<PaymentCard> = payments.iter().map(|p| PaymentCard::new(p, now)).collect();
    let orders: Vec<OrderCard> = orders.iter().map(|o| OrderCard::new(o, now)).collect();
    state.pages.render(
        "account.html",
        context! {
            viewer => viewer(&session),
            email => s.user.email.as_str(),
            subscription => sub.map(|h| SubscriptionView::new(&h, now)),
            payments,
            orders,
        },
    )
}

// --- The shop and its cart -------------------------------------------------------

async fn shop(State(state): State<AppState>, Visitor(session): Visitor) -> Response {
    let products = match state.tijori.products().await {
        Ok(p) => p,
        Err(e) => return api_error_page(&state, &session, e.into()),
    };
    state.pages.render(
        "shop.html",
        context! { viewer => viewer(&session), products => product_cards(&state, &products) },
    )
}

const CART_COOKIE: &str = "tijori_cart";
const CART_LIFETIME_DAYS: i64 = 30;

/// The cart, kept in the visitor's browser as `product_id:quantity` pairs joined by
/// dots. It is not a secret and not trusted: placing an order checks every product,
/// price and quantity again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Cart {
    /// In the order they were first added.
    lines: Vec<(ProductId, u32)>,
}

impl Cart {
    fn from_jar(jar: &CookieJar) -> Cart {
        jar.get(CART_COOKIE)
            .map(|c| Cart::decode(c.value()))
            .unwrap_or_default()
    }

    /// What the cookie says, leaving out whatever is malformed or out of bounds.
    fn decode(value: &str) -> Cart {
        let mut cart = Cart::default();
        for part in value.split('.') {
            let Some((id, quantity)) = part.split_once(':') else {
                continue;
            };
            if let (Some(id), Ok(quantity)) = (ProductId::parse(id), quantity.parse::<u32>()) {
                // Out-of-bounds lines are dropped, not fatal: the cookie is the
                // visitor's to edit.
                let _ = cart.add(id, quantity);
            }
        }
        cart
    }

    fn encode(&self) -> String {
        self.lines
            .iter()
            .map(|(id, q)| format!("{id}:{q}"))
            .collect::<Vec<_>>()
            .join(".")
    }

    fn quantity(&self, id: &ProductId) -> u32 {
        self.lines
            .iter()
            .find(|(p, _)| p == id)
            .map_or(0, |(_, q)| *q)
    }

    /// Adds `quantity` more of a product, within an order's limits.
    fn add(&mut self, id: ProductId, quantity: u32) -> Result<(), ApiError> {
        check_quantity(quantity, 1)?;
        if let Some((_, q)) = self.lines.iter_mut().find(|(p, _)| *p == id) {
            if *q + quantity > MAX_QUANTITY {
                return Err(ApiError::bad_request(
                    "validation_error",
                    format!("at most {MAX_QUANTITY} of one product per order"),
                ));
            }
            *q += quantity;
            return Ok(());
        }
        if self.lines.len() >= MAX_ORDER_LINES {
            return Err(ApiError::bad_request(
                "validation_error",
                format!("at most {MAX_ORDER_LINES} different products per order"),
            ));
        }
        self.lines.push((id, quantity));
        Ok(())
    }

    /// Sets a line's quantity; 0 removes it. Products not in the cart are ignored.
    fn set(&mut self, id: &ProductId, quantity: u32) -> Result<(), ApiError> {
        check_quantity(quantity, 0)?;
        if quantity == 0 {
            self.remove(id);
        } else if let Some((_, q)) = self.lines.iter_mut().find(|(p, _)| p == id) {
            *q = quantity;
        }
        Ok(())
    }

    fn remove(&mut self, id: &ProductId) {
        self.lines.retain(|(p, _)| p != id);
    }

    /// The jar with this cart in it, or without the cookie once the cart is empty.
    fn save(&self, state: &AppState, jar: CookieJar) -> CookieJar {
        if self.lines.is_empty() {
            return jar.remove(Cookie::build(CART_COOKIE).path("/"));
        }
        jar.add(
            Cookie::build((CART_COOKIE, self.encode()))
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(state.secure_cookies())
                .max_age(cookie::time::Duration::days(CART_LIFETIME_DAYS)),
        )
    }
}

fn check_quantity(quantity: u32, min: u32) -> Result<(), ApiError> {
    if (min..=MAX_QUANTITY).contains(&quantity) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "validation_error",
            format!("quantity must be from {min} to {MAX_QUANTITY}"),
        ))
    }
}

fn parse_quantity(text: &str, min: u32) -> Result<u32, ApiError> {
    let quantity = text.trim().parse::<u32>().map_err(|_| {
        ApiError::bad_request(
            "validation_error",
            format!("quantity must be a whole number from {min} to {MAX_QUANTITY}"),
        )
    })?;
    check_quantity(quantity, min)?;
    Ok(quantity)
}

/// Adding to the cart works signed out (the form then has no token: the cross-origin
/// guard still refuses other sites). Signed in, the form must carry the session's.
fn check_cart_csrf(session: &Option<Session>, sent: Option<&str>) -> Result<(), ApiError> {
    match session {
        Some(s) => check_csrf_field(s, sent.unwrap_or("")),
        None => Ok(()),
    }
}

#[derive(Serialize)]
struct CartLine {
    product: ProductView,
    quantity: u32,
    subtotal: String,
    /// More asked for than is in stock now.
    short: bool,
}

/// The lines in one currency: one order, paid through one gateway.
#[derive(Serialize)]
struct CartGroup {
    currency: &'static str,
    lines: Vec<CartLine>,
    total: String,
    gateways: Vec<GatewayChoice>,
}

fn times(price: Money, quantity: u32) -> Option<i64> {
    price.minor().checked_mul(i64::from(quantity))
}

/// Shows the cart at today's prices, one group per currency; `error` (the last
/// action's) is shown above it with its status. Products no longer for sale leave
/// the cart here.
async fn cart_page(
    state: &AppState,
    session: &Option<Session>,
    jar: CookieJar,
    cart: Cart,
    error: Option<ApiError>,
) -> Response {
    let products = match state.tijori.products().await {
        Ok(p) => p,
        Err(e) => return api_error_page(state, session, e.into()),
    };
    let by_id: HashMap<&ProductId, &Product> = products.iter().map(|p| (&p.id, p)).collect();
    let mut kept = Cart::default();
    let mut groups: BTreeMap<&'static str, (Currency, Vec<CartLine>, Option<i64>)> =
        BTreeMap::new();
    for (id, quantity) in &cart.lines {
        let Some(product) = by_id.get(id) else {
            continue;
        };
        kept.lines.push((id.clone(), *quantity));
        let currency = product.price.currency();
        let subtotal = times(product.price, *quantity);
        let group = groups
            .entry(currency.code())
            .or_insert_with(|| (currency, Vec::new(), Some(0)));
        group.2 = group.2.zip(subtotal).and_then(|(t, s)| t.checked_add(s));
        group.1.push(CartLine {
            product: (*product).into(),
            quantity: *quantity,
            subtotal: major(subtotal, currency),
            short: *quantity > product.stock,
        });
    }
    let dropped = cart.lines.len() - kept.lines.len();
    let jar = if dropped > 0 {
        kept.save(state, jar)
    } else {
        jar
    };
    let groups: Vec<CartGroup> = groups
        .into_values()
        .map(|(currency, lines, total)| CartGroup {
            currency: currency.code(),
            lines,
            total: major(total, currency),
            gateways: gateway_choices(state, currency),
        })
        .collect();
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    let mut page = state.pages.render(
        "cart.html",
        context! {
            viewer => viewer(session),
            groups,
            dropped,
            error => error.map(|e| e.detail),
        },
    );
    if page.status().is_success() {
        *page.status_mut() = status;
    }
    (jar, page).into_response()
}

/// An amount in major units, or a placeholder for one too large to show (the order
/// itself would be refused).
fn major(minor: Option<i64>, currency: Currency) -> String {
    minor
        .and_then(|m| Money::from_minor(m, currency).ok())
        .map_or_else(|| "(too large)".to_owned(), |m| m.to_major_string())
}

async fn cart(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    jar: CookieJar,
) -> Response {
    let cart = Cart::from_jar(&jar);
    cart_page(&state, &session, jar, cart, None).await
}

#[derive(Deserialize)]
struct AddForm {
    product_id: String,
    quantity: Option<String>,
    csrf_token: Option<String>,
}

/// "Add to cart": checks the product is for sale and in stock, then shows the cart.
async fn cart_add(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    jar: CookieJar,
    Form(form): Form<AddForm>,
) -> Response {
    if let Err(e) = check_cart_csrf(&session, form.csrf_token.as_deref()) {
        return api_error_page(&state, &session, e);
    }
    let mut cart = Cart::from_jar(&jar);
    let added = async {
        let quantity = parse_quantity(form.quantity.as_deref().unwrap_or("1"), 1)?;
        let products = state.tijori.products().await?;
        let product = ProductId::parse(form.product_id.trim())
            .and_then(|id| products.into_iter().find(|p| p.id == id))
            .ok_or_else(|| ApiError::not_found("product"))?;
        let wanted = cart.quantity(&product.id).saturating_add(quantity);
        if wanted > product.stock {
            let detail = match product.stock {
                0 => format!("{} is sold out", product.name),
                n => format!(
                    "only {n} of {} left, so {wanted} cannot be ordered",
                    product.name
                ),
            };
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "insufficient_stock",
                detail,
            ));
        }
        cart.add(product.id, quantity)
    }
    .await;
    match added {
        Ok(()) => (cart.save(&state, jar), Redirect::to("/cart/")).into_response(),
        Err(e) => {
            let cart = Cart::from_jar(&jar);
            cart_page(&state, &session, jar, cart, Some(e)).await
        }
    }
}

/// "Update cart" (fields `qty_<product_id>`; 0 removes the line) and "Remove"
/// (field `remove` = product id). A bad quantity changes nothing.
async fn cart_update(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    jar: CookieJar,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Err(e) = check_cart_csrf(&session, field("csrf_token")) {
        return api_error_page(&state, &session, e);
    }
    let cart = Cart::from_jar(&jar);
    let mut updated = cart.clone();
    let applied = (|| {
        for (name, value) in &fields {
            if let Some(id) = name.strip_prefix("qty_") {
                if let Some(id) = ProductId::parse(id) {
                    updated.set(&id, parse_quantity(value, 0)?)?;
                }
            } else if name == "remove" {
                if let Some(id) = ProductId::parse(value.trim()) {
                    updated.remove(&id);
                }
            }
        }
        Ok::<_, ApiError>(())
    })();
    match applied {
        Ok(()) => (updated.save(&state, jar), Redirect::to("/cart/")).into_response(),
        Err(e) => cart_page(&state, &session, jar, cart, Some(e)).await,
    }
}

#[derive(Deserialize)]
struct CheckoutForm {
    currency: String,
    csrf_token: String,
}

/// "Place order" for one currency's lines: creates the order (which reserves the
/// stock), takes those lines out of the cart, and shows the order. If it cannot be
/// placed (out of stock), the cart is shown again, untouched, with the reason.
async fn cart_checkout(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    jar: CookieJar,
    Form(form): Form<CheckoutForm>,
) -> Response {
    let Some(s) = &session else {
        return login_redirect("/cart/");
    };
    if let Err(e) = check_csrf_field(s, &form.csrf_token) {
        return api_error_page(&state, &session, e);
    }
    let cart = Cart::from_jar(&jar);
    let placed = async {
        let currency: Currency =
            form.currency
                .parse()
                .map_err(|e: tijori_core::money::UnknownCurrency| {
                    ApiError::bad_request("validation_error", e.to_string())
                })?;
        let products = state.tijori.products().await?;
        let lines: Vec<(ProductId, u32)> = cart
            .lines
            .iter()
            .filter(|(id, _)| {
                products
                    .iter()
                    .any(|p| &p.id == id && p.price.currency() == currency)
            })
            .cloned()
            .collect();
        if lines.is_empty() {
            return Err(ApiError::bad_request(
                "empty_cart",
                format!("your cart has nothing in {currency} to order"),
            ));
        }
        let request = OrderRequest::parse(lines.iter().map(|(id, q)| (id.as_str(), i64::from(*q))))
            .map_err(tijori_core::Error::from)?;
        state
            .limits
            .checkout(crate::limits::Checkout::CreateOrder, &s.user)?;
        let order = state.tijori.create_order(&s.user, &request, None).await?;
        Ok((order, lines))
    }
    .await;
    match placed {
        Ok((order, lines)) => {
            let mut rest = cart;
            for (id, _) in &lines {
                rest.remove(id);
            }
            (
                rest.save(&state, jar),
                Redirect::to(&format!("/orders/{}/", order.id)),
            )
                .into_response()
        }
        Err(e) => cart_page(&state, &session, jar, cart, Some(e)).await,
    }
}

// --- Orders ------------------------------------------------------------------------

/// An order as its pages show it.
#[derive(Serialize)]
struct OrderCard {
    #[serde(flatten)]
    order: OrderView,
    /// The status a customer should see: a pending order past its expiry is
    /// expired, even before the expiry job has put its stock back.
    shown_status: &'static str,
    payable: bool,
}

impl OrderCard {
    fn new(order: &Order, now: DateTime<Utc>) -> Self {
        let payable = order.is_payable(now);
        let shown_status = if order.status == OrderStatus::Pending && !payable {
            OrderStatus::Expired.as_str()
        } else {
            order.status.as_str()
        };
        OrderCard {
            order: order.into(),
            shown_status,
            payable,
        }
    }
}

async fn order_page(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    Path(id): Path<String>,
) -> Response {
    let Some(s) = &session else {
        return login_redirect(&format!("/orders/{id}/"));
    };
    let order_id: OrderId = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return api_error_page(&state, &session, e),
    };
    let order = match state.tijori.order_for(&s.user, &order_id).await {
        Ok(o) => o,
        Err(e) => return api_error_page(&state, &session, e.into()),
    };
    let now = state.tijori.now();
    let card = OrderCard::new(&order, now);
    // Only its owner pays for an order (an admin may look at it).
    let owner_pays = card.payable && order.user_id == s.user.id;
    let gateways = if owner_pays {
        gateway_choices(&state, order.currency())
    } else {
        Vec::new()
    };
    // A failed attempt the gateway lets them try again, on the same checkout.
    let retry = if owner_pays {
        match state.tijori.retryable_payment(&order).await {
            Ok(p) => p.and_then(|p| {
                p.retry_url(now).map(|url| {
                    context! { url, gateway => gateway_label(p.gateway), reason => status_message(&p) }
                })
            }),
            Err(e) => return api_error_page(&state, &session, e.into()),
        }
    } else {
        None
    };
    state.pages.render(
        "order.html",
        context! {
            viewer => viewer(&session),
            order => card,
            gateways,
            retry,
            owner => order.user_id == s.user.id,
        },
    )
}

#[derive(Deserialize)]
struct PayForm {
    gateway: Option<String>,
    csrf_token: String,
}

/// "Pay with …": opens the gateway's hosted checkout for the order (or the one
/// already open there) and sends the browser to it.
async fn order_pay(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    Path(id): Path<String>,
    Form(form): Form<PayForm>,
) -> Response {
    let Some(s) = &session else {
        return login_redirect(&format!("/orders/{id}/"));
    };
    if let Err(e) = check_csrf_field(s, &form.csrf_token) {
        return api_error_page(&state, &session, e);
    }
    let started = async {
        let gateway = parse_optional_gateway(form.gateway.as_deref())?;
        state
            .limits
            .checkout(crate::limits::Checkout::Initialize, &s.user)?;
        let payment = state
            .tijori
            .initialize_order_payment(&s.user, &id, gateway, None)
            .await?;
        payment.payment_url.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "gateway_bad_answer",
                "the gateway opened no checkout page; please try again",
            )
        })
    }
    .await;
    match started {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => api_error_page(&state, &session, e),
    }
}

// --- The operator's page -------------------------------------------------------------

/// How many webhook deliveries the admin page lists.
const ADMIN_DELIVERIES: usize = 50;

/// The admin's session, or the response for anyone else: sign in, or 403.
fn require_admin<'a>(
    state: &AppState,
    session: &'a Option<Session>,
    here: &str,
) -> Result<&'a Session, Box<Response>> {
    match session {
        None => Err(Box::new(login_redirect(here))),
        Some(s) if s.user.is_admin => Ok(s),
        Some(_) => Err(Box::new(error_page(
            state,
            session,
            StatusCode::FORBIDDEN,
            "Not allowed",
            "This page is for operators only.",
        ))),
    }
}

async fn admin_page(State(state): State<AppState>, Visitor(session): Visitor) -> Response {
    let s = match require_admin(&state, &session, "/admin/") {
        Ok(s) => s,
        Err(response) => return *response,
    };
    let loaded = async {
        let events = state.tijori.operator_events(false).await?;
        let deliveries = state.tijori.webhook_deliveries().await?;
        // The payments held for review, as they stand now.
        let mut review = Vec::new();
        let mut seen = HashSet::new();
        for event in events
            .iter()
            .filter(|e| e.kind == OperatorEventKind::NeedsReview)
        {
            let Some(id) = &event.payment_id else {
                continue;
            };
            if !seen.insert(id.clone()) {
                continue;
            }
            match state
                .tijori
                .payment_for(&s.user, &PaymentKey::Id(id.clone()))
                .await
            {
                Ok(p) => review.push(PaymentView::from(&p)),
                Err(tijori_core::Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let dead = state
            .tijori
            .jobs(Some(tijori_core::jobs::JobStatus::Dead))
            .await?;
        let outbox = state.tijori.outbox(50).await?;
        let unknown = state.tijori.unknown_refunds().await?;
        Ok((events, deliveries, review, dead, outbox, unknown))
    }
    .await;
    let (events, deliveries, review, dead, outbox, unknown) = match loaded {
        Ok(x) => x,
        Err(e) => return api_error_page(&state, &session, e.into()),
    };
    let events: Vec<EventView> = events.iter().map(EventView::from).collect();
    let deliveries: Vec<DeliveryView> = deliveries
        .iter()
        .take(ADMIN_DELIVERIES)
        .map(DeliveryView::from)
        .collect();
    state.pages.render(
        "admin.html",
        context! {
            viewer => viewer(&session), events, deliveries, review,
            dead_jobs => dead.iter().map(crate::admin::JobView::from).collect::<Vec<_>>(),
            outbox,
            unknown_refunds => unknown.iter().map(crate::payments::RefundView::from).collect::<Vec<_>>(),
        },
    )
}

async fn admin_retry_job(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let s = match require_admin(&state, &session, "/admin/") {
        Ok(s) => s,
        Err(response) => return *response,
    };
    if let Err(e) = check_csrf_field(s, &form.csrf_token) {
        return api_error_page(&state, &session, e);
    }
    let Ok(id) = id.parse::<i64>() else {
        return api_error_page(&state, &session, ApiError::not_found("job"));
    };
    match state.tijori.retry_job(id).await {
        Ok(()) => Redirect::to("/admin/").into_response(),
        Err(e) => api_error_page(&state, &session, e.into()),
    }
}

/// The admin page's "Re-check" of a refund whose outcome is unknown.
async fn admin_recheck_refund(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let s = match require_admin(&state, &session, "/admin/") {
        Ok(s) => s,
        Err(response) => return *response,
    };
    if let Err(e) = check_csrf_field(s, &form.csrf_token) {
        return api_error_page(&state, &session, e);
    }
    let id: RefundId = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return api_error_page(&state, &session, e),
    };
    match state.tijori.recheck_refund(&s.user, &id).await {
        Ok(_) => Redirect::to("/admin/").into_response(),
        Err(e) => api_error_page(&state, &session, e.into()),
    }
}

#[derive(Deserialize)]
struct ResolveRefundForm {
    csrf_token: String,
    status: String,
    reason: String,
}

/// The admin page's "Resolve" of a refund whose outcome is unknown, with a reason.
async fn admin_resolve_refund(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    Path(id): Path<String>,
    Form(form): Form<ResolveRefundForm>,
) -> Response {
    let s = match require_admin(&state, &session, "/admin/") {
        Ok(s) => s,
        Err(response) => return *response,
    };
    if let Err(e) = check_csrf_field(s, &form.csrf_token) {
        return api_error_page(&state, &session, e);
    }
    let resolution = match crate::admin::parse_resolution(&form.status) {
        Ok(r) => r,
        Err(e) => return api_error_page(&state, &session, e),
    };
    let id: RefundId = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return api_error_page(&state, &session, e),
    };
    match state
        .tijori
        .resolve_refund(&s.user, &id, resolution, &form.reason)
        .await
    {
        Ok(_) => Redirect::to("/admin/").into_response(),
        Err(e) => api_error_page(&state, &session, e.into()),
    }
}

async fn admin_resolve(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let s = match require_admin(&state, &session, "/admin/") {
        Ok(s) => s,
        Err(response) => return *response,
    };
    if let Err(e) = check_csrf_field(s, &form.csrf_token) {
        return api_error_page(&state, &session, e);
    }
    let Ok(id) = id.parse::<i64>() else {
        return api_error_page(&state, &session, ApiError::not_found("operator event"));
    };
    match state.tijori.resolve_operator_event(id).await {
        Ok(()) => Redirect::to("/admin/").into_response(),
        Err(e) => api_error_page(&state, &session, e.into()),
    }
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
    fn the_return_page_finds_the_reference_in_either_gateways_redirect() {
        use super::return_key;
        use tijori_core::gateway::GatewayKind;
        use tijori_core::service::PaymentKey;
        let key = |q: &str| match return_key(Some(q)) {
            Some(PaymentKey::ProviderRef(g, r)) => Some((g, r)),
            _ => None,
        };
        assert_eq!(
            key("pidx=abc&status=Completed"),
            Some((GatewayKind::Khalti, "abc".into()))
        );
        assert_eq!(
            key("tx_ref=pay_1&tx_ref=pay_2&status=success"),
            Some((GatewayKind::Chapa, "pay_1".into())),
            "a repeated parameter is not an error"
        );
        assert_eq!(
            key("trx_ref=pay_3&ref_id=x"),
            Some((GatewayKind::Chapa, "pay_3".into()))
        );
        assert_eq!(
            key("tx_ref=&trx_ref=pay_4"),
            Some((GatewayKind::Chapa, "pay_4".into()))
        );
        assert_eq!(key("status=Completed"), None);
        assert_eq!(key(""), None);
        assert!(return_key(None).is_none());
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

#[cfg(test)]
mod cart_tests {
    use super::Cart;
    use tijori_core::id::ProductId;
    use tijori_core::shop::{MAX_ORDER_LINES, MAX_QUANTITY};

    #[test]
    fn the_cart_cookie_round_trips_and_merges_repeats() {
        let (a, b) = (ProductId::generate(), ProductId::generate());
        let mut cart = Cart::default();
        cart.add(a.clone(), 2).unwrap();
        cart.add(b.clone(), 1).unwrap();
        cart.add(a.clone(), 3).unwrap();
        assert_eq!(cart.lines, vec![(a.clone(), 5), (b.clone(), 1)]);
        assert_eq!(Cart::decode(&cart.encode()), cart);
        cart.set(&b, 0).unwrap();
        assert_eq!(cart.lines, vec![(a.clone(), 5)]);
        assert!(cart.set(&a, MAX_QUANTITY + 1).is_err());
        assert!(
            cart.add(a.clone(), MAX_QUANTITY).is_err(),
            "5 + 1000 is too many"
        );
        assert_eq!(cart.quantity(&a), 5, "a refused change changes nothing");
    }

    #[test]
    fn a_tampered_cookie_loses_only_its_bad_lines() {
        let a = ProductId::generate();
        let cookie = format!("{a}:2.junk.prod_nothex:1.{a}:x.{a}:0.{a}:99999.:3.{a}:1");
        assert_eq!(Cart::decode(&cookie).lines, vec![(a, 3)]);
        assert_eq!(Cart::decode("").lines, vec![]);

        let many: String = (0..MAX_ORDER_LINES + 5)
            .map(|_| format!("{}:1", ProductId::generate()))
            .collect::<Vec<_>>()
            .join(".");
        assert_eq!(Cart::decode(&many).lines.len(), MAX_ORDER_LINES);
    }
}

#[cfg(test)]
mod shop_render_tests {
    use minijinja::context;

    fn render(name: &str, ctx: minijinja::Value) -> String {
        super::Templates::new()
            .0
            .get_template(name)
            .unwrap()
            .render(ctx)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"))
    }

    fn viewer(is_admin: bool) -> minijinja::Value {
        context! { username => "asha", csrf_token => "tok", is_admin }
    }

    fn product(id: &str, stock: u32) -> minijinja::Value {
        context! {
            id, name => "Coffee <1 kg>", description => "Washed", price => "850.00",
            currency => "ETB", stock, max_quantity => stock.max(1),
            gateways => vec![context! { id => "chapa", label => "Chapa" }],
        }
    }

    #[test]
    fn shop_and_home_show_products_with_stable_ids() {
        let products = vec![product("prod_a", 3), product("prod_b", 0)];
        for (name, viewer) in [
            ("shop.html", Some(viewer(false))),
            ("shop.html", None),
            ("home.html", Some(viewer(true))),
        ] {
            let html = render(
                name,
                context! { viewer, products => products.clone(), plans => Vec::<()>::new() },
            );
            assert!(html.contains("id=\"add-prod_a\""), "{name}: {html}");
            assert!(!html.contains("id=\"add-prod_b\""), "sold out: {html}");
            assert!(html.contains("Sold out"), "{html}");
            assert!(html.contains("Coffee &lt;1 kg&gt;"), "escaped: {html}");
            assert!(html.contains("pay with Chapa"), "{html}");
            assert!(html.contains("href=\"/shop/\""), "{html}");
        }
    }

    #[test]
    fn the_cart_offers_one_order_per_currency() {
        let line = |id: &str, short: bool| {
            context! { product => product(id, 1), quantity => 2, subtotal => "1700.00", short }
        };
        let groups = vec![
            context! {
                currency => "ETB", total => "3400.00", lines => vec![line("prod_a", true), line("prod_b", false)],
                gateways => vec![context! { id => "chapa", label => "Chapa" }],
            },
            context! { currency => "NPR", total => "650.00", lines => vec![line("prod_c", false)], gateways => Vec::<()>::new() },
        ];
        let html = render(
            "cart.html",
            context! { viewer => viewer(false), groups => groups.clone(), dropped => 1, error => "only 1 of <x> left" },
        );
        assert!(html.contains("id=\"place-order-ETB\""), "{html}");
        assert!(
            !html.contains("id=\"place-order-NPR\""),
            "no gateway: {html}"
        );
        assert!(html.contains("only 1 of &lt;x&gt; left"), "{html}");
        assert!(html.contains("Only 1 left"), "{html}");
        assert!(html.contains("name=\"qty_prod_b\""), "{html}");
        assert!(html.contains("no longer for sale"), "{html}");
        let signed_out = render("cart.html", context! { groups, dropped => 0 });
        assert!(
            signed_out.contains("Sign in to place your order"),
            "{signed_out}"
        );
        let empty = render(
            "cart.html",
            context! { groups => Vec::<()>::new(), dropped => 0 },
        );
        assert!(empty.contains("Your cart is empty"), "{empty}");
    }

    #[test]
    fn the_order_page_offers_a_pay_button_per_gateway_while_payable() {
        let order = |status: &str, payable: bool| {
            context! {
                id => "ord_1", shown_status => status, payable, currency => "ETB", total => "850.00",
                expires_at => "2030-01-01T00:00:00Z", created_at => "2030-01-01T00:00:00Z",
                items => vec![context! { product_id => "prod_a", name => "Coffee", quantity => 1, unit_price => "850.00", subtotal => "850.00" }],
            }
        };
        let gateways = vec![
            context! { id => "khalti", label => "Khalti" },
            context! { id => "chapa", label => "Chapa" },
        ];
        let html = render(
            "order.html",
            context! { viewer => viewer(false), order => order("pending", true), gateways, owner => true },
        );
        assert!(
            html.contains("id=\"pay-chapa\"") && html.contains("id=\"pay-khalti\""),
            "{html}"
        );
        assert!(html.contains("id=\"order-status\">pending<"), "{html}");
        let html = render(
            "order.html",
            context! { viewer => viewer(false), order => order("paid", false), gateways => Vec::<()>::new(), owner => true },
        );
        assert!(!html.contains("id=\"pay-"), "{html}");
        assert!(html.contains("This order is paid"), "{html}");
    }

    #[test]
    fn the_admin_page_lists_events_reviews_and_deliveries() {
        let html = render(
            "admin.html",
            context! {
                viewer => viewer(true),
                events => vec![context! { id => 7, kind => "needs_review", payment_id => "pay_1", detail => "amount <differs>", created_at => "2030-01-01T00:00:00Z" }],
                review => vec![context! { id => "pay_1", purpose => "order", order_id => "ord_1", currency => "ETB", amount => "850.00", gateway => "chapa", provider_ref => "pay_1", status => "needs_review" }],
                deliveries => vec![context! { id => 1, gateway => "chapa", event => "charge.success", reference => "pay_1", status => "success", duplicate => true, outcome => "settled", received_at => "2030-01-01T00:00:00Z" }],
            },
        );
        assert!(
            html.contains("action=\"/admin/events/7/resolve\""),
            "{html}"
        );
        assert!(html.contains("amount &lt;differs&gt;"), "{html}");
        assert!(
            html.contains("charge.success") && html.contains(">yes<"),
            "{html}"
        );
        let empty = render(
            "admin.html",
            context! { viewer => viewer(true), events => Vec::<()>::new(), review => Vec::<()>::new(), deliveries => Vec::<()>::new() },
        );
        assert!(empty.contains("Nothing needs attention"), "{empty}");
    }
}

//! The OpenAPI 3.1 document of the JSON API, generated from the code: each handler's
//! `#[utoipa::path]` (route, parameters, body, answers with their error codes,
//! security) and the wire types' `#[derive(ToSchema)]`. Served at
//! `/api/openapi.json` and rendered at `/api/docs` by Swagger UI, whose files are built
//! into the binary (`utoipa-swagger-ui`'s `vendored` copy: no CDN, and no download
//! when building).
//!
//! The document is checked in as `crates/tijori-web/openapi.json`, and a test fails
//! when the generated one differs from it: a change to a route or a wire type shows
//! in review as a change to the document. `UPDATE_OPENAPI=1 cargo test -p tijori-web
//! openapi` rewrites the file.
//!
//! The webhooks (the events tijori POSTs to the merchant's endpoints, OpenAPI 3.1's
//! top-level `webhooks`) are built here from [`EventType::ALL`] with utoipa's own
//! types, because utoipa 5 has no `webhooks` field; they are appended when the
//! document is written out.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;
use tijori_core::events::{EventType, Subject};
use tijori_core::gateway::GatewayKind;
use tijori_core::jobs::{JobKind, JobStatus};
use tijori_core::money::Currency;
use tijori_core::payment::{PaymentStatus, Purpose};
use tijori_core::shop::OrderStatus;
use tijori_core::store::{OperatorEventKind, RefundStatus};
use tijori_core::subscription::{ChangeMode, PlanChange};
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Required, ResponseBuilder, ResponsesBuilder};
use utoipa::{IntoParams, Modify, OpenApi, PartialSchema, ToSchema};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::AppState;

/// The document's description (`info.description`).
const ABOUT: &str = "Payments and subscriptions for Khalti and eSewa (Nepal) and Chapa \
(Ethiopia). Every payment's outcome is decided on the server from the gateway's own \
answer; browser redirects are signals only.\n\nAuthentication: `Authorization: Token \
<token>` (or `Bearer <token>`), or the browser session cookie plus an `X-CSRF-Token` \
header on state-changing requests (`X-CSRFToken`, with the script-readable `csrftoken` \
cookie set at sign-in, is taken as Django's name for it).\n\nAll errors share one envelope: `{\"error\": \
{\"status_code\", \"code\", \"detail\"}}`; clients branch on `code`. Each answer below \
names the codes it can carry.";

#[derive(OpenApi)]
#[openapi(
    info(title = "tijori", description = ABOUT),
    paths(
        crate::auth::register,
        crate::auth::login,
        crate::auth::logout,
        crate::subscriptions::plans,
        crate::subscriptions::initiate,
        crate::subscriptions::verify,
        crate::subscriptions::me,
        crate::payments::show,
        crate::payments::refresh,
        healthz,
        livez,
        readyz,
        metrics,
        openapi,
        crate::shop::products,
        crate::shop::my_orders,
        crate::shop::create_order,
        crate::shop::order,
        crate::shop::cancel_order,
        crate::shop::initialize,
        crate::notices::chapa_webhook,
        crate::notices::chapa_callback,
        crate::notices::widget_verify,
        crate::admin::events,
        crate::admin::resolve,
        crate::admin::webhooks,
        crate::payments::refund,
        crate::live::events,
        crate::live::socket,
        crate::admin::jobs,
        crate::admin::retry_job,
        crate::admin::outbox,
        crate::admin::unknown_refunds,
        crate::admin::recheck_refund,
        crate::admin::resolve_refund,
        crate::events::list_endpoints,
        crate::events::create_endpoint,
        crate::events::get_endpoint,
        crate::events::update_endpoint,
        crate::events::delete_endpoint,
        crate::events::rotate_secret,
        crate::events::redeliver,
        crate::events::attempts,
        crate::events::entitlement,
    ),
    components(schemas(
        EventTypeName,
        EventEnvelope,
        crate::events::PaymentData,
        crate::events::SubscriptionData,
        crate::events::OrderData,
        crate::events::RefundData,
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Accounts, API tokens and browser sessions."),
        (name = "subscriptions", description = "Plans, paying for one, and what a customer holds."),
        (name = "payments", description = "A payment's status, live status, and what gateways tell tijori on their own."),
        (name = "shop", description = "Products, orders, and paying for an order."),
        (name = "admin", description = "For operators (admins) only: refunds, what needs a person, jobs, mail, webhook endpoints, entitlement."),
        (name = "operations", description = "Health, metrics, and this document."),
        (name = "events", description = "The events tijori POSTs to your webhook endpoints (see `webhooks`), signed as Standard Webhooks says."),
    )
)]
pub(crate) struct ApiDoc;

/// The ways a caller proves who they are (crate::extract::Caller).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Token <token>` from register or login.",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The same token as `Authorization: Bearer <token>`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::extract::SESSION_COOKIE,
                "Browser session, from signing in without an API token; unsafe methods \
                 also need the `X-CSRF-Token` header (`csrf`).",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The `csrf_token` the sign-in answered with: required, with the session \
                 cookie, on every state-changing request (`csrf_failed` without it). \
                 `X-CSRFToken` is taken too, with the value of the `csrftoken` cookie \
                 set at sign-in (Django's convention, for pages written for Django).",
            ))),
        );
    }
}

/// The whole document as served: utoipa's, with the `webhooks` it has no field for.
#[derive(Serialize)]
struct Document {
    #[serde(flatten)]
    api: utoipa::openapi::OpenApi,
    webhooks: Webhooks,
}

/// The document, pretty-printed, as `/api/openapi.json` serves it and the snapshot
/// holds it.
pub(crate) fn json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let document = Document {
            api: ApiDoc::openapi(),
            webhooks: Webhooks,
        };
        let mut text =
            serde_json::to_string_pretty(&document).expect("the OpenAPI document serialises");
        text.push('\n');
        text
    });
    &JSON
}

/// `/api/docs`: Swagger UI, reading `/api/openapi.json`.
pub(crate) fn docs() -> Router<AppState> {
    Router::from(SwaggerUi::new("/api/docs").config(Config::from("/api/openapi.json")))
}

pub(crate) async fn serve_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json()).into_response()
}

// --- the operational routes (served by ops.rs) ----------------------------------------
//
// Documented on these stand-ins rather than on ops.rs's handlers: they answer plain
// text (or this document), so there is no wire type of theirs to derive a schema from,
// and ops.rs stays about operations. `every_api_route_is_documented` and the API tests
// still tie the paths to the real routes.

#[utoipa::path(
    get, path = "/healthz", tag = "operations", summary = "Health",
    responses(
        (status = 200, description = "The app and its database answer.", body = String, content_type = "text/plain"),
        BadToken,
        Internal,
        (status = 503, description = "The database did not answer (`database_unavailable`).", body = crate::error::ErrorBody),
    )
)]
#[allow(dead_code)]
fn healthz() {}

#[utoipa::path(
    get, path = "/livez", tag = "operations", summary = "Liveness",
    description = "The process answers; nothing else is checked (for restarts).",
    responses(
        (status = 200, description = "`ok`.", body = String, content_type = "text/plain"),
        BadToken,
    )
)]
#[allow(dead_code)]
fn livez() {}

#[utoipa::path(
    get, path = "/readyz", tag = "operations", summary = "Readiness",
    description = "Ready to serve: the database answers within 2 s and holds this \
build's migrations, and this process's worker (if it runs one) went round its loop in \
the last minute. Each gateway's last call is shown; a gateway's failure never makes \
tijori unready.",
    responses(
        (status = 200, description = "Ready.", body = crate::ops::Readiness),
        (status = 503, description = "Not ready; the body says which check failed.", body = crate::ops::Readiness),
        BadToken,
    )
)]
#[allow(dead_code)]
fn readyz() {}

#[utoipa::path(
    get, path = "/metrics", tag = "operations", summary = "Prometheus metrics",
    responses(
        (status = 200, description = "Prometheus text format.", body = String, content_type = "text/plain"),
        BadToken,
        Internal,
    )
)]
#[allow(dead_code)]
fn metrics() {}

#[utoipa::path(
    get, path = "/api/openapi.json", tag = "operations", summary = "This document",
    description = "OpenAPI 3.1, generated from the code. Rendered at `/api/docs/`.",
    responses(
        (status = 200, description = "OpenAPI 3.1.", body = Object),
        BadToken,
        Internal,
    )
)]
#[allow(dead_code)]
fn openapi() {}

// --- answers shared by many operations -------------------------------------------------

const BAD_TOKEN: &str = "An `Authorization: Token …` or `Bearer …` header whose token is \
unknown, expired or revoked (`unauthenticated`): on every endpoint, public ones included.";

const CROSS_SITE: &str = "a state-changing request another site made the browser send \
(`cross_origin_refused`), or a cookie-authenticated request without the right \
`X-CSRF-Token` (`csrf_failed`)";

/// An error answer: the envelope, with what its codes mean.
fn error(description: impl Into<String>) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name(crate::error::ErrorBody::name()))),
        )
        .into()
}

/// Declares a set of error answers that many operations share, for their
/// `responses(...)`.
macro_rules! shared_errors {
    ($($(#[$doc:meta])* $name:ident { $($status:literal => $text:expr),+ $(,)? })+) => {$(
        $(#[$doc])*
        pub(crate) struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
                BTreeMap::from([$(($status.to_owned(), error($text))),+])
            }
        }
    )+};
}

shared_errors! {
    /// 401 on a public route: only a bad token.
    BadToken { "401" => BAD_TOKEN }
    /// 401 on a route for signed-in callers.
    SignedIn { "401" => format!("Not signed in. Also: {BAD_TOKEN}") }
    /// 403 of a state-changing route (`extract::cross_origin_guard`, `Caller`).
    CrossSite { "403" => format!("Refused: {CROSS_SITE}.") }
    /// 403 of an admin route read with GET.
    AdminOnly { "403" => "Not an admin (`admin_only`)." }
    /// 403 of a state-changing admin route.
    AdminWrite { "403" => format!("Not an admin (`admin_only`), or refused: {CROSS_SITE}.") }
    /// What a JSON body can fail on before the handler reads it
    /// (`extract::body_deadline`, `extract::Json`).
    JsonBody {
        "408" => "The request body did not arrive within `TIJORI_BODY_TIMEOUT` seconds of \
                  its head (`request_timeout`).",
        "413" => "The body is larger than 16 KiB (`payload_too_large`).",
        "415" => "The body is not `application/json` (`unsupported_media_type`).",
    }
    /// 408 alone, for a route whose body is not JSON.
    SlowBody {
        "408" => "The request body did not arrive within `TIJORI_BODY_TIMEOUT` seconds of \
                  its head (`request_timeout`).",
    }
    /// 500: the cause is logged, never told.
    Internal { "500" => "Our fault; the cause is logged (`internal_error`)." }
    /// The gateway failed us (`ApiError: From<GatewayError>`).
    Gateway {
        "502" => "The gateway gave an answer we cannot use (`gateway_bad_answer`), did not \
                  know the payment (`gateway_unknown_payment`), or refused our credentials \
                  (`gateway_misconfigured`).",
        "503" => "The gateway could not be reached (`gateway_unreachable`), or said it is \
                  unavailable (`gateway_unavailable`, eSewa's outage answer).",
        "504" => "The gateway did not answer in time (`gateway_timeout`). The payment is \
                  kept and can be checked again.",
    }
    /// 422 of the routes that take an `Idempotency-Key`.
    KeyReused {
        "422" => "This `Idempotency-Key` was used for a different request \
                  (`idempotency_key_reused`).",
    }
}

/// The `Idempotency-Key` header of the money-moving POSTs
/// (the routes built by [`crate::layers::idempotent_and_limited`]).
pub(crate) struct IdempotencyKey;

impl IntoParams for IdempotencyKey {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(255)),
            ))
            .description(Some(
                "Optional. The first answer to a key (below 500) is kept for 24 hours and \
                 replayed, with `Idempotent-Replayed: true`, for a retry with the same body; \
                 the same key with a different body is 422 `idempotency_key_reused`; while \
                 the first request runs, 409 `idempotency_in_progress` (retry shortly). If \
                 the process handling the first request dies, a retry takes the key over \
                 within about 20 seconds and reuses what the first request made (the order \
                 it reserved, the checkout it opened) instead of making a second; a request \
                 still running after 5 minutes loses its key the same way. Keys are per \
                 user; a malformed one is 400 `invalid_idempotency_key`.",
            ))
            .build()]
    }
}

// --- names on the wire that come from the core's enums ---------------------------------
//
// The core has no utoipa (it knows nothing of HTTP), so the names its enums take on
// the wire are listed from its own `ALL` lists, or, for an enum without one, from a
// list next to a `match` that stops compiling when a variant is added.

/// A string that is one of `names`.
fn one_of<I: IntoIterator<Item = S>, S: Into<serde_json::Value>>(names: I) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
}

/// How serde writes `value` (a unit variant: its name).
fn wire_name<T: Serialize>(value: T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        other => panic!("not a plain name on the wire: {other:?}"),
    }
}

const GATEWAYS: [GatewayKind; 3] = [GatewayKind::Khalti, GatewayKind::Chapa, GatewayKind::Esewa];
const _: fn(GatewayKind) = |g| match g {
    GatewayKind::Khalti | GatewayKind::Chapa | GatewayKind::Esewa => {}
};

const CHANGE_MODES: [ChangeMode; 4] = [
    ChangeMode::New,
    ChangeMode::Extend,
    ChangeMode::Queue,
    ChangeMode::SwitchNow,
];
const _: fn(ChangeMode) = |m| match m {
    ChangeMode::New | ChangeMode::Extend | ChangeMode::Queue | ChangeMode::SwitchNow => {}
};

const PLAN_CHANGES: [PlanChange; 2] = [PlanChange::Queue, PlanChange::SwitchNow];
const _: fn(PlanChange) = |c| match c {
    PlanChange::Queue | PlanChange::SwitchNow => {}
};

const JOB_STATUSES: [JobStatus; 4] = [
    JobStatus::Queued,
    JobStatus::Running,
    JobStatus::Done,
    JobStatus::Dead,
];
const _: fn(JobStatus) = |s| match s {
    JobStatus::Queued | JobStatus::Running | JobStatus::Done | JobStatus::Dead => {}
};

const REFUND_STATUSES: [RefundStatus; 4] = [
    RefundStatus::Requested,
    RefundStatus::Succeeded,
    RefundStatus::Failed,
    RefundStatus::Unknown,
];
const _: fn(RefundStatus) = |s| match s {
    RefundStatus::Requested
    | RefundStatus::Succeeded
    | RefundStatus::Failed
    | RefundStatus::Unknown => {}
};

/// `Purpose::as_str` of each variant (they carry data, so there is no list of them).
const PURPOSES: [&str; 2] = ["subscription", "order"];
const _: fn(&Purpose) = |p| match p {
    Purpose::Subscription { .. } | Purpose::Order { .. } => {}
};

pub(crate) fn currency() -> ObjectBuilder {
    one_of(Currency::ALL.map(Currency::code))
}

pub(crate) fn gateway() -> ObjectBuilder {
    one_of(GATEWAYS.map(GatewayKind::as_str))
}

pub(crate) fn purpose() -> ObjectBuilder {
    one_of(PURPOSES)
}

/// `PlanChange.mode` (its words are here: `schema_with` takes no doc comment).
pub(crate) fn change_mode() -> ObjectBuilder {
    one_of(CHANGE_MODES.map(ChangeMode::as_str)).description(Some(
        "`new`: nothing paid is ahead, the plan starts now. `extend`: the same plan as the \
         last paid period, it runs on from that period's end. `queue`: another plan, it \
         starts when the paid time ends. `switch_now`: another plan, now; the unused time of \
         the paid periods ahead becomes days of it (unused seconds × their price per second \
         ÷ the new plan's price per second, rounded down to the second). A switch between \
         currencies is queued instead.",
    ))
}

pub(crate) fn plan_change() -> ObjectBuilder {
    one_of(PLAN_CHANGES.map(PlanChange::as_str)).default(Some(PlanChange::Queue.as_str().into()))
}

pub(crate) fn job_kind() -> ObjectBuilder {
    one_of(JobKind::ALL.map(wire_name))
}

pub(crate) fn job_status() -> ObjectBuilder {
    one_of(JOB_STATUSES.map(wire_name))
}

/// The job list's filter.
pub(crate) fn job_status_filter() -> ObjectBuilder {
    job_status().description(Some("Only the jobs in this status."))
}

pub(crate) fn refund_status() -> ObjectBuilder {
    one_of(REFUND_STATUSES.map(wire_name))
}

/// An operator event's kind. Examples, not an enum: new kinds come with new checks.
pub(crate) fn operator_event_kind() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .examples(OperatorEventKind::ALL.map(OperatorEventKind::as_str))
}

/// Declares a named component for a core enum: `value_type = ...Name` refers to it.
macro_rules! named_enum {
    ($($(#[$doc:meta])* $marker:ident = $name:literal, $description:literal, $values:expr;)+) => {$(
        $(#[$doc])*
        pub(crate) struct $marker;

        impl PartialSchema for $marker {
            fn schema() -> RefOr<Schema> {
                one_of($values).description(Some($description)).into()
            }
        }

        impl ToSchema for $marker {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    )+};
}

named_enum! {
    /// `PaymentStatus` on the wire.
    PaymentStatusName = "PaymentStatus",
        "Where a payment stands. `initiated`: its checkout is (being) opened; `pending`: the \
         gateway is still deciding; `completed`: paid, and what it bought is granted; \
         `needs_review`: money arrived that does not match what was due (held for an \
         operator); `canceled`, `expired`, `failed`: ended without money; `refunded`, \
         `partially_refunded`: money went back.",
        PaymentStatus::ALL.map(wire_name);
    /// `OrderStatus` on the wire.
    OrderStatusName = "OrderStatus",
        "Where an order stands. `pending`: stock reserved, waiting to be paid; `paid`; \
         `expired`: not paid in time, its stock given back; `canceled`; `refunded`.",
        OrderStatus::ALL.map(wire_name);
    /// An event's `type`.
    EventTypeName = "EventType",
        "What happened. The `type` of an event's body.",
        EventType::ALL.map(EventType::as_str);
}

// --- webhooks ---------------------------------------------------------------------------

/// The body of every event delivery, as `tijori_core::events::body` writes it. Only
/// for the document: the core builds the body itself.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(
    description = "The body of every delivery. The same bytes on every try and at \
    every endpoint. `data` is the resource as it stood when the event was first sent, not \
    when it happened."
)]
pub(crate) struct EventEnvelope {
    #[schema(value_type = EventTypeName)]
    r#type: String,
    /// The event's id; the same as the `webhook-id` header.
    #[schema(examples("evt_0193b0c4e7a27c3e9b5f0d1e2a3b4c5d"))]
    id: String,
    /// When the change happened (UTC, milliseconds).
    #[schema(examples("2025-01-15T09:30:12.345Z"))]
    timestamp: chrono::DateTime<chrono::Utc>,
    /// The resource, in the API's shapes; see each event.
    #[schema(value_type = Value)]
    data: serde_json::Value,
}

/// What each event type means to the merchant, for its webhook's description. A
/// `match`, so a new type is not sent undocumented.
fn event_description(kind: EventType) -> &'static str {
    match kind {
        EventType::PaymentCompleted => {
            "A payment was paid in full and what it bought was granted (the \
             subscription's days, or the order)."
        }
        EventType::PaymentFailed => {
            "A payment ended without money: failed, canceled by the customer, or its \
             checkout expired (`data.status` says which). Not always final: money that \
             still arrives completes it, and `payment.completed` follows."
        }
        EventType::PaymentRefunded => {
            "A payment became refunded or partially refunded. Each refund also has its \
             own `refund.succeeded`."
        }
        EventType::SubscriptionActivated => {
            "A customer with no paid time ahead paid for a plan: their subscription starts."
        }
        EventType::SubscriptionRenewed => {
            "A customer who still had paid time ahead paid for more: the same plan \
             (extended), another plan queued after it, or a switch now."
        }
        EventType::SubscriptionExpiring => {
            "The renewal reminder went out (`TIJORI_REMINDER_DAYS` before the paid time \
             ends): the subscription ends soon. `payment` is null."
        }
        EventType::SubscriptionExpired => {
            "The paid time ended with nothing queued after it (sent with the expiry \
             notice). `payment` is null."
        }
        EventType::SubscriptionRevoked => {
            "A refund took back paid days (all that were unused, or the refunded share). \
             `payment` is the refunded payment."
        }
        EventType::OrderPaid => "An order was paid and is the customer's.",
        EventType::OrderExpired => {
            "An unpaid order ran out of time and its stock went back on the shelf. \
             `payment` is null."
        }
        EventType::OrderCanceled => {
            "The customer canceled their unpaid order and its stock went back on the shelf. \
             `payment` is null."
        }
        EventType::RefundSucceeded => {
            "A refund went through: the gateway took it, a look-up found it, or an \
             operator settled it so."
        }
        EventType::RefundFailed => {
            "A refund did not happen: the gateway refused it, or it was found not to have \
             happened."
        }
    }
}

/// The schema of an event's `data`, by what it is about.
fn data_schema(subject: Subject) -> Cow<'static, str> {
    match subject {
        Subject::Payment => crate::events::PaymentData::name(),
        Subject::Subscription => crate::events::SubscriptionData::name(),
        Subject::Order => crate::events::OrderData::name(),
        Subject::Refund => crate::events::RefundData::name(),
    }
}

/// The Standard Webhooks headers of every delivery.
fn delivery_headers() -> [Parameter; 3] {
    let header = |name: &str, pattern: Option<&str>, description: &str| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .required(Required::True)
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(pattern),
            ))
            .description(Some(description))
            .build()
    };
    [
        header(
            "webhook-id",
            None,
            "The event's id (`evt_…`), the same on every try of it and at every endpoint: \
             deduplicate by it.",
        ),
        header(
            "webhook-timestamp",
            Some("^[0-9]+$"),
            "When this try was made, in Unix seconds. Refuse one far from your clock (the \
             Standard Webhooks libraries allow 5 minutes).",
        ),
        header(
            "webhook-signature",
            None,
            "`v1,` and the base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`, \
             keyed with the base64-decoded part of the endpoint's secret after `whsec_`. For \
             24 hours after a rotation there are two, separated by a space (the new \
             secret's and the old one's); accept the delivery if any one matches.",
        ),
    ]
}

/// One event type as a webhook: the POST tijori makes to an endpoint that wants it.
fn webhook(kind: EventType) -> PathItem {
    let body = AllOfBuilder::new()
        .item(Ref::from_schema_name(EventEnvelope::name()))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("type", one_of([kind.as_str()]))
                .property("data", Ref::from_schema_name(data_schema(kind.subject()))),
        );
    let operation = OperationBuilder::new()
        .summary(Some(kind.as_str()))
        .description(Some(format!(
            "{} Sent to every enabled endpoint that wants this type, at least once; \
             deduplicate by `webhook-id`. No order is promised between events.",
            event_description(kind)
        )))
        .operation_id(Some(format!("event_{}", kind.as_str().replace('.', "_"))))
        .tag("events")
        .parameters(Some(delivery_headers()))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", Content::new(Some(body)))
                .build(),
        ))
        .responses(
            ResponsesBuilder::new()
                .response(
                    "2XX",
                    ResponseBuilder::new().description(
                        "Delivered. Answer within 15 s; do slow work after answering.",
                    ),
                )
                .response(
                    "default",
                    ResponseBuilder::new().description(
                        "Anything else (another status, a redirect, no answer within 15 s, \
                         a refused connection) is a failure: the delivery is tried again, \
                         for about three days.",
                    ),
                ),
        );
    PathItem::new(HttpMethod::Post, operation)
}

/// The `webhooks` section, in [`EventType::ALL`]'s order.
struct Webhooks;

impl Serialize for Webhooks {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(EventType::ALL.map(|kind| (kind.as_str(), webhook(kind))))
    }
}

#[cfg(test)]
mod tests;

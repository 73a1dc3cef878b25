//! One error type for the JSON API, one envelope on the wire:
//! `{"error": {"status_code", "code", "detail"}}`. A 500 says nothing about its cause
//! to the caller; the cause is logged once, here.

use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tijori_core::gateway::GatewayError;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable; clients branch on this, not on `detail`.
    pub code: &'static str,
    /// Safe to show the caller.
    pub detail: String,
    /// Seconds, for a 429 or 503 the caller should wait out.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, detail)
    }

    fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong on our side; it has been logged",
        )
    }
}

/// Every error the API answers: one envelope, whatever the route.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    #[schema(inline)]
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The HTTP status, again.
    pub status_code: u16,
    /// Stable and machine-readable: branch on this, not on `detail`. Each operation's
    /// answers name the codes it can give.
    #[schema(examples("validation_error", "not_found", "gateway_timeout"))]
    pub code: &'static str,
    /// For a person; may change.
    pub detail: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                status_code: self.status.as_u16(),
                code: self.code,
                detail: self.detail,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
        }
        response
    }
}

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> Self {
        let (status, code) = match &e {
            GatewayError::Rejected { .. } => (StatusCode::BAD_REQUEST, "gateway_rejected"),
            // Our own key was refused: nothing the caller can fix, the merchant must.
            GatewayError::Unauthorized { .. } => (StatusCode::BAD_GATEWAY, "gateway_misconfigured"),
            GatewayError::NotFound { .. } => (StatusCode::BAD_GATEWAY, "gateway_unknown_payment"),
            GatewayError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "gateway_timeout"),
            GatewayError::Unreachable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "gateway_unreachable")
            }
            // The gateway said it is down (eSewa's outage answer): try again later.
            GatewayError::Unavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "gateway_unavailable")
            }
            GatewayError::BadAnswer { .. } => (StatusCode::BAD_GATEWAY, "gateway_bad_answer"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<tijori_core::Error> for ApiError {
    fn from(e: tijori_core::Error) -> Self {
        use tijori_core::Error as E;
        match e {
            E::Invalid(f) => ApiError::bad_request("validation_error", f.to_string()),
            E::Unsupported(m) => ApiError::bad_request("unsupported", m),
            E::NotFound(what) => ApiError::not_found(what),
            E::Conflict { code, message } => ApiError::new(StatusCode::CONFLICT, code, message),
            E::Refused { code, message } => ApiError::bad_request(code, message),
            E::BadCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
                "wrong username or password",
            ),
            E::Gateway(g) => g.into(),
            E::Overloaded {
                message,
                retry_after_secs,
            } => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
                .retry_after(retry_after_secs),
            E::Internal(cause) => ApiError::internal(&format!("{cause:#}")),
        }
    }
}

/// axum answers a well-formed body of the wrong shape with 422; the contract says 400
/// for every malformed request (413 and 415 stay as they are).
fn malformed_status(status: StatusCode) -> StatusCode {
    match status {
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        s => s,
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let code = match &r {
            JsonRejection::JsonDataError(_) => "validation_error",
            JsonRejection::JsonSyntaxError(_) => "invalid_json",
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            _ => "invalid_body",
        };
        ApiError::new(malformed_status(r.status()), code, r.body_text())
    }
}

impl From<FormRejection> for ApiError {
    fn from(r: FormRejection) -> Self {
        ApiError::new(malformed_status(r.status()), "invalid_form", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", r.body_text())
    }
}

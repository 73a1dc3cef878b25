//! Live payment status for its owner: Server-Sent Events at
//! `/api/payments/{id}/events` and a WebSocket at `/ws/payments/{id}`. Each sends the
//! payment as it stands first, then every status change, however it was learned
//! (return page, webhook, reconciler, refund) and, on PostgreSQL, in whichever tijori
//! process it was settled.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures::stream::Stream;
use tijori_core::account::User;
use tijori_core::changes::ChangeWatcher;
use tijori_core::id::PaymentId;
use tijori_core::payment::PaymentStatus;
use tijori_core::service::PaymentKey;
use tijori_core::Tijori;

use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::extract::{Caller, PathId};
use crate::openapi::SignedIn;
use crate::views::PaymentView;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/payments/{id}/events", get(events))
        .route("/ws/payments/{id}", get(socket))
}

/// One listener's view of one payment: it reports the payment when its status
/// differs from the last one reported.
struct Watch {
    tijori: Tijori,
    user: User,
    id: PaymentId,
    changes: ChangeWatcher,
    last: Option<PaymentStatus>,
    /// Held while the stream lives: a user may hold only a few.
    _place: crate::limits::LivePlace,
}

impl Watch {
    /// Subscribes before anything is read, so no change can slip between the first
    /// report and the subscription.
    async fn start(state: &AppState, user: User, id: PaymentId) -> Result<Watch, ApiError> {
        let place = state.limits.live_stream(&user)?;
        let changes = state.tijori.watch_payment(&id);
        // The owner (or an admin) only; anyone else gets 404.
        state
            .tijori
            .payment_for(&user, &PaymentKey::Id(id.clone()))
            .await?;
        Ok(Watch {
            tijori: state.tijori.clone(),
            user,
            id,
            changes,
            last: None,
            _place: place,
        })
    }

    /// The payment's next reported state; `None` when the stream should end.
    async fn next(&mut self) -> Option<PaymentView> {
        loop {
            if self.last.is_some() {
                self.changes.changed().await;
            }
            let payment = self
                .tijori
                .payment_for(&self.user, &PaymentKey::Id(self.id.clone()))
                .await
                .ok()?;
            if self.last != Some(payment.status) {
                self.last = Some(payment.status);
                return Some((&payment).into());
            }
        }
    }
}

#[utoipa::path(
    get, path = "/api/payments/{id}/events", tag = "payments",
    summary = "Live status (Server-Sent Events)", operation_id = "payment_events",
    description = "For the payment's owner (or an admin). Sends `event: status` with the \
        payment (as `GET /api/payments/{id}/`) at once, then at every status change, \
        wherever it was settled (with PostgreSQL, in any tijori process). A comment every \
        15 s keeps the connection open.",
    security(("token" = []), ("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "The payment's id (`pay_…`).")),
    responses(
        (status = 200, description = "An event stream; each event's data is a `Payment`.",
            body = String, content_type = "text/event-stream"),
        SignedIn,
        (status = 404, description = "No such payment, or not the caller's (`not_found`).",
            body = ErrorBody),
        (status = 429, description = "The account holds as many live-status streams (SSE and \
            WebSocket together) as it may already (`too_many_streams`; \
            `TIJORI_LIVE_STREAM_LIMIT`, 8 by default): close one first.", body = ErrorBody),
    )
)]
async fn events(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<PaymentId>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let watch = Watch::start(&state, caller.user, id).await?;
    let stream = futures::stream::unfold(watch, |mut watch| async move {
        let view = watch.next().await?;
        let event = Event::default()
            .event("status")
            .json_data(&view)
            .unwrap_or_else(|_| Event::default().event("status"));
        Some((Ok(event), watch))
    });
    // Proxies drop connections that say nothing for a while.
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The largest message a live-status WebSocket client may send (it never needs to
/// send any but pings and a close).
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 4 * 1024;

#[utoipa::path(
    get, path = "/ws/payments/{id}", tag = "payments", summary = "Live status (WebSocket)",
    operation_id = "payment_socket",
    description = "The same as the event stream, as a WebSocket: each status is one text \
        message holding the payment's JSON. Browsers are refused when their `Origin` is \
        another site. The client only listens: a message from it larger than 4 KB closes the \
        socket.",
    security(("token" = []), ("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "The payment's id (`pay_…`).")),
    responses(
        (status = 101, description = "Switching to the WebSocket."),
        SignedIn,
        (status = 403, description = "Another site's page (`cross_origin_refused`).",
            body = ErrorBody),
        (status = 404, description = "No such payment, or not the caller's (`not_found`).",
            body = ErrorBody),
        (status = 429, description = "The account holds as many live-status streams (SSE and \
            WebSocket together) as it may already (`too_many_streams`; \
            `TIJORI_LIVE_STREAM_LIMIT`, 8 by default): close one first.", body = ErrorBody),
    )
)]
async fn socket(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<PaymentId>,
    headers: HeaderMap,
    slot: Option<axum::Extension<crate::ConnectionSlot>>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // A browser opens a WebSocket from any site with our cookie attached, and no
    // CORS check applies: only our own pages may.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let ours = origin
            .to_str()
            .is_ok_and(|o| state.same_origin(o, headers.get(header::HOST)));
        if !ours {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_origin_refused",
                "live status is only for this site's own pages",
            ));
        }
    }
    let watch = Watch::start(&state, caller.user, id).await?;
    // The client only listens: a message bigger than a close frame's is abuse, and
    // the connection is closed rather than the message buffered.
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_frame_size(MAX_CLIENT_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            // The socket holds its connection's place until it closes.
            let _slot = slot;
            follow(socket, watch).await
        }))
}

async fn follow(socket: WebSocket, mut watch: Watch) {
    use futures::{SinkExt, StreamExt};
    let (mut outgoing, mut incoming) = socket.split();
    // The client only listens. Its messages are read (and dropped) on their own task,
    // so that waiting for a close never interrupts a status read half-way.
    let (closed, mut client_gone) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = incoming.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
        let _ = closed.send(());
    });
    loop {
        tokio::select! {
            view = watch.next() => {
                let Some(view) = view else { break };
                let Ok(text) = serde_json::to_string(&view) else { break };
                if outgoing.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            _ = &mut client_gone => break,
        }
    }
    reader.abort();
    let _ = outgoing.close().await;
}

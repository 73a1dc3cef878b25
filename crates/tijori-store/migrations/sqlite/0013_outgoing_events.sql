-- Outgoing events to the merchant's own systems (DESIGN.md §4, "Outgoing events").

-- Where events are delivered. The secret is kept as it is (not hashed): every
-- delivery is signed with it. During a day after a rotation the previous secret
-- signs too.
CREATE TABLE webhook_endpoints (
    id                    TEXT PRIMARY KEY,
    url                   TEXT NOT NULL,
    -- NULL: every type; else the names between commas (",order.paid,refund.failed,").
    event_types           TEXT,
    description           TEXT NOT NULL,
    enabled               INTEGER NOT NULL,
    disabled_reason       TEXT,
    secret                TEXT NOT NULL,
    previous_secret       TEXT,
    previous_secret_until TEXT,
    -- Since when every delivery has failed; NULL after a success.
    failing_since         TEXT,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
);

-- The outbox: written in the transaction of the change that causes each event.
-- The body is made when the event is first delivered and kept, so that every
-- endpoint and every retry sends the same bytes.
CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    user_id     TEXT,
    payment_id  TEXT,
    order_id    TEXT,
    refund_id   TEXT,
    body        TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX events_created ON events (created_at);

-- Every try at delivering an event to an endpoint.
CREATE TABLE webhook_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL REFERENCES events (id),
    endpoint_id  TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    attempted_at TEXT NOT NULL,
    http_status  INTEGER,
    duration_ms  BIGINT NOT NULL,
    response     TEXT NOT NULL,
    error        TEXT,
    delivered    INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);
CREATE INDEX webhook_attempts_event ON webhook_attempts (event_id, endpoint_id);

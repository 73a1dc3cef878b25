-- Timestamps are RFC 3339 text in UTC (sqlx's chrono encoding), which sorts in time order.
-- Money is integer minor units. Ids are prefixed UUIDv7 text.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TEXT NOT NULL
);

-- Only SHA-256 hashes of bearer secrets are stored.
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE plans (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    price_minor   INTEGER NOT NULL CHECK (price_minor > 0),
    currency      TEXT NOT NULL,
    duration_days INTEGER NOT NULL CHECK (duration_days > 0),
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    TEXT NOT NULL
);

CREATE TABLE payments (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id),
    gateway         TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    plan_id         TEXT REFERENCES plans (id),
    amount_minor    INTEGER NOT NULL CHECK (amount_minor > 0),
    currency        TEXT NOT NULL,
    status          TEXT NOT NULL,
    provider_ref    TEXT,
    provider_txn_id TEXT,
    payment_url     TEXT,
    expires_at      TEXT,
    status_reason   TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    -- A pidx or tx_ref names exactly one payment.
    UNIQUE (gateway, provider_ref)
);
CREATE INDEX payments_user ON payments (user_id, created_at);
CREATE INDEX payments_open ON payments (updated_at) WHERE status IN ('initiated', 'pending');

-- Every answer a gateway gave about a payment, and every return redirect, verbatim.
CREATE TABLE gateway_answers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_id  TEXT NOT NULL REFERENCES payments (id),
    kind        TEXT NOT NULL,
    http_status INTEGER NOT NULL,
    body        TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX gateway_answers_payment ON gateway_answers (payment_id, id);

-- A user's current subscription; fulfilments keep the history.
CREATE TABLE subscriptions (
    user_id    TEXT PRIMARY KEY REFERENCES users (id),
    plan_id    TEXT NOT NULL REFERENCES plans (id),
    start_at   TEXT NOT NULL,
    end_at     TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- One row per fulfilled payment: the primary key is what makes fulfilment
-- exactly-once a property of the database.
CREATE TABLE fulfilments (
    payment_id      TEXT PRIMARY KEY REFERENCES payments (id),
    user_id         TEXT NOT NULL REFERENCES users (id),
    plan_id         TEXT NOT NULL REFERENCES plans (id),
    granted_seconds INTEGER NOT NULL,
    period_start    TEXT NOT NULL,
    period_end      TEXT NOT NULL,
    revoked_at      TEXT,
    created_at      TEXT NOT NULL
);

-- The shop (products, orders reserving stock), webhook deliveries, what an operator
-- must look at, and idempotency keys.

CREATE TABLE products (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    price_minor BIGINT NOT NULL CHECK (price_minor > 0),
    currency    TEXT NOT NULL,
    -- Units not reserved by an order. The CHECK is the last line of defence: the
    -- reservation's own WHERE stock >= n already refuses to oversell.
    stock       INTEGER NOT NULL CHECK (stock >= 0),
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE orders (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id),
    status          TEXT NOT NULL,
    total_minor     BIGINT NOT NULL CHECK (total_minor > 0),
    currency        TEXT NOT NULL,
    -- The one payment that paid it: an order is paid at most once.
    paid_payment_id TEXT UNIQUE,
    expires_at      TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX orders_user ON orders (user_id, created_at);
CREATE INDEX orders_pending ON orders (expires_at) WHERE status = 'pending';

-- Name and price as ordered: what the customer agreed to, whatever changes later.
CREATE TABLE order_items (
    order_id         TEXT NOT NULL REFERENCES orders (id),
    product_id       TEXT NOT NULL REFERENCES products (id),
    name             TEXT NOT NULL,
    unit_price_minor BIGINT NOT NULL CHECK (unit_price_minor > 0),
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, product_id)
);

ALTER TABLE payments ADD COLUMN order_id TEXT REFERENCES orders (id);
-- At most one checkout per order and gateway waits for the customer at a time: a
-- second click on Pay finds the first instead of opening another.
CREATE UNIQUE INDEX payments_open_per_order ON payments (order_id, gateway)
    WHERE order_id IS NOT NULL AND status IN ('initiated', 'pending');

-- Every webhook delivery whose signature checked out, duplicates included.
CREATE TABLE webhook_deliveries (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gateway     TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    event       TEXT,
    reference   TEXT,
    status      TEXT,
    body        TEXT NOT NULL,
    duplicate   BOOLEAN NOT NULL,
    outcome     TEXT,
    detail      TEXT,
    payment_id  TEXT,
    received_at TIMESTAMPTZ NOT NULL
);
-- The first delivery of a body is the one that is not a duplicate.
CREATE UNIQUE INDEX webhook_first_delivery ON webhook_deliveries (gateway, body_sha256)
    WHERE NOT duplicate;

CREATE TABLE operator_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL,
    payment_id  TEXT,
    detail      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    resolved_at TIMESTAMPTZ
);
CREATE INDEX operator_events_open ON operator_events (id) WHERE resolved_at IS NULL;

CREATE TABLE idempotency_keys (
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    -- NULL until the first request's answer is known.
    status_code  INTEGER,
    content_type TEXT,
    body         TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, key)
);

-- Refunds an operator asked the gateways for.

CREATE TABLE refunds (
    id           TEXT PRIMARY KEY,
    payment_id   TEXT NOT NULL REFERENCES payments (id),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    reason       TEXT,
    -- requested (the gateway is being asked), succeeded, failed, or unknown (no
    -- answer came: it may have happened; check with the gateway).
    status       TEXT NOT NULL,
    detail       TEXT,
    requested_by TEXT NOT NULL REFERENCES users (id),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX refunds_payment ON refunds (payment_id, created_at);
-- One refund of a payment in flight at a time: two operators clicking at once must
-- not send the gateway two refunds.
CREATE UNIQUE INDEX refunds_one_in_flight ON refunds (payment_id) WHERE status = 'requested';

-- When a refunded order's stock went back on the shelf (at most once).
ALTER TABLE orders ADD COLUMN restocked_at TEXT;

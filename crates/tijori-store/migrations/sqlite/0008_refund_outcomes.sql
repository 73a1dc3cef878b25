-- Refunds whose outcome was unknown get settled later (a look-up at the gateway, or an
-- operator's decision), with the same effects as an answer at once.

-- The operator's choice when asking: put a refunded order's items back on the shelf.
-- Kept so a refund settled later (unknown, then found to have happened) restocks too.
ALTER TABLE refunds ADD COLUMN restock INTEGER NOT NULL DEFAULT 0;
-- Who settled an unknown refund by hand, when, and why (the audit trail).
ALTER TABLE refunds ADD COLUMN resolved_by TEXT REFERENCES users (id);
ALTER TABLE refunds ADD COLUMN resolved_at TEXT;
ALTER TABLE refunds ADD COLUMN resolution TEXT;
-- The admin page lists the refunds still waiting for an outcome.
CREATE INDEX refunds_unknown ON refunds (created_at) WHERE status = 'unknown';

-- The refund audit walks recently completed payments, least recently checked first.
CREATE INDEX payments_paid_recently ON payments (updated_at)
    WHERE status IN ('completed', 'partially_refunded');

-- Retried attempts and requests that outlive their process.

-- A failed Chapa attempt stays worth looking up while its checkout lives (the
-- customer may try again on it): the reconciler's sweep reads these by age.
CREATE INDEX payments_failed_recent ON payments (created_at) WHERE status = 'failed';

-- Every running tijori process and when it last said it was alive. A process not
-- heard from for a while is gone, and the idempotency keys it held are taken over.
CREATE TABLE instances (
    id           TEXT PRIMARY KEY,
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);

-- Who handles an unanswered key (an instance) and until when, and what the request
-- created so far (so whoever takes the key over reuses it instead of making a second).
-- Claims made before this migration have no owner: they wait out a lease from
-- created_at.
ALTER TABLE idempotency_keys ADD COLUMN owner TEXT;
ALTER TABLE idempotency_keys ADD COLUMN lease_until TIMESTAMPTZ;
ALTER TABLE idempotency_keys ADD COLUMN payment_id TEXT;
ALTER TABLE idempotency_keys ADD COLUMN order_id TEXT;

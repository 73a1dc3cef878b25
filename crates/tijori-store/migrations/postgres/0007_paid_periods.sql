-- A subscription is what its paid periods add up to (tijori_core::subscription::
-- periods): each fulfilment keeps what refunds took back of it and what a switch of
-- plan moved out of it, and a payment keeps what the customer chose to happen to
-- the plan they held.

ALTER TABLE fulfilments ADD COLUMN taken_seconds BIGINT NOT NULL DEFAULT 0;
ALTER TABLE fulfilments ADD COLUMN moved_seconds BIGINT NOT NULL DEFAULT 0;
ALTER TABLE fulfilments ADD COLUMN credit_to TEXT REFERENCES payments (id);
ALTER TABLE fulfilments ADD COLUMN credit_seconds BIGINT NOT NULL DEFAULT 0;
ALTER TABLE fulfilments ADD COLUMN credit_in BIGINT NOT NULL DEFAULT 0;
ALTER TABLE fulfilments ADD COLUMN refunded_minor BIGINT NOT NULL DEFAULT 0;
CREATE INDEX fulfilments_user ON fulfilments (user_id);

-- A period revoked before keeps what was used of it, and nothing more.
UPDATE fulfilments
SET taken_seconds = granted_seconds - LEAST(granted_seconds, GREATEST(0,
        FLOOR(EXTRACT(EPOCH FROM (LEAST(revoked_at, period_end) - period_start)))::BIGINT))
WHERE revoked_at IS NOT NULL;

-- 'queue' or 'switch_now'; NULL (payments made before) queues.
ALTER TABLE payments ADD COLUMN plan_change TEXT;

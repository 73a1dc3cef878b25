-- A subscription is what its paid periods add up to (tijori_core::subscription::
-- periods): each fulfilment keeps what refunds took back of it and what a switch of
-- plan moved out of it, and a payment keeps what the customer chose to happen to
-- the plan they held.

ALTER TABLE fulfilments ADD COLUMN taken_seconds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE fulfilments ADD COLUMN moved_seconds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE fulfilments ADD COLUMN credit_to TEXT REFERENCES payments (id);
ALTER TABLE fulfilments ADD COLUMN credit_seconds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE fulfilments ADD COLUMN credit_in INTEGER NOT NULL DEFAULT 0;
ALTER TABLE fulfilments ADD COLUMN refunded_minor INTEGER NOT NULL DEFAULT 0;
CREATE INDEX fulfilments_user ON fulfilments (user_id);

-- A period revoked before keeps what was used of it, and nothing more.
UPDATE fulfilments
SET taken_seconds = granted_seconds - MIN(granted_seconds, MAX(0,
        unixepoch(MIN(revoked_at, period_end)) - unixepoch(period_start)))
WHERE revoked_at IS NOT NULL;

-- 'queue' or 'switch_now'; NULL (payments made before) queues.
ALTER TABLE payments ADD COLUMN plan_change TEXT;

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

-- Before, another plan bought while one ran started at once and replaced it (its
-- unused days were dropped then): such a period keeps only what ran before the one
-- that replaced it, so that every customer holds after this migration what they
-- held before it.
UPDATE fulfilments
SET taken_seconds = granted_seconds - MIN(granted_seconds, MAX(0,
        (SELECT MIN(unixepoch(b.period_start)) FROM fulfilments b
         WHERE b.user_id = fulfilments.user_id AND b.payment_id <> fulfilments.payment_id
           AND b.period_start > fulfilments.period_start
           AND b.period_start < fulfilments.period_end)
        - unixepoch(period_start)))
WHERE revoked_at IS NULL AND EXISTS (
    SELECT 1 FROM fulfilments b
    WHERE b.user_id = fulfilments.user_id AND b.payment_id <> fulfilments.payment_id
      AND b.period_start > fulfilments.period_start
      AND b.period_start < fulfilments.period_end);

-- Partial refunds made before took no days (the rule then): they count as taken for
-- already, so the next partial refund takes only its own share.
UPDATE fulfilments
SET refunded_minor = COALESCE((SELECT SUM(r.amount_minor) FROM refunds r
                               WHERE r.payment_id = fulfilments.payment_id
                                 AND r.status = 'succeeded'), 0)
WHERE revoked_at IS NULL;

-- 'queue' or 'switch_now'; NULL (payments made before) queues.
ALTER TABLE payments ADD COLUMN plan_change TEXT;

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

-- Before, another plan bought while one ran started at once and replaced it (its
-- unused days were dropped then): such a period keeps only what ran before the one
-- that replaced it, so that every customer holds after this migration what they
-- held before it.
UPDATE fulfilments a
SET taken_seconds = a.granted_seconds - LEAST(a.granted_seconds, GREATEST(0,
        FLOOR(EXTRACT(EPOCH FROM (b.first_start - a.period_start)))::BIGINT))
FROM (SELECT x.payment_id, MIN(y.period_start) AS first_start
      FROM fulfilments x JOIN fulfilments y
        ON y.user_id = x.user_id AND y.payment_id <> x.payment_id
       AND y.period_start > x.period_start AND y.period_start < x.period_end
      GROUP BY x.payment_id) b
WHERE b.payment_id = a.payment_id AND a.revoked_at IS NULL;

-- Partial refunds made before took no days (the rule then): they count as taken for
-- already, so the next partial refund takes only its own share.
UPDATE fulfilments
SET refunded_minor = COALESCE((SELECT SUM(r.amount_minor) FROM refunds r
                               WHERE r.payment_id = fulfilments.payment_id
                                 AND r.status = 'succeeded'), 0)
WHERE revoked_at IS NULL;

-- 'queue' or 'switch_now'; NULL (payments made before) queues.
ALTER TABLE payments ADD COLUMN plan_change TEXT;

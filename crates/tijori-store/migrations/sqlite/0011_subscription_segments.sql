-- The segments a user's paid periods make (tijori_core::subscription::segments):
-- kept beside the periods by every change to them, so that reading a subscription
-- and the usual purchase cost the segments ahead, not every period ever paid. The
-- store fills them for users who paid before this, when it migrates.
CREATE TABLE subscription_segments (
    user_id  TEXT NOT NULL REFERENCES users (id),
    start_at TEXT NOT NULL,
    end_at   TEXT NOT NULL,
    plan_id  TEXT NOT NULL REFERENCES plans (id),
    PRIMARY KEY (user_id, start_at)
);

-- A purchase never happens before the latest one bought or refunded: both are
-- read from an index, not from every period.
DROP INDEX fulfilments_user;
CREATE INDEX fulfilments_user_granted ON fulfilments (user_id, created_at);
CREATE INDEX fulfilments_user_revoked ON fulfilments (user_id, revoked_at)
    WHERE revoked_at IS NOT NULL;

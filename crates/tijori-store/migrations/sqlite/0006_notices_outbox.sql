-- Renewal reminders and expiry notices (one per user, kind and period), the mail
-- outbox, and each user's time zone for the dates in it.

CREATE TABLE notices (
    user_id    TEXT NOT NULL REFERENCES users (id),
    kind       TEXT NOT NULL,
    period_end TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, kind, period_end)
);

CREATE TABLE outbox (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    to_address TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    status     TEXT NOT NULL,
    error      TEXT,
    created_at TEXT NOT NULL,
    sent_at    TEXT
);
CREATE INDEX outbox_recent ON outbox (created_at);

-- NULL: inferred from the currency the user pays in.
ALTER TABLE users ADD COLUMN time_zone TEXT;

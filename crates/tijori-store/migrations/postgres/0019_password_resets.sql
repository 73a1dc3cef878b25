-- Password resets by e-mail link (issue 13, "Account basics"). Only the SHA-256 of
-- the link's secret is kept, as for API tokens and sessions; a row is used at most
-- once (`used_at`) and only until it expires. Requesting a new link or using one
-- ends the user's other open links.
CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX password_resets_user ON password_resets (user_id);

-- The background job that prunes expired API tokens and sessions finds them by
-- expiry, a batch at a time.
CREATE INDEX api_tokens_expires_at ON api_tokens (expires_at);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

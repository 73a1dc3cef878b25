-- API tokens expire; tokens issued before this migration never do (NULL).
ALTER TABLE api_tokens ADD COLUMN expires_at TIMESTAMPTZ;

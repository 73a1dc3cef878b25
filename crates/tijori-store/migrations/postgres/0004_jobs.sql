-- Background jobs, and when each open payment was last looked up.

CREATE TABLE jobs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    unique_key   TEXT,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_at       TIMESTAMPTZ NOT NULL,
    locked_by    TEXT,
    locked_until TIMESTAMPTZ,
    last_error   TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
-- What a worker claims: queued jobs by time, and running jobs by lease.
CREATE INDEX jobs_queued ON jobs (run_at) WHERE status = 'queued';
CREATE INDEX jobs_running ON jobs (locked_until) WHERE status = 'running';
-- Queueing is idempotent per (kind, key) while the job is still to be done.
CREATE UNIQUE INDEX jobs_active_key ON jobs (kind, unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('queued', 'running');

ALTER TABLE payments ADD COLUMN checked_at TIMESTAMPTZ;
CREATE INDEX payments_stale ON payments (created_at) WHERE status IN ('initiated', 'pending');

-- PostgreSQL's 0016 keeps the processes listening for payment changes; one process
-- serves a SQLite database, and tells its own pages.

-- Open payments are read by their age (payments_stale, the reconciler's sweep and
-- the /metrics counts); nothing reads them by updated_at, and every payment was
-- written into this index twice (created, then its checkout opened).
DROP INDEX payments_open;

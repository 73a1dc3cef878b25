-- The connections listening for payment changes (LISTEN tijori_payment_changes), one
-- row per tijori process that serves live status. A settle sends its NOTIFY only
-- when another process's listener is here: NOTIFY holds one lock through the
-- commit's flush, so transactions that send one commit one at a time, and a single
-- process announces its own changes itself. Each listener forgets the rows of
-- connections that no longer exist (pg_stat_activity).
CREATE TABLE change_listeners (
    pid    INTEGER PRIMARY KEY,
    since  TIMESTAMPTZ NOT NULL
);

-- Open payments are read by their age (payments_stale, the reconciler's sweep and
-- the /metrics counts); nothing reads them by updated_at, and every payment was
-- written into this index twice (created, then its checkout opened).
DROP INDEX payments_open;

-- A worker claims due jobs in (run_at, id) order, and lapsed leases in (locked_until,
-- id) order. With the id in the index the first few are read in order, without
-- sorting every due job: a burst of outgoing events queues thousands of deliveries
-- with one run_at, and sorting them all on each claim made every claim cost
-- milliseconds. (On SQLite the id is the rowid, already in every index; the indexes
-- are the same on both databases so that the schemas stay alike.)
DROP INDEX jobs_queued;
CREATE INDEX jobs_queued ON jobs (run_at, id) WHERE status = 'queued';
DROP INDEX jobs_running;
CREATE INDEX jobs_running ON jobs (locked_until, id) WHERE status = 'running';

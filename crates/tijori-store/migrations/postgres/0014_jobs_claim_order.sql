-- A worker claims due jobs in (run_at, id) order, deliveries of outgoing events apart
-- from the rest (at most half its slots deliver), and lapsed leases in (locked_until,
-- id) order. Each index below holds exactly what one part of a claim reads, in the
-- order it reads it, so a claim reads its first few rows and stops: a burst of
-- outgoing events queues tens of thousands of deliveries with one run_at, and a claim
-- that sorted them (or skipped past them to find other work) cost milliseconds each.
-- (On SQLite the id is the rowid, in every index already; the indexes are the same on
-- both databases so that the schemas stay alike.)
DROP INDEX jobs_queued;
CREATE INDEX jobs_queued_deliveries ON jobs (run_at, id)
    WHERE status = 'queued' AND kind = 'deliver_event';
CREATE INDEX jobs_queued_others ON jobs (run_at, id)
    WHERE status = 'queued' AND kind <> 'deliver_event';
DROP INDEX jobs_running;
CREATE INDEX jobs_running ON jobs (locked_until, id) WHERE status = 'running';

-- /metrics counts payments held for review and dead jobs at every scrape: each
-- count reads its own small partial index, not the whole table (paid payments and
-- finished jobs are most rows and grow for ever).
CREATE INDEX payments_held ON payments (updated_at) WHERE status = 'needs_review';
CREATE INDEX jobs_dead ON jobs (id) WHERE status = 'dead';

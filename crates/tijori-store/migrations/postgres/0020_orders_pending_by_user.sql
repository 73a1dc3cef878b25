-- A new order's caps count what its customer already holds unpaid (their pending
-- orders, and those orders' units per product). Through orders_user those counts read
-- every order the customer ever placed, paid ones included, so an order cost more the
-- longer its customer had shopped (BENCHMARKS.md, issue 15: a fifth of chapa-flow's
-- writer time by the end of a 20 s run). Only pending orders are in this index.
CREATE INDEX orders_pending_by_user ON orders (user_id, expires_at) WHERE status = 'pending';

-- The operator's area: who resolved an operator event and their note, and the indexes
-- its lists, a payment's audit trail and the revenue view read by.

-- Who took an event off the operator's list (NULL when the code that settled its
-- cause did), and what they did about it.
ALTER TABLE operator_events ADD COLUMN resolved_by TEXT REFERENCES users (id);
ALTER TABLE operator_events ADD COLUMN resolution TEXT;
-- A payment's page lists every event about it.
CREATE INDEX operator_events_payment ON operator_events (payment_id);

-- A payment's page lists every webhook delivery that named it, by our id or by its
-- gateway's reference.
CREATE INDEX webhook_deliveries_payment ON webhook_deliveries (payment_id);
CREATE INDEX webhook_deliveries_reference ON webhook_deliveries (gateway, reference);

-- The payments and orders lists page newest first and filter by date; the revenue
-- view sums payments made in the last 30 or 90 days.
CREATE INDEX payments_created ON payments (created_at, id);
CREATE INDEX orders_created ON orders (created_at, id);
-- The revenue view sums refunds that went through in the window.
CREATE INDEX refunds_succeeded ON refunds (updated_at) WHERE status = 'succeeded';
-- The subscriptions list and the overview's counts read runs by when they end.
CREATE INDEX subscriptions_end ON subscriptions (end_at);

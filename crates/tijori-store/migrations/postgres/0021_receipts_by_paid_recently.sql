-- Receipts are mailed for payments paid recently, refunded in part since or not, which
-- `payments_paid_recently` (0008) already indexes: the index 0017 made for completed
-- payments only was a second entry to write for every completion.
DROP INDEX payments_completed;

-- Receipts: one per paid payment, numbered 1, 2, 3… for the merchant without gaps
-- (the number is the highest so far plus one, taken in the writing transaction with
-- the table locked against other issuers), so that the numbers can go in the
-- merchant's books.
CREATE TABLE receipts (
    number      BIGINT PRIMARY KEY,
    payment_id  TEXT NOT NULL UNIQUE REFERENCES payments (id),
    issued_at   TIMESTAMPTZ NOT NULL,
    -- The receipt's mail in the outbox; NULL until it is written (once).
    mail_id     TEXT
);

-- The receipt job looks for recently paid payments whose receipt was not mailed.
CREATE INDEX payments_completed ON payments (updated_at) WHERE status = 'completed';

-- How a payment is paid: at the gateway's hosted checkout, or in Khalti's legacy
-- widget. Widget payments used to be told apart by a "widget:" prefix on their
-- provider_ref; the column says it, and provider_ref keeps the bare token.
ALTER TABLE payments ADD COLUMN checkout TEXT NOT NULL DEFAULT 'hosted'
    CHECK (checkout IN ('hosted', 'widget'));

UPDATE payments SET checkout = 'widget', provider_ref = substr(provider_ref, 8)
    WHERE provider_ref LIKE 'widget:%';

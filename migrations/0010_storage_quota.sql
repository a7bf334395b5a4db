-- Stored bytes per customer, against a quota. Every object a customer's jobs or uploads write
-- has a row (its latest size); a trigger keeps the customer's total, so the quota check is one
-- read inside the statement that records the object.
CREATE TABLE stored_objects (
    key TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX stored_objects_customer ON stored_objects (customer_id);

ALTER TABLE customers ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
-- NULL: the host default (VIDFARM_STORAGE_QUOTA_BYTES).
ALTER TABLE customers ADD COLUMN storage_quota_bytes INTEGER;

CREATE TRIGGER stored_objects_added AFTER INSERT ON stored_objects BEGIN
    UPDATE customers SET stored_bytes = stored_bytes + NEW.bytes WHERE id = NEW.customer_id;
END;
CREATE TRIGGER stored_objects_resized AFTER UPDATE OF bytes ON stored_objects BEGIN
    UPDATE customers SET stored_bytes = stored_bytes - OLD.bytes + NEW.bytes WHERE id = NEW.customer_id;
END;
CREATE TRIGGER stored_objects_removed AFTER DELETE ON stored_objects BEGIN
    UPDATE customers SET stored_bytes = stored_bytes - OLD.bytes WHERE id = OLD.customer_id;
END;

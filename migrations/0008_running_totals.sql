-- What each customer has been charged, kept as running totals beside the ledger (a trigger on
-- every ledger insert, whoever writes it), so a limit check reads one row instead of summing
-- the customer's whole ledger: a limited customer's jobs cost the same however many came before.
ALTER TABLE customers ADD COLUMN charged_nusd INTEGER NOT NULL DEFAULT 0;
-- The UTC month (its first instant, unix ms) that `charged_month_nusd` counts.
ALTER TABLE customers ADD COLUMN month_start_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE customers ADD COLUMN charged_month_nusd INTEGER NOT NULL DEFAULT 0;

UPDATE customers SET
    charged_nusd = (SELECT COALESCE(SUM(charge_nusd), 0) FROM billing_events b WHERE b.customer_id = customers.id),
    month_start_ms = CAST(strftime('%s', 'now', 'start of month') AS INTEGER) * 1000,
    charged_month_nusd = (SELECT COALESCE(SUM(charge_nusd), 0) FROM billing_events b
                          WHERE b.customer_id = customers.id
                            AND b.created_at >= CAST(strftime('%s', 'now', 'start of month') AS INTEGER) * 1000);

CREATE TRIGGER billing_events_totals AFTER INSERT ON billing_events
BEGIN
    UPDATE customers SET
        charged_nusd = charged_nusd + NEW.charge_nusd,
        charged_month_nusd = CASE
            WHEN month_start_ms = CAST(strftime('%s', NEW.created_at / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000
            THEN charged_month_nusd + NEW.charge_nusd
            -- The first charge of a new month starts its total; a late row of an older month
            -- (written out of order) does not count against this one.
            WHEN month_start_ms < CAST(strftime('%s', NEW.created_at / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000
            THEN NEW.charge_nusd
            ELSE charged_month_nusd END,
        month_start_ms = MAX(month_start_ms,
            CAST(strftime('%s', NEW.created_at / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000)
    WHERE id = NEW.customer_id;
END;

-- The unfinished jobs that keep a reservation, found without scanning a customer's queue (the
-- limit check's only other per-customer read; most jobs reserve nothing).
CREATE INDEX jobs_reserving ON jobs(customer_id)
    WHERE reserved_nusd > 0 AND status IN ('queued', 'running', 'waiting_for_child', 'waiting_for_human');

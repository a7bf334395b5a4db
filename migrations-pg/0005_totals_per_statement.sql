-- The running totals follow the ledger once per statement instead of once per row. A host's
-- batch of run ends inserts all its CPU charges in one statement (`db/pg/run_ends.rs`), and
-- with 0001's row trigger one customer's hundred charges were a hundred updates of the
-- customer's row in that statement. Here they are one update per customer and month.
--
-- The totals come out the same: rows are added per customer, month by month in ascending
-- order, and the month rule is the row trigger's (a charge of a newer month starts that
-- month's total; a late one of an older month counts only in the all-time total).
DROP TRIGGER billing_events_totals ON billing_events;
DROP FUNCTION billing_events_totals();

CREATE FUNCTION billing_events_totals() RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
    added RECORD;
BEGIN
    FOR added IN
        SELECT customer_id, month, SUM(charge_nusd)::BIGINT AS total
        FROM (SELECT customer_id, charge_nusd,
                     -- The first instant of the row's UTC month, unix ms.
                     extract(epoch FROM date_trunc('month', to_timestamp(created_at / 1000) AT TIME ZONE 'UTC'))::BIGINT
                       * 1000 AS month
              FROM added_rows) r
        GROUP BY customer_id, month
        -- Customers in id order, as every transaction that locks several of them.
        ORDER BY customer_id, month
    LOOP
        UPDATE customers SET
            charged_nusd = charged_nusd + added.total,
            charged_month_nusd = CASE
                WHEN month_start_ms = added.month THEN charged_month_nusd + added.total
                WHEN month_start_ms < added.month THEN added.total
                ELSE charged_month_nusd END,
            month_start_ms = GREATEST(month_start_ms, added.month)
        WHERE id = added.customer_id;
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER billing_events_totals AFTER INSERT ON billing_events
REFERENCING NEW TABLE AS added_rows
FOR EACH STATEMENT
EXECUTE FUNCTION billing_events_totals();

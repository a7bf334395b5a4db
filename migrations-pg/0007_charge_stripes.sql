-- The running totals leave the customer row. Until now every ledger insert updated the
-- customer's row (0005's statement trigger), so every transaction that charged a customer held
-- that one row until it committed: two worker hosts ending runs of one customer took turns,
-- commit after commit, whatever the customer's limits.
--
-- Now the trigger adds to one of the customer's stripes: a row of this table that no other
-- open transaction holds (`FOR NO KEY UPDATE SKIP LOCKED`), or a new one when every stripe is
-- held. It never waits, so it cannot deadlock, and a customer has about as many stripes as
-- transactions ever charged them at once. The customer row keeps the totals written before
-- this migration (and those `vidfarm db copy` brings); a total is the row's plus its stripes'.
--
-- Each stripe applies the month rule of 0005 to the rows it took, so "charged this month" is
-- the sum over the row and the stripes whose `month_start_ms` is this month: every ledger row
-- of this month is counted once, in the one place that took it.
CREATE TABLE customer_charge_stripes (
    customer_id         TEXT COLLATE "C" NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    -- Any unique number (a sequence): a new stripe never collides with one being written.
    stripe              BIGINT NOT NULL,
    charged_nusd        BIGINT NOT NULL,
    month_start_ms      BIGINT NOT NULL,
    charged_month_nusd  BIGINT NOT NULL,
    PRIMARY KEY (customer_id, stripe)
);
CREATE SEQUENCE customer_charge_stripe_numbers;

CREATE OR REPLACE FUNCTION billing_events_totals() RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
    added RECORD;
    taken BIGINT;
BEGIN
    FOR added IN
        SELECT customer_id, month, SUM(charge_nusd)::BIGINT AS total
        FROM (SELECT customer_id, charge_nusd,
                     extract(epoch FROM date_trunc('month', to_timestamp(created_at / 1000) AT TIME ZONE 'UTC'))::BIGINT
                       * 1000 AS month
              FROM added_rows) r
        GROUP BY customer_id, month
        ORDER BY customer_id, month
    LOOP
        -- A stripe this transaction holds already, or one nobody holds.
        SELECT stripe INTO taken FROM customer_charge_stripes
        WHERE customer_id = added.customer_id
        LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED;
        IF FOUND THEN
            UPDATE customer_charge_stripes SET
                charged_nusd = charged_nusd + added.total,
                charged_month_nusd = CASE
                    WHEN month_start_ms = added.month THEN charged_month_nusd + added.total
                    WHEN month_start_ms < added.month THEN added.total
                    ELSE charged_month_nusd END,
                month_start_ms = GREATEST(month_start_ms, added.month)
            WHERE customer_id = added.customer_id AND stripe = taken;
        ELSE
            INSERT INTO customer_charge_stripes (customer_id, stripe, charged_nusd, month_start_ms, charged_month_nusd)
            VALUES (added.customer_id, nextval('customer_charge_stripe_numbers'), added.total, added.month, added.total);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- Money in integers: nano-USD (1e-9 USD) in every amount column, so sums and limit checks
-- are exact (a REAL sum showed `1.20284e-9`), and holds: what an effect that costs money may
-- spend, set aside before it runs and settled after it.

ALTER TABLE billing_events ADD COLUMN cost_nusd INTEGER NOT NULL DEFAULT 0;
ALTER TABLE billing_events ADD COLUMN charge_nusd INTEGER NOT NULL DEFAULT 0;
UPDATE billing_events SET cost_nusd = CAST(ROUND(cost_usd * 1e9) AS INTEGER),
                          charge_nusd = CAST(ROUND(charge_usd * 1e9) AS INTEGER);
ALTER TABLE billing_events DROP COLUMN cost_usd;
ALTER TABLE billing_events DROP COLUMN charge_usd;

-- Prepaid credit ever added and the monthly cap; NULL: no such limit.
ALTER TABLE customers ADD COLUMN credit_nusd INTEGER;
ALTER TABLE customers ADD COLUMN monthly_cap_nusd INTEGER;
UPDATE customers SET credit_nusd = CAST(ROUND(credit_usd * 1e9) AS INTEGER),
                     monthly_cap_nusd = CAST(ROUND(monthly_cap_usd * 1e9) AS INTEGER);
ALTER TABLE customers DROP COLUMN credit_usd;
ALTER TABLE customers DROP COLUMN monthly_cap_usd;

-- The job's reservation (its `reservation_id` names it): the operation's estimate, set aside
-- from the customer's limit while the job is unfinished, minus what it has charged and holds.
ALTER TABLE jobs ADD COLUMN reserved_nusd INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET reserved_nusd = CAST(ROUND(reserved_usd * 1e9) AS INTEGER),
                reservation_id = CASE WHEN reserved_usd > 0 THEN 'res_' || id END;
ALTER TABLE jobs DROP COLUMN reserved_usd;

-- One hold per costly effect (`<job>:<effect>`): written before the effect in one statement
-- that checks it fits what the customer may still spend; captured (the actual charge, never
-- more than held) in the transaction that journals the effect; the rest released. A hold left
-- open by a crash is found by the replay of the same effect, which reuses it (one charge).
CREATE TABLE billing_holds (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    effect_key      TEXT NOT NULL UNIQUE,
    customer_id     TEXT NOT NULL REFERENCES customers(id),
    job_id          TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    template_id     TEXT NOT NULL,
    -- What the effect is: ai_generation, render, …
    kind            TEXT NOT NULL,
    -- The most the effect may be charged.
    held_nusd       INTEGER NOT NULL CHECK (held_nusd >= 0),
    -- The effect's actual cost and charge once known (before the capture commits): a job that
    -- ends with the hold still open is charged this, not the hold.
    cost_nusd       INTEGER,
    charge_nusd     INTEGER,
    provider        TEXT,
    model           TEXT,
    metadata        TEXT,
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'captured', 'released')),
    -- What the capture charged (NULL while open; 0 when released).
    captured_nusd   INTEGER,
    created_at      INTEGER NOT NULL,
    settled_at      INTEGER
);
CREATE INDEX billing_holds_open ON billing_holds(customer_id) WHERE status = 'open';
CREATE INDEX billing_holds_job ON billing_holds(job_id);

-- Customer billing limits and job reservations. A customer with neither a prepaid credit nor
-- a monthly cap is unlimited (and pays nothing in checks).

-- Charge = cost × margin; NULL: the host default.
ALTER TABLE customers ADD COLUMN margin REAL;
-- Prepaid credits ever added; NULL: no prepaid limit. Left = credit - everything charged.
ALTER TABLE customers ADD COLUMN credit_usd REAL;
-- Most a customer may be charged per calendar month (UTC); NULL: no cap.
ALTER TABLE customers ADD COLUMN monthly_cap_usd REAL;
-- What creating the job set aside from the customer's limit (its estimated charge); held
-- while the job is unfinished, minus what it has been charged so far.
ALTER TABLE jobs ADD COLUMN reserved_usd REAL NOT NULL DEFAULT 0;
-- `<job id>:<effect number>` of a charge a template recorded: a replay that repeats an effect
-- applied but not yet journaled (a crash or shutdown in between) cannot charge twice.
ALTER TABLE billing_events ADD COLUMN effect_key TEXT;
CREATE UNIQUE INDEX billing_events_effect ON billing_events(effect_key) WHERE effect_key IS NOT NULL;

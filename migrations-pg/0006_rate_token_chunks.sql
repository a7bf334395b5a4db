-- A host takes a customer's creation tokens from the shared bucket several at a time (at most a
-- tenth of a second's allowance, `crate::rate_limit`) and spends them from memory: one statement
-- per chunk instead of one per create. `taken` says how many the last take got (`RETURNING`
-- sees only the updated row); `granted` stays for hosts of the previous version.
ALTER TABLE rate_buckets ADD COLUMN taken INTEGER NOT NULL DEFAULT 0;

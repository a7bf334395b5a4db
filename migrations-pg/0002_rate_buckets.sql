-- The token buckets of the rate limits (job creation, sign-in attempts, test webhooks), shared
-- by every host: with buckets in each process, N API hosts would allow N times the rate.
-- UNLOGGED: a bucket is worth one minute at most, so a server crash that empties the table
-- costs one minute's allowance, while every create skips the write-ahead log.
CREATE UNLOGGED TABLE rate_buckets (
    key TEXT COLLATE "C" PRIMARY KEY,
    -- Tokens left when `at_us` was computed; refilled continuously up to one minute's rate.
    tokens DOUBLE PRECISION NOT NULL,
    -- The database's clock (microseconds since the epoch): hosts' clocks never decide.
    at_us BIGINT NOT NULL,
    -- Whether the last take got a token (`RETURNING` sees only the updated row).
    granted BOOLEAN NOT NULL
);
-- No index on `at_us`: the table holds the keys of the last minute, which the sweep scans
-- once a minute, and without a second index every take is a HOT update of one page.

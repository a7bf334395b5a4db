-- Fair shares: claims, renders and webhook deliveries are scheduled round-robin across
-- customers, each under a per-customer concurrency cap an operator sets (NULL: the host
-- default). `max_concurrent_jobs` and `jobs_per_minute` exist since 0001.
ALTER TABLE customers ADD COLUMN max_concurrent_renders INTEGER;
ALTER TABLE customers ADD COLUMN max_concurrent_deliveries INTEGER;

-- The claim walks the customers with queued jobs (a skip scan: one index seek per customer,
-- however long one customer's queue is) and takes each one's oldest due jobs.
CREATE INDEX jobs_queue_by_customer ON jobs(customer_id, run_after) WHERE status = 'queued';
CREATE INDEX jobs_running_by_customer ON jobs(customer_id) WHERE status = 'running';

-- The `x-request-id` of the request that created the job: the job's log lines carry it, so
-- one id follows a request from the access log through the job's run.
ALTER TABLE jobs ADD COLUMN request_id TEXT;

-- What a render that fails or is cut short is charged: the share of its output it reached
-- (`progress` of `expected_seconds`, the length the renderer resolved) at the rate and margin
-- its hold was placed with — not the share of the hold, which may cover the longest render.
ALTER TABLE renders ADD COLUMN expected_seconds REAL NOT NULL DEFAULT 0;
ALTER TABLE renders ADD COLUMN cost_nusd_per_second REAL NOT NULL DEFAULT 0;
ALTER TABLE renders ADD COLUMN margin REAL NOT NULL DEFAULT 1;

-- A tie between customers goes to the one served least recently (the latest `started_at`).
CREATE INDEX jobs_customer_started ON jobs(customer_id, started_at);
CREATE INDEX renders_customer_started ON renders(customer_id, started_at);

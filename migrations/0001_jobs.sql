-- Customers, their API keys and template configs; jobs with their events and journals; the
-- billing ledger. Times are unix milliseconds. JSON columns hold JSON text.

CREATE TABLE customers (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    -- NULL: the host default applies.
    max_concurrent_jobs  INTEGER,
    jobs_per_minute      INTEGER,
    created_at           INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    -- SHA-256 of the key: the key itself is shown once and never stored.
    key_hash     TEXT NOT NULL UNIQUE,
    -- First characters of the key, so operators can tell keys apart.
    prefix       TEXT NOT NULL,
    label        TEXT,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX api_keys_customer ON api_keys(customer_id);

CREATE TABLE template_configs (
    customer_id  TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    template_id  TEXT NOT NULL,
    config       TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (customer_id, template_id)
);

CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,
    customer_id       TEXT NOT NULL REFERENCES customers(id),
    template_id       TEXT NOT NULL,
    -- The version the job was created on; every run and retry of the job uses it.
    template_version  TEXT NOT NULL,
    template_digest   TEXT NOT NULL,
    operation         TEXT NOT NULL,
    workflow          TEXT NOT NULL,
    tracer            TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('queued', 'running', 'waiting_for_child',
                          'waiting_for_human', 'succeeded', 'failed', 'cancelled')),
    payload           TEXT NOT NULL,
    -- The customer's template config as it was when the job was created.
    config            TEXT NOT NULL,
    result            TEXT,
    error             TEXT,
    progress          REAL NOT NULL DEFAULT 0,
    progress_message  TEXT,
    webhook_url       TEXT,
    parent_job_id     TEXT REFERENCES jobs(id),
    idempotency_key   TEXT,
    reservation_id    TEXT,
    -- Runs so far (a replay after a wait or a retry is a new attempt).
    attempt           INTEGER NOT NULL DEFAULT 0,
    -- Retryable failures so far, against max_retries.
    retries           INTEGER NOT NULL DEFAULT 0,
    max_retries       INTEGER NOT NULL,
    run_after         INTEGER NOT NULL,
    lease_token       TEXT,
    lease_expires_at  INTEGER,
    -- What a waiting job waits for: child ids (JSON array) or the human prompt (JSON).
    waiting_on        TEXT,
    human_answer      TEXT,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    -- The job's logical start: the guest clock's origin on every replay.
    start_ms          INTEGER NOT NULL,
    fuel_consumed     INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs(customer_id, template_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_claim ON jobs(run_after) WHERE status = 'queued';
CREATE INDEX jobs_leases ON jobs(lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_customer ON jobs(customer_id, template_id, id);
CREATE INDEX jobs_customer_status ON jobs(customer_id, status);
CREATE INDEX jobs_parent ON jobs(parent_job_id) WHERE parent_job_id IS NOT NULL;
CREATE INDEX jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE job_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id    TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    at        INTEGER NOT NULL,
    level     TEXT NOT NULL,
    message   TEXT NOT NULL,
    metadata  TEXT NOT NULL,
    progress  REAL,
    artifact  TEXT,
    -- Where the event sits in the job's history (effects before it, then its rank): a replay
    -- re-emits the same keys, and the unique index drops them.
    position  INTEGER NOT NULL,
    ordinal   INTEGER NOT NULL
);
CREATE INDEX job_events_job ON job_events(job_id, id);
CREATE UNIQUE INDEX job_events_key ON job_events(job_id, position, ordinal);

-- DESIGN.md §4: effects a job performed, replayed instead of repeated.
CREATE TABLE job_journal (
    job_id          TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    request_digest  TEXT NOT NULL,
    result          TEXT NOT NULL,
    at              INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- Append-only: rows are never updated or deleted while their job is retained.
CREATE TABLE billing_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id  TEXT NOT NULL REFERENCES customers(id),
    job_id       TEXT REFERENCES jobs(id) ON DELETE SET NULL,
    template_id  TEXT,
    event_type   TEXT NOT NULL,
    cost_usd     REAL NOT NULL,
    charge_usd   REAL NOT NULL,
    provider     TEXT,
    model        TEXT,
    metadata     TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX billing_events_customer ON billing_events(customer_id, created_at);
CREATE INDEX billing_events_job ON billing_events(job_id);

-- A job that ends wakes its parent when the parent waits for children and none of them is
-- unfinished any more: atomic with the update that ended the job, whoever made it.
CREATE TRIGGER jobs_wake_parent AFTER UPDATE OF status ON jobs
WHEN NEW.parent_job_id IS NOT NULL
 AND NEW.status IN ('succeeded', 'failed', 'cancelled')
 AND OLD.status NOT IN ('succeeded', 'failed', 'cancelled')
BEGIN
    UPDATE jobs SET status = 'queued', run_after = NEW.updated_at, updated_at = NEW.updated_at
    WHERE id = NEW.parent_job_id AND status = 'waiting_for_child'
      AND NOT EXISTS (SELECT 1 FROM jobs c WHERE c.id IN (SELECT value FROM json_each(jobs.waiting_on))
                      AND c.status NOT IN ('succeeded', 'failed', 'cancelled'));
END;

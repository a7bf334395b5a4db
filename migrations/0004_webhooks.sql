-- Webhooks (spec "Webhooks"): customer destinations, a transactional outbox of deliveries
-- filled by triggers in the same statement that changes a job, and every delivery attempt.

CREATE TABLE webhook_destinations (
    id                TEXT PRIMARY KEY,
    customer_id       TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    url               TEXT NOT NULL,
    description       TEXT,
    -- `whsec_…`, encrypted like provider secrets (the key id as associated data).
    encrypted_secret  TEXT NOT NULL,
    -- active | disabled (the receiver answered 410 Gone)
    status            TEXT NOT NULL DEFAULT 'active',
    disabled_reason   TEXT,
    created_at        INTEGER NOT NULL
);
CREATE INDEX webhook_destinations_customer ON webhook_destinations(customer_id, status);

-- Signs deliveries to a job's own `webhook_url` (encrypted; created on first use).
ALTER TABLE customers ADD COLUMN webhook_secret TEXT;

CREATE TABLE webhook_deliveries (
    -- The Standard Webhooks `webhook-id`: the same on every attempt, so receivers dedupe.
    id              TEXT PRIMARY KEY,
    customer_id     TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    job_id          TEXT REFERENCES jobs(id) ON DELETE CASCADE,
    -- job (the job's webhook_url) | destination
    target          TEXT NOT NULL,
    destination_id  TEXT REFERENCES webhook_destinations(id) ON DELETE SET NULL,
    url             TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    -- The JSON body, frozen when the event happened.
    payload         TEXT NOT NULL,
    -- pending | delivered | failed
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    -- A sender holds the delivery until then (one sender at a time, across processes).
    locked_until    INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_customer ON webhook_deliveries(customer_id, created_at);
CREATE INDEX webhook_deliveries_job ON webhook_deliveries(job_id, url);

CREATE TABLE webhook_attempts (
    id           INTEGER PRIMARY KEY,
    delivery_id  TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    status_code  INTEGER,
    latency_ms   INTEGER NOT NULL,
    error        TEXT
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts(delivery_id, attempt);

-- job.queued: one delivery per target, in the statement that creates the job.
CREATE TRIGGER jobs_webhook_created AFTER INSERT ON jobs
BEGIN
    INSERT INTO webhook_deliveries (id, customer_id, job_id, target, destination_id, url, event_type, payload,
                                    next_attempt_at, created_at)
    SELECT 'msg_' || lower(hex(randomblob(12))), NEW.customer_id, NEW.id, t.target, t.destination_id, t.url,
           'job.queued',
           json_object('type', 'job.queued',
                       'timestamp', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                       'data', json_object(
                           'job_id', NEW.id, 'template_id', NEW.template_id, 'template_version', NEW.template_version,
                           'operation_name', NEW.operation, 'tracer', NEW.tracer, 'status', NEW.status,
                           'progress', NEW.progress, 'progress_message', NEW.progress_message,
                           'result', json(NEW.result), 'error', json(NEW.error), 'parent_job_id', NEW.parent_job_id,
                           'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.created_at / 1000.0, 'unixepoch'),
                           'finished_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.finished_at / 1000.0, 'unixepoch'))),
           NEW.created_at, NEW.created_at
    FROM (SELECT 'job' AS target, NULL AS destination_id, NEW.webhook_url AS url WHERE NEW.webhook_url IS NOT NULL
          UNION ALL
          SELECT 'destination', d.id, d.url FROM webhook_destinations d
          WHERE d.customer_id = NEW.customer_id AND d.status = 'active') t;
END;

-- job.running (first claim only: retries and replays are not new starts), job.progress (at
-- most one per job every 2 s while running), job.succeeded / failed / cancelled.
CREATE TRIGGER jobs_webhook_changed AFTER UPDATE ON jobs
WHEN (NEW.status != OLD.status AND NEW.status IN ('succeeded', 'failed', 'cancelled'))
  OR (NEW.status = 'running' AND OLD.started_at IS NULL AND NEW.started_at IS NOT NULL)
  OR (NEW.status = 'running' AND OLD.status = 'running' AND NEW.progress != OLD.progress
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries w WHERE w.job_id = NEW.id AND w.event_type = 'job.progress'
                      AND w.created_at > NEW.updated_at - 2000))
BEGIN
    INSERT INTO webhook_deliveries (id, customer_id, job_id, target, destination_id, url, event_type, payload,
                                    next_attempt_at, created_at)
    SELECT 'msg_' || lower(hex(randomblob(12))), NEW.customer_id, NEW.id, t.target, t.destination_id, t.url,
           e.type,
           json_object('type', e.type,
                       'timestamp', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                       'data', json_object(
                           'job_id', NEW.id, 'template_id', NEW.template_id, 'template_version', NEW.template_version,
                           'operation_name', NEW.operation, 'tracer', NEW.tracer, 'status', NEW.status,
                           'progress', NEW.progress, 'progress_message', NEW.progress_message,
                           'result', json(NEW.result), 'error', json(NEW.error), 'parent_job_id', NEW.parent_job_id,
                           'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.created_at / 1000.0, 'unixepoch'),
                           'finished_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.finished_at / 1000.0, 'unixepoch'))),
           NEW.updated_at, NEW.updated_at
    FROM (SELECT CASE WHEN NEW.status != OLD.status AND NEW.status IN ('succeeded', 'failed', 'cancelled')
                      THEN 'job.' || NEW.status
                      WHEN OLD.started_at IS NULL THEN 'job.running'
                      ELSE 'job.progress' END AS type) e,
         (SELECT 'job' AS target, NULL AS destination_id, NEW.webhook_url AS url WHERE NEW.webhook_url IS NOT NULL
          UNION ALL
          SELECT 'destination', d.id, d.url FROM webhook_destinations d
          WHERE d.customer_id = NEW.customer_id AND d.status = 'active') t;
END;

-- The PostgreSQL twin of migrations/0001–0012 (SQLite): their final state, written as one fresh
-- schema (the same tables, columns, defaults, constraints, indexes and trigger behaviour). The
-- SQLite data fix-ups (0006's REAL → nano-USD, 0008's first running totals) have nothing to fix
-- in a new database and are left out. A SQLite migration added after 0012 gets its Postgres twin
-- here as migrations-pg/0002_…, written against this file.
--
-- Types: INTEGER → BIGINT (flags stay 0/1), REAL → DOUBLE PRECISION, TEXT → TEXT, INTEGER
-- PRIMARY KEY → BIGINT identity; no booleans. Every TEXT column is COLLATE "C": SQLite compares
-- text bytewise (BINARY), so ORDER BY, ranges and `<` on ids and keys order as they do there,
-- whatever the database's own collation. Times are unix milliseconds; JSON columns hold JSON text.
--
-- Triggers are AFTER … FOR EACH ROW like SQLite's. Postgres runs a row's AFTER triggers at the
-- end of its statement (SQLite: as each row changes) and, on one event, in name order (SQLite:
-- newest first); no trigger here depends on either. Where SQLite's single writer made a trigger's
-- check-then-write safe, the trigger first locks the row it may change (see each one).

-- 0001 (+ columns of 0002, 0004, 0006, 0007, 0008, 0010, in that order) ------------------------

CREATE TABLE customers (
    id                         TEXT COLLATE "C" PRIMARY KEY,
    name                       TEXT COLLATE "C" NOT NULL,
    -- NULL: the host default applies.
    max_concurrent_jobs        BIGINT,
    jobs_per_minute            BIGINT,
    created_at                 BIGINT NOT NULL,
    -- Charge = cost × margin; NULL: the host default.
    margin                     DOUBLE PRECISION,
    -- Signs deliveries to a job's own `webhook_url` (encrypted; created on first use).
    webhook_secret             TEXT COLLATE "C",
    -- Prepaid credit ever added and the monthly cap, nano-USD; NULL: no such limit.
    credit_nusd                BIGINT,
    monthly_cap_nusd           BIGINT,
    -- Per-customer concurrency caps (NULL: the host default).
    max_concurrent_renders     BIGINT,
    max_concurrent_deliveries  BIGINT,
    -- Running totals of the ledger (trigger `billing_events_totals`).
    charged_nusd               BIGINT NOT NULL DEFAULT 0,
    -- The UTC month (its first instant, unix ms) that `charged_month_nusd` counts.
    month_start_ms             BIGINT NOT NULL DEFAULT 0,
    charged_month_nusd         BIGINT NOT NULL DEFAULT 0,
    -- Stored bytes (triggers on `stored_objects`); NULL quota: the host default.
    stored_bytes               BIGINT NOT NULL DEFAULT 0,
    storage_quota_bytes        BIGINT
);

CREATE TABLE api_keys (
    id            TEXT COLLATE "C" PRIMARY KEY,
    customer_id   TEXT COLLATE "C" NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    -- SHA-256 of the key: the key itself is shown once and never stored.
    key_hash      TEXT COLLATE "C" NOT NULL UNIQUE,
    -- First characters of the key, so operators can tell keys apart.
    prefix        TEXT COLLATE "C" NOT NULL,
    label         TEXT COLLATE "C",
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    last_four     TEXT COLLATE "C",
    last_used_at  BIGINT
);
CREATE INDEX api_keys_customer ON api_keys(customer_id);

CREATE TABLE template_configs (
    customer_id  TEXT COLLATE "C" NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    template_id  TEXT COLLATE "C" NOT NULL,
    config       TEXT COLLATE "C" NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (customer_id, template_id)
);

CREATE TABLE jobs (
    id                TEXT COLLATE "C" PRIMARY KEY,
    customer_id       TEXT COLLATE "C" NOT NULL REFERENCES customers(id),
    template_id       TEXT COLLATE "C" NOT NULL,
    -- The version the job was created on; every run and retry of the job uses it.
    template_version  TEXT COLLATE "C" NOT NULL,
    template_digest   TEXT COLLATE "C" NOT NULL,
    operation         TEXT COLLATE "C" NOT NULL,
    workflow          TEXT COLLATE "C" NOT NULL,
    tracer            TEXT COLLATE "C" NOT NULL,
    status            TEXT COLLATE "C" NOT NULL CHECK (status IN ('queued', 'running', 'waiting_for_child',
                          'waiting_for_human', 'succeeded', 'failed', 'cancelled')),
    payload           TEXT COLLATE "C" NOT NULL,
    -- The customer's template config as it was when the job was created.
    config            TEXT COLLATE "C" NOT NULL,
    result            TEXT COLLATE "C",
    error             TEXT COLLATE "C",
    progress          DOUBLE PRECISION NOT NULL DEFAULT 0,
    progress_message  TEXT COLLATE "C",
    webhook_url       TEXT COLLATE "C",
    parent_job_id     TEXT COLLATE "C" REFERENCES jobs(id),
    idempotency_key   TEXT COLLATE "C",
    reservation_id    TEXT COLLATE "C",
    -- Runs so far (a replay after a wait or a retry is a new attempt).
    attempt           BIGINT NOT NULL DEFAULT 0,
    -- Retryable failures so far, against max_retries.
    retries           BIGINT NOT NULL DEFAULT 0,
    max_retries       BIGINT NOT NULL,
    run_after         BIGINT NOT NULL,
    lease_token       TEXT COLLATE "C",
    lease_expires_at  BIGINT,
    -- What a waiting job waits for: child ids (JSON array), {"render": id} or the human prompt.
    waiting_on        TEXT COLLATE "C",
    human_answer      TEXT COLLATE "C",
    cancel_requested  BIGINT NOT NULL DEFAULT 0,
    -- The job's logical start: the guest clock's origin on every replay.
    start_ms          BIGINT NOT NULL,
    fuel_consumed     BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT,
    -- The job's reservation (its `reservation_id` names it), nano-USD.
    reserved_nusd     BIGINT NOT NULL DEFAULT 0,
    -- The `x-request-id` of the request that created the job.
    request_id        TEXT COLLATE "C",
    -- The W3C `traceparent` of the span that created the job.
    traceparent       TEXT COLLATE "C",
    -- The job this one retries (POST .../retry).
    retry_of          TEXT COLLATE "C"
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs(customer_id, template_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_claim ON jobs(run_after) WHERE status = 'queued';
CREATE INDEX jobs_leases ON jobs(lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_customer ON jobs(customer_id, template_id, id);
CREATE INDEX jobs_customer_status ON jobs(customer_id, status);
CREATE INDEX jobs_parent ON jobs(parent_job_id) WHERE parent_job_id IS NOT NULL;
CREATE INDEX jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_queue_by_customer ON jobs(customer_id, run_after) WHERE status = 'queued';
CREATE INDEX jobs_running_by_customer ON jobs(customer_id) WHERE status = 'running';
CREATE INDEX jobs_customer_started ON jobs(customer_id, started_at);
CREATE INDEX jobs_reserving ON jobs(customer_id)
    WHERE reserved_nusd > 0 AND status IN ('queued', 'running', 'waiting_for_child', 'waiting_for_human');
CREATE INDEX jobs_customer_all ON jobs(customer_id, id);

CREATE TABLE job_events (
    id        BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    job_id    TEXT COLLATE "C" NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    at        BIGINT NOT NULL,
    level     TEXT COLLATE "C" NOT NULL,
    message   TEXT COLLATE "C" NOT NULL,
    metadata  TEXT COLLATE "C" NOT NULL,
    progress  DOUBLE PRECISION,
    artifact  TEXT COLLATE "C",
    -- Where the event sits in the job's history (effects before it, then its rank): a replay
    -- re-emits the same keys, and the unique index drops them.
    position  BIGINT NOT NULL,
    ordinal   BIGINT NOT NULL
);
CREATE INDEX job_events_job ON job_events(job_id, id);
CREATE UNIQUE INDEX job_events_key ON job_events(job_id, position, ordinal);

-- DESIGN.md §4: effects a job performed, replayed instead of repeated.
CREATE TABLE job_journal (
    job_id          TEXT COLLATE "C" NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    kind            TEXT COLLATE "C" NOT NULL,
    request_digest  TEXT COLLATE "C" NOT NULL,
    result          TEXT COLLATE "C" NOT NULL,
    at              BIGINT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- Append-only: rows are never updated or deleted while their job is retained.
CREATE TABLE billing_events (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    customer_id  TEXT COLLATE "C" NOT NULL REFERENCES customers(id),
    job_id       TEXT COLLATE "C" REFERENCES jobs(id) ON DELETE SET NULL,
    template_id  TEXT COLLATE "C",
    event_type   TEXT COLLATE "C" NOT NULL,
    provider     TEXT COLLATE "C",
    model        TEXT COLLATE "C",
    metadata     TEXT COLLATE "C" NOT NULL,
    created_at   BIGINT NOT NULL,
    -- `<job id>:<effect number>` of a charge: a replay cannot charge twice.
    effect_key   TEXT COLLATE "C",
    cost_nusd    BIGINT NOT NULL DEFAULT 0,
    charge_nusd  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX billing_events_customer ON billing_events(customer_id, created_at);
CREATE INDEX billing_events_job ON billing_events(job_id);
CREATE UNIQUE INDEX billing_events_effect ON billing_events(effect_key) WHERE effect_key IS NOT NULL;

-- 0003: customer-owned AI provider keys and the key queue -----------------------------------

CREATE TABLE customer_provider_keys (
    id                TEXT COLLATE "C" PRIMARY KEY,
    -- NULL: a platform key (from the operator's environment).
    customer_id       TEXT COLLATE "C" REFERENCES customers(id) ON DELETE CASCADE,
    provider          TEXT COLLATE "C" NOT NULL,
    label             TEXT COLLATE "C",
    -- `v1:` + base64(nonce ‖ XChaCha20-Poly1305 ciphertext), the key id as associated data.
    encrypted_secret  TEXT COLLATE "C" NOT NULL,
    secret_last4      TEXT COLLATE "C" NOT NULL,
    -- active | paused | invalid
    status            TEXT COLLATE "C" NOT NULL DEFAULT 'active',
    weight            BIGINT NOT NULL DEFAULT 1,
    last_used_at      BIGINT,
    cooldown_until    BIGINT,
    disabled_reason   TEXT COLLATE "C",
    -- customer | environment | platform
    source            TEXT COLLATE "C" NOT NULL DEFAULT 'customer',
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX customer_provider_keys_pick ON customer_provider_keys(customer_id, provider, status);

-- At most one live lease per key (the primary key); an expired row is replaced by the next lease.
CREATE TABLE provider_key_leases (
    key_id       TEXT COLLATE "C" PRIMARY KEY REFERENCES customer_provider_keys(id) ON DELETE CASCADE,
    lease_token  TEXT COLLATE "C" NOT NULL,
    worker_id    TEXT COLLATE "C" NOT NULL,
    job_id       TEXT COLLATE "C" NOT NULL,
    leased_at    BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE TABLE provider_key_usage_events (
    id             BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    key_id         TEXT COLLATE "C" NOT NULL,
    job_id         TEXT COLLATE "C" NOT NULL,
    provider       TEXT COLLATE "C" NOT NULL,
    model          TEXT COLLATE "C",
    -- success | rate_limit | quota_exhausted | auth_error | upstream_error | bad_request
    event_type     TEXT COLLATE "C" NOT NULL,
    input_tokens   BIGINT,
    output_tokens  BIGINT,
    cost_usd       DOUBLE PRECISION,
    status_code    BIGINT,
    detail         TEXT COLLATE "C",
    created_at     BIGINT NOT NULL
);
CREATE INDEX provider_key_usage_key ON provider_key_usage_events(key_id, created_at);

-- A key with rows here serves only these models; a key without rows serves every model.
CREATE TABLE provider_key_capabilities (
    key_id  TEXT COLLATE "C" NOT NULL REFERENCES customer_provider_keys(id) ON DELETE CASCADE,
    model   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (key_id, model)
);

-- 0004: webhooks ---------------------------------------------------------------------------

CREATE TABLE webhook_destinations (
    id                TEXT COLLATE "C" PRIMARY KEY,
    customer_id       TEXT COLLATE "C" NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    url               TEXT COLLATE "C" NOT NULL,
    description       TEXT COLLATE "C",
    -- `whsec_…`, encrypted like provider secrets (the key id as associated data).
    encrypted_secret  TEXT COLLATE "C" NOT NULL,
    -- active | disabled (the receiver answered 410 Gone)
    status            TEXT COLLATE "C" NOT NULL DEFAULT 'active',
    disabled_reason   TEXT COLLATE "C",
    created_at        BIGINT NOT NULL
);
CREATE INDEX webhook_destinations_customer ON webhook_destinations(customer_id, status);

CREATE TABLE webhook_deliveries (
    -- The Standard Webhooks `webhook-id`: the same on every attempt, so receivers dedupe.
    id               TEXT COLLATE "C" PRIMARY KEY,
    customer_id      TEXT COLLATE "C" NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    job_id           TEXT COLLATE "C" REFERENCES jobs(id) ON DELETE CASCADE,
    -- job (the job's webhook_url) | destination
    target           TEXT COLLATE "C" NOT NULL,
    destination_id   TEXT COLLATE "C" REFERENCES webhook_destinations(id) ON DELETE SET NULL,
    url              TEXT COLLATE "C" NOT NULL,
    event_type       TEXT COLLATE "C" NOT NULL,
    -- The JSON body, frozen when the event happened.
    payload          TEXT COLLATE "C" NOT NULL,
    -- pending | delivered | failed
    status           TEXT COLLATE "C" NOT NULL DEFAULT 'pending',
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    -- A sender holds the delivery until then (one sender at a time, across processes).
    locked_until     BIGINT,
    last_status      BIGINT,
    last_error       TEXT COLLATE "C",
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_customer ON webhook_deliveries(customer_id, created_at);
-- By job only: a normalised URL may be longer than a btree entry may be (2,704 bytes), and an
-- insert refused by the index would fail whatever statement fired the trigger (a claim).
CREATE INDEX webhook_deliveries_job ON webhook_deliveries(job_id);
-- Deleting a destination sets its deliveries' destination_id to NULL: found by this index,
-- not by a scan of the outbox while the destination's row is locked.
CREATE INDEX webhook_deliveries_destination ON webhook_deliveries(destination_id);

CREATE TABLE webhook_attempts (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    delivery_id  TEXT COLLATE "C" NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt      BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    status_code  BIGINT,
    latency_ms   BIGINT NOT NULL,
    error        TEXT COLLATE "C"
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts(delivery_id, attempt);

-- 0005: renders (+ 0007's columns) ---------------------------------------------------------

CREATE TABLE renders (
    -- `<job id>_r<seq>`: derived from the job's effect number, stable across replays.
    id                    TEXT COLLATE "C" PRIMARY KEY,
    job_id                TEXT COLLATE "C" NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    -- The job's effect number the render's result will be journaled under.
    seq                   BIGINT NOT NULL,
    customer_id           TEXT COLLATE "C" NOT NULL,
    template_id           TEXT COLLATE "C" NOT NULL,
    -- `spec` (a JSON render spec, FFmpeg) or `remotion` (a composition).
    kind                  TEXT COLLATE "C" NOT NULL CHECK (kind IN ('spec', 'remotion')),
    -- The backend that runs it: ffmpeg, remotion-local or remotion-lambda.
    backend               TEXT COLLATE "C" NOT NULL,
    request               TEXT COLLATE "C" NOT NULL,
    -- The full storage key the output goes to.
    output_key            TEXT COLLATE "C" NOT NULL,
    status                TEXT COLLATE "C" NOT NULL
                              CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress              DOUBLE PRECISION NOT NULL DEFAULT 0,
    attempts              BIGINT NOT NULL DEFAULT 0,
    lease_token           TEXT COLLATE "C",
    lease_expires_at      BIGINT,
    -- The remote render's id (Lambda), so a restarted host polls it instead of starting another.
    external_id           TEXT COLLATE "C",
    -- The WIT render-result as JSON, or the error `{kind, message}`.
    result                TEXT COLLATE "C",
    error                 TEXT COLLATE "C",
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    started_at            BIGINT,
    finished_at           BIGINT,
    -- What a render cut short is charged: `progress` of `expected_seconds` at this rate and margin.
    expected_seconds      DOUBLE PRECISION NOT NULL DEFAULT 0,
    cost_nusd_per_second  DOUBLE PRECISION NOT NULL DEFAULT 0,
    margin                DOUBLE PRECISION NOT NULL DEFAULT 1,
    UNIQUE (job_id, seq)
);
CREATE INDEX renders_due ON renders(created_at) WHERE status IN ('queued', 'running');
CREATE INDEX renders_customer_started ON renders(customer_id, started_at);

-- 0006: holds ------------------------------------------------------------------------------

-- One hold per costly effect (`<job>:<effect>`), set aside before the effect, settled after it.
CREATE TABLE billing_holds (
    id              BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    effect_key      TEXT COLLATE "C" NOT NULL UNIQUE,
    customer_id     TEXT COLLATE "C" NOT NULL REFERENCES customers(id),
    job_id          TEXT COLLATE "C" NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    template_id     TEXT COLLATE "C" NOT NULL,
    -- What the effect is: ai_generation, render, …
    kind            TEXT COLLATE "C" NOT NULL,
    -- The most the effect may be charged.
    held_nusd       BIGINT NOT NULL CHECK (held_nusd >= 0),
    -- The effect's actual cost and charge once known (before the capture commits).
    cost_nusd       BIGINT,
    charge_nusd     BIGINT,
    provider        TEXT COLLATE "C",
    model           TEXT COLLATE "C",
    metadata        TEXT COLLATE "C",
    status          TEXT COLLATE "C" NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'captured', 'released')),
    -- What the capture charged (NULL while open; 0 when released).
    captured_nusd   BIGINT,
    created_at      BIGINT NOT NULL,
    settled_at      BIGINT
);
CREATE INDEX billing_holds_open ON billing_holds(customer_id) WHERE status = 'open';
CREATE INDEX billing_holds_job ON billing_holds(job_id);

-- 0010: stored bytes per customer ----------------------------------------------------------

CREATE TABLE stored_objects (
    key          TEXT COLLATE "C" PRIMARY KEY,
    customer_id  TEXT COLLATE "C" NOT NULL,
    bytes        BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX stored_objects_customer ON stored_objects (customer_id);

-- 0011: the dashboard's sign-in ------------------------------------------------------------

CREATE TABLE accounts (
    customer_id    TEXT COLLATE "C" PRIMARY KEY REFERENCES customers(id) ON DELETE CASCADE,
    -- Stored lower-cased and trimmed: one account per address whatever its spelling.
    email          TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash  TEXT COLLATE "C" NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE sessions (
    id_hash       TEXT COLLATE "C" PRIMARY KEY,
    -- NULL: an operator's session (signed in with the admin token).
    customer_id   TEXT COLLATE "C" REFERENCES customers(id) ON DELETE CASCADE,
    operator      BIGINT NOT NULL DEFAULT 0,
    -- An operator's session: the SHA-256 of the admin token it was opened with.
    token_digest  TEXT COLLATE "C",
    csrf_token    TEXT COLLATE "C" NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX sessions_customer ON sessions(customer_id);
CREATE INDEX sessions_expiry ON sessions(expires_at);

CREATE TABLE invites (
    email       TEXT COLLATE "C" PRIMARY KEY,
    created_at  BIGINT NOT NULL,
    used_at     BIGINT
);

-- Helpers of the triggers ------------------------------------------------------------------

-- `t` as JSON, or NULL when it is not JSON: SQLite's `json_valid` guard (Postgres 15 has no
-- `IS JSON`), so a trigger never fails on a column that holds something else.
CREATE FUNCTION vidfarm_try_json(t TEXT) RETURNS JSON LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN t::JSON;
EXCEPTION WHEN invalid_text_representation THEN
    RETURN NULL;
END
$$;

-- An ISO-8601 UTC instant with milliseconds, as SQLite's strftime('%Y-%m-%dT%H:%M:%fZ', …).
CREATE FUNCTION vidfarm_iso_ms(instant TIMESTAMPTZ) RETURNS TEXT LANGUAGE sql STABLE AS $$
    SELECT to_char(instant AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- A trigger-written delivery id: `msg_` and 24 lowercase hex digits, random, as SQLite's
-- `'msg_' || lower(hex(randomblob(12)))` (a counting part would tell every customer how many
-- deliveries the platform made between two of theirs). Sends are ordered by event and time.
CREATE FUNCTION webhook_delivery_id() RETURNS TEXT LANGUAGE sql VOLATILE AS $$
    SELECT 'msg_' || left(replace(gen_random_uuid()::TEXT, '-', ''), 12)
                  || left(replace(gen_random_uuid()::TEXT, '-', ''), 12)
$$;

-- The frozen body of a job event: the same keys, in the same order, as SQLite's json_object.
-- 'now' is the statement's time, as SQLite's is for one statement.
CREATE FUNCTION jobs_webhook_payload(event_type TEXT, j jobs) RETURNS TEXT LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'type', event_type,
        'timestamp', vidfarm_iso_ms(statement_timestamp()),
        'data', json_build_object(
            'job_id', j.id, 'template_id', j.template_id, 'template_version', j.template_version,
            'operation_name', j.operation, 'tracer', j.tracer, 'status', j.status,
            'progress', j.progress, 'progress_message', j.progress_message,
            -- SQLite's json(): embedded as JSON (NULL stays null; text that is not JSON fails).
            'result', j.result::JSON, 'error', j.error::JSON, 'parent_job_id', j.parent_job_id,
            'created_at', vidfarm_iso_ms(to_timestamp(j.created_at::DOUBLE PRECISION / 1000)),
            'finished_at', vidfarm_iso_ms(to_timestamp(j.finished_at::DOUBLE PRECISION / 1000))))::TEXT
$$;

-- One delivery of the event per target: the job's own `webhook_url` (if any) and each of the
-- customer's active destinations, due at `due_at`.
CREATE FUNCTION jobs_webhook_enqueue(event_type TEXT, j jobs, due_at BIGINT) RETURNS VOID LANGUAGE sql VOLATILE AS $$
    INSERT INTO webhook_deliveries (id, customer_id, job_id, target, destination_id, url, event_type, payload,
                                    next_attempt_at, created_at)
    SELECT webhook_delivery_id(), j.customer_id, j.id, t.target, t.destination_id, t.url, event_type,
           jobs_webhook_payload(event_type, j), due_at, due_at
    FROM (SELECT 'job'::TEXT AS target, NULL::TEXT AS destination_id, j.webhook_url AS url
          WHERE j.webhook_url IS NOT NULL
          UNION ALL
          -- KEY SHARE: a destination being deleted or disabled is waited for, then re-checked
          -- (skipped once gone), instead of failing this insert's foreign key after the delete.
          SELECT 'destination', d.id, d.url FROM (SELECT id, url FROM webhook_destinations
              WHERE customer_id = j.customer_id AND status = 'active' FOR KEY SHARE) d) t
$$;

-- Triggers ---------------------------------------------------------------------------------
-- SQLite's `!=` and `=` below only ever compare NOT NULL columns (status, progress) or meet
-- NULL through IS [NOT] NULL, so `<>`/`=` keep its NULL semantics exactly (a NULL is false).

-- 0005 (replacing 0001's): a job that ends wakes its parent when the parent waits for children
-- (waiting_on a JSON array) and none of them is unfinished any more, atomic with the update that
-- ended the job, whoever made it.
CREATE FUNCTION jobs_wake_parent() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    -- SQLite's writers take turns; here siblings ending at once would each see the other still
    -- unfinished and neither wake the parent. Locking the parent first makes them decide one
    -- after the other, the later one (its next statement sees a fresh snapshot) seeing the
    -- earlier one's commit. A parent entering waiting_for_child holds the same row lock until it
    -- commits (and must take it before the statement that checks its children, to see theirs).
    PERFORM 1 FROM jobs WHERE id = NEW.parent_job_id FOR NO KEY UPDATE;
    UPDATE jobs SET status = 'queued', run_after = NEW.updated_at, updated_at = NEW.updated_at
    WHERE id = NEW.parent_job_id AND status = 'waiting_for_child'
      AND CASE WHEN json_typeof(vidfarm_try_json(jobs.waiting_on)) = 'array'
               THEN NOT EXISTS (SELECT 1 FROM jobs c
                                WHERE c.id IN (SELECT json_array_elements_text(jobs.waiting_on::JSON))
                                  AND c.status NOT IN ('succeeded', 'failed', 'cancelled'))
               ELSE FALSE END;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_wake_parent AFTER UPDATE OF status ON jobs
FOR EACH ROW
WHEN (NEW.parent_job_id IS NOT NULL
      AND NEW.status IN ('succeeded', 'failed', 'cancelled')
      AND OLD.status NOT IN ('succeeded', 'failed', 'cancelled'))
EXECUTE FUNCTION jobs_wake_parent();

-- 0005: a render that ends wakes its job (atomic with the update that ended it, whoever made it).
CREATE FUNCTION renders_wake_job() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    -- As in `jobs_wake_parent`: a job entering waiting_for_child for this render holds its row
    -- until it commits; waiting for that row, the update below sees the job as it committed
    -- (and the job locks its row before the statement that checks the render, to see this one).
    PERFORM 1 FROM jobs WHERE id = NEW.job_id FOR NO KEY UPDATE;
    UPDATE jobs SET status = 'queued', run_after = NEW.updated_at, updated_at = NEW.updated_at, waiting_on = NULL
    WHERE id = NEW.job_id AND status = 'waiting_for_child'
      AND (vidfarm_try_json(waiting_on) ->> 'render') = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER renders_wake_job AFTER UPDATE OF status ON renders
FOR EACH ROW
WHEN (NEW.status IN ('succeeded', 'failed', 'cancelled') AND OLD.status NOT IN ('succeeded', 'failed', 'cancelled'))
EXECUTE FUNCTION renders_wake_job();

-- 0005: a job cancelled (or ended otherwise) while its render is unfinished cancels the render;
-- the worker running it sees the row change at its next heartbeat and kills the process.
CREATE FUNCTION jobs_cancel_renders() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    UPDATE renders SET status = 'cancelled', updated_at = NEW.updated_at, finished_at = NEW.updated_at,
        error = '{"kind":"cancelled","message":"the job was cancelled"}'
    WHERE job_id = NEW.id AND status IN ('queued', 'running');
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_cancel_renders AFTER UPDATE OF status ON jobs
FOR EACH ROW
WHEN (NEW.status IN ('succeeded', 'failed', 'cancelled'))
EXECUTE FUNCTION jobs_cancel_renders();

-- 0004: job.queued, one delivery per target, in the statement that creates the job.
CREATE FUNCTION jobs_webhook_created() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    PERFORM jobs_webhook_enqueue('job.queued', NEW, NEW.created_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_webhook_created AFTER INSERT ON jobs
FOR EACH ROW
EXECUTE FUNCTION jobs_webhook_created();

-- 0012 (replacing 0004's): job.running (first claim only: retries and replays are not new
-- starts), job.progress (at most one per job every 2 s, while running or waiting for its
-- render/children), job.succeeded / failed / cancelled.
CREATE FUNCTION jobs_webhook_changed() RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
    ended BOOLEAN := NEW.status <> OLD.status AND NEW.status IN ('succeeded', 'failed', 'cancelled');
    started BOOLEAN := NEW.status = 'running' AND OLD.started_at IS NULL AND NEW.started_at IS NOT NULL;
BEGIN
    -- Only the progress case is left: the rest of SQLite's WHEN (a subquery, which a Postgres
    -- WHEN cannot hold). Updates of one job take turns on its row, so the check sees the last one's.
    IF NOT ended AND NOT started AND EXISTS (
        SELECT 1 FROM webhook_deliveries w WHERE w.job_id = NEW.id AND w.event_type = 'job.progress'
                                             AND w.created_at > NEW.updated_at - 2000) THEN
        RETURN NULL;
    END IF;
    PERFORM jobs_webhook_enqueue(
        CASE WHEN ended THEN 'job.' || NEW.status
             WHEN OLD.started_at IS NULL THEN 'job.running'
             ELSE 'job.progress' END,
        NEW, NEW.updated_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_webhook_changed AFTER UPDATE ON jobs
FOR EACH ROW
WHEN ((NEW.status <> OLD.status AND NEW.status IN ('succeeded', 'failed', 'cancelled'))
   OR (NEW.status = 'running' AND OLD.started_at IS NULL AND NEW.started_at IS NOT NULL)
   OR (NEW.status IN ('running', 'waiting_for_child') AND OLD.status = NEW.status AND NEW.progress <> OLD.progress))
EXECUTE FUNCTION jobs_webhook_changed();

-- 0008: what each customer has been charged, kept beside the ledger on every insert, whoever
-- writes it: all time, and in the UTC month of the latest charge.
CREATE FUNCTION billing_events_totals() RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
    -- The first instant of NEW's UTC month, unix ms (SQLite: whole seconds, then 'start of month').
    v_month BIGINT :=
        extract(epoch FROM date_trunc('month', to_timestamp(NEW.created_at / 1000) AT TIME ZONE 'UTC'))::BIGINT * 1000;
BEGIN
    UPDATE customers SET
        charged_nusd = charged_nusd + NEW.charge_nusd,
        charged_month_nusd = CASE
            WHEN month_start_ms = v_month THEN charged_month_nusd + NEW.charge_nusd
            -- The first charge of a new month starts its total; a late row of an older month
            -- (written out of order) does not count against this one.
            WHEN month_start_ms < v_month THEN NEW.charge_nusd
            ELSE charged_month_nusd END,
        month_start_ms = GREATEST(month_start_ms, v_month)
    WHERE id = NEW.customer_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER billing_events_totals AFTER INSERT ON billing_events
FOR EACH ROW
EXECUTE FUNCTION billing_events_totals();

-- 0010: the customer's stored bytes follow their objects' rows.
CREATE FUNCTION stored_objects_added() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    UPDATE customers SET stored_bytes = stored_bytes + NEW.bytes WHERE id = NEW.customer_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER stored_objects_added AFTER INSERT ON stored_objects
FOR EACH ROW
EXECUTE FUNCTION stored_objects_added();

CREATE FUNCTION stored_objects_resized() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    UPDATE customers SET stored_bytes = stored_bytes - OLD.bytes + NEW.bytes WHERE id = NEW.customer_id;
    RETURN NULL;
END
$$;
-- Fires on `INSERT … ON CONFLICT DO UPDATE SET bytes = …` too, as SQLite's upsert does.
CREATE TRIGGER stored_objects_resized AFTER UPDATE OF bytes ON stored_objects
FOR EACH ROW
EXECUTE FUNCTION stored_objects_resized();

CREATE FUNCTION stored_objects_removed() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    UPDATE customers SET stored_bytes = stored_bytes - OLD.bytes WHERE id = OLD.customer_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER stored_objects_removed AFTER DELETE ON stored_objects
FOR EACH ROW
EXECUTE FUNCTION stored_objects_removed();

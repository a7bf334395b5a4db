-- Video generations (a provider's long-running operation: Veo) run through the render queue as
-- kind 'generation': the same row, lease, attempts, stored external id and wake-up as a render.
-- SQLite cannot change a CHECK in place, so the table is rebuilt; the trigger on `jobs` that
-- names it is dropped first and recreated after (a rename checks every trigger's tables).

DROP TRIGGER jobs_cancel_renders;

CREATE TABLE renders_new (
    -- `<job id>_r<seq>`: derived from the job's effect number, stable across replays.
    id                TEXT PRIMARY KEY,
    job_id            TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    -- The job's effect number the render's result will be journaled under.
    seq               INTEGER NOT NULL,
    customer_id       TEXT NOT NULL,
    template_id       TEXT NOT NULL,
    -- `spec` (a JSON render spec, FFmpeg), `remotion` (a composition) or `generation` (a
    -- provider's video generation).
    kind              TEXT NOT NULL CHECK (kind IN ('spec', 'remotion', 'generation')),
    -- The backend that runs it: ffmpeg, remotion-local, remotion-lambda or gemini-veo.
    backend           TEXT NOT NULL,
    request           TEXT NOT NULL,
    -- The full storage key the output goes to.
    output_key        TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress          REAL NOT NULL DEFAULT 0,
    attempts          INTEGER NOT NULL DEFAULT 0,
    lease_token       TEXT,
    lease_expires_at  INTEGER,
    -- The remote work's id (a Lambda render, a provider's operation and the key that
    -- submitted it), so a restarted host polls it instead of starting and paying for another.
    external_id       TEXT,
    -- The WIT render-result as JSON, or the error `{kind, message}`.
    result            TEXT,
    error             TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    expected_seconds  REAL NOT NULL DEFAULT 0,
    cost_nusd_per_second REAL NOT NULL DEFAULT 0,
    margin            REAL NOT NULL DEFAULT 1,
    UNIQUE (job_id, seq)
);

INSERT INTO renders_new (id, job_id, seq, customer_id, template_id, kind, backend, request, output_key, status,
    progress, attempts, lease_token, lease_expires_at, external_id, result, error, created_at, updated_at,
    started_at, finished_at, expected_seconds, cost_nusd_per_second, margin)
SELECT id, job_id, seq, customer_id, template_id, kind, backend, request, output_key, status,
    progress, attempts, lease_token, lease_expires_at, external_id, result, error, created_at, updated_at,
    started_at, finished_at, expected_seconds, cost_nusd_per_second, margin
FROM renders;

DROP TABLE renders;
ALTER TABLE renders_new RENAME TO renders;

CREATE INDEX renders_due ON renders(created_at) WHERE status IN ('queued', 'running');
CREATE INDEX renders_customer_started ON renders(customer_id, started_at);

-- A render that ends wakes its job (atomic with the update that ended it, whoever made it).
CREATE TRIGGER renders_wake_job AFTER UPDATE OF status ON renders
WHEN NEW.status IN ('succeeded', 'failed', 'cancelled') AND OLD.status NOT IN ('succeeded', 'failed', 'cancelled')
BEGIN
    UPDATE jobs SET status = 'queued', run_after = NEW.updated_at, updated_at = NEW.updated_at, waiting_on = NULL
    WHERE id = NEW.job_id AND status = 'waiting_for_child'
      AND json_valid(waiting_on) AND json_extract(waiting_on, '$.render') = NEW.id;
END;

-- A job cancelled (or ended otherwise) while its render is unfinished cancels the render;
-- the worker running it sees the row change at its next heartbeat and stops it.
CREATE TRIGGER jobs_cancel_renders AFTER UPDATE OF status ON jobs
WHEN NEW.status IN ('succeeded', 'failed', 'cancelled')
BEGIN
    UPDATE renders SET status = 'cancelled', updated_at = NEW.updated_at, finished_at = NEW.updated_at,
        error = '{"kind":"cancelled","message":"the job was cancelled"}'
    WHERE job_id = NEW.id AND status IN ('queued', 'running');
END;

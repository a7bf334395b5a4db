-- Renders: long work the host runs for a job outside its wasm instance (FFmpeg, Remotion).
-- The job waits in `waiting_for_child` (`waiting_on` = {"render": id}) and replays when the
-- render ends; the row is found again by (job_id, seq), so a replay never renders twice.

CREATE TABLE renders (
    -- `<job id>_r<seq>`: derived from the job's effect number, stable across replays.
    id                TEXT PRIMARY KEY,
    job_id            TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    -- The job's effect number the render's result will be journaled under.
    seq               INTEGER NOT NULL,
    customer_id       TEXT NOT NULL,
    template_id       TEXT NOT NULL,
    -- `spec` (a JSON render spec, FFmpeg) or `remotion` (a composition).
    kind              TEXT NOT NULL CHECK (kind IN ('spec', 'remotion')),
    -- The backend that runs it: ffmpeg, remotion-local or remotion-lambda.
    backend           TEXT NOT NULL,
    request           TEXT NOT NULL,
    -- The full storage key the output goes to.
    output_key        TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress          REAL NOT NULL DEFAULT 0,
    attempts          INTEGER NOT NULL DEFAULT 0,
    lease_token       TEXT,
    lease_expires_at  INTEGER,
    -- The remote render's id (Lambda), so a restarted host polls it instead of starting another.
    external_id       TEXT,
    -- The WIT render-result as JSON, or the error `{kind, message}`.
    result            TEXT,
    error             TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    UNIQUE (job_id, seq)
);
CREATE INDEX renders_due ON renders(created_at) WHERE status IN ('queued', 'running');

-- A render that ends wakes its job (atomic with the update that ended it, whoever made it).
CREATE TRIGGER renders_wake_job AFTER UPDATE OF status ON renders
WHEN NEW.status IN ('succeeded', 'failed', 'cancelled') AND OLD.status NOT IN ('succeeded', 'failed', 'cancelled')
BEGIN
    UPDATE jobs SET status = 'queued', run_after = NEW.updated_at, updated_at = NEW.updated_at, waiting_on = NULL
    WHERE id = NEW.job_id AND status = 'waiting_for_child'
      AND json_valid(waiting_on) AND json_extract(waiting_on, '$.render') = NEW.id;
END;

-- A job cancelled (or ended otherwise) while its render is unfinished cancels the render;
-- the worker running it sees the row change at its next heartbeat and kills the process.
CREATE TRIGGER jobs_cancel_renders AFTER UPDATE OF status ON jobs
WHEN NEW.status IN ('succeeded', 'failed', 'cancelled')
BEGIN
    UPDATE renders SET status = 'cancelled', updated_at = NEW.updated_at, finished_at = NEW.updated_at,
        error = '{"kind":"cancelled","message":"the job was cancelled"}'
    WHERE job_id = NEW.id AND status IN ('queued', 'running');
END;

-- Children ending wake a parent only when it waits for children (not for a render).
DROP TRIGGER jobs_wake_parent;
CREATE TRIGGER jobs_wake_parent AFTER UPDATE OF status ON jobs
WHEN NEW.parent_job_id IS NOT NULL
 AND NEW.status IN ('succeeded', 'failed', 'cancelled')
 AND OLD.status NOT IN ('succeeded', 'failed', 'cancelled')
BEGIN
    UPDATE jobs SET status = 'queued', run_after = NEW.updated_at, updated_at = NEW.updated_at
    WHERE id = NEW.parent_job_id AND status = 'waiting_for_child' AND json_type(waiting_on) = 'array'
      AND NOT EXISTS (SELECT 1 FROM jobs c WHERE c.id IN (SELECT value FROM json_each(jobs.waiting_on))
                      AND c.status NOT IN ('succeeded', 'failed', 'cancelled'));
END;

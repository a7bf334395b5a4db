-- Job webhooks cost nothing for a job nobody listens to. The triggers of 0001 called the SQL
-- function `jobs_webhook_enqueue` for every job change (three per job); PostgreSQL plans a
-- SQL function's statement on every call, so a job with no `webhook_url`, of a customer with
-- no active destination, paid for planning an INSERT of no rows three times: a sixth of the
-- machine's CPU under load (BENCHMARKS.md, "PostgreSQL and many worker processes").
--
-- Now the triggers return at once when there is no target (one indexed probe; a destination
-- being added concurrently is not seen either way, as the old snapshot did not see it), and
-- the enqueue is PL/pgSQL, whose statement plans are cached per session. The deliveries
-- written for jobs that have targets are unchanged (tests/tests/end_to_end/webhooks.rs).

CREATE OR REPLACE FUNCTION jobs_webhook_enqueue(event_type TEXT, j jobs, due_at BIGINT) RETURNS VOID
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO webhook_deliveries (id, customer_id, job_id, target, destination_id, url, event_type, payload,
                                    next_attempt_at, created_at)
    SELECT webhook_delivery_id(), j.customer_id, j.id, t.target, t.destination_id, t.url,
           jobs_webhook_enqueue.event_type, jobs_webhook_payload(jobs_webhook_enqueue.event_type, j),
           jobs_webhook_enqueue.due_at, jobs_webhook_enqueue.due_at
    FROM (SELECT 'job'::TEXT AS target, NULL::TEXT AS destination_id, j.webhook_url AS url
          WHERE j.webhook_url IS NOT NULL
          UNION ALL
          -- KEY SHARE: a destination being deleted or disabled is waited for, then re-checked
          -- (skipped once gone), instead of failing this insert's foreign key after the delete.
          SELECT 'destination', d.id, d.url FROM (SELECT w.id, w.url FROM webhook_destinations w
              WHERE w.customer_id = j.customer_id AND w.status = 'active' FOR KEY SHARE) d) t;
END
$$;

-- Whether a change of job `j` has anyone to tell.
CREATE FUNCTION jobs_webhook_has_target(j jobs) RETURNS BOOLEAN LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN j.webhook_url IS NOT NULL OR EXISTS (
        SELECT 1 FROM webhook_destinations d WHERE d.customer_id = j.customer_id AND d.status = 'active');
END
$$;

CREATE OR REPLACE FUNCTION jobs_webhook_created() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    IF jobs_webhook_has_target(NEW) THEN
        PERFORM jobs_webhook_enqueue('job.queued', NEW, NEW.created_at);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION jobs_webhook_changed() RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
    ended BOOLEAN := NEW.status <> OLD.status AND NEW.status IN ('succeeded', 'failed', 'cancelled');
    started BOOLEAN := NEW.status = 'running' AND OLD.started_at IS NULL AND NEW.started_at IS NOT NULL;
BEGIN
    IF NOT jobs_webhook_has_target(NEW) THEN
        RETURN NULL;
    END IF;
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

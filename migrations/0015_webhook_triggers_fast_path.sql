-- Job webhooks cost nothing for a job nobody listens to, as on PostgreSQL (its 0003). A
-- trigger's body opened its INSERT's cursors on webhook_deliveries and its indexes for every job
-- change (the job's creation, its start, each progress update, its end) even when the SELECT had
-- no target to insert: about 6 µs a change, so a claim of 32 jobs took 0.67 ms instead of 0.47
-- (BENCHMARKS.md, "Session 24"). Now the WHEN asks first whether the job has a target — its own
-- `webhook_url` or an active destination of its customer, one indexed probe — and the body runs
-- only then. The deliveries written for jobs that have targets are unchanged
-- (tests/tests/end_to_end/webhooks.rs): the probe reads what the body's own SELECT would read,
-- in the same statement.
DROP TRIGGER jobs_webhook_created;
DROP TRIGGER jobs_webhook_changed;

CREATE TRIGGER jobs_webhook_created AFTER INSERT ON jobs
WHEN (NEW.webhook_url IS NOT NULL
      OR EXISTS (SELECT 1 FROM webhook_destinations d WHERE d.customer_id = NEW.customer_id AND d.status = 'active'))
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

CREATE TRIGGER jobs_webhook_changed AFTER UPDATE ON jobs
WHEN (NEW.webhook_url IS NOT NULL
      OR EXISTS (SELECT 1 FROM webhook_destinations d WHERE d.customer_id = NEW.customer_id AND d.status = 'active'))
 AND ((NEW.status != OLD.status AND NEW.status IN ('succeeded', 'failed', 'cancelled'))
      OR (NEW.status = 'running' AND OLD.started_at IS NULL AND NEW.started_at IS NOT NULL)
      OR (NEW.status IN ('running', 'waiting_for_child') AND OLD.status = NEW.status AND NEW.progress != OLD.progress
          AND NOT EXISTS (SELECT 1 FROM webhook_deliveries w WHERE w.job_id = NEW.id AND w.event_type = 'job.progress'
                          AND w.created_at > NEW.updated_at - 2000)))
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

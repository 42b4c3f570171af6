-- runledger: the completer's write is a function whose plan does not depend on the statistics.
--
-- Design notes
-- * The write finds each attempt by its primary key. As a prepared statement it was planned
--   for the values of its first five executions on each connection: with a batch of 50-100
--   attempts the planner priced 100 key lookups above one sequential scan of a table of 20,000
--   rows, and hashed the whole table instead (3-7 ms against 1 ms). A worker's pool spreads
--   its writes over every connection, so each drain paid that a dozen times and more; the
--   benchmark counted 11-17 rows read by sequential scans per job completed.
-- * Here the statement is planned once per session with its parameters unknown
--   (`plan_cache_mode = force_generic_plan`, which holds only while the function runs): the
--   planner expects a handful of attempts and looks each up by key from the first call. That
--   is the plan the prepared statement settled on after its first five executions anyway.
-- * Arguments, result and statement are those the worker sent as a prepared statement: the
--   outcome of each attempt, fenced by id, attempt and `state = 'running'`, with a wake-up
--   for each queue that got jobs back.

CREATE FUNCTION runledger.complete_jobs(
    p_ids bigint[], p_attempts integer[], p_outcomes text[], p_outputs text[],
    p_delays double precision[], p_errors text[]
) RETURNS TABLE (id bigint, state text, queue text, due_in_ms double precision)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH u AS (
        SELECT * FROM unnest(p_ids, p_attempts, p_outcomes, p_outputs, p_delays, p_errors)
            AS u(id, attempt, outcome, output, delay_s, error)
    ),
    done AS (
        UPDATE runledger.jobs j
        SET state = CASE u.outcome
                WHEN 'completed' THEN 'completed'
                WHEN 'retry' THEN CASE WHEN j.attempt >= j.max_attempts
                                       THEN 'failed' ELSE 'retryable' END
                WHEN 'failed' THEN 'failed'
                WHEN 'cancelled' THEN 'cancelled'
                WHEN 'snoozed' THEN 'scheduled'
                ELSE 'available' END,
            output = CASE WHEN u.outcome = 'completed' THEN u.output::jsonb END,
            finished_at = CASE
                WHEN u.outcome IN ('completed', 'failed', 'cancelled')
                  OR (u.outcome = 'retry' AND j.attempt >= j.max_attempts) THEN now() END,
            run_at = CASE
                WHEN u.outcome IN ('retry', 'snoozed')
                    THEN now() + make_interval(secs => COALESCE(u.delay_s, 0))
                -- Handed back: available again, in its place in the queue.
                WHEN u.outcome = 'released' THEN LEAST(j.run_at, now())
                ELSE j.run_at END,
            max_attempts = CASE WHEN u.outcome IN ('snoozed', 'released')
                                THEN j.max_attempts + 1 ELSE j.max_attempts END,
            errors = CASE WHEN u.error IS NULL THEN j.errors
                ELSE j.errors || jsonb_build_array(jsonb_build_object(
                    'attempt', j.attempt, 'at', now(), 'error', u.error)) END,
            lease_expires_at = NULL
        FROM u
        WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running'
        RETURNING j.id, j.state, j.queue, j.run_at
    ),
    notified AS (
        SELECT pg_notify('runledger_jobs', 'a:' || q.queue)
        FROM (SELECT DISTINCT d.queue FROM done d WHERE d.state = 'available') q
    )
    SELECT done.id, done.state, done.queue,
           CASE WHEN done.state IN ('retryable', 'scheduled')
                THEN EXTRACT(EPOCH FROM (done.run_at - now()))::float8 * 1000 END
    FROM done CROSS JOIN (SELECT count(*) FROM notified) n;
END
$$;

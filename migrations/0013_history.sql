-- runledger: attempt history, the operators' indexes, and what workers say of themselves.
--
-- Design notes
-- * Every attempt is on record: its number, worker, start, end, outcome and kind of error. The
--   latest attempt is the job row itself (`attempt`, `attempted_by`, `attempted_at`,
--   `finished_at`, `state`); an attempt that did not finish the job (retried, snoozed, handed
--   back, suspended, its lease expired) is pushed onto `jobs.history` by the statement that
--   records its end (the completer's write, the rescue), before the next claim overwrites
--   those columns; so is a finished attempt whose job an operator retries. A job that
--   completes at its first attempt, the common case, writes no history at all: the hot path
--   stays one statement per batch and its rows do not grow. Errors keep their text and now
--   their kind in `jobs.errors`, matched by attempt.
-- * Both lists keep their last 32 entries (`runledger.pushed`): a job retried or suspended a
--   thousand times keeps a bounded row. The attempt number tells how many there were.
-- * A workflow step that is run again (a failed run retried from its failed steps) keeps its
--   earlier jobs in `workflow_steps.history`.
-- * Jobs that failed, were cancelled or diverged are found through a partial index by state
--   and id: among a million completed rows, a page of failures (or of one of those states) is
--   read without scanning the rest. It is written only when a job enters one of those states,
--   so the hot path does not pay for it.
-- * Workers record their host, process id, version and slots for the operators' tools.
-- * A job can carry the trace context of the span that enqueued it (`trace_context`).

ALTER TABLE runledger.jobs ADD COLUMN history jsonb NOT NULL DEFAULT '[]';

-- The W3C `traceparent` of the span that enqueued the job, when the enqueuing client carries
-- trace context (feature `otel`): it sets `runledger.trace_context` around its insert, so no
-- statement that inserts jobs changes, and without it the column stays NULL.
ALTER TABLE runledger.jobs ADD COLUMN trace_context text
    DEFAULT NULLIF(current_setting('runledger.trace_context', true), '');
ALTER TABLE runledger.workflow_steps ADD COLUMN history jsonb NOT NULL DEFAULT '[]';

ALTER TABLE runledger.workers
    ADD COLUMN host text,
    ADD COLUMN pid integer,
    ADD COLUMN version text,
    ADD COLUMN concurrency integer;

CREATE INDEX jobs_failed_idx ON runledger.jobs (state, id)
    WHERE state IN ('failed', 'cancelled', 'diverged');

CREATE INDEX workflow_runs_failed_idx ON runledger.workflow_runs (id)
    WHERE state IN ('failed', 'cancelled');

-- `p_list` with `p_entry` appended, keeping the last 32 entries. Inlined by the planner.
CREATE FUNCTION runledger.pushed(p_list jsonb, p_entry jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_array_length(p_list) >= 32
                THEN (p_list - 0) || jsonb_build_array(p_entry)
                ELSE p_list || jsonb_build_array(p_entry) END
$$;

-- The completer's write (migration 0012) with the kind of each error, which it records with
-- the attempt in `history`.
DROP FUNCTION runledger.complete_jobs(bigint[], integer[], text[], text[], double precision[],
    text[], text[], timestamptz[]);

CREATE FUNCTION runledger.complete_jobs(
    p_ids bigint[], p_attempts integer[], p_outcomes text[], p_outputs text[],
    p_delays double precision[], p_errors text[], p_waits text[], p_untils timestamptz[],
    p_error_kinds text[]
) RETURNS TABLE (id bigint, state text, queue text, due_in_ms double precision)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_ids       bigint[];
    v_states    text[];
    v_queues    text[];
    v_dues      double precision[];
    v_children  bigint[];
    v_failed    bigint[];
    v_suspended bigint[];
    v_lock      record;
    v_busy      jsonb[] := '{}';
BEGIN
    WITH u AS (
        SELECT u.*,
               CASE WHEN u.outcome = 'suspended'
                    THEN (COALESCE(u.until_at <= now(), false)
                          OR runledger.wait_over(u.wait::jsonb)) END AS over
        FROM unnest(p_ids, p_attempts, p_outcomes, p_outputs, p_delays, p_errors, p_waits,
                    p_untils, p_error_kinds)
            AS u(id, attempt, outcome, output, delay_s, error, wait, until_at, error_kind)
    ),
    done AS (
        UPDATE runledger.jobs j
        SET state = CASE u.outcome
                WHEN 'completed' THEN 'completed'
                WHEN 'retry' THEN CASE WHEN j.attempt >= j.max_attempts
                                       THEN 'failed' ELSE 'retryable' END
                WHEN 'failed' THEN 'failed'
                WHEN 'cancelled' THEN 'cancelled'
                WHEN 'diverged' THEN 'diverged'
                WHEN 'snoozed' THEN 'scheduled'
                WHEN 'suspended' THEN CASE WHEN j.cancel_requested THEN 'cancelled'
                                           WHEN u.over THEN 'available' ELSE 'waiting' END
                ELSE 'available' END,
            output = CASE WHEN u.outcome = 'completed' THEN u.output::jsonb END,
            finished_at = CASE
                WHEN u.outcome IN ('completed', 'failed', 'cancelled', 'diverged')
                  OR (u.outcome = 'retry' AND j.attempt >= j.max_attempts)
                  OR (u.outcome = 'suspended' AND j.cancel_requested) THEN now() END,
            run_at = CASE
                WHEN u.outcome IN ('retry', 'snoozed')
                    THEN now() + make_interval(secs => COALESCE(u.delay_s, 0))
                -- Handed back: available again, in its place in the queue.
                WHEN u.outcome = 'released' THEN LEAST(j.run_at, now())
                WHEN u.outcome = 'suspended' AND NOT j.cancel_requested THEN
                    CASE WHEN u.over THEN now() ELSE COALESCE(u.until_at, runledger.never()) END
                ELSE j.run_at END,
            waiting_for = CASE WHEN u.outcome = 'suspended' AND NOT u.over
                                    AND NOT j.cancel_requested
                               THEN u.wait::jsonb END,
            max_attempts = CASE WHEN u.outcome IN ('snoozed', 'released', 'suspended')
                                THEN j.max_attempts + 1 ELSE j.max_attempts END,
            errors = CASE
                WHEN u.outcome = 'suspended' AND j.cancel_requested
                    THEN runledger.pushed(j.errors, jsonb_build_object(
                        'attempt', j.attempt, 'at', now(), 'error', 'cancelled while running',
                        'kind', 'cancelled'))
                WHEN u.error IS NULL THEN j.errors
                ELSE runledger.pushed(j.errors, jsonb_build_object(
                    'attempt', j.attempt, 'at', now(), 'error', u.error,
                    'kind', u.error_kind)) END,
            -- An attempt that finishes the job stays on record in the row's own columns.
            history = CASE
                WHEN u.outcome IN ('completed', 'failed', 'cancelled', 'diverged')
                  OR (u.outcome = 'retry' AND j.attempt >= j.max_attempts)
                  OR (u.outcome = 'suspended' AND j.cancel_requested) THEN j.history
                ELSE runledger.pushed(j.history, jsonb_build_object(
                    'attempt', j.attempt, 'worker', j.attempted_by,
                    'started_at', j.attempted_at, 'finished_at', now(),
                    'outcome', CASE WHEN u.outcome = 'retry' THEN 'retried' ELSE u.outcome END,
                    'error_kind', u.error_kind)) END,
            lease_expires_at = NULL
        FROM u
        WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running'
        RETURNING j.id, j.state, j.queue, j.run_at, j.parent_id, j.waiting_for
    ),
    notified AS (
        SELECT pg_notify('runledger_jobs', 'a:' || q.queue)
        FROM (SELECT DISTINCT d.queue FROM done d WHERE d.state = 'available') q
    )
    SELECT array_agg(done.id), array_agg(done.state), array_agg(done.queue),
           array_agg(CASE WHEN done.state IN ('retryable', 'scheduled')
                            OR (done.state = 'waiting' AND done.run_at < runledger.never())
                          THEN EXTRACT(EPOCH FROM (done.run_at - now()))::float8 * 1000 END),
           array_agg(done.id) FILTER (WHERE done.parent_id IS NOT NULL
                                        AND done.state IN ('completed', 'failed', 'cancelled',
                                                           'diverged')),
           array_agg(done.id) FILTER (WHERE done.state IN ('failed', 'cancelled', 'diverged')),
           array_agg(done.id) FILTER (WHERE done.state = 'waiting'
                                        AND jsonb_path_exists(done.waiting_for,
                                                              '$[*] ? (!exists(@.sleep))'))
    INTO v_ids, v_states, v_queues, v_dues, v_children, v_failed, v_suspended
    FROM done CROSS JOIN (SELECT count(*) FROM notified) n;
    IF v_children IS NULL AND v_suspended IS NULL THEN
        -- Nothing to lock: the path of every batch without durable suspensions or children.
        IF v_failed IS NOT NULL THEN
            PERFORM runledger.cancel_descendants(v_failed);
        END IF;
        RETURN QUERY SELECT * FROM unnest(v_ids, v_states, v_queues, v_dues);
        RETURN;
    END IF;
    FOR v_lock IN
        SELECT runledger.wait_lock(c.cond) AS key, c.cond, bool_or(c.block) AS block
        FROM (
            SELECT jsonb_build_object('child', x) AS cond, true AS block
            FROM unnest(v_children) x
            UNION ALL
            SELECT w.cond, false
            FROM runledger.jobs j, jsonb_array_elements(j.waiting_for) w(cond)
            WHERE j.id = ANY (v_suspended) AND NOT w.cond ? 'sleep'
        ) c
        GROUP BY 1, 2
        ORDER BY 1
    LOOP
        IF v_lock.block THEN
            PERFORM pg_advisory_xact_lock(v_lock.key);
        ELSIF NOT pg_try_advisory_xact_lock(v_lock.key) THEN
            v_busy := v_busy || v_lock.cond;
        END IF;
    END LOOP;
    IF v_suspended IS NOT NULL THEN
        -- A statement of its own: it sees the causes committed before the locks were taken.
        WITH woken AS (
            UPDATE runledger.jobs j
            SET state = 'available', run_at = now(), waiting_for = NULL
            WHERE j.id = ANY (v_suspended) AND j.state = 'waiting'
              AND runledger.wait_over(j.waiting_for)
            RETURNING j.id, j.queue
        ),
        notified AS (
            SELECT pg_notify('runledger_jobs', 'a:' || q.queue)
            FROM (SELECT DISTINCT queue FROM woken) q
        )
        SELECT array_agg(CASE WHEN w.id IS NULL THEN x.state ELSE 'available' END ORDER BY x.ord),
               array_agg(CASE WHEN w.id IS NULL THEN x.due END ORDER BY x.ord)
        INTO v_states, v_dues
        FROM unnest(v_ids, v_states, v_dues) WITH ORDINALITY AS x(id, state, due, ord)
        LEFT JOIN woken w ON w.id = x.id
        CROSS JOIN (SELECT count(*) FROM notified) n;
        IF cardinality(v_busy) > 0 THEN
            -- Waits whose lock another transaction holds: looked at again within a second.
            UPDATE runledger.jobs j
            SET run_at = LEAST(j.run_at, now() + interval '1 second')
            WHERE j.id = ANY (v_suspended) AND j.state = 'waiting'
              AND EXISTS (SELECT 1 FROM jsonb_array_elements(j.waiting_for) c
                          WHERE c = ANY (v_busy));
            SELECT array_agg(CASE WHEN x.state = 'waiting' AND x.id = ANY (v_suspended)
                                  THEN LEAST(COALESCE(x.due, 1000), 1000) ELSE x.due END
                             ORDER BY x.ord)
            INTO v_dues
            FROM unnest(v_ids, v_states, v_dues) WITH ORDINALITY AS x(id, state, due, ord);
        END IF;
    END IF;
    IF v_children IS NOT NULL THEN
        PERFORM runledger.wake_waiting(
            ARRAY(SELECT jsonb_build_object('child', x) FROM unnest(v_children) x));
    END IF;
    IF v_failed IS NOT NULL THEN
        PERFORM runledger.cancel_descendants(v_failed);
    END IF;
    RETURN QUERY SELECT * FROM unnest(v_ids, v_states, v_queues, v_dues);
END
$$;


-- Workers of the previous version call the write with eight (or six) arguments while a deploy
-- rolls.
CREATE FUNCTION runledger.complete_jobs(
    p_ids bigint[], p_attempts integer[], p_outcomes text[], p_outputs text[],
    p_delays double precision[], p_errors text[], p_waits text[], p_untils timestamptz[]
) RETURNS TABLE (id bigint, state text, queue text, due_in_ms double precision)
LANGUAGE sql AS $$
    SELECT * FROM runledger.complete_jobs(p_ids, p_attempts, p_outcomes, p_outputs, p_delays,
        p_errors, p_waits, p_untils, NULL::text[])
$$;

-- The job kinds workers have handlers for, and whether the code marks them sensitive: the
-- operators' tools hide the arguments and outputs of sensitive kinds even when they run in a
-- process that does not link the handlers. Rows stay when workers go, and a kind once marked
-- sensitive stays marked (a worker of older code cannot unmark it).
CREATE TABLE runledger.kinds (
    kind      text         PRIMARY KEY,
    sensitive boolean      NOT NULL DEFAULT false,
    seen_at   timestamptz  NOT NULL DEFAULT now()
);

-- Retries failed (or cancelled) run `p_run` from the steps that did not complete: those steps
-- are set back (each keeps its earlier job in `history`) with the arguments every completed
-- prerequisite's output gives them (a prerequisite may have completed after the step was
-- skipped or cancelled, when nothing passed its output on), the ones whose prerequisites all
-- completed get a new job now, the others wait for them again, and the run is running again.
-- Steps that completed keep their outputs and are not run again. Returns the number of jobs
-- enqueued, or NULL when the run is not failed or cancelled.
CREATE FUNCTION runledger.retry_run(p_run bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_bad   text;
    v_jobs  integer;
    v_from  text;
    v_param text;
BEGIN
    SELECT state INTO v_state FROM runledger.workflow_runs WHERE id = p_run FOR UPDATE;
    IF v_state IS NULL OR v_state NOT IN ('failed', 'cancelled') THEN
        RETURN NULL;
    END IF;
    SELECT key INTO v_bad FROM runledger.workflow_steps
    WHERE run_id = p_run AND state = 'ready' LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'run % cannot be retried yet: the job of step `%` is still running '
            '(it was asked to stop; retry once it has)', p_run, v_bad
            USING ERRCODE = '55000';
    END IF;
    SELECT key INTO v_bad FROM runledger.workflow_steps
    WHERE run_id = p_run AND bad_input IS NOT NULL LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'step `%` of run % cannot be retried: its input is missing a field a '
            'completed step''s output lacks (start a new run with code that fixes it)', v_bad, p_run
            USING ERRCODE = '22023';
    END IF;
    SELECT b.to_step, b.from_step, b.param INTO v_bad, v_from, v_param
    FROM runledger.workflow_bindings b
    JOIN runledger.workflow_steps t ON t.run_id = b.run_id AND t.key = b.to_step
    JOIN runledger.workflow_steps p ON p.run_id = b.run_id AND p.key = b.from_step
    WHERE b.run_id = p_run AND t.state IN ('failed', 'cancelled', 'skipped')
      AND p.state = 'completed' AND p.output #> b.path IS NULL
    LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'step `%` of run % cannot be retried: the output of step `%` has no '
            'value for its argument `%` (start a new run with code that fixes it)',
            v_bad, p_run, v_from, v_param
            USING ERRCODE = '22023';
    END IF;
    WITH redo AS (
        SELECT s.key FROM runledger.workflow_steps s
        WHERE s.run_id = p_run AND s.state IN ('failed', 'cancelled', 'skipped')
    ),
    -- The arguments the completed prerequisites' outputs give each step run again.
    vals AS (
        SELECT b.to_step AS key, jsonb_object_agg(b.param, p.output #> b.path) AS obj
        FROM runledger.workflow_bindings b
        JOIN redo r ON r.key = b.to_step
        JOIN runledger.workflow_steps p
          ON p.run_id = b.run_id AND p.key = b.from_step AND p.state = 'completed'
        WHERE b.run_id = p_run
        GROUP BY b.to_step
    ),
    deps AS (
        SELECT e.to_step AS key, count(DISTINCT e.from_step)::int AS n
        FROM runledger.workflow_edges e JOIN redo r ON r.key = e.from_step
        WHERE e.run_id = p_run GROUP BY e.to_step
    ),
    reset AS (
        UPDATE runledger.workflow_steps s
        SET history = runledger.pushed(s.history, jsonb_build_object(
                'job_id', s.job_id, 'state', s.state, 'error', s.error,
                'finished_at', s.finished_at, 'retried_at', now())),
            pending_deps = COALESCE(d.n, 0),
            state = CASE WHEN s.gate IS NOT NULL THEN 'waiting'
                         WHEN COALESCE(d.n, 0) = 0 THEN 'ready' ELSE 'pending' END,
            job_id = CASE WHEN s.gate IS NULL AND COALESCE(d.n, 0) = 0
                          THEN nextval('runledger.jobs_id_seq') END,
            args = s.args || COALESCE(v.obj, '{}'::jsonb),
            output = NULL, error = NULL, finished_at = NULL
        FROM redo r LEFT JOIN deps d ON d.key = r.key LEFT JOIN vals v ON v.key = r.key
        WHERE s.run_id = p_run AND s.key = r.key
        RETURNING s.*
    ),
    run AS (
        UPDATE runledger.workflow_runs w
        SET state = 'running', output = NULL, error = NULL, finished_at = NULL,
            steps_failed = 0,
            steps_active = (SELECT count(*) FROM reset WHERE gate IS NULL),
            gates_waiting = (SELECT count(*) FROM reset WHERE gate IS NOT NULL)
        WHERE w.id = p_run
        RETURNING w.id
    ),
    inserted AS (
        INSERT INTO runledger.jobs (id, kind, queue, state, priority, args, max_attempts, run_at, timeout_ms, unique_key, unique_states, run_id, step) SELECT j.id, j.kind, j.queue, CASE WHEN j.run_at <= now() THEN 'available' ELSE 'scheduled' END, j.priority, j.args, j.max_attempts, j.run_at, j.timeout_ms, j.unique_key, j.unique_states, j.run_id, j.step FROM (
            SELECT job_id AS id, kind, COALESCE(queue, 'default') AS queue,
                   COALESCE(priority, 0::int2) AS priority, args,
                   COALESCE(max_attempts, 25) AS max_attempts, now() AS run_at, timeout_ms,
                   NULL::text AS unique_key, NULL::int2 AS unique_states, run_id, key AS step
            FROM reset WHERE state = 'ready'
        ) j
        RETURNING queue
    ),
    notified AS (
        SELECT pg_notify('runledger_jobs', 'a:' || q.queue)
        FROM (SELECT DISTINCT queue FROM inserted) q
    )
    SELECT (SELECT count(*) FROM inserted)::int
    INTO v_jobs
    FROM run CROSS JOIN (SELECT count(*) FROM notified) n;
    RETURN v_jobs;
END
$$;

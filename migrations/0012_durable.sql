-- runledger: durable jobs. The journal of their calls, typed events, child jobs, the `waiting`
-- state they suspend in and the terminal `diverged` state of a replay that no longer matches.
--
-- Design notes
-- * A durable job's journaled calls are rows of `runledger.journal`, keyed by (job, position).
--   Each is written under the attempt's fence: the job row is read `FOR SHARE` with its attempt
--   and `state = 'running'` in the same statement, so a worker that lost its lease records
--   nothing, and the claim or rescue of the row waits for the write to commit.
-- * A job suspends into `waiting` with `waiting_for`, a JSON array of what wakes it
--   (`{"event": name, "key": key}`, `{"child": id}`, `{"kind": k, "version": v}`) and `run_at`,
--   the time that wakes it regardless (`runledger.never()`, the last day of year 9999, for none:
--   PostgreSQL's `infinity` has no value in the clients' date types). The stager's due index covers
--   `waiting`, so time wakes a job without a poll per job; event emission and a child's end wake
--   their waiters through the GIN index on `waiting_for`, in the transaction that records the
--   cause.
-- * A suspension and the cause that would wake it can commit concurrently, each unable to see
--   the other. Both sides therefore take a transaction-scoped advisory lock per condition
--   (`runledger.wait_lock`) before their statement that reads the other side: whichever commits
--   second sees the first.
-- * `diverged` is terminal, like `failed`: the code no longer matches the journal, and
--   retrying cannot change that.

ALTER TABLE runledger.jobs
    DROP CONSTRAINT jobs_state_valid,
        ADD CONSTRAINT jobs_state_valid CHECK (state IN (
        'scheduled', 'available', 'running', 'retryable', 'waiting',
        'completed', 'failed', 'cancelled', 'diverged')) NOT VALID,
    DROP CONSTRAINT jobs_finished_has_time,
        ADD CONSTRAINT jobs_finished_has_time CHECK (
        (state IN ('completed', 'failed', 'cancelled', 'diverged')) = (finished_at IS NOT NULL))
        NOT VALID,
    ADD COLUMN parent_id   bigint,
    ADD COLUMN waiting_for jsonb,
    ADD COLUMN progress    jsonb;

-- Checked apart from the change of columns, under a lock that lets the table be read and
-- written meanwhile.
ALTER TABLE runledger.jobs VALIDATE CONSTRAINT jobs_state_valid;
ALTER TABLE runledger.jobs VALIDATE CONSTRAINT jobs_finished_has_time;

COMMENT ON COLUMN runledger.jobs.waiting_for IS
    'While waiting: the conditions that wake the job (JSON array); run_at wakes it regardless.';
COMMENT ON COLUMN runledger.jobs.progress IS
    'The last progress a running job reported (any JSON); not journaled.';

CREATE OR REPLACE FUNCTION runledger.state_bit(state text) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT CASE state
        WHEN 'scheduled' THEN 1  WHEN 'available' THEN 2  WHEN 'running'   THEN 4
        WHEN 'retryable' THEN 8  WHEN 'waiting'   THEN 16 WHEN 'completed' THEN 32
        WHEN 'failed'    THEN 64 WHEN 'cancelled' THEN 128 WHEN 'diverged' THEN 256 END::smallint
$$;

-- Time wakes waiting jobs through the stager, like scheduled jobs and retries.
DROP INDEX runledger.jobs_due_idx;
CREATE INDEX jobs_due_idx ON runledger.jobs (run_at)
    WHERE state IN ('scheduled', 'retryable', 'waiting');

-- Events and children wake waiting jobs through this index.
CREATE INDEX jobs_waiting_for_idx ON runledger.jobs USING gin (waiting_for jsonb_path_ops)
    WHERE state = 'waiting';

-- A parent's children, for cascades.
CREATE INDEX jobs_parent_idx ON runledger.jobs (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE runledger.journal (
    job_id      bigint      NOT NULL REFERENCES runledger.jobs (id) ON DELETE CASCADE,
    position    integer     NOT NULL,
    kind        text        NOT NULL,
    name        text        NOT NULL,
    key         text,
    state       text        NOT NULL,
    output      jsonb,
    attempt     integer     NOT NULL,
    version     integer     NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, position),
    CONSTRAINT journal_kind_valid CHECK (kind IN (
        'step', 'sleep', 'wait', 'spawn', 'join', 'now', 'uuid', 'random', 'select')),
    CONSTRAINT journal_state_valid CHECK (state IN ('done', 'waiting')),
    CONSTRAINT journal_position_valid CHECK (position >= 0)
);

COMMENT ON TABLE runledger.journal IS
    'The recorded calls of durable jobs, in the order their code builds them.';

CREATE TABLE runledger.events (
    name       text        NOT NULL,
    key        text        NOT NULL,
    payload    jsonb       NOT NULL,
    emitted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, key),
    CONSTRAINT events_name_valid CHECK (char_length(name) BETWEEN 1 AND 128)
);

CREATE INDEX events_emitted_idx ON runledger.events (emitted_at);

COMMENT ON TABLE runledger.events IS
    'Events for durable jobs: the first emission per (name, key) is kept.';

-- The `run_at` of a job that no time wakes.
CREATE FUNCTION runledger.never() RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '9999-12-31 00:00:00+00'::timestamptz
$$;

-- The advisory lock key of one wait condition.
CREATE FUNCTION runledger.wait_lock(p_condition jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT hashtextextended('runledger.wait:' || p_condition::text, 0)
$$;

-- Takes the advisory locks of `p_conditions` in a fixed order (so that two transactions cannot
-- take them crosswise).
CREATE FUNCTION runledger.lock_waits(p_conditions jsonb[]) RETURNS void
LANGUAGE sql AS $$
    SELECT count(pg_advisory_xact_lock(k))::int FROM (
        SELECT DISTINCT runledger.wait_lock(c) AS k FROM unnest(p_conditions) c ORDER BY 1
    ) l
$$;

-- Whether one of `p_waits` (an array of conditions) has already happened: an event emitted, a
-- child finished (or gone). Time is checked by the caller.
CREATE FUNCTION runledger.wait_over(p_waits jsonb) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM jsonb_array_elements(p_waits) c
        WHERE (c ? 'event' AND EXISTS (
                  SELECT 1 FROM runledger.events e
                  WHERE e.name = c ->> 'event' AND e.key = c ->> 'key'))
           OR (c ? 'child' AND NOT EXISTS (
                  SELECT 1 FROM runledger.jobs j
                  WHERE j.id = (c ->> 'child')::bigint
                    AND j.state NOT IN ('completed', 'failed', 'cancelled', 'diverged')))
    )
$$;

-- Makes the jobs waiting for any of `p_conditions` available. The caller holds the conditions'
-- locks (`runledger.lock_waits`) and runs this in a statement of its own.
CREATE FUNCTION runledger.wake_waiting(p_conditions jsonb[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_woken integer;
BEGIN
    WITH woken AS (
        UPDATE runledger.jobs j
        SET state = 'available', run_at = now(), waiting_for = NULL
        WHERE j.state = 'waiting'
          -- An array, not a subquery: a semi-join would read every waiting job instead of
          -- probing the GIN index once per condition.
          AND j.waiting_for @> ANY (
              ARRAY(SELECT jsonb_build_array(c) FROM unnest(p_conditions) c))
        RETURNING j.queue
    ),
    notified AS (
        SELECT pg_notify('runledger_jobs', 'a:' || q.queue)
        FROM (SELECT DISTINCT queue FROM woken) q
    )
    SELECT (SELECT count(*) FROM woken) INTO v_woken
    FROM (SELECT count(*) FROM notified) n;
    RETURN v_woken;
END
$$;

-- Records event (`p_name`, `p_key`) unless one is already recorded, and wakes its waiters.
-- Returns whether this emission was the first.
CREATE FUNCTION runledger.emit_event(p_name text, p_key text, p_payload jsonb) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_condition jsonb := jsonb_build_object('event', p_name, 'key', p_key);
    v_first     boolean;
BEGIN
    PERFORM runledger.require_read_committed();
    PERFORM runledger.lock_waits(ARRAY[v_condition]);
    INSERT INTO runledger.events (name, key, payload) VALUES (p_name, p_key, p_payload)
    ON CONFLICT DO NOTHING;
    v_first := FOUND;
    IF v_first THEN
        PERFORM runledger.wake_waiting(ARRAY[v_condition]);
    END IF;
    RETURN v_first;
END
$$;

-- Wakes the parents waiting for any of the children `p_ids` that have finished.
CREATE FUNCTION runledger.wake_parents(p_ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_conditions jsonb[];
BEGIN
    SELECT array_agg(jsonb_build_object('child', j.id)) INTO v_conditions
    FROM runledger.jobs j
    WHERE j.id = ANY (p_ids) AND j.parent_id IS NOT NULL;
    IF v_conditions IS NULL THEN
        RETURN;
    END IF;
    PERFORM runledger.lock_waits(v_conditions);
    -- A new statement: it sees every suspension committed before the locks were taken.
    PERFORM runledger.wake_waiting(v_conditions);
END
$$;

-- Cancels the unfinished descendants of jobs `p_ids`: those not running at once, running ones
-- through a cancel request to their worker (one that suspends meanwhile ends cancelled). No
-- parent needs waking: each cancelled job's parent is cancelled with it, or is one of `p_ids`,
-- which are finished or being cancelled themselves; so no advisory lock is taken here after the
-- rows are locked.
CREATE FUNCTION runledger.cancel_descendants(p_ids bigint[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
BEGIN
    WITH RECURSIVE tree AS (
        SELECT j.id FROM runledger.jobs j WHERE j.parent_id = ANY (p_ids)
        UNION
        SELECT j.id FROM runledger.jobs j JOIN tree t ON j.parent_id = t.id
    ),
    target AS (
        SELECT j.id, j.state FROM runledger.jobs j JOIN tree t ON t.id = j.id
        WHERE j.state NOT IN ('completed', 'failed', 'cancelled', 'diverged')
        ORDER BY j.id
        FOR UPDATE OF j
    ),
    upd AS (
        UPDATE runledger.jobs j
        SET state = CASE WHEN t.state = 'running' THEN j.state ELSE 'cancelled' END,
            finished_at = CASE WHEN t.state = 'running' THEN j.finished_at ELSE now() END,
            waiting_for = CASE WHEN t.state = 'running' THEN j.waiting_for END,
            cancel_requested = true,
            errors = CASE WHEN t.state = 'running' THEN j.errors
                ELSE j.errors || jsonb_build_array(jsonb_build_object(
                    'attempt', j.attempt, 'at', now(),
                    'error', 'cancelled with its parent job')) END
        FROM target t
        WHERE j.id = t.id
        RETURNING j.id, t.state AS before
    ),
    notified AS (
        SELECT pg_notify('runledger_control', 'cancel:' || u.id)
        FROM upd u WHERE u.before = 'running'
    )
    SELECT array_agg(u.id) INTO v_ids
    FROM upd u CROSS JOIN (SELECT count(*) FROM notified) n;
    RETURN COALESCE(cardinality(v_ids), 0);
END
$$;

-- After jobs finished (`p_finished`) or failed, were cancelled or diverged (`p_failed`, a
-- subset): parents waiting for them wake, and the unfinished descendants of failed ones are
-- cancelled.
CREATE FUNCTION runledger.settle_durable(p_finished bigint[], p_failed bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM runledger.require_read_committed();
    IF cardinality(p_finished) > 0 THEN
        PERFORM runledger.wake_parents(p_finished);
    END IF;
    IF cardinality(p_failed) > 0 THEN
        PERFORM runledger.cancel_descendants(p_failed);
    END IF;
END
$$;

-- Raises an error unless the transaction reads committed data statement by statement: wake-ups
-- look for jobs that suspended concurrently, which an older snapshot would miss.
CREATE FUNCTION runledger.require_read_committed() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'runledger: wake-ups of durable jobs need a read committed transaction; this one is %',
            current_setting('transaction_isolation')
            USING HINT = 'run it in a read committed transaction (the default), or after this one commits';
    END IF;
END
$$;

-- The completer's write, with two more outcomes: `suspended` (to `waiting`, or straight back to
-- `available` when what it waits for has already happened or its time has come, or `cancelled`
-- when a cancel was requested meanwhile) and `diverged`. In the same transaction, after the
-- rows are written and locked:
-- * the advisory locks of the conditions involved, in one pass in key order: blocking for the
--   children that finished (their parents must be woken), tried for the suspensions (a busy
--   one, held by a caller's open transaction emitting that event, say, must not stall the
--   worker: such a job is looked at again within a second);
-- * the suspensions are checked again in a statement of their own, which sees every cause
--   committed before the locks were taken;
-- * parents of finished children wake, descendants of jobs that failed, were cancelled or
--   diverged are cancelled.
DROP FUNCTION runledger.complete_jobs(bigint[], integer[], text[], text[], double precision[], text[]);

CREATE FUNCTION runledger.complete_jobs(
    p_ids bigint[], p_attempts integer[], p_outcomes text[], p_outputs text[],
    p_delays double precision[], p_errors text[], p_waits text[], p_untils timestamptz[]
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
                    p_untils)
            AS u(id, attempt, outcome, output, delay_s, error, wait, until_at)
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
                    THEN j.errors || jsonb_build_array(jsonb_build_object(
                        'attempt', j.attempt, 'at', now(), 'error', 'cancelled while running'))
                WHEN u.error IS NULL THEN j.errors
                ELSE j.errors || jsonb_build_array(jsonb_build_object(
                    'attempt', j.attempt, 'at', now(), 'error', u.error)) END,
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

-- Workers of the previous version call the write with six arguments while a deploy rolls.
CREATE FUNCTION runledger.complete_jobs(
    p_ids bigint[], p_attempts integer[], p_outcomes text[], p_outputs text[],
    p_delays double precision[], p_errors text[]
) RETURNS TABLE (id bigint, state text, queue text, due_in_ms double precision)
LANGUAGE sql AS $$
    SELECT * FROM runledger.complete_jobs(p_ids, p_attempts, p_outcomes, p_outputs, p_delays,
        p_errors, NULL::text[], NULL::timestamptz[])
$$;

-- Whether attempt `p_attempt` of job `p_job` is still running; the row is then locked in share
-- mode until the caller's transaction ends, so the attempt cannot lose its lease meanwhile.
CREATE FUNCTION runledger.journal_fence(p_job bigint, p_attempt integer) RETURNS boolean
LANGUAGE sql AS $$
    SELECT count(*) = 1 FROM (
        SELECT 1 FROM runledger.jobs
        WHERE id = p_job AND attempt = p_attempt AND state = 'running'
        FOR SHARE
    ) f
$$;

-- Resolves the wait at `p_position` for event (`p_name`, `p_key`): `done` with the event (one
-- emitted before the wait began, or before its timeout), `done` timed out, or `waiting` with
-- its deadline (`{"until": ...}`, null for none), recorded in the journal under the attempt's
-- fence. No row: the attempt no longer holds the job.
CREATE FUNCTION runledger.journal_wait(
    p_job bigint, p_attempt integer, p_version integer, p_position integer, p_name text,
    p_key text, p_timeout_s double precision
) RETURNS TABLE (state text, output jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_entry   runledger.journal%ROWTYPE;
    v_until   timestamptz;
    v_payload jsonb;
    v_at      timestamptz;
    v_state   text;
    v_output  jsonb;
BEGIN
    IF NOT runledger.journal_fence(p_job, p_attempt) THEN
        RETURN;
    END IF;
    SELECT * INTO v_entry FROM runledger.journal j
    WHERE j.job_id = p_job AND j.position = p_position;
    IF FOUND AND v_entry.state = 'done' THEN
        RETURN QUERY SELECT v_entry.state, v_entry.output;
        RETURN;
    ELSIF FOUND THEN
        v_until := (v_entry.output ->> 'until')::timestamptz;
    ELSIF p_timeout_s IS NOT NULL THEN
        v_until := now() + make_interval(secs => p_timeout_s);
    END IF;
    SELECT e.payload, e.emitted_at INTO v_payload, v_at FROM runledger.events e
    WHERE e.name = p_name AND e.key = p_key;
    IF v_at IS NOT NULL AND (v_until IS NULL OR v_at <= v_until) THEN
        v_state := 'done';
        v_output := jsonb_build_object('event', v_payload, 'emitted_at', v_at);
    ELSIF v_until IS NOT NULL AND v_until <= now() THEN
        v_state := 'done';
        v_output := jsonb_build_object('timed_out', true, 'until', v_until);
    ELSE
        v_state := 'waiting';
        v_output := jsonb_build_object('until', v_until);
    END IF;
    INSERT INTO runledger.journal AS j
        (job_id, position, kind, name, key, state, output, attempt, version)
    VALUES (p_job, p_position, 'wait', p_name, p_key, v_state, v_output, p_attempt, p_version)
    ON CONFLICT (job_id, position) DO UPDATE
        SET state = EXCLUDED.state, output = EXCLUDED.output, attempt = EXCLUDED.attempt,
            version = EXCLUDED.version, recorded_at = now();
    RETURN QUERY SELECT v_state, v_output;
END
$$;

-- Resolves the join at `p_position` of child job `p_child`: `done` with the child's end
-- (`{"state", "output", "error"}`), recorded under the attempt's fence, or `waiting` (nothing
-- recorded) while the child runs. No row: the attempt no longer holds the job.
CREATE FUNCTION runledger.journal_join(
    p_job bigint, p_attempt integer, p_version integer, p_position integer, p_name text,
    p_child bigint
) RETURNS TABLE (state text, output jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_child  runledger.jobs%ROWTYPE;
    v_output jsonb;
BEGIN
    IF NOT runledger.journal_fence(p_job, p_attempt) THEN
        RETURN;
    END IF;
    SELECT * INTO v_child FROM runledger.jobs j WHERE j.id = p_child;
    IF NOT FOUND THEN
        v_output := jsonb_build_object('state', 'missing', 'error',
            'child job ' || p_child || ' no longer exists (deleted by retention?)');
    ELSIF v_child.state IN ('completed', 'failed', 'cancelled', 'diverged') THEN
        v_output := jsonb_build_object('state', v_child.state, 'output', v_child.output,
            'error', v_child.errors -> -1 ->> 'error');
    ELSE
        RETURN QUERY SELECT 'waiting'::text, NULL::jsonb;
        RETURN;
    END IF;
    INSERT INTO runledger.journal
        (job_id, position, kind, name, key, state, output, attempt, version)
    VALUES (p_job, p_position, 'join', p_name, p_child::text, 'done', v_output, p_attempt,
            p_version)
    ON CONFLICT (job_id, position) DO NOTHING;
    RETURN QUERY SELECT 'done'::text, v_output;
END
$$;

-- Records many finished calls at once (the worker batches the calls of all its running durable
-- jobs): each row under its attempt's fence, rows of attempts that lost their job left out. A
-- row's output is `p_outputs`, or for a sleep `{"until": ...}` from `p_untils` or `p_delays_s`
-- seconds from now. Returns the rows recorded, with their output and, for sleeps, whether
-- their time has come. With `p_again` (the batch is sent again after an error that left its
-- fate unknown), rows the same attempts recorded already are returned too.
CREATE FUNCTION runledger.record_calls(
    p_jobs bigint[], p_attempts integer[], p_positions integer[], p_kinds text[],
    p_names text[], p_keys text[], p_outputs text[], p_untils timestamptz[],
    p_delays_s double precision[], p_versions integer[], p_again boolean
) RETURNS TABLE (job_id bigint, "position" integer, attempt integer, output jsonb, due boolean)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH u AS (
        SELECT * FROM unnest(p_jobs, p_attempts, p_positions, p_kinds, p_names, p_keys,
                             p_outputs, p_untils, p_delays_s, p_versions)
            AS u(job, attempt, pos, kind, name, key, output, until_at, delay_s, version)
    ),
    fence AS (
        SELECT j.id, j.attempt FROM runledger.jobs j
        WHERE j.id IN (SELECT u.job FROM u) AND j.state = 'running'
        ORDER BY j.id
        FOR SHARE
    ),
    ins AS (
        INSERT INTO runledger.journal AS r
            (job_id, position, kind, name, key, state, output, attempt, version)
        SELECT u.job, u.pos, u.kind, u.name, u.key, 'done',
               COALESCE(u.output::jsonb, jsonb_build_object('until',
                   COALESCE(u.until_at, now() + make_interval(secs => u.delay_s)))),
               u.attempt, u.version
        FROM u JOIN fence f ON f.id = u.job AND f.attempt = u.attempt
        ORDER BY u.job, u.pos
                ON CONFLICT (job_id, position) DO NOTHING
        RETURNING r.job_id, r.position, r.attempt, r.kind, r.output
    )
    SELECT ins.job_id, ins.position, ins.attempt, ins.output,
           CASE WHEN ins.kind = 'sleep' THEN (ins.output ->> 'until')::timestamptz <= now() END
    FROM ins
    UNION ALL
    SELECT r.job_id, r.position, r.attempt, r.output,
           CASE WHEN r.kind = 'sleep' THEN (r.output ->> 'until')::timestamptz <= now() END
    FROM u JOIN runledger.journal r
        ON r.job_id = u.job AND r.position = u.pos AND r.attempt = u.attempt
    WHERE p_again;
END
$$;

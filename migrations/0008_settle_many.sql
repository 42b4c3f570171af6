-- runledger: workflow steps settle a batch at a time.
--
-- Design notes
-- * `runledger.workflow_settle_many` settles any number of steps, of any number of runs, in a
--   fixed handful of statements: the steps and their runs' counters, then per wave of
--   propagation the skips, the countdowns with the children's arguments and the released jobs,
--   then the runs that finished. The worker's completer calls it once per batch of finished step
--   jobs; before, the row trigger settled each step on its own, five statements a step, and that
--   per-step overhead was most of a workflow step's cost.
-- * `runledger.workflow_settle` (one step: the trigger, gates) keeps its arguments and results
--   and now settles through `workflow_settle_many`: one implementation of propagation.
-- * While a transaction has set `runledger.settle` to `deferred`, the row trigger does not fire:
--   that transaction settles the steps it finishes itself, with `workflow_settle_many`, before it
--   commits. Only the completer sets it, with `set_config(..., true)`, which ends with the
--   transaction. Every other path (rescuer, cancel, administration) still settles through the
--   trigger.
-- * Lock order is unchanged: run rows (in id order), then job rows, then step rows.

-- Settles the given steps: `p_runs[i]`, `p_steps[i]` reached `p_states[i]` ('completed', 'failed'
-- or 'cancelled') with `p_outputs[i]` / `p_errors[i]`; `p_gates[i]` says whether the step is a
-- gate. A step not open (not `ready`, or not `waiting` for a gate) is left alone, so settling
-- twice changes nothing. Returns how many steps were settled.
CREATE FUNCTION runledger.workflow_settle_many(
    p_runs bigint[], p_steps text[], p_states text[], p_outputs jsonb[], p_errors text[],
    p_gates boolean[]
) RETURNS integer LANGUAGE plpgsql
-- A batch's statements are the same whatever its size: plan them once per session.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_settled  integer;
    v_runs     bigint[];
    v_run      bigint[];
    v_key      text[];
    v_ok       boolean[];
    v_next_run bigint[];
    v_next_key text[];
    v_bad_run  bigint[];
    v_bad_key  text[];
    v_lost     bigint[] := '{}';
    v_notified bigint;
BEGIN
    -- The run rows first, in id order: they serialize every settle of a run (a caller that
    -- locked them already loses nothing here).
    PERFORM 1 FROM runledger.workflow_runs WHERE id = ANY (p_runs) ORDER BY id FOR UPDATE;

    -- The steps, and their runs' counters. Propagation goes on only in running runs.
    WITH f AS (
        SELECT * FROM unnest(p_runs, p_steps, p_states, p_outputs, p_errors, p_gates)
            AS f(run_id, key, state, output, error, gate)
    ),
    settled AS (
        UPDATE runledger.workflow_steps s
        SET state = f.state, output = f.output, error = f.error, finished_at = now()
        FROM f
        WHERE s.run_id = f.run_id AND s.key = f.key
          AND s.state = CASE WHEN f.gate THEN 'waiting' ELSE 'ready' END
        RETURNING s.run_id, s.key, s.state = 'completed' AS ok, f.gate
    ),
    counted AS (
        UPDATE runledger.workflow_runs r
        SET steps_active = r.steps_active - c.jobs,
            gates_waiting = r.gates_waiting - c.gates,
            steps_failed = r.steps_failed + c.failed
        FROM (
            SELECT run_id,
                   count(*) FILTER (WHERE NOT gate) AS jobs,
                   count(*) FILTER (WHERE gate) AS gates,
                   count(*) FILTER (WHERE NOT ok) AS failed
            FROM settled GROUP BY run_id
        ) c
        WHERE r.id = c.run_id
        RETURNING r.id, r.state
    )
    SELECT (SELECT count(*) FROM settled),
           (SELECT COALESCE(array_agg(id), '{}') FROM counted WHERE state = 'running'),
           COALESCE(array_agg(s.run_id), '{}'), COALESCE(array_agg(s.key), '{}'),
           COALESCE(array_agg(s.ok), '{}')
    INTO v_settled, v_runs, v_run, v_key, v_ok
    FROM settled s JOIN counted c ON c.id = s.run_id AND c.state = 'running';

    -- Waves: the steps settled, then the steps they skipped or failed, until nothing moves.
    WHILE cardinality(v_run) > 0 LOOP
        v_next_run := '{}';
        v_next_key := '{}';
        -- Children that need a parent's success, of parents that did not succeed: skipped.
        IF false = ANY (v_ok) THEN
            WITH skipped AS (
                UPDATE runledger.workflow_steps s
                SET state = 'skipped', finished_at = now(),
                    error = 'skipped: step `' || e.from_step || '` did not complete'
                FROM (
                    SELECT DISTINCT ON (e.run_id, e.to_step) e.run_id, e.to_step, e.from_step
                    FROM unnest(v_run, v_key, v_ok) AS f(run_id, key, ok)
                    JOIN runledger.workflow_edges e
                      ON e.run_id = f.run_id AND e.from_step = f.key
                    WHERE NOT f.ok AND NOT e.on_any
                    ORDER BY e.run_id, e.to_step, e.from_step
                ) e
                WHERE s.run_id = e.run_id AND s.key = e.to_step AND s.state = 'pending'
                RETURNING s.run_id, s.key
            )
            SELECT COALESCE(array_agg(run_id), '{}'), COALESCE(array_agg(key), '{}')
            INTO v_next_run, v_next_key FROM skipped;
        END IF;

        -- Satisfied edges count down; data edges from parents that succeeded fill arguments;
        -- children with nothing left to wait for become ready and their jobs are inserted,
        -- all in one statement.
        WITH f AS (
            SELECT * FROM unnest(v_run, v_key, v_ok) AS f(run_id, key, ok)
        ),
        -- Per child: its satisfied edges, and the arguments its data edges from parents that
        -- succeeded bring (one grouped pass: joined per child, the planner, who cannot know the
        -- batch's size, would rescan a separate aggregate for every child).
        sat AS (
            SELECT e.run_id, e.to_step, count(DISTINCT e.from_step)::int AS n,
                   jsonb_object_agg(b.param, COALESCE(s.output #> b.path, 'null'::jsonb))
                       FILTER (WHERE b.param IS NOT NULL) AS obj,
                   string_agg(
                       CASE WHEN b.param IS NOT NULL AND s.output #> b.path IS NULL THEN
                           'the output of step `' || b.from_step || '` has no '
                           || CASE WHEN cardinality(b.path) = 0 THEN 'value'
                                   ELSE 'field `' || array_to_string(b.path, '.') || '`' END
                           || ' for argument `' || b.param || '`'
                       END, '; ') AS missing
            FROM f
            JOIN runledger.workflow_edges e ON e.run_id = f.run_id AND e.from_step = f.key
            LEFT JOIN runledger.workflow_bindings b
              ON f.ok AND b.run_id = e.run_id AND b.from_step = e.from_step
                 AND b.to_step = e.to_step
            LEFT JOIN runledger.workflow_steps s
              ON b.param IS NOT NULL AND s.run_id = f.run_id AND s.key = f.key
            WHERE f.ok OR e.on_any
            GROUP BY e.run_id, e.to_step
        ),
        counted AS (
            UPDATE runledger.workflow_steps s
            SET pending_deps = s.pending_deps - sat.n,
                args = s.args || COALESCE(sat.obj, '{}'::jsonb),
                bad_input = COALESCE(s.bad_input, sat.missing),
                state = CASE
                    WHEN s.pending_deps = sat.n AND s.kind IS NOT NULL
                         AND s.bad_input IS NULL AND sat.missing IS NULL
                    THEN 'ready' ELSE s.state END,
                job_id = CASE
                    WHEN s.pending_deps = sat.n AND s.kind IS NOT NULL
                         AND s.bad_input IS NULL AND sat.missing IS NULL
                    THEN nextval('runledger.jobs_id_seq') ELSE s.job_id END
            FROM sat
            WHERE s.run_id = sat.run_id AND s.key = sat.to_step AND s.state = 'pending'
            RETURNING s.*
        ),
        inserted AS (
            INSERT INTO runledger.jobs (id, kind, queue, state, priority, args, max_attempts, run_at, timeout_ms, unique_key, unique_states, run_id, step) SELECT j.id, j.kind, j.queue, CASE WHEN j.run_at <= now() THEN 'available' ELSE 'scheduled' END, j.priority, j.args, j.max_attempts, j.run_at, j.timeout_ms, j.unique_key, j.unique_states, j.run_id, j.step FROM (
                SELECT job_id AS id, kind, queue, priority, args, max_attempts,
                       now() AS run_at, timeout_ms, NULL::text AS unique_key,
                       NULL::int2 AS unique_states, run_id, key AS step
                FROM counted WHERE state = 'ready'
            ) j
            RETURNING queue
        ),
        notified AS (
            SELECT pg_notify('runledger_jobs', 'a:' || q.queue)
            FROM (SELECT DISTINCT queue FROM inserted) q
        )
        SELECT COALESCE(array_agg(c.run_id) FILTER (
                   WHERE c.pending_deps = 0 AND c.bad_input IS NOT NULL), '{}'),
               COALESCE(array_agg(c.key) FILTER (
                   WHERE c.pending_deps = 0 AND c.bad_input IS NOT NULL), '{}'),
               (SELECT count(*) FROM notified)
        INTO v_bad_run, v_bad_key, v_notified
        FROM counted c;

        -- Ready but missing an argument (the output, as serialized, lacks the field): failed,
        -- and propagated like any failure.
        IF cardinality(v_bad_run) > 0 THEN
            WITH bad AS (
                UPDATE runledger.workflow_steps s
                SET state = 'failed', finished_at = now(),
                    error = 'not started: ' || s.bad_input
                            || '; check how the output type is serialized (serde renames, '
                            || 'flatten, transparent or newtype structs)'
                FROM unnest(v_bad_run, v_bad_key) AS b(run_id, key)
                WHERE s.run_id = b.run_id AND s.key = b.key AND s.state = 'pending'
                RETURNING s.run_id, s.key
            )
            SELECT v_next_run || COALESCE(array_agg(run_id), '{}'),
                   v_next_key || COALESCE(array_agg(key), '{}')
            INTO v_next_run, v_next_key FROM bad;
        END IF;

        v_lost := v_lost || v_next_run;
        v_run := v_next_run;
        v_key := v_next_key;
        v_ok := array_fill(false, ARRAY[cardinality(v_next_run)]);
    END LOOP;

    -- Steps skipped or failed without running: no longer active, counted as failed.
    IF cardinality(v_lost) > 0 THEN
        UPDATE runledger.workflow_runs r
        SET steps_active = r.steps_active - l.n,
            steps_failed = r.steps_failed + l.n
        FROM (SELECT run_id, count(*)::int AS n FROM unnest(v_lost) AS l(run_id) GROUP BY run_id) l
        WHERE r.id = l.run_id;
    END IF;

    -- Runs with nothing left to run finish; a gate still waiting in a failed run is skipped.
    IF cardinality(v_runs) > 0 THEN
        WITH finished AS (
            UPDATE runledger.workflow_runs r
            SET state = CASE WHEN r.steps_failed = 0 THEN 'completed' ELSE 'failed' END,
                output = CASE WHEN r.steps_failed = 0 THEN COALESCE((
                    SELECT s.output FROM runledger.workflow_steps s
                    WHERE s.run_id = r.id AND s.key = r.output_step), 'null'::jsonb) END,
                error = CASE WHEN r.steps_failed > 0 THEN (
                    SELECT 'step `' || s.key || '` ' || s.state
                           || COALESCE(': ' || s.error, '')
                    FROM runledger.workflow_steps s
                    WHERE s.run_id = r.id AND s.state IN ('failed', 'cancelled')
                    ORDER BY s.finished_at, s.key LIMIT 1) END,
                gates_waiting = 0,
                finished_at = now()
            WHERE r.id = ANY (v_runs) AND r.state = 'running' AND r.steps_active = 0
              AND (r.gates_waiting = 0 OR r.steps_failed > 0)
            RETURNING r.id
        )
        UPDATE runledger.workflow_steps s
        SET state = 'skipped', finished_at = now(),
            error = 'skipped: the run failed before the gate was completed'
        FROM finished
        WHERE s.run_id = finished.id AND s.state = 'waiting';
    END IF;
    RETURN v_settled;
END
$$;

-- Settles step `p_step` of run `p_run` as `p_state` ('completed', 'failed' or 'cancelled');
-- `p_gate` says whether the step is a gate (else a job step). Returns 'settled', or the step's
-- state when it was not open (already terminal, or still pending), or 'no_run' / 'no_step'.
-- Idempotent: settling a terminal step changes nothing.
CREATE OR REPLACE FUNCTION runledger.workflow_settle(
    p_run bigint, p_step text, p_state text, p_output jsonb, p_error text, p_gate boolean
) RETURNS text LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_state text;
BEGIN
    PERFORM 1 FROM runledger.workflow_runs WHERE id = p_run FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'no_run';
    END IF;
    SELECT state INTO v_state FROM runledger.workflow_steps WHERE run_id = p_run AND key = p_step;
    IF NOT FOUND THEN
        RETURN 'no_step';
    END IF;
    IF v_state <> (CASE WHEN p_gate THEN 'waiting' ELSE 'ready' END) THEN
        RETURN v_state;
    END IF;
    PERFORM runledger.workflow_settle_many(
        ARRAY[p_run], ARRAY[p_step], ARRAY[p_state], ARRAY[p_output], ARRAY[p_error],
        ARRAY[p_gate]);
    RETURN 'settled';
END
$$;

-- Why step job `p_job` did not complete, as its step records it (NULL when it completed);
-- `p_ran` says whether the job was running when it finished.
CREATE FUNCTION runledger.workflow_job_error(p_job runledger.jobs, p_ran boolean)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_job.state = 'completed' THEN NULL
        WHEN p_job.state = 'cancelled' AND NOT p_ran THEN 'its job was cancelled before it ran'
        ELSE COALESCE(p_job.errors -> -1 ->> 'error', 'job ' || p_job.id || ' ' || p_job.state)
    END
$$;

-- A step's job reached a terminal state: settle the step.
CREATE OR REPLACE FUNCTION runledger.workflow_job_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM runledger.workflow_settle(
        NEW.run_id, NEW.step, NEW.state,
        CASE WHEN NEW.state = 'completed' THEN COALESCE(NEW.output, 'null'::jsonb) END,
        runledger.workflow_job_error(NEW, OLD.state = 'running'),
        false);
    RETURN NULL;
END
$$;

-- The trigger stands aside while the transaction settles its steps itself (see above).
DROP TRIGGER jobs_workflow_step_finished ON runledger.jobs;
CREATE TRIGGER jobs_workflow_step_finished
    AFTER UPDATE OF finished_at ON runledger.jobs
    FOR EACH ROW
    WHEN (NEW.run_id IS NOT NULL
          AND NEW.state IN ('completed', 'failed', 'cancelled')
          AND OLD.state IS DISTINCT FROM NEW.state
          AND current_setting('runledger.settle', true) IS DISTINCT FROM 'deferred')
    EXECUTE FUNCTION runledger.workflow_job_finished();

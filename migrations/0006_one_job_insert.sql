-- runledger: released workflow steps enter the jobs table through the same insert as every
-- other job.
--
-- Design notes
-- * `runledger.workflow_settle` is redefined unchanged but for its insert of released steps'
--   jobs, which now selects its rows as `j` under the insert the crate uses everywhere else
--   (the `insert_jobs!` fragment of its store module; a test there checks this text against
--   it): one column list, and one rule for a job's first state, for every path that creates
--   jobs.

CREATE OR REPLACE FUNCTION runledger.workflow_settle(
    p_run bigint, p_step text, p_state text, p_output jsonb, p_error text, p_gate boolean
) RETURNS text LANGUAGE plpgsql
-- Its statements look up a handful of rows by primary key: plan them once per session rather
-- than on every call (custom plans would be re-planned each time).
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_prev      text;
    v_keys      text[];
    v_ok        boolean[];
    v_next      text[];
    v_touched   text[];
    v_skipped   integer := 0;
    v_notified  bigint;
    v_run       runledger.workflow_runs%ROWTYPE;
BEGIN
    -- The run row first: it serializes every settle of the run. Its counters are updated for
    -- the transition expected, and put back below in the rare case it does not happen.
    UPDATE runledger.workflow_runs
    SET steps_active = steps_active - CASE WHEN p_gate THEN 0 ELSE 1 END,
        gates_waiting = gates_waiting - CASE WHEN p_gate THEN 1 ELSE 0 END,
        steps_failed = steps_failed + CASE WHEN p_state = 'completed' THEN 0 ELSE 1 END
    WHERE id = p_run AND (steps_active > 0 OR p_gate) AND (gates_waiting > 0 OR NOT p_gate)
    RETURNING * INTO v_run;
    IF NOT FOUND THEN
        SELECT state INTO v_prev FROM runledger.workflow_steps WHERE run_id = p_run AND key = p_step;
        RETURN COALESCE(v_prev, CASE WHEN EXISTS (
            SELECT 1 FROM runledger.workflow_runs WHERE id = p_run) THEN 'no_step' ELSE 'no_run' END);
    END IF;

    UPDATE runledger.workflow_steps
    SET state = p_state, output = p_output, error = p_error, finished_at = now()
    WHERE run_id = p_run AND key = p_step
      AND state = CASE WHEN p_gate THEN 'waiting' ELSE 'ready' END;
    IF NOT FOUND THEN
        UPDATE runledger.workflow_runs
        SET steps_active = steps_active + CASE WHEN p_gate THEN 0 ELSE 1 END,
            gates_waiting = gates_waiting + CASE WHEN p_gate THEN 1 ELSE 0 END,
            steps_failed = steps_failed - CASE WHEN p_state = 'completed' THEN 0 ELSE 1 END
        WHERE id = p_run;
        SELECT state INTO v_prev FROM runledger.workflow_steps WHERE run_id = p_run AND key = p_step;
        RETURN COALESCE(v_prev, 'no_step');
    END IF;

    IF v_run.state = 'running' THEN
        v_keys := ARRAY[p_step];
        v_ok := ARRAY[p_state = 'completed'];
        WHILE cardinality(v_keys) > 0 LOOP
            v_next := '{}';
            -- Children that need a parent's success, of parents that did not succeed: skipped.
            IF NOT (true = ALL (v_ok)) THEN
                WITH skipped AS (
                    UPDATE runledger.workflow_steps s
                    SET state = 'skipped', finished_at = now(),
                        error = 'skipped: step `' || e.from_step || '` did not complete'
                    FROM (
                        SELECT DISTINCT ON (e.to_step) e.to_step, e.from_step
                        FROM runledger.workflow_edges e
                        JOIN unnest(v_keys, v_ok) AS f(key, ok) ON f.key = e.from_step
                        WHERE e.run_id = p_run AND NOT f.ok AND NOT e.on_any
                        ORDER BY e.to_step, e.from_step
                    ) e
                    WHERE s.run_id = p_run AND s.key = e.to_step AND s.state = 'pending'
                    RETURNING s.key
                )
                SELECT COALESCE(array_agg(key), '{}') INTO v_next FROM skipped;
            END IF;

            -- Satisfied edges count down; data edges from parents that succeeded fill arguments;
            -- children with nothing left to wait for become ready and their jobs are inserted,
            -- all in one statement.
            WITH f AS (
                SELECT * FROM unnest(v_keys, v_ok) AS f(key, ok)
            ),
            sat AS (
                SELECT e.to_step, count(*)::int AS n
                FROM runledger.workflow_edges e JOIN f ON f.key = e.from_step
                WHERE e.run_id = p_run AND (f.ok OR e.on_any)
                GROUP BY e.to_step
            ),
            vals AS (
                SELECT b.to_step,
                       jsonb_object_agg(b.param, COALESCE(s.output #> b.path, 'null'::jsonb)) AS obj,
                       string_agg(
                           CASE WHEN s.output #> b.path IS NULL THEN
                               'the output of step `' || b.from_step || '` has no '
                               || CASE WHEN cardinality(b.path) = 0 THEN 'value'
                                       ELSE 'field `' || array_to_string(b.path, '.') || '`' END
                               || ' for argument `' || b.param || '`'
                           END, '; ') AS missing
                FROM runledger.workflow_bindings b
                JOIN f ON f.key = b.from_step AND f.ok
                JOIN runledger.workflow_steps s ON s.run_id = p_run AND s.key = b.from_step
                WHERE b.run_id = p_run
                GROUP BY b.to_step
            ),
            counted AS (
                UPDATE runledger.workflow_steps s
                SET pending_deps = s.pending_deps - sat.n,
                    args = s.args || COALESCE(vals.obj, '{}'::jsonb),
                    bad_input = COALESCE(s.bad_input, vals.missing),
                    state = CASE
                        WHEN s.pending_deps = sat.n AND s.kind IS NOT NULL
                             AND s.bad_input IS NULL AND vals.missing IS NULL
                        THEN 'ready' ELSE s.state END,
                    job_id = CASE
                        WHEN s.pending_deps = sat.n AND s.kind IS NOT NULL
                             AND s.bad_input IS NULL AND vals.missing IS NULL
                        THEN nextval('runledger.jobs_id_seq') ELSE s.job_id END
                FROM sat LEFT JOIN vals ON vals.to_step = sat.to_step
                WHERE s.run_id = p_run AND s.key = sat.to_step AND s.state = 'pending'
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
            SELECT COALESCE(array_agg(c.key) FILTER (
                       WHERE c.pending_deps = 0 AND c.bad_input IS NOT NULL), '{}'),
                   (SELECT count(*) FROM notified)
            INTO v_touched, v_notified
            FROM counted c;

            -- Ready but missing an argument (the output, as serialized, lacks the field):
            -- failed, and propagated like any failure.
            IF cardinality(v_touched) > 0 THEN
                WITH bad AS (
                    UPDATE runledger.workflow_steps s
                    SET state = 'failed', finished_at = now(),
                        error = 'not started: ' || s.bad_input
                                || '; check how the output type is serialized (serde renames, '
                                || 'flatten, transparent or newtype structs)'
                    WHERE s.run_id = p_run AND s.key = ANY (v_touched) AND s.state = 'pending'
                    RETURNING s.key
                )
                SELECT v_next || COALESCE(array_agg(key), '{}') INTO v_next FROM bad;
            END IF;

            v_skipped := v_skipped + cardinality(v_next);
            v_keys := v_next;
            v_ok := array_fill(false, ARRAY[cardinality(v_next)]);
        END LOOP;

        IF v_skipped > 0 THEN
            UPDATE runledger.workflow_runs
            SET steps_active = steps_active - v_skipped,
                steps_failed = steps_failed + v_skipped
            WHERE id = p_run
            RETURNING * INTO v_run;
        END IF;
    END IF;

    IF v_run.state = 'running' AND v_run.steps_active = 0
       AND (v_run.gates_waiting = 0 OR v_run.steps_failed > 0) THEN
        UPDATE runledger.workflow_steps
        SET state = 'skipped', finished_at = now(),
            error = 'skipped: the run failed before the gate was completed'
        WHERE run_id = p_run AND state = 'waiting';
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
        WHERE r.id = p_run;
    END IF;
    RETURN 'settled';
END
$$;

-- runledger: workflow runs, their steps, edges and bindings.
--
-- Design notes
-- * A run stores its whole DAG when it starts (steps, edges, bindings), so it finishes under the
--   shape it started with even if the code changes meanwhile; `fingerprint` names that shape.
-- * A job step is an ordinary row in runledger.jobs carrying (run_id, step). When such a row
--   reaches a terminal state, by whatever path (completer, rescuer, cancel), the trigger
--   `jobs_workflow_step_finished` settles the step in the same transaction: it fills the
--   children's arguments from the output, releases the children whose edges are all satisfied
--   (inserting their jobs), skips what can no longer run, and finishes the run.
-- * Settling a step locks its run row first, so every settle of one run is serialized: fan-in
--   counts (`pending_deps`) cannot race, and each child is released exactly once.
-- * Lock order, everywhere: run rows (in id order), then job rows, then step rows. Statements
--   that finish several step jobs at once (the worker's completer, the rescuer) lock the runs
--   involved first, in id order, in the same transaction; the settles they trigger then find
--   those rows locked already.

ALTER TABLE runledger.jobs
    ADD COLUMN run_id bigint,
    ADD COLUMN step   text,
    ADD CONSTRAINT jobs_step_pair CHECK ((run_id IS NULL) = (step IS NULL));

CREATE INDEX jobs_run_idx ON runledger.jobs (run_id) WHERE run_id IS NOT NULL;

CREATE TABLE runledger.workflow_runs (
    id              bigserial   PRIMARY KEY,
    name            text        NOT NULL,
    fingerprint     text        NOT NULL,
    state           text        NOT NULL DEFAULT 'running',
    input           jsonb       NOT NULL,
    output          jsonb,
    -- The step whose output is the run's output; NULL for a workflow without one.
    output_step     text,
    error           text,
    idempotency_key text,
    -- Steps pending or ready (their job exists and has not finished).
    steps_active    integer     NOT NULL,
    -- Gates not yet completed.
    gates_waiting   integer     NOT NULL,
    -- Steps failed, cancelled or skipped.
    steps_failed    integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,

    CONSTRAINT workflow_runs_state_valid CHECK (state IN ('running', 'completed', 'failed', 'cancelled')),
    CONSTRAINT workflow_runs_name_valid CHECK (char_length(name) BETWEEN 1 AND 128),
    CONSTRAINT workflow_runs_counts_valid CHECK (
        steps_active >= 0 AND gates_waiting >= 0 AND steps_failed >= 0),
    CONSTRAINT workflow_runs_finished_has_time CHECK ((state <> 'running') = (finished_at IS NOT NULL))
);

COMMENT ON TABLE runledger.workflow_runs IS
    'runledger workflow runs; written only through the runledger crate and its triggers.';

CREATE UNIQUE INDEX workflow_runs_idempotency_idx ON runledger.workflow_runs (name, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE INDEX workflow_runs_finished_idx ON runledger.workflow_runs (finished_at)
    WHERE finished_at IS NOT NULL;

CREATE TABLE runledger.workflow_steps (
    run_id       bigint      NOT NULL REFERENCES runledger.workflow_runs (id) ON DELETE CASCADE,
    key          text        NOT NULL,
    -- Declaration order.
    ord          integer     NOT NULL,
    -- The job kind of a job step; NULL for a gate.
    kind         text,
    -- The name of a gate; NULL for a job step.
    gate         text,
    state        text        NOT NULL,
    -- Prerequisite steps not yet satisfied.
    pending_deps integer     NOT NULL,
    -- The job's payload: arguments fixed at enqueue, completed by data edges as parents finish.
    args         jsonb       NOT NULL DEFAULT '{}',
    queue        text,
    priority     smallint,
    max_attempts integer,
    timeout_ms   bigint,
    job_id       bigint,
    output       jsonb,
    error        text,
    -- Set when a parent's output lacks a field this step takes from it: the step fails at
    -- release instead of running with a missing argument.
    bad_input    text,
    finished_at  timestamptz,

    PRIMARY KEY (run_id, key),
    CONSTRAINT workflow_steps_state_valid CHECK (state IN (
        'pending', 'ready', 'waiting', 'completed', 'failed', 'skipped', 'cancelled')),
    CONSTRAINT workflow_steps_job_or_gate CHECK ((kind IS NULL) <> (gate IS NULL)),
    CONSTRAINT workflow_steps_job_options CHECK (
        kind IS NULL OR (queue IS NOT NULL AND priority IS NOT NULL AND max_attempts >= 1)),
    -- The same bounds as runledger.jobs, so that a step that passes them at start can always
    -- be released later.
    CONSTRAINT workflow_steps_names_valid CHECK (
        char_length(key) BETWEEN 1 AND 128
        AND (kind IS NULL OR char_length(kind) BETWEEN 1 AND 128)
        AND (queue IS NULL OR char_length(queue) BETWEEN 1 AND 128)),
    CONSTRAINT workflow_steps_timeout_positive CHECK (timeout_ms IS NULL OR timeout_ms > 0),
    CONSTRAINT workflow_steps_pending_valid CHECK (pending_deps >= 0),
    CONSTRAINT workflow_steps_ready_has_job CHECK (state <> 'ready' OR job_id IS NOT NULL)
);

CREATE UNIQUE INDEX workflow_steps_gate_idx ON runledger.workflow_steps (run_id, gate)
    WHERE gate IS NOT NULL;

-- A control or data dependency: `to_step` waits for `from_step`. `on_any` edges are satisfied by
-- any terminal outcome (`.after_any`), the others only by success.
CREATE TABLE runledger.workflow_edges (
    run_id    bigint  NOT NULL REFERENCES runledger.workflow_runs (id) ON DELETE CASCADE,
    from_step text    NOT NULL,
    to_step   text    NOT NULL,
    on_any    boolean NOT NULL,
    PRIMARY KEY (run_id, from_step, to_step)
);

-- A data edge: argument `param` of `to_step` is `from_step`'s output at `path` (empty: whole).
CREATE TABLE runledger.workflow_bindings (
    run_id    bigint NOT NULL REFERENCES runledger.workflow_runs (id) ON DELETE CASCADE,
    from_step text   NOT NULL,
    to_step   text   NOT NULL,
    param     text   NOT NULL,
    path      text[] NOT NULL,
    PRIMARY KEY (run_id, from_step, to_step, param)
);

-- Settles step `p_step` of run `p_run` as `p_state` ('completed', 'failed' or 'cancelled');
-- `p_gate` says whether the step is a gate (else a job step). Returns 'settled', or the step's
-- state when it was not open (already terminal, or still pending), or 'no_run' / 'no_step'.
-- Idempotent: settling a terminal step changes nothing.
CREATE FUNCTION runledger.workflow_settle(
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
                INSERT INTO runledger.jobs (id, kind, queue, priority, args, max_attempts,
                                            timeout_ms, run_id, step)
                SELECT job_id, kind, queue, priority, args, max_attempts, timeout_ms, run_id, key
                FROM counted WHERE state = 'ready'
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

-- A step's job reached a terminal state: settle the step.
CREATE FUNCTION runledger.workflow_job_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM runledger.workflow_settle(
        NEW.run_id, NEW.step, NEW.state,
        CASE WHEN NEW.state = 'completed' THEN COALESCE(NEW.output, 'null'::jsonb) END,
        CASE WHEN NEW.state = 'completed' THEN NULL
             WHEN NEW.state = 'cancelled' AND OLD.state <> 'running'
                 THEN 'its job was cancelled before it ran'
             ELSE COALESCE(NEW.errors -> -1 ->> 'error', 'job ' || NEW.id || ' ' || NEW.state) END,
        false);
    RETURN NULL;
END
$$;

-- `OF finished_at`: every write that makes a job terminal sets `finished_at` (the CHECK
-- `jobs_finished_has_time` demands it), and claims and heartbeats never name it, so the hot
-- path does not even evaluate the condition.
CREATE TRIGGER jobs_workflow_step_finished
    AFTER UPDATE OF finished_at ON runledger.jobs
    FOR EACH ROW
    WHEN (NEW.run_id IS NOT NULL
          AND NEW.state IN ('completed', 'failed', 'cancelled')
          AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION runledger.workflow_job_finished();

-- Cancels run `p_run`: pending steps and waiting gates are cancelled, jobs that have not started
-- are cancelled (their trigger settles their steps), running jobs are asked to stop. Returns the
-- run's state before, or NULL if there is no such run.
CREATE FUNCTION runledger.workflow_cancel(p_run bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_prev text;
    v_closed integer;
BEGIN
    -- The run row, then its job rows: the order every settle takes them in.
    SELECT state INTO v_prev FROM runledger.workflow_runs WHERE id = p_run FOR UPDATE;
    IF NOT FOUND OR v_prev <> 'running' THEN
        RETURN v_prev;
    END IF;
    PERFORM 1 FROM runledger.jobs
    WHERE run_id = p_run AND state NOT IN ('completed', 'failed', 'cancelled')
    ORDER BY id FOR UPDATE;
    WITH closed AS (
        UPDATE runledger.workflow_steps
        SET state = 'cancelled', finished_at = now(), error = 'cancelled with the run'
        WHERE run_id = p_run AND state IN ('pending', 'waiting')
        RETURNING gate
    )
    SELECT count(*) FILTER (WHERE gate IS NULL) INTO v_closed FROM closed;
    UPDATE runledger.workflow_runs
    SET state = 'cancelled', finished_at = now(), error = 'cancelled',
        steps_active = steps_active - v_closed,
        steps_failed = steps_failed + v_closed + gates_waiting,
        gates_waiting = 0
    WHERE id = p_run;
    -- Not started: cancelled now (the trigger records the step). Running: asked to stop.
    UPDATE runledger.jobs
    SET state = 'cancelled', finished_at = now(), cancel_requested = true
    WHERE run_id = p_run AND state IN ('scheduled', 'available', 'retryable', 'waiting');
    UPDATE runledger.jobs SET cancel_requested = true
    WHERE run_id = p_run AND state = 'running';
    PERFORM pg_notify('runledger_control', 'cancel:' || id)
    FROM runledger.jobs WHERE run_id = p_run AND state = 'running';
    RETURN v_prev;
END
$$;

-- Runs and steps are updated several times each (counters, states, arguments): leave room on
-- each page so that those updates stay on their page (HOT), and vacuum early.
ALTER TABLE runledger.workflow_runs SET (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05
);
ALTER TABLE runledger.workflow_steps SET (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05
);

-- runledger: the jobs table.
--
-- Design notes
-- * One row per job. A job is claimed by flipping `state` to 'running' and bumping `attempt`;
--   `attempt` only ever grows, so (id, attempt) is the fencing token every later write checks.
-- * The fetch path reads only the partial index `jobs_fetch_idx` (state = 'available'), so finished
--   rows, however many, are not in the index the workers scan. Future work (scheduled jobs and
--   retries) waits in its own partial index until the stager makes it available.
-- * Dead tuples are the enemy of a queue table: autovacuum is tuned to run early on this table
--   and finished rows are meant to be pruned after a retention period.

CREATE TABLE runledger.jobs (
    id               bigserial    PRIMARY KEY,
    kind             text         NOT NULL,
    queue            text         NOT NULL DEFAULT 'default',
    state            text         NOT NULL DEFAULT 'available',
    priority         smallint     NOT NULL DEFAULT 0,
    args             jsonb        NOT NULL DEFAULT '{}',
    output           jsonb,
    errors           jsonb        NOT NULL DEFAULT '[]',
    attempt          integer      NOT NULL DEFAULT 0,
    max_attempts     integer      NOT NULL DEFAULT 25,
    run_at           timestamptz  NOT NULL DEFAULT now(),
    created_at       timestamptz  NOT NULL DEFAULT now(),
    attempted_at     timestamptz,
    finished_at      timestamptz,
    lease_expires_at timestamptz,
    attempted_by     text,
    timeout_ms       bigint,
    cancel_requested boolean      NOT NULL DEFAULT false,
    unique_key       text,
    unique_states    smallint,

    CONSTRAINT jobs_state_valid CHECK (state IN (
        'scheduled', 'available', 'running', 'retryable', 'waiting',
        'completed', 'failed', 'cancelled')),
    CONSTRAINT jobs_kind_valid CHECK (char_length(kind) BETWEEN 1 AND 128),
    CONSTRAINT jobs_queue_valid CHECK (char_length(queue) BETWEEN 1 AND 128),
    CONSTRAINT jobs_attempt_bounds CHECK (attempt >= 0 AND max_attempts >= 1),
    CONSTRAINT jobs_running_has_lease CHECK (state <> 'running' OR lease_expires_at IS NOT NULL),
    CONSTRAINT jobs_finished_has_time CHECK (
        (state IN ('completed', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CONSTRAINT jobs_unique_pair CHECK ((unique_key IS NULL) = (unique_states IS NULL)),
    CONSTRAINT jobs_timeout_positive CHECK (timeout_ms IS NULL OR timeout_ms > 0)
);

COMMENT ON TABLE runledger.jobs IS
    'runledger jobs; written only through the runledger crate. (id, attempt) fences every write.';
COMMENT ON COLUMN runledger.jobs.unique_states IS
    'Bitmask of the states in which unique_key blocks another job (see runledger.state_bit).';

-- The bit of a state in `unique_states`.
CREATE FUNCTION runledger.state_bit(state text) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT CASE state
        WHEN 'scheduled' THEN 1  WHEN 'available' THEN 2  WHEN 'running'   THEN 4
        WHEN 'retryable' THEN 8  WHEN 'waiting'   THEN 16 WHEN 'completed' THEN 32
        WHEN 'failed'    THEN 64 WHEN 'cancelled' THEN 128 END::smallint
$$;

-- Fetch path: one partial index, ordered the way the claim query reads it.
CREATE INDEX jobs_fetch_idx ON runledger.jobs (queue, priority DESC, run_at, id)
    WHERE state = 'available';

-- Stager path: scheduled jobs and retries, by due time.
CREATE INDEX jobs_due_idx ON runledger.jobs (run_at)
    WHERE state IN ('scheduled', 'retryable');

-- Rescuer path: running jobs by lease expiry.
CREATE INDEX jobs_lease_idx ON runledger.jobs (lease_expires_at)
    WHERE state = 'running';

-- Unique jobs: a key blocks others only in the states its bitmask names.
CREATE UNIQUE INDEX jobs_unique_idx ON runledger.jobs (unique_key)
    WHERE unique_key IS NOT NULL
      AND (unique_states & runledger.state_bit(state)) <> 0;

-- Retention path: finished jobs by finish time.
CREATE INDEX jobs_finished_idx ON runledger.jobs (finished_at)
    WHERE finished_at IS NOT NULL;

-- A queue table is updated far more than it grows: vacuum early and often, and leave free space
-- on each page so that an update can often stay on its page.
ALTER TABLE runledger.jobs SET (
    fillfactor = 85,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 500,
    autovacuum_analyze_scale_factor = 0.05,
    autovacuum_vacuum_cost_delay = 1
);

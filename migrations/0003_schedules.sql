-- runledger: cron schedules, their fires, and the maintenance leader's lease.
--
-- Design notes
-- * `schedules` holds one row per schedule, declared in code (`declared`, synced at worker
--   start) or added at run time. `next_fire_at` is the cursor: the first slot not yet handled.
--   The scheduler moves it forward with a compare-and-set on its old value and on `revision`
--   (bumped by every change of the definition), so two schedulers that read the same row cannot
--   both advance it, and a plan made from an old definition is never applied to a new one.
-- * `schedule_fires` has one row per fired slot; its primary key (schedule, slot) is the
--   guarantee that a slot enqueues at most one job, whatever happens to leadership. Fire rows
--   are pruned with the completed jobs' retention.
-- * `leaders` holds one lease per elected role (today only 'maintenance'), with its expiry in
--   the database clock. A worker holds the role while it renews the lease; any worker takes it
--   once the lease has expired, and the holder deletes it on graceful shutdown. The statements
--   of leader-only work (firing schedules, pruning) check in themselves that their worker still
--   holds an unexpired lease, so a leader that lost its lease changes nothing.
-- * Autovacuum: `leaders` is rewritten every few seconds and `schedules` on every fire, but
--   both stay tiny; a low fillfactor lets those updates stay on their page (HOT), and a small
--   fixed vacuum threshold clears the dead versions early. `schedule_fires` only grows and is
--   pruned in batches; the default insert-driven autovacuum suits it.

CREATE TABLE runledger.schedules (
    name          text         PRIMARY KEY,
    kind          text         NOT NULL,
    expression    text         NOT NULL,
    timezone      text         NOT NULL DEFAULT 'UTC',
    missed        text         NOT NULL DEFAULT 'skip',
    args          jsonb        NOT NULL DEFAULT '{}',
    queue         text         NOT NULL DEFAULT 'default',
    priority      smallint     NOT NULL DEFAULT 0,
    max_attempts  integer      NOT NULL DEFAULT 25,
    timeout_ms    bigint,
    paused        boolean      NOT NULL DEFAULT false,
    declared      boolean      NOT NULL DEFAULT false,
    next_fire_at  timestamptz,
    last_slot     timestamptz,
    revision      bigint       NOT NULL DEFAULT 0,
    created_at    timestamptz  NOT NULL DEFAULT now(),
    updated_at    timestamptz  NOT NULL DEFAULT now(),

    CONSTRAINT schedules_name_valid CHECK (char_length(name) BETWEEN 1 AND 128),
    CONSTRAINT schedules_kind_valid CHECK (char_length(kind) BETWEEN 1 AND 128),
    CONSTRAINT schedules_queue_valid CHECK (char_length(queue) BETWEEN 1 AND 128),
    CONSTRAINT schedules_missed_valid CHECK (missed IN ('skip', 'run_once')),
    CONSTRAINT schedules_attempts_valid CHECK (max_attempts >= 1),
    CONSTRAINT schedules_timeout_positive CHECK (timeout_ms IS NULL OR timeout_ms > 0)
);

COMMENT ON TABLE runledger.schedules IS
    'runledger cron schedules; next_fire_at is the first slot not yet handled (database clock).';

-- Scheduler path: active schedules by their next slot.
CREATE INDEX schedules_due_idx ON runledger.schedules (next_fire_at) WHERE NOT paused;

ALTER TABLE runledger.schedules SET (
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 200
);

CREATE TABLE runledger.schedule_fires (
    schedule  text         NOT NULL REFERENCES runledger.schedules (name) ON DELETE CASCADE,
    slot      timestamptz  NOT NULL,
    job_id    bigint,
    fired_at  timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule, slot)
);

COMMENT ON TABLE runledger.schedule_fires IS
    'One row per fired cron slot; the primary key makes every slot fire at most once.';

-- Retention path.
CREATE INDEX schedule_fires_fired_idx ON runledger.schedule_fires (fired_at);

CREATE TABLE runledger.leaders (
    role        text         PRIMARY KEY,
    holder      text         NOT NULL,
    elected_at  timestamptz  NOT NULL DEFAULT now(),
    expires_at  timestamptz  NOT NULL,

    CONSTRAINT leaders_holder_valid CHECK (char_length(holder) BETWEEN 1 AND 256)
);

COMMENT ON TABLE runledger.leaders IS
    'Leases of elected roles; a holder keeps its role by renewing before expires_at (database clock).';

ALTER TABLE runledger.leaders SET (
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 100
);

-- Retention path for jobs: by state, then finish time, so that pruning one state never walks the
-- rows of a state kept longer (or forever). Replaces the finish-time-only index of 0001.
CREATE INDEX jobs_finished_state_idx ON runledger.jobs (state, finished_at)
    WHERE finished_at IS NOT NULL;
DROP INDEX runledger.jobs_finished_idx;

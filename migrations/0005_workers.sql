-- runledger: the workers that are running, and what they serve.
--
-- Design notes
-- * One row per running worker instance (keyed by its holder name `<id>/<token>`, unique per
--   instance), with the queues it works and the kinds it has handlers for. Each worker
--   refreshes `seen_at` every 30 s and deletes its row at graceful shutdown; the maintenance
--   leader deletes rows not seen for a while (crashed workers).
-- * The leader compares available jobs with this table: jobs of a (queue, kind) that no live
--   worker serves, waiting longer than the configured time, are reported (a warning in the
--   leader's log, and `Runledger::unclaimed_kinds` for operators). They are left untouched: a
--   worker that knows the kind may come (deployments can run different binaries).
-- * The table is tiny and rewritten every 30 s per worker: a low fillfactor keeps those updates
--   on their page.

CREATE TABLE runledger.workers (
    holder     text         PRIMARY KEY,
    worker     text         NOT NULL,
    queues     text[]       NOT NULL,
    kinds      text[]       NOT NULL,
    started_at timestamptz  NOT NULL DEFAULT now(),
    seen_at    timestamptz  NOT NULL DEFAULT now()
) WITH (fillfactor = 50);

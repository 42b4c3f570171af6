-- runledger: a claim returns each job's priority.
--
-- Design notes
-- * A worker now claims more jobs than it has free slots and holds the surplus in a local
--   buffer until slots free up (prefetch). It starts buffered jobs highest priority first, across
--   claims, so a job of a higher priority claimed later overtakes those of a lower one claimed
--   before it; for that it needs each job's priority.
-- * Only the result gains a column: the arguments, the plan settings and the statement are
--   those of migration 0004. Callers select the result's columns by name.

DROP FUNCTION runledger.claim_jobs(text, text[], bigint, text, double precision);

CREATE FUNCTION runledger.claim_jobs(
    p_queue text, p_kinds text[], p_limit bigint, p_worker text, p_lease_s double precision
) RETURNS TABLE (
    id bigint, kind text, queue text, args text, attempt integer, max_attempts integer,
    timeout_ms bigint, run_id bigint, priority smallint
) LANGUAGE plpgsql
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT j.id FROM runledger.jobs j
        WHERE j.state = 'available' AND j.queue = p_queue AND j.kind = ANY(p_kinds)
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ),
    claimed AS (
        UPDATE runledger.jobs j
        SET state = 'running',
            attempt = j.attempt + 1,
            attempted_at = now(),
            attempted_by = p_worker,
            lease_expires_at = now() + make_interval(secs => p_lease_s)
        FROM picked
        WHERE j.id = picked.id
        RETURNING j.id, j.kind, j.queue, j.args::text, j.attempt, j.max_attempts,
                  j.timeout_ms, j.run_id, j.priority
    )
    SELECT * FROM claimed;
END
$$;

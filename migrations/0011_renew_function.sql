-- runledger: lease renewals are a function planned like the completer's write.
--
-- Design notes
-- * A renewal and the completer's write may touch some of the same rows (an attempt that
--   finishes while its renewal is on the way). Both lock rows in id order so that they never
--   wait on each other crosswise. The completer's write looks its rows up by key in the order of
--   its sorted ids (migration 0010); the renewal, a prepared statement, was planned for its values
--   on its first executions on a connection and could hash the table and lock rows in the order
--   they lie on disk instead, and so deadlock with a write; the renewal then failed and short
--   leases ran out.
-- * Here the renewal is planned once per session with its parameters unknown, like the
--   completer's write: a lookup by key per attempt, in the order of the sorted ids it is given.

CREATE FUNCTION runledger.renew_leases(
    p_ids bigint[], p_attempts integer[], p_lease_s double precision
) RETURNS TABLE (id bigint, attempt integer, cancel_requested boolean)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    UPDATE runledger.jobs j
    SET lease_expires_at = now() + make_interval(secs => p_lease_s)
    FROM unnest(p_ids, p_attempts) AS u(id, attempt)
    WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running'
    RETURNING j.id, j.attempt, j.cancel_requested;
END
$$;

//! Every SQL text the PostgreSQL tracker sends: the schema, and one
//! statement per call (DESIGN.md, "The PostgreSQL tracker", shows them with
//! their plans).
//!
//! Each tracker keeps its tasks in a table of its own, `tastypod_tasks_<id>`
//! (`{t}` below, filled in when a connection prepares the statement), so
//! the planner's statistics are each tracker's own and no statement filters
//! by tracker. Statements that need the time take an offset in milliseconds
//! (0 but in tests, which move the clock) and read the server's clock once,
//! as `n.now` (milliseconds since the Unix epoch). A task's `todo` is the
//! file tracker's "to do": not done, not aborted, and under the try limit
//! or claimed; `due` is when it becomes claimable (0 for a task never
//! tried, the lease's end while claimed, the retry time while waiting).
//! The try limit is read from `tastypod_trackers` by every statement that
//! needs it (`{max:N}`: the stored limit, `$N` only if the tracker's row is
//! gone), so a limit another process stored is the one every handle uses.
//! Rows to change are found by key through the primary key
//! (`key = ANY (ARRAY(...))`), whatever the planner thinks of the table.

/// The schema version this build writes and reads.
pub(crate) const SCHEMA_VERSION: i32 = 1;

/// The key of the advisory lock held while the schema is created or checked.
pub(crate) const SCHEMA_LOCK: i64 = 0x7461_7374_7970_6f64; // "tastypod"

/// Creates the shared tables if missing (run under [`SCHEMA_LOCK`], in a
/// transaction).
pub(crate) const CREATE: &str = "
CREATE TABLE IF NOT EXISTS tastypod_schema (
    version integer NOT NULL
);
CREATE TABLE IF NOT EXISTS tastypod_trackers (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE,
    max_tries bigint NOT NULL,
    lease_ms bigint NOT NULL,
    retry jsonb
);
";

/// Whether a tracker's table of tasks and its last index exist.
pub(crate) const TASKS_EXIST: &str = "SELECT to_regclass($1) IS NOT NULL";

/// Creates a tracker's own table of tasks if missing (same transaction).
pub(crate) const CREATE_TASKS: &str = "
CREATE TABLE IF NOT EXISTS {t} (
    key text PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    done boolean NOT NULL DEFAULT false,
    aborted boolean NOT NULL DEFAULT false,
    tries bigint NOT NULL DEFAULT 0,
    owner text,
    lease_until bigint,
    not_before bigint,
    todo boolean NOT NULL DEFAULT true,
    due bigint NOT NULL DEFAULT 0,
    fields jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS {t}_claim ON {t} ((tries = 0), due, seq) WHERE todo;
CREATE INDEX IF NOT EXISTS {t}_todo ON {t} (seq) WHERE todo;
CREATE INDEX IF NOT EXISTS {t}_leases ON {t} (due) WHERE todo AND lease_until IS NOT NULL;
";

/// The schema's version row(s).
pub(crate) const VERSION: &str = "SELECT version FROM tastypod_schema";

/// Records the version of a new schema.
pub(crate) const SET_VERSION: &str = "INSERT INTO tastypod_schema (version) VALUES ($1)";

/// Registers a tracker unless it exists: `$1` name, `$2` max tries, `$3`
/// lease, `$4` retry (JSON text).
pub(crate) const REGISTER: &str = "
INSERT INTO tastypod_trackers (name, max_tries, lease_ms, retry)
VALUES ($1, $2, $3, $4::text::jsonb)
ON CONFLICT (name) DO NOTHING";

/// A tracker's id and stored settings, by name.
pub(crate) const SETTINGS: &str =
    "SELECT id, max_tries, lease_ms, retry::text FROM tastypod_trackers WHERE name = $1";

/// Stores new settings for tracker `$1`.
pub(crate) const RESET_SETTINGS: &str = "
UPDATE tastypod_trackers SET max_tries = $2, lease_ms = $3, retry = $4::text::jsonb WHERE id = $1";

/// After the try limit changed to `$1`: which tasks are to do.
pub(crate) const RECOUNT_TODO: &str = "
UPDATE {t}
SET todo = NOT done AND NOT aborted AND ($1::bigint = 0 OR tries < $1::bigint OR lease_until IS NOT NULL)
WHERE todo IS DISTINCT FROM (NOT done AND NOT aborted
      AND ($1::bigint = 0 OR tries < $1::bigint OR lease_until IS NOT NULL))";

/// Adds the keys `$1` (in that order) that are absent.
pub(crate) const ADD: &str = "
INSERT INTO {t} (key)
SELECT k FROM unnest($1::text[]) WITH ORDINALITY AS u (k, i) ORDER BY i
ON CONFLICT DO NOTHING";

/// Claims up to `$3` tasks for owner `$4` with a lease of `$5` ms, under
/// the try limit `$2` (`$1` is the clock offset): ends (as exhausted) the
/// expired claims on a last try, takes the claimable tasks (retries first,
/// by when they became claimable; then tasks never tried, in order) that no
/// other transaction is claiming (`SKIP LOCKED`), counts a try and writes
/// the lease. Rows come back in claim order.
pub(crate) const CLAIM: &str = "
WITH n AS MATERIALIZED (
    SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint + $1::bigint AS now
),
settle AS (
    UPDATE {t} SET todo = false, lease_until = NULL
    WHERE key = ANY (ARRAY(
        SELECT key FROM {t}
        WHERE todo AND lease_until IS NOT NULL AND due <= (SELECT now FROM n)
          AND {max:2} > 0 AND tries >= {max:2}
        FOR UPDATE SKIP LOCKED))
),
pick AS (
    SELECT key, (tries = 0) AS fresh, due, seq FROM {t}
    WHERE todo AND due <= (SELECT now FROM n) AND ({max:2} = 0 OR tries < {max:2})
    ORDER BY (tries = 0), due, seq
    LIMIT $3
    FOR UPDATE SKIP LOCKED
),
took AS (
    UPDATE {t}
    SET tries = tries + 1, owner = $4, lease_until = (SELECT now FROM n) + $5::bigint,
        due = (SELECT now FROM n) + $5::bigint, not_before = NULL
    WHERE key = ANY (ARRAY(SELECT key FROM pick))
    RETURNING key, tries, lease_until
)
SELECT took.key, took.tries, took.lease_until FROM took JOIN pick USING (key)
ORDER BY pick.fresh, pick.due, pick.seq";

/// When nothing was claimable: the earliest time a task to do becomes
/// claimable (NULL: nothing is to do), and the server's time now (`$1` is
/// the clock offset).
pub(crate) const NEXT_DUE: &str = "
SELECT (SELECT min(due) FROM {t} WHERE todo),
       (extract(epoch FROM clock_timestamp()) * 1000)::bigint + $1::bigint";

/// The fence every call made through a lease passes: `$1` key, `$2` the
/// lease's try, `$3` its owner. The task is not finished, no claim was made
/// since the lease's (its tries are the lease's try), and a claim it holds
/// is the lease owner's.
macro_rules! fenced {
    () => {
        "key = $1 AND NOT done AND NOT aborted AND tries = $2::bigint \
         AND (lease_until IS NULL OR owner = $3)"
    };
}

/// Marks the task done through a lease, merging the fields `$4`.
pub(crate) const COMPLETE: &str = concat!(
    "UPDATE {t} SET done = true, todo = false, lease_until = NULL, \
     not_before = NULL, fields = fields || $4::text::jsonb WHERE ",
    fenced!()
);

/// Aborts the task through a lease, merging the fields `$4`.
pub(crate) const ABORT: &str = concat!(
    "UPDATE {t} SET aborted = true, todo = false, lease_until = NULL, \
     not_before = NULL, fields = fields || $4::text::jsonb WHERE ",
    fenced!()
);

/// Ends the claim through a lease without finishing, merging the fields
/// `$4`: the task waits `$5` ms (`$6` is the clock offset), or is
/// exhausted if its tries reached the limit `$7`. A claim whose lease
/// already ended (and that no claim followed) only gets the fields.
pub(crate) const RELEASE: &str = concat!(
    "WITH n AS MATERIALIZED (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint \
     + $6::bigint AS now) \
     UPDATE {t} SET fields = fields || $4::text::jsonb, lease_until = NULL, \
     not_before = CASE WHEN lease_until IS NULL THEN not_before \
                       WHEN $5::bigint > 0 AND ({max:7} = 0 OR tries < {max:7}) \
                       THEN (SELECT now FROM n) + $5::bigint END, \
     due = CASE WHEN lease_until IS NULL THEN due ELSE (SELECT now FROM n) + $5::bigint END, \
     todo = CASE WHEN lease_until IS NULL THEN todo \
                 ELSE ({max:7} = 0 OR tries < {max:7}) END \
     WHERE ",
    fenced!()
);

/// Extends the claim through a lease to `$5` ms from now (`$4` is the clock
/// offset); returns the new end.
pub(crate) const EXTEND: &str = concat!(
    "WITH n AS MATERIALIZED (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint \
     + $4::bigint AS now) \
     UPDATE {t} SET lease_until = (SELECT now FROM n) + $5::bigint, \
     due = (SELECT now FROM n) + $5::bigint, \
     owner = $3, todo = true, not_before = NULL WHERE ",
    fenced!(),
    " RETURNING lease_until"
);

/// Completes many claims at once: `$1` keys, `$2` tries, `$3` owners,
/// `$4` fields (JSON texts), item by item; returns the positions (from 1)
/// of the items completed (a key given twice is completed once).
pub(crate) const COMPLETE_MANY: &str = "
UPDATE {t} t SET done = true, todo = false, lease_until = NULL,
    not_before = NULL, fields = t.fields || u.fields::jsonb
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY
     AS u (key, tries, owner, fields, i)
WHERE t.key = ANY ($1::text[]) AND t.key = u.key AND NOT t.done AND NOT t.aborted
  AND t.tries = u.tries AND (t.lease_until IS NULL OR t.owner = u.owner)
RETURNING u.i";

/// A task's columns, by key `$1`.
pub(crate) const TASK: &str = "
SELECT done, aborted, tries, owner, lease_until, not_before, fields::text FROM {t} WHERE key = $1";

/// Merges the fields `$2` into task `$1`'s.
pub(crate) const UPDATE_FIELDS: &str =
    "UPDATE {t} SET fields = fields || $2::text::jsonb WHERE key = $1";

/// Every count (`$1` is the try limit).
pub(crate) const COUNTS: &str = "
SELECT count(*),
       count(*) FILTER (WHERE done),
       count(*) FILTER (WHERE aborted),
       count(*) FILTER (WHERE NOT done AND NOT aborted AND lease_until IS NULL
                        AND {max:1} > 0 AND tries >= {max:1}),
       count(*) FILTER (WHERE todo),
       count(*) FILTER (WHERE lease_until IS NOT NULL),
       count(*) FILTER (WHERE tries > 0),
       coalesce(sum(tries), 0)::bigint
FROM {t}";

/// Up to `$1` keys to do, in order.
pub(crate) const TODO_KEYS: &str = "SELECT key FROM {t} WHERE todo ORDER BY seq LIMIT $1";

/// Up to `$1` keys not done, to do or aborted, in order.
pub(crate) const TODO_OR_ABORTED_KEYS: &str =
    "SELECT key FROM {t} WHERE NOT done AND (todo OR aborted) ORDER BY seq LIMIT $1";

/// A cursor over whole tasks in order, after position `$1` (for copying).
pub(crate) const CURSOR: &str = "
DECLARE tastypod_copy NO SCROLL CURSOR FOR
SELECT seq, key, done, aborted, tries, owner, lease_until, not_before, fields::text
FROM {t} WHERE seq > $1 ORDER BY seq";

/// A cursor over the keys to do, in order, after position `$1`.
pub(crate) const CURSOR_TODO: &str = "
DECLARE tastypod_copy NO SCROLL CURSOR FOR
SELECT seq, key FROM {t} WHERE todo AND seq > $1 ORDER BY seq";

/// A cursor over the keys not done, to do or aborted, after position `$1`.
pub(crate) const CURSOR_TODO_OR_ABORTED: &str = "
DECLARE tastypod_copy NO SCROLL CURSOR FOR
SELECT seq, key FROM {t} WHERE NOT done AND (todo OR aborted) AND seq > $1 ORDER BY seq";

/// Whether the tracker holds any task.
pub(crate) const ANY_TASK: &str = "SELECT EXISTS (SELECT 1 FROM {t})";

/// Inserts whole tasks in order (for copying): `$1` keys, `$2` done,
/// `$3` aborted, `$4` tries, `$5` owners, `$6` lease ends, `$7` retry
/// times, `$8` fields (JSON texts); `$9` is the try limit.
pub(crate) const INSERT_TASKS: &str = "
INSERT INTO {t} (key, done, aborted, tries, owner, lease_until, not_before, todo, due, fields)
SELECT key, done, aborted, tries, owner, lease_until, not_before,
       NOT done AND NOT aborted AND ({max:9} = 0 OR tries < {max:9} OR lease_until IS NOT NULL),
       coalesce(lease_until, not_before, CASE WHEN tries = 0 THEN 0 ELSE 1 END),
       fields::jsonb
FROM unnest($1::text[], $2::bool[], $3::bool[], $4::bigint[], $5::text[], $6::bigint[],
            $7::bigint[], $8::text[]) WITH ORDINALITY
     AS u (key, done, aborted, tries, owner, lease_until, not_before, fields, i)
ORDER BY i";

/// Resets tasks so a job tries them again (`tastypod tracker reset`): the
/// keys `$1`, every aborted task if `$2`, every task out of tries at the
/// limit `$3` (0: none) if it is above 0. Their tries go back to 0, their
/// abort, claim and retry wait are cleared. Returns how many were reset.
pub(crate) const RESET: &str = "
WITH r AS (UPDATE {t} SET tries = 0, aborted = false, owner = NULL, lease_until = NULL,
    not_before = NULL, due = 0, todo = NOT done
WHERE key = ANY ($1::text[]) OR ($2::bool AND aborted)
    OR ($3::bigint > 0 AND NOT done AND NOT aborted AND lease_until IS NULL AND tries >= $3::bigint)
RETURNING 1)
SELECT count(*) FROM r";

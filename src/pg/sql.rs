//! Every SQL text the PostgreSQL tracker sends: the schema, and one
//! statement per call (DESIGN.md, "The PostgreSQL tracker", shows them with
//! their plans).
//!
//! Conventions: `$1` is always the tracker's id; statements that need the
//! time take `$2`, an offset in milliseconds (0 but in tests, which move
//! the clock), and read the server's clock once, as `n.now` (milliseconds
//! since the Unix epoch). A task's `todo` is the file tracker's "to do":
//! not done, not aborted, and under the try limit or claimed; `due` is when
//! it becomes claimable (0 for a task never tried, the lease's end while
//! claimed, the retry time while waiting).

/// The schema version this build writes and reads.
pub(crate) const SCHEMA_VERSION: i32 = 1;

/// The key of the advisory lock held while the schema is created or checked.
pub(crate) const SCHEMA_LOCK: i64 = 0x7461_7374_7970_6f64; // "tastypod"

/// Creates what is missing (run under [`SCHEMA_LOCK`], in a transaction).
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
CREATE TABLE IF NOT EXISTS tastypod_tasks (
    tracker integer NOT NULL REFERENCES tastypod_trackers (id) ON DELETE CASCADE,
    key text NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    done boolean NOT NULL DEFAULT false,
    aborted boolean NOT NULL DEFAULT false,
    tries bigint NOT NULL DEFAULT 0,
    owner text,
    lease_until bigint,
    not_before bigint,
    todo boolean NOT NULL DEFAULT true,
    due bigint NOT NULL DEFAULT 0,
    fields jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (tracker, key)
);
CREATE INDEX IF NOT EXISTS tastypod_tasks_claim
    ON tastypod_tasks (tracker, (tries = 0), due, seq) WHERE todo;
CREATE INDEX IF NOT EXISTS tastypod_tasks_todo
    ON tastypod_tasks (tracker, seq) WHERE todo;
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

/// Stores new settings for tracker `$1` and recounts what is to do.
pub(crate) const RESET_SETTINGS: &str = "
UPDATE tastypod_trackers SET max_tries = $2, lease_ms = $3, retry = $4::text::jsonb WHERE id = $1";

/// After the try limit changed: which tasks are to do.
pub(crate) const RECOUNT_TODO: &str = "
UPDATE tastypod_tasks
SET todo = NOT done AND NOT aborted AND ($2::bigint = 0 OR tries < $2::bigint OR lease_until IS NOT NULL)
WHERE tracker = $1
  AND todo IS DISTINCT FROM (NOT done AND NOT aborted
      AND ($2::bigint = 0 OR tries < $2::bigint OR lease_until IS NOT NULL))";

/// Adds the keys `$2` (in that order) that are absent.
pub(crate) const ADD: &str = "
INSERT INTO tastypod_tasks (tracker, key)
SELECT $1, k FROM unnest($2::text[]) WITH ORDINALITY AS u (k, i) ORDER BY i
ON CONFLICT DO NOTHING";

/// Claims up to `$4` tasks for owner `$5` with a lease of `$6` ms, under
/// the try limit `$3`: ends (as exhausted) the expired claims on a last
/// try, takes the claimable tasks (retries first, by when they became
/// claimable; then tasks never tried, in order) that no other transaction
/// is claiming (`SKIP LOCKED`), counts a try and writes the lease. Rows
/// come back in claim order.
pub(crate) const CLAIM: &str = "
WITH n AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint + $2::bigint AS now),
settle AS (
    UPDATE tastypod_tasks t SET todo = false, lease_until = NULL
    FROM (
        SELECT key FROM tastypod_tasks, n
        WHERE tracker = $1 AND todo AND NOT (tries = 0) AND due <= n.now
          AND lease_until IS NOT NULL AND $3::bigint > 0 AND tries >= $3::bigint
        FOR UPDATE OF tastypod_tasks SKIP LOCKED
    ) s
    WHERE t.tracker = $1 AND t.key = s.key
),
pick AS (
    SELECT key, (tries = 0) AS fresh, due, seq FROM tastypod_tasks, n
    WHERE tracker = $1 AND todo AND due <= n.now AND ($3::bigint = 0 OR tries < $3::bigint)
    ORDER BY (tries = 0), due, seq
    LIMIT $4
    FOR UPDATE OF tastypod_tasks SKIP LOCKED
),
took AS (
    UPDATE tastypod_tasks t
    SET tries = t.tries + 1, owner = $5, lease_until = n.now + $6::bigint,
        due = n.now + $6::bigint, not_before = NULL
    FROM pick, n
    WHERE t.tracker = $1 AND t.key = pick.key
    RETURNING t.key, t.tries, t.lease_until, pick.fresh, pick.due AS was_due, pick.seq
)
SELECT key, tries, lease_until FROM took ORDER BY fresh, was_due, seq";

/// When nothing was claimable: the earliest time a task to do becomes
/// claimable (NULL: nothing is to do), and the server's time now.
pub(crate) const NEXT_DUE: &str = "
WITH n AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint + $2::bigint AS now)
SELECT (SELECT min(due) FROM tastypod_tasks WHERE tracker = $1 AND todo), n.now FROM n";

/// The fence every call made through a lease passes: `$2` key, `$3` the
/// lease's try, `$4` its owner. The task is not finished, no claim was made
/// since the lease's (its tries are the lease's try), and a claim it holds
/// is the lease owner's.
macro_rules! fenced {
    () => {
        "t.tracker = $1 AND t.key = $2 AND NOT t.done AND NOT t.aborted \
         AND t.tries = $3::bigint AND (t.lease_until IS NULL OR t.owner = $4)"
    };
}

/// Marks the task done through a lease, merging the fields `$5`.
pub(crate) const COMPLETE: &str = concat!(
    "UPDATE tastypod_tasks t SET done = true, todo = false, lease_until = NULL, \
     not_before = NULL, fields = t.fields || $5::text::jsonb WHERE ",
    fenced!()
);

/// Aborts the task through a lease, merging the fields `$5`.
pub(crate) const ABORT: &str = concat!(
    "UPDATE tastypod_tasks t SET aborted = true, todo = false, lease_until = NULL, \
     not_before = NULL, fields = t.fields || $5::text::jsonb WHERE ",
    fenced!()
);

/// Ends the claim through a lease without finishing, merging the fields
/// `$5`: the task waits `$6` ms (`$7` is the clock offset), or is
/// exhausted if its tries reached the limit `$8`. A claim whose lease
/// already ended (and that no claim followed) only gets the fields.
pub(crate) const RELEASE: &str = concat!(
    "WITH n AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint + $7::bigint AS now) \
     UPDATE tastypod_tasks t SET fields = t.fields || $5::text::jsonb, lease_until = NULL, \
     not_before = CASE WHEN t.lease_until IS NULL THEN t.not_before \
                       WHEN $6::bigint > 0 THEN n.now + $6::bigint END, \
     due = CASE WHEN t.lease_until IS NULL THEN t.due ELSE n.now + $6::bigint END, \
     todo = CASE WHEN t.lease_until IS NULL THEN t.todo \
                 ELSE ($8::bigint = 0 OR t.tries < $8::bigint) END \
     FROM n WHERE ",
    fenced!()
);

/// Extends the claim through a lease to `$6` ms from now (`$5` is the clock
/// offset); returns the new end.
pub(crate) const EXTEND: &str = concat!(
    "WITH n AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint + $5::bigint AS now) \
     UPDATE tastypod_tasks t SET lease_until = n.now + $6::bigint, due = n.now + $6::bigint, \
     owner = $4, todo = true, not_before = NULL FROM n WHERE ",
    fenced!(),
    " RETURNING t.lease_until"
);

/// Completes many claims at once: `$2` keys, `$3` tries, `$4` owners,
/// `$5` fields (JSON texts), item by item; returns the keys completed.
pub(crate) const COMPLETE_MANY: &str = "
UPDATE tastypod_tasks t SET done = true, todo = false, lease_until = NULL,
    not_before = NULL, fields = t.fields || u.fields::jsonb
FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[]) AS u (key, tries, owner, fields)
WHERE t.tracker = $1 AND t.key = u.key AND NOT t.done AND NOT t.aborted
  AND t.tries = u.tries AND (t.lease_until IS NULL OR t.owner = u.owner)
RETURNING t.key";

/// A task's columns, by key `$2`.
pub(crate) const TASK: &str = "
SELECT done, aborted, tries, owner, lease_until, not_before, fields::text
FROM tastypod_tasks WHERE tracker = $1 AND key = $2";

/// Merges the fields `$3` into task `$2`'s.
pub(crate) const UPDATE_FIELDS: &str = "
UPDATE tastypod_tasks SET fields = fields || $3::text::jsonb WHERE tracker = $1 AND key = $2";

/// Every count (`$2` is the try limit).
pub(crate) const COUNTS: &str = "
SELECT count(*),
       count(*) FILTER (WHERE done),
       count(*) FILTER (WHERE aborted),
       count(*) FILTER (WHERE NOT done AND NOT aborted AND lease_until IS NULL
                        AND $2::bigint > 0 AND tries >= $2::bigint),
       count(*) FILTER (WHERE todo),
       count(*) FILTER (WHERE lease_until IS NOT NULL),
       count(*) FILTER (WHERE tries > 0),
       coalesce(sum(tries), 0)::bigint
FROM tastypod_tasks WHERE tracker = $1";

/// Up to `$2` keys to do, in order.
pub(crate) const TODO_KEYS: &str =
    "SELECT key FROM tastypod_tasks WHERE tracker = $1 AND todo ORDER BY seq LIMIT $2";

/// A page of whole tasks in order, after position `$2` (for copying).
pub(crate) const PAGE: &str = "
SELECT seq, key, done, aborted, tries, owner, lease_until, not_before, fields::text
FROM tastypod_tasks WHERE tracker = $1 AND seq > $2 ORDER BY seq LIMIT $3";

/// Whether the tracker holds any task.
pub(crate) const ANY_TASK: &str = "SELECT EXISTS (SELECT 1 FROM tastypod_tasks WHERE tracker = $1)";

/// Inserts whole tasks in order (for copying): `$2` keys, `$3` done,
/// `$4` aborted, `$5` tries, `$6` owners, `$7` lease ends, `$8` retry
/// times, `$9` fields (JSON texts); `$10` is the try limit.
pub(crate) const INSERT_TASKS: &str = "
INSERT INTO tastypod_tasks (tracker, key, done, aborted, tries, owner, lease_until, not_before,
                            todo, due, fields)
SELECT $1, key, done, aborted, tries, owner, lease_until, not_before,
       NOT done AND NOT aborted AND ($10::bigint = 0 OR tries < $10::bigint OR lease_until IS NOT NULL),
       coalesce(lease_until, not_before, CASE WHEN tries = 0 THEN 0 ELSE 1 END),
       fields::jsonb
FROM unnest($2::text[], $3::bool[], $4::bool[], $5::bigint[], $6::text[], $7::bigint[],
            $8::bigint[], $9::text[]) WITH ORDINALITY
     AS u (key, done, aborted, tries, owner, lease_until, not_before, fields, i)
ORDER BY i";

/// Resets tasks so a job tries them again (`tastypod tracker reset`): the
/// keys `$2`, every aborted task if `$3`, every task out of tries at the
/// limit `$4` (0: none) if it is above 0. Their tries go back to 0, their
/// abort, claim and retry wait are cleared. Returns the keys reset.
pub(crate) const RESET: &str = "
UPDATE tastypod_tasks SET tries = 0, aborted = false, owner = NULL, lease_until = NULL,
    not_before = NULL, due = 0, todo = NOT done
WHERE tracker = $1 AND (key = ANY ($2::text[]) OR ($3::bool AND aborted)
    OR ($4::bigint > 0 AND NOT done AND NOT aborted AND lease_until IS NULL AND tries >= $4::bigint))
RETURNING key";

/// Up to `$2` keys not done, to do or aborted, in order.
pub(crate) const TODO_OR_ABORTED_KEYS: &str = "SELECT key FROM tastypod_tasks WHERE tracker = $1 AND NOT done AND (todo OR aborted) ORDER BY seq LIMIT $2";

//! [`PgTracker`]: a tracker whose tasks live in PostgreSQL, so workers on
//! many machines share one crawl. It implements [`TaskQueue`], the trait
//! the file store's [`SharedTracker`](crate::SharedTracker) implements, and
//! passes the same conformance suite: worker code is written once.
//!
//! Every call is one statement, committed when it returns (durable as the
//! server's `synchronous_commit` makes it). Claims are leases decided by
//! the server's clock; a claim takes tasks no other transaction is claiming
//! (`FOR UPDATE SKIP LOCKED`) through an index of the tasks to do, so its
//! cost does not grow with the tasks done. DESIGN.md ("The PostgreSQL
//! tracker") gives the schema, the statements and their plans.

mod pool;
mod sql;
mod transfer;
mod url;

pub use url::{DEFAULT_TRACKER, is_postgres_url, url_without_password};

use crate::error::{ErrorKind, Result, fail};
use crate::queue::TaskQueue;
use crate::tracker::{
    ABORTED, Claim, DONE, LEASE, Lease, NOT_BEFORE, RetryDelay, Settings, TRIES, TaskCounts,
    TaskState, TrackerOptions, duration_ms, millis, time_of, user_fields,
};
use pool::Pool;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use url::TrackerUrl;

/// The longest lease or delay: times are unix ms in a `bigint`, and
/// now + this must fit.
const MAX_DURATION: Duration = Duration::from_millis(1 << 62);

/// How often a waiting claim asks the server again.
const POLL: Duration = Duration::from_millis(50);

/// A tracker on a PostgreSQL server, shared by every worker that opens the
/// same URL, on any machine. Cheap to clone (clones share connections: one
/// per thread using it at once).
///
/// Opened by [`TrackerOptions::open_postgres`] (or [`PgTracker::open`]) with
/// a URL `postgres://USER@HOST:PORT/DB?tracker=NAME`; the tables are
/// created on first use. The tracker's settings (`max_tries`, `lease`,
/// `retry_delay`) are stored with it, as in a file tracker's header: a
/// setting given to an open is stored, one not given is read back.
///
/// A lost connection (a server restart, a network cut) is retried: the
/// call reconnects and runs its statement again, for up to
/// [`reconnect_within`](PgTracker::reconnect_within) (60 s by default).
/// A call that was committed but whose answer was lost is not done twice:
/// [`complete`](TaskQueue::complete) and its siblings recognise their own
/// committed change; a claim whose answer was lost leaves its task claimed
/// until the lease ends (its try counted).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use tastypod::{Claim, PgTracker, TaskQueue, TrackerOptions};
///
/// let tracker: PgTracker = TrackerOptions::new()
///     .max_tries(3)
///     .lease(Duration::from_secs(30))
///     .open_postgres("postgres://crawler@db.internal:5432/crawl?tracker=pages")?;
/// tracker.add_keys(&["https://example.com/"])?;
/// while let Claim::Task(lease) = tracker.claim_wait(Duration::from_secs(10))? {
///     // ... fetch lease.key ...
///     tracker.complete(&lease, serde_json::Map::new())?;
/// }
/// # Ok::<(), tastypod::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct PgTracker {
    pool: Arc<Pool>,
    id: i32,
    name: Arc<str>,
    settings: Settings,
    owner: Arc<str>,
    /// Milliseconds added to the server's clock (tests move it).
    offset: Arc<AtomicI64>,
}

/// A name for this process's claims: `HOST-pid-PID-N`.
fn default_owner() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!(
        "{}pid-{}-{}",
        if host.is_empty() {
            String::new()
        } else {
            format!("{host}-")
        },
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn retry_text(retry: RetryDelay) -> String {
    retry.to_json().to_string()
}

/// `tries` as a try count, or the error for a row that holds no such count.
fn tries_of(key: &str, tries: i64) -> Result<u32> {
    u32::try_from(tries).map_err(|_| {
        ErrorKind::InvalidValue {
            key: key.to_string(),
            reason: format!("the database holds {tries} tries, not a try count"),
        }
        .into()
    })
}

/// `d` in ms, at most [`MAX_DURATION`].
fn ms_i64(d: Duration) -> i64 {
    i64::try_from(duration_ms(d.min(MAX_DURATION))).unwrap_or(i64::MAX)
}

fn time_of_ms(ms: i64) -> std::time::SystemTime {
    time_of(u64::try_from(ms).unwrap_or(0))
}

fn fields_text(fields: &Map<String, Value>) -> String {
    // A map of JSON values always encodes.
    serde_json::to_string(fields).unwrap_or_else(|_| "{}".into())
}

/// The columns of one task, as [`sql::TASK`] returns them.
struct Columns {
    done: bool,
    aborted: bool,
    tries: i64,
    owner: Option<String>,
    lease_until: Option<i64>,
    not_before: Option<i64>,
    fields: String,
}

impl Columns {
    /// The columns of `row`, from its column `first` on.
    fn of(row: &postgres::Row, first: usize) -> std::result::Result<Self, postgres::Error> {
        Ok(Columns {
            done: row.try_get(first)?,
            aborted: row.try_get(first + 1)?,
            tries: row.try_get(first + 2)?,
            owner: row.try_get(first + 3)?,
            lease_until: row.try_get(first + 4)?,
            not_before: row.try_get(first + 5)?,
            fields: row.try_get(first + 6)?,
        })
    }

    fn state(&self, key: &str) -> Result<TaskState> {
        let tries = tries_of(key, self.tries)?;
        let lease = match (&self.owner, self.lease_until) {
            (Some(owner), Some(until)) => Some(Lease {
                key: key.to_string(),
                owner: owner.clone(),
                until: time_of_ms(until),
                try_number: tries,
            }),
            _ => None,
        };
        Ok(TaskState {
            done: self.done,
            tries,
            aborted: self.aborted,
            lease,
            not_before: self.not_before.map(time_of_ms),
        })
    }

    /// The whole record, as a file tracker holds it.
    fn record(&self, key: &str) -> Result<Value> {
        let mut obj: Map<String, Value> =
            serde_json::from_str(&self.fields).map_err(|e| ErrorKind::InvalidValue {
                key: key.to_string(),
                reason: format!("the database's fields are not a JSON object: {e}"),
            })?;
        let state = self.state(key)?;
        obj.insert(DONE.into(), state.done.into());
        obj.insert(ABORTED.into(), state.aborted.into());
        obj.insert(TRIES.into(), state.tries.into());
        if let Some(lease) = &state.lease {
            obj.insert(
                LEASE.into(),
                json!({"owner": lease.owner, "until": millis(lease.until)}),
            );
        }
        if let Some(t) = state.not_before {
            obj.insert(NOT_BEFORE.into(), millis(t).into());
        }
        Ok(Value::Object(obj))
    }
}

impl TrackerOptions {
    /// Opens (creating the tables and the tracker if needed) the tracker
    /// named by `url`, `postgres://USER[:PASSWORD]@HOST:PORT/DB?tracker=NAME`
    /// (`tracker` defaults to `default`; other query parameters are the
    /// connection's, such as `connect_timeout=5`). The tracker's settings
    /// are used; the store options (`sync_at`, `durability`, ...) do not
    /// apply: every call is committed when it returns.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] for a bad URL, [`ErrorKind::Database`]
    /// if the server cannot be reached or holds a schema of another version.
    pub fn open_postgres(&self, url: &str) -> Result<PgTracker> {
        PgTracker::open_with(url, self)
    }
}

impl PgTracker {
    /// Opens the tracker at `url` with the default options (see
    /// [`TrackerOptions::open_postgres`]).
    ///
    /// # Errors
    ///
    /// As [`TrackerOptions::open_postgres`].
    pub fn open(url: &str) -> Result<Self> {
        Self::open_with(url, &TrackerOptions::new())
    }

    fn open_with(url: &str, options_given: &TrackerOptions) -> Result<Self> {
        let (url, pool) = pool_for(url)?;
        let given = options_given.given();
        for (name, d) in [
            ("lease", given.lease),
            (
                "retry_delay",
                given.retry.map(|r| match r {
                    RetryDelay::None => Duration::ZERO,
                    RetryDelay::Fixed(d) => d,
                    RetryDelay::Exponential { max, .. } => max,
                }),
            ),
        ] {
            if d.is_some_and(|d| d > MAX_DURATION) {
                return fail(ErrorKind::InvalidOption {
                    name,
                    why: format!(
                        "{d:?} is more than a PostgreSQL tracker keeps (about 146,000 years)"
                    ),
                });
            }
        }
        let (id, settings) = pool.run("creating the tracker's tables", |conn, _| {
            let mut tx = conn.client().transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&sql::SCHEMA_LOCK])?;
            tx.batch_execute(sql::CREATE)?;
            let versions: Vec<i32> = tx
                .query(sql::VERSION, &[])?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<std::result::Result<_, _>>()?;
            if versions.is_empty() {
                tx.execute(sql::SET_VERSION, &[&sql::SCHEMA_VERSION])?;
            }
            if versions.iter().any(|v| *v != sql::SCHEMA_VERSION) {
                // Another schema: touch nothing (the transaction is rolled
                // back), and say so below.
                return Ok((0, (0, 0, None), versions));
            }
            let defaults = given.over(Settings::default());
            tx.execute(
                sql::REGISTER,
                &[
                    &url.tracker,
                    &i64::from(defaults.max_tries),
                    &ms_i64(defaults.lease),
                    &retry_text(defaults.retry),
                ],
            )?;
            let row = tx.query_one(sql::SETTINGS, &[&url.tracker])?;
            let id: i32 = row.try_get(0)?;
            // Created only if missing: CREATE INDEX takes a lock that would
            // stop the workers' claims, even for an index that exists.
            let last_index = format!("{}_leases", table_of(id));
            if !tx
                .query_one(sql::TASKS_EXIST, &[&last_index])?
                .try_get::<_, bool>(0)?
            {
                tx.batch_execute(&sql::CREATE_TASKS.replace("{t}", &table_of(id)))?;
            }
            let stored: (i64, i64, Option<String>) =
                (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
            tx.commit()?;
            Ok((id, stored, versions))
        })
        .and_then(|(id, stored, versions)| {
            if let Some(v) = versions.iter().find(|v| **v != sql::SCHEMA_VERSION) {
                return fail(ErrorKind::InvalidOption {
                    name: "url",
                    why: format!(
                        "{} holds tastypod tables of schema version {v}; this build reads version {}",
                        url.shown,
                        sql::SCHEMA_VERSION
                    ),
                });
            }
            let (max_tries, lease_ms, retry) = stored;
            let bad = |why: String| ErrorKind::InvalidOption {
                name: "url",
                why: format!("{}: tracker {:?}: {why}", url.shown, url.tracker),
            };
            let retry: Value = serde_json::from_str(retry.as_deref().unwrap_or("null"))
                .map_err(|e| bad(format!("its retry setting is not JSON: {e}")))?;
            let stored = Settings {
                max_tries: u32::try_from(max_tries)
                    .map_err(|_| bad(format!("max_tries {max_tries}")))?,
                lease: Duration::from_millis(
                    u64::try_from(lease_ms).map_err(|_| bad(format!("lease_ms {lease_ms}")))?,
                ),
                retry: RetryDelay::from_json(&retry).map_err(bad)?,
            };
            Ok((id, given.over(stored), stored))
        })
        .and_then(|(id, settings, stored)| {
            if settings != stored {
                pool.run("storing the tracker's settings", |conn, _| {
                    let mut tx = conn.client().transaction()?;
                    tx.execute(
                        sql::RESET_SETTINGS,
                        &[
                            &id,
                            &i64::from(settings.max_tries),
                            &ms_i64(settings.lease),
                            &retry_text(settings.retry),
                        ],
                    )?;
                    let recount = sql::RECOUNT_TODO.replace("{t}", &table_of(id));
                    tx.execute(recount.as_str(), &[&i64::from(settings.max_tries)])?;
                    tx.commit()
                })?;
            }
            Ok((id, settings))
        })?;
        let mut pool = pool;
        pool.table = table_of(id).into();
        Ok(PgTracker {
            pool: Arc::new(pool),
            id,
            name: url.tracker.into(),
            settings,
            owner: default_owner().into(),
            offset: Arc::new(AtomicI64::new(0)),
        })
    }

    /// Whether the tracker `url` names exists (nothing is created).
    ///
    /// # Errors
    ///
    /// As [`TrackerOptions::open_postgres`].
    pub fn exists(url: &str) -> Result<bool> {
        let (url, pool) = pool_for(url)?;
        pool.run("looking for the tracker", |conn, _| {
            let row = conn
                .client()
                .query_one("SELECT to_regclass('tastypod_trackers') IS NOT NULL", &[])?;
            if !row.try_get::<_, bool>(0)? {
                return Ok(false);
            }
            Ok(conn
                .client()
                .query_opt(sql::SETTINGS, &[&url.tracker])?
                .is_some())
        })
    }

    /// The claim a call by key finishes (tastypy's `mark_done(key)`, as the
    /// Python package offers it): the task's lease if it is claimed, else
    /// a claim by this handle on its current try. `None` if `key` is not a
    /// task. Finishing through it is fenced like any lease: a claim made
    /// in between fails it with `LeaseLost`.
    ///
    /// # Errors
    ///
    /// The database's error.
    pub fn current_claim(&self, key: &str) -> Result<Option<Lease>> {
        let Some(state) = TaskQueue::state(self, key)? else {
            return Ok(None);
        };
        Ok(Some(state.lease.unwrap_or_else(|| Lease {
            key: key.to_string(),
            owner: self.owner.to_string(),
            until: std::time::SystemTime::now(),
            try_number: state.tries,
        })))
    }

    /// The same tracker, claiming under the name `owner` (shown in each
    /// task's `_lease`).
    #[must_use]
    pub fn with_owner(&self, owner: &str) -> Self {
        PgTracker {
            owner: owner.into(),
            ..self.clone()
        }
    }

    /// The name claims are made under (by default `HOST-pid-PID-N`).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The tracker's name within its database.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database's URL, without its password.
    pub fn url(&self) -> &str {
        &self.pool.shown
    }

    /// How many tries a task gets (0: no limit).
    pub fn max_tries(&self) -> u32 {
        self.settings.max_tries
    }

    /// How long a claim lasts.
    pub fn lease_length(&self) -> Duration {
        self.settings.lease
    }

    /// How long a released task waits.
    pub fn retry_delay(&self) -> RetryDelay {
        self.settings.retry
    }

    /// For how long a call whose connection is lost keeps reconnecting
    /// (and running its statement again) before it fails. Default: 60 s.
    #[must_use]
    pub fn reconnect_within(mut self, within: Duration) -> Self {
        let mut pool = Pool::new(self.pool_config(), self.pool.shown.clone());
        pool.reconnect_within = within;
        pool.table = Arc::clone(&self.pool.table);
        self.pool = Arc::new(pool);
        self
    }

    fn pool_config(&self) -> postgres::Config {
        self.pool.config().clone()
    }

    /// Moves this tracker's clock (the server's, as its calls read it) on
    /// by `by`, for every clone (tests only: no lease test sleeps).
    #[doc(hidden)]
    pub fn advance_clock(&self, by: Duration) {
        self.offset.fetch_add(ms_i64(by), Ordering::SeqCst);
    }

    /// The plan of the claim statement, as `EXPLAIN (ANALYZE, COSTS OFF)`
    /// prints it after `ANALYZE` of the tasks (run in a transaction that is
    /// rolled back: nothing is claimed). For DESIGN.md and the test that the
    /// claim uses its index.
    #[doc(hidden)]
    pub fn explain_claim(&self, n: usize) -> Result<String> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let lease_ms = ms_i64(self.settings.lease);
        self.pool.run("explaining the claim", |conn, _| {
            let table = table_of(self.id);
            conn.client().batch_execute(&format!("ANALYZE {table}"))?;
            let mut tx = conn.client().transaction()?;
            let explain = format!(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {}",
                pool::expand(sql::CLAIM, &table)
            );
            let rows = tx.query(
                explain.as_str(),
                &[&self.offset(), &self.max(), &n, &&*self.owner, &lease_ms],
            )?;
            let lines = rows
                .iter()
                .map(|r| r.try_get::<_, String>(0))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            tx.rollback()?;
            Ok(lines.join("\n"))
        })
    }

    fn offset(&self) -> i64 {
        self.offset.load(Ordering::SeqCst)
    }

    fn max(&self) -> i64 {
        i64::from(self.settings.max_tries)
    }

    /// Claims up to `n` tasks; with none claimable, the earliest time one
    /// may be (`None`: nothing is to do) and the server's time now.
    fn claim_up_to(&self, n: usize) -> Result<(Vec<Lease>, Option<NextDue>)> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let lease_ms = ms_i64(self.settings.lease);
        let rows: Vec<(String, i64, i64)> = self.pool.run("claiming tasks", |conn, _| {
            let claim = conn.statement(sql::CLAIM)?;
            conn.client()
                .query(
                    &claim,
                    &[&self.offset(), &self.max(), &n, &&*self.owner, &lease_ms],
                )?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                .collect()
        })?;
        let mut leases = Vec::with_capacity(rows.len());
        for (key, tries, until) in rows {
            leases.push(Lease {
                try_number: tries_of(&key, tries)?,
                key,
                owner: self.owner.to_string(),
                until: time_of_ms(until),
            });
        }
        if !leases.is_empty() || n == 0 {
            return Ok((leases, None));
        }
        let next = self
            .pool
            .run("looking for the next claimable task", |conn, _| {
                let next = conn.statement(sql::NEXT_DUE)?;
                let row = conn.client().query_one(&next, &[&self.offset()])?;
                Ok((row.try_get::<_, Option<i64>>(0)?, row.try_get::<_, i64>(1)?))
            })?;
        Ok((leases, Some(next)))
    }

    fn claim_once(&self) -> Result<(Claim, i64)> {
        let (mut leases, next) = self.claim_up_to(1)?;
        if let Some(lease) = leases.pop() {
            return Ok((Claim::Task(lease), 0));
        }
        Ok(match next {
            Some((Some(due), now)) => (Claim::Wait(time_of_ms(due)), now),
            Some((None, now)) => (Claim::Finished, now),
            None => (Claim::Finished, 0),
        })
    }

    /// The task's columns.
    fn columns(&self, key: &str) -> Result<Option<Columns>> {
        self.pool.run("reading a task", |conn, _| {
            let task = conn.statement(sql::TASK)?;
            conn.client()
                .query_opt(&task, &[&key])?
                .map(|row| Columns::of(&row, 0))
                .transpose()
        })
    }

    /// Why the fenced call on `lease` changed nothing: `LeaseLost` with the
    /// reason, or `MissingKey`. `Ok` if the change was `done` by this very
    /// lease in an attempt whose answer was lost (`retried`).
    fn explain_fence(&self, lease: &Lease, retried: bool, done: Finished) -> Result<()> {
        let Some(task) = self.columns(&lease.key)? else {
            return fail(ErrorKind::MissingKey {
                key: lease.key.clone(),
            });
        };
        let tries = tries_of(&lease.key, task.tries)?;
        let ours = tries == lease.try_number && task.owner.as_deref() == Some(&lease.owner);
        let lost = |why: String| {
            fail(ErrorKind::LeaseLost {
                key: lease.key.clone(),
                why,
            })
        };
        if retried && ours {
            match done {
                Finished::Done if task.done => return Ok(()),
                Finished::Aborted if task.aborted => return Ok(()),
                _ => {}
            }
        }
        if retried && matches!(done, Finished::Other) && tries > lease.try_number {
            // A release committed before the connection was lost, and the
            // task was claimed again since: the release happened.
            return Ok(());
        }
        if task.done {
            return lost("the task is done already".into());
        }
        if task.aborted {
            return lost("the task was aborted".into());
        }
        if tries != lease.try_number {
            return lost(format!(
                "the lease was for try {}, and the task has had {tries} tries since another claim",
                lease.try_number
            ));
        }
        lost(format!(
            "it is claimed by {:?} now",
            task.owner.unwrap_or_default()
        ))
    }

    /// Runs the fenced statement `sql` for `lease` with the extra
    /// parameters `extra` (after `$4`); explains a change that did not happen.
    fn fenced(
        &self,
        what: &str,
        statement: &'static str,
        lease: &Lease,
        finished: Finished,
        extra: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<()> {
        let tries = i64::from(lease.try_number);
        let (changed, retried) = self.pool.run(what, |conn, retried| {
            let statement = conn.statement(statement)?;
            let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> =
                vec![&lease.key, &tries, &lease.owner];
            params.extend_from_slice(extra);
            Ok((conn.client().execute(&statement, &params)?, retried))
        })?;
        if changed > 0 {
            return Ok(());
        }
        self.explain_fence(lease, retried, finished)
    }
}

/// The parsed `url` and the connections to its database.
fn pool_for(url: &str) -> Result<(TrackerUrl, Pool)> {
    let url = TrackerUrl::parse(url)?;
    let mut config: postgres::Config =
        url.connection
            .parse()
            .map_err(|e: postgres::Error| ErrorKind::InvalidOption {
                name: "url",
                why: format!("{}: {e}", url.shown),
            })?;
    // The statements are prepared once per connection; their generic
    // plans are the ones DESIGN.md shows (no planning per call).
    let options = format!(
        "{} -c plan_cache_mode=force_generic_plan",
        config.get_options().unwrap_or_default()
    );
    config.options(options.trim());
    let pool = Pool::new(config, url.shown.clone());
    Ok((url, pool))
}

/// The table of the tasks of tracker `id`.
fn table_of(id: i32) -> String {
    format!("tastypod_tasks_{id}")
}

/// When nothing was claimable: the earliest time a task to do becomes
/// claimable (`None`: nothing is to do), and the server's time now (ms).
type NextDue = (Option<i64>, i64);

/// Which finish a fenced call makes (to recognise its own committed change).
#[derive(Clone, Copy)]
enum Finished {
    Done,
    Aborted,
    Other,
}

impl TaskQueue for PgTracker {
    fn add_keys(&self, keys: &[&str]) -> Result<usize> {
        if keys.is_empty() {
            return Ok(0);
        }
        let added = self.pool.run("adding tasks", |conn, _| {
            let add = conn.statement(sql::ADD)?;
            conn.client().execute(&add, &[&keys])
        })?;
        Ok(usize::try_from(added).unwrap_or(usize::MAX))
    }

    fn claim(&self) -> Result<Claim> {
        Ok(self.claim_once()?.0)
    }

    fn claim_many(&self, n: usize) -> Result<Vec<Lease>> {
        Ok(self.claim_up_to(n)?.0)
    }

    fn claim_wait(&self, timeout: Duration) -> Result<Claim> {
        let deadline = Instant::now() + timeout;
        loop {
            let (claim, now) = self.claim_once()?;
            let Claim::Wait(until) = claim else {
                return Ok(claim);
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || crate::signals::stop_requested() {
                return Ok(Claim::Wait(until));
            }
            let due = Duration::from_millis(
                u64::try_from(i64::try_from(millis(until)).unwrap_or(i64::MAX) - now).unwrap_or(0),
            );
            std::thread::sleep(due.max(Duration::from_millis(1)).min(POLL).min(left));
        }
    }

    fn complete(&self, lease: &Lease, fields: Map<String, Value>) -> Result<()> {
        let fields = fields_text(&user_fields(&lease.key, fields)?);
        self.fenced(
            "completing a task",
            sql::COMPLETE,
            lease,
            Finished::Done,
            &[&fields],
        )
    }

    fn abort_claim(&self, lease: &Lease, fields: Map<String, Value>) -> Result<()> {
        let fields = fields_text(&user_fields(&lease.key, fields)?);
        self.fenced(
            "aborting a task",
            sql::ABORT,
            lease,
            Finished::Aborted,
            &[&fields],
        )
    }

    fn release_claim(
        &self,
        lease: &Lease,
        delay: Option<Duration>,
        fields: Map<String, Value>,
    ) -> Result<()> {
        let fields = fields_text(&user_fields(&lease.key, fields)?);
        let delay =
            ms_i64(delay.unwrap_or_else(|| self.settings.retry.after_try(lease.try_number)));
        self.fenced(
            "releasing a task",
            sql::RELEASE,
            lease,
            Finished::Other,
            &[&fields, &delay, &self.offset(), &self.max()],
        )
    }

    fn extend_claim(&self, lease: &Lease) -> Result<Lease> {
        let tries = i64::from(lease.try_number);
        let lease_ms = ms_i64(self.settings.lease);
        let until: Option<i64> = self.pool.run("extending a lease", |conn, _| {
            let extend = conn.statement(sql::EXTEND)?;
            conn.client()
                .query_opt(
                    &extend,
                    &[&lease.key, &tries, &lease.owner, &self.offset(), &lease_ms],
                )?
                .map(|row| row.try_get(0))
                .transpose()
        })?;
        match until {
            Some(until) => Ok(Lease {
                until: time_of_ms(until),
                ..lease.clone()
            }),
            None => self
                .explain_fence(lease, false, Finished::Other)
                .map(|()| lease.clone()),
        }
    }

    /// One statement for them all.
    fn complete_many(&self, items: &[(Lease, Map<String, Value>)]) -> Result<Vec<bool>> {
        let mut keys = Vec::with_capacity(items.len());
        let mut tries = Vec::with_capacity(items.len());
        let mut owners = Vec::with_capacity(items.len());
        let mut fields = Vec::with_capacity(items.len());
        // The statement's items: the first of each key (a key given again
        // is not completed again, as one by one it would not be).
        let mut sent = Vec::with_capacity(items.len());
        let mut seen = std::collections::HashSet::new();
        for (i, (lease, f)) in items.iter().enumerate() {
            let f = user_fields(&lease.key, f.clone())?;
            if !seen.insert(lease.key.as_str()) {
                continue;
            }
            sent.push(i);
            keys.push(lease.key.as_str());
            tries.push(i64::from(lease.try_number));
            owners.push(lease.owner.as_str());
            fields.push(fields_text(&f));
        }
        let (positions, retried): (Vec<i64>, bool) =
            self.pool.run("completing tasks", |conn, retried| {
                let statement = conn.statement(sql::COMPLETE_MANY)?;
                let rows = conn
                    .client()
                    .query(&statement, &[&keys, &tries, &owners, &fields])?;
                let positions = rows
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<std::result::Result<_, _>>()?;
                Ok((positions, retried))
            })?;
        let mut completed = vec![false; items.len()];
        for i in positions {
            let item = usize::try_from(i - 1).ok().and_then(|i| sent.get(i));
            if let Some(slot) = item.and_then(|&i| completed.get_mut(i)) {
                *slot = true;
            }
        }
        if retried {
            // A run committed before its connection was lost: the items it
            // completed are done with their own owner and try.
            for &i in &sent {
                let (Some(slot), Some((lease, _))) = (completed.get_mut(i), items.get(i)) else {
                    continue;
                };
                if !*slot {
                    *slot = self.columns(&lease.key)?.is_some_and(|c| {
                        c.done
                            && c.tries == i64::from(lease.try_number)
                            && c.owner.as_deref() == Some(lease.owner.as_str())
                    });
                }
            }
        }
        Ok(completed)
    }

    fn get(&self, key: &str) -> Result<Option<Value>> {
        self.columns(key)?.map(|c| c.record(key)).transpose()
    }

    fn state(&self, key: &str) -> Result<Option<TaskState>> {
        self.columns(key)?.map(|c| c.state(key)).transpose()
    }

    fn update_fields(&self, key: &str, fields: Map<String, Value>) -> Result<bool> {
        let fields = fields_text(&user_fields(key, fields)?);
        let changed = self.pool.run("updating a task's fields", |conn, _| {
            let update = conn.statement(sql::UPDATE_FIELDS)?;
            conn.client().execute(&update, &[&key, &fields])
        })?;
        Ok(changed > 0)
    }

    fn counts(&self) -> Result<TaskCounts> {
        let row = self.pool.run("counting tasks", |conn, _| {
            let counts = conn.statement(sql::COUNTS)?;
            let row = conn.client().query_one(&counts, &[&self.max()])?;
            (0..8)
                .map(|i| row.try_get::<_, i64>(i))
                .collect::<std::result::Result<Vec<i64>, _>>()
        })?;
        let n = |i: usize| usize::try_from(row.get(i).copied().unwrap_or(0)).unwrap_or(0);
        Ok(TaskCounts {
            total: n(0),
            done: n(1),
            aborted: n(2),
            exhausted: n(3),
            todo: n(4),
            claimed: n(5),
            tried: n(6),
            tries: u64::try_from(row.get(7).copied().unwrap_or(0)).unwrap_or(0),
        })
    }

    fn todo_keys(&self, limit: usize) -> Result<Vec<String>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.pool.run("listing the tasks to do", |conn, _| {
            let todo = conn.statement(sql::TODO_KEYS)?;
            conn.client()
                .query(&todo, &[&limit])?
                .iter()
                .map(|r| r.try_get(0))
                .collect()
        })
    }

    /// Every call is committed when it returns: nothing to do.
    fn sync(&self) -> Result<()> {
        Ok(())
    }
}

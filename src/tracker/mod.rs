//! `Tracker`: a `Pod` of task records with gates and counters for resumable
//! loops. It owns the task-record schema: every value is a JSON object with
//! `_done` (bool), `_tries` (integer) and `_aborted` (bool) beside the
//! user's own fields. The three state fields are mirrored natively beside
//! each key, so gates and counters never parse JSON.

mod claims;
mod counts;
mod iter;
mod options;
mod schedule;
mod schema;
mod settings;

pub use claims::Claim;
pub(crate) use claims::pause_before;
pub use iter::{TaskMut, TryItems, TryKeys};
pub use options::TrackerOptions;
pub use schema::{ABORTED, DEFAULT_LEASE, DONE, LEASE, Lease, NOT_BEFORE, TRIES};
pub use settings::RetryDelay;

use crate::error::{ErrorKind, Result, fail};
use crate::index::{TaskState, ValueRef};
use crate::pod::{Pod, PodStats, RecoveryReport};
use counts::Counts;
use schedule::Schedule;
use schema::{
    lease_of, meta_of, new_record, not_before_of, parse_meta, parse_meta_fast, write_meta,
};
use serde_json::{Map, Value};
use settings::{Given, Settings};
use std::collections::HashMap;
use std::path::Path;

/// Whether a record's JSON text has a `"_lease"` or `"_not_before"` anywhere.
fn mentions_a_claim(text: &[u8]) -> bool {
    use memchr::memmem::Finder;
    static LEASE: std::sync::LazyLock<Finder<'static>> =
        std::sync::LazyLock::new(|| Finder::new(b"\"_lease\""));
    static NOT_BEFORE: std::sync::LazyLock<Finder<'static>> =
        std::sync::LazyLock::new(|| Finder::new(b"\"_not_before\""));
    LEASE.find(text).is_some() || NOT_BEFORE.find(text).is_some()
}

/// What a record's reserved fields say.
type Meta = (TaskState, Option<Lease>, Option<u64>);

/// Whether a gate or iterator considers aborted tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aborted {
    /// Aborted tasks are not to be done (tastypy's default).
    #[default]
    Skip,
    /// Aborted tasks count as to be done, like any other.
    Allow,
}

/// A progress tracker: a [`Pod`] whose values are task records, with gates
/// and counters that make resumable loops short.
///
/// # Examples
///
/// ```
/// use tastypod::{Aborted, TrackerOptions};
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("crawl.tracker");
/// let mut tracker = TrackerOptions::new().max_tries(3).open(&path)?;
/// tracker.add_many_if_absent(["a", "b", "c"])?;
///
/// let mut tasks = tracker.try_keys(Aborted::Skip);
/// while let Some(key) = tasks.next() {
///     let key = key?;
///     if key != "b" {
///         tasks.mark_done(&key)?; // `tasks` derefs to the tracker
///     }
/// }
/// drop(tasks);
/// assert_eq!(tracker.num_done(), 2);
/// assert_eq!(tracker.percent_done(1), "66.7 %");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[doc(alias = "ProgressTracker")]
pub struct Tracker {
    pod: Pod<Value>,
    /// The settings in force: those given to the open over the stored ones.
    settings: Settings,
    /// The settings given to the open (they win over stored ones on a reload).
    given: Given,
    counts: Counts,
    /// Claims found in the records (`_lease`), by key.
    leases: HashMap<String, Lease>,
    /// Retry times found in the records (`_not_before`), by key.
    not_before: HashMap<String, u64>,
    schedule: Schedule,
}

impl Tracker {
    /// Opens (creating if needed) the tracker at `path` with the default
    /// options (no limit on tries).
    ///
    /// # Errors
    ///
    /// See [`TrackerOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        TrackerOptions::new().open(path)
    }

    /// Makes a tracker of an opened pod: reads its stored settings (and
    /// stores the given ones if they differ, unless read-only), reads every
    /// record's state, and frees the claims no worker can hold any more.
    fn from_pod(pod: Pod<Value>, given: Given) -> Result<Self> {
        let mut tracker = Tracker {
            pod,
            settings: Settings::default(),
            given,
            counts: Counts::default(),
            leases: HashMap::new(),
            not_before: HashMap::new(),
            schedule: Schedule::default(),
        };
        tracker.op(|t| {
            let stored = t.stored_settings()?;
            t.settings = given.over(stored.unwrap_or_default());
            if !t.pod.is_read_only() && !given.is_empty() && stored != Some(t.settings) {
                let header = t.settings.into_header(t.pod.settings());
                t.pod.set_settings(Some(header))?;
            }
            t.load_meta()?;
            t.free_stale_claims()
        })?;
        Ok(tracker)
    }

    /// The settings the log's header holds, if any.
    fn stored_settings(&self) -> Result<Option<Settings>> {
        Settings::from_header(self.pod.settings()).map_err(|reason| {
            ErrorKind::BadSettings {
                path: self.pod.log_path().to_path_buf(),
                reason,
            }
            .into()
        })
    }

    /// Converts a plain pod into a tracker, adding the reserved fields to
    /// every value that lacks them (an object keeps its fields; any other
    /// value is kept under the field `"value"`). Like tastypy's
    /// `convert_to_tracker`. Returns how many records were converted.
    ///
    /// # Errors
    ///
    /// As [`Pod::sync`].
    #[doc(alias = "convert_to_tracker")]
    pub fn convert_pod(pod: &mut Pod<Value>) -> Result<usize> {
        let keys: Vec<String> = pod.keys().map(str::to_string).collect();
        let mut converted = 0;
        let mut held = pod.held();
        for key in keys {
            let Some(i) = held.slot_of(&key) else {
                continue;
            };
            if let ValueRef::Text(t) = held.value_at(i)
                && parse_meta(t).is_ok()
            {
                continue;
            }
            held.update(&key, |v| {
                if meta_of(v).is_ok() {
                    return;
                }
                if !v.is_object() {
                    let mut obj = Map::new();
                    obj.insert("value".into(), v.take());
                    *v = Value::Object(obj);
                }
                if let Value::Object(obj) = v {
                    // Keep reserved fields of the right type; replace the rest.
                    if !obj.get(DONE).is_some_and(Value::is_boolean) {
                        obj.insert(DONE.into(), false.into());
                    }
                    if !obj.get(TRIES).is_some_and(Value::is_u64) {
                        obj.insert(TRIES.into(), 0.into());
                    }
                    if !obj.get(ABORTED).is_some_and(Value::is_boolean) {
                        obj.insert(ABORTED.into(), false.into());
                    }
                }
                converted += 1;
            })?;
        }
        held.release()?;
        pod.sync()?;
        Ok(converted)
    }

    /// The state, lease and retry time recorded in slot `i`'s value.
    fn read_meta(&self, i: usize) -> Result<Meta> {
        let full = |v: &Value| meta_of(v).map(|m| (m, lease_of(v), not_before_of(v)));
        let read = match self.pod.value_at(i) {
            // The quick parse does not look for a lease or a retry time:
            // only records with neither anywhere may take it.
            ValueRef::Text(t) if !mentions_a_claim(t) => match parse_meta_fast(t) {
                Some(meta) => Ok((meta, None, None)),
                None => parse_meta(t).map(|m| (m, None, None)),
            },
            ValueRef::Text(t) => serde_json::from_slice::<Value>(t)
                .map_err(|e| format!("not JSON: {e}"))
                .and_then(|v| full(&v)),
            ValueRef::Live(v) => full(v),
        };
        read.map_err(|why| {
            ErrorKind::NotATask {
                path: self.pod.log_path().to_path_buf(),
                key: self.pod.key_at(i).to_string(),
                line: self.pod.line_at(i),
                why,
            }
            .into()
        })
    }

    /// Reads every record's state into the slots and recounts.
    pub(crate) fn load_meta(&mut self) -> Result<()> {
        let mut leases = HashMap::new();
        let mut not_before = HashMap::new();
        let slots: Vec<usize> = self.pod.slots().collect();
        for i in slots {
            let (mut meta, lease, retry) = self.read_meta(i)?;
            meta.claimed = lease.is_some();
            meta.delayed = retry.is_some();
            if let Some(lease) = lease {
                leases.insert(self.pod.key_at(i).to_string(), lease);
            }
            if let Some(t) = retry {
                not_before.insert(self.pod.key_at(i).to_string(), t);
            }
            self.pod.set_task_at(i, meta);
        }
        self.counts = self.recount();
        self.leases = leases;
        self.not_before = not_before;
        self.schedule = Schedule::default();
        Ok(())
    }

    /// The counters, counted anew from the task states.
    fn recount(&self) -> Counts {
        Counts::of(
            self.pod.slots().map(|i| self.pod.task_at(i)),
            self.settings.max_tries,
        )
    }

    /// Makes slot `i`'s mirrored state, the counters, the claims, the retry
    /// times and the claim schedule follow what its record now says.
    fn follow(&mut self, i: usize, state: TaskState, lease: Option<Lease>, retry: Option<u64>) {
        let before = self.pod.task_at(i);
        let after = TaskState {
            claimed: lease.is_some(),
            delayed: retry.is_some(),
            ..state
        };
        self.pod.set_task_at(i, after);
        self.counts.step(before, after);
        let key = self.pod.key_at(i);
        match lease {
            Some(lease) => drop(self.leases.insert(key.to_string(), lease)),
            None if before.claimed => drop(self.leases.remove(key)),
            None => {}
        }
        match retry {
            Some(t) => drop(self.not_before.insert(key.to_string(), t)),
            None if before.delayed => drop(self.not_before.remove(key)),
            None => {}
        }
        let ready = self.ready_at(i);
        self.schedule.note(self.pod.epoch(), i, ready);
    }

    /// [`follow`](Self::follow) a change of state alone (the lease and the
    /// retry time stay).
    fn follow_state(&mut self, i: usize, state: TaskState) {
        let before = self.pod.task_at(i);
        let key = self.pod.key_at(i);
        let lease = before
            .claimed
            .then(|| self.leases.get(key).cloned())
            .flatten();
        let retry = before
            .delayed
            .then(|| self.not_before.get(key).copied())
            .flatten();
        self.follow(i, state, lease, retry);
    }

    /// When slot `i`'s task can be claimed (unix ms; 0: now), or `None` if
    /// it is not to do.
    fn ready_at(&self, i: usize) -> Option<u64> {
        let state = self.pod.task_at(i);
        if !counts::is_todo(state, self.settings.max_tries) {
            return None;
        }
        let key = || self.pod.key_at(i);
        let lease = match state.claimed {
            true => self.leases.get(key()).map_or(0, |l| l.until_ms),
            false => 0,
        };
        let retry = match state.delayed {
            true => self.not_before.get(key()).copied().unwrap_or(0),
            false => 0,
        };
        Some(lease.max(retry))
    }

    /// Debug builds: the counters agree with the task states.
    fn check_counts(&self) {
        #[cfg(debug_assertions)]
        if self.len() <= 4096 {
            debug_assert_eq!(self.counts, self.recount(), "the counters drifted");
        }
    }

    /// Runs `f` as one atomic step; see [`Pod::atomically`].
    ///
    /// # Errors
    ///
    /// What `f` returns, or [`ErrorKind::Io`] if the lock or the catch-up fails.
    pub fn atomically<R>(&mut self, f: impl FnOnce(&mut Tracker) -> Result<R>) -> Result<R> {
        self.op(f)
    }

    /// Runs `f` as one store operation: in shared mode, under the store's
    /// lock and after taking in what other processes wrote.
    fn op<R>(&mut self, f: impl FnOnce(&mut Tracker) -> Result<R>) -> Result<R> {
        self.pod.op_begin()?;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let out = self.absorb().and_then(|()| f(self));
            if out.is_ok() {
                self.check_counts();
            }
            out
        }));
        let ended = self.pod.op_end();
        let value = match result {
            Ok(value) => value?,
            // The store's lock is released; let the panic go on.
            Err(panic) => std::panic::resume_unwind(panic),
        };
        ended?;
        Ok(value)
    }

    /// Takes in the records other processes wrote (shared mode).
    fn absorb(&mut self) -> Result<()> {
        let external = self.pod.take_external();
        if external.reloaded {
            // A rewrite may have changed the stored settings too.
            let stored = self.stored_settings()?;
            self.settings = self.given.over(stored.unwrap_or_default());
            return self.load_meta();
        }
        for key in external.changed {
            let Some(i) = self.pod.slot_of(&key) else {
                // Trackers do not remove keys; if someone did, recount.
                return self.load_meta();
            };
            let (state, lease, retry) = self.read_meta(i)?;
            self.follow(i, state, lease, retry);
        }
        Ok(())
    }

    /// Picks up what other processes wrote since this handle last looked
    /// (shared mode), or newly synced records (read-only handles).
    ///
    /// # Errors
    ///
    /// As [`Pod::refresh`], plus [`ErrorKind::NotATask`].
    pub fn refresh(&mut self) -> Result<()> {
        if self.pod.is_read_only() {
            self.pod.refresh()?;
            return self.absorb();
        }
        self.op(|_| Ok(()))
    }

    /// The underlying pod, for reading.
    pub fn pod(&self) -> &Pod<Value> {
        &self.pod
    }

    /// The try limit (0: none): given to the open, else stored with the
    /// tracker, else 0.
    pub fn max_tries(&self) -> u32 {
        self.settings.max_tries
    }

    /// How long a released task waits before it is claimed again: given to
    /// the open, else stored with the tracker, else [`RetryDelay::None`].
    pub fn retry_delay(&self) -> RetryDelay {
        self.settings.retry
    }

    /// The tracker's directory.
    pub fn path(&self) -> &Path {
        self.pod.path()
    }

    /// What opening found and repaired.
    pub fn recovery(&self) -> &RecoveryReport {
        self.pod.recovery()
    }

    /// Sizes of the log.
    pub fn stats(&self) -> PodStats {
        self.pod.stats()
    }

    /// The number of tasks.
    pub fn len(&self) -> usize {
        self.pod.len()
    }

    /// Whether there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.pod.is_empty()
    }

    /// Whether `key` is a task.
    pub fn contains_key(&self, key: &str) -> bool {
        self.pod.contains_key(key)
    }

    /// The task keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.pod.keys()
    }

    /// The whole record of `key` (reserved and user fields).
    ///
    /// # Errors
    ///
    /// As [`Pod::get`].
    pub fn get(&self, key: &str) -> Result<Option<Value>> {
        self.pod.get(key)
    }

    /// `(key, record)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = Result<(&str, Value)>> + '_ {
        self.pod.iter()
    }

    /// The number of keys with unsynced changes.
    pub fn dirty_len(&self) -> usize {
        self.pod.dirty_len()
    }

    /// See [`Pod::sync`].
    ///
    /// # Errors
    ///
    /// As [`Pod::sync`].
    pub fn sync(&mut self) -> Result<()> {
        self.op(|t| t.pod.sync())
    }

    /// See [`Pod::hold`].
    pub fn hold(&mut self) {
        self.pod.hold();
    }

    /// See [`Pod::unhold`].
    ///
    /// # Errors
    ///
    /// As [`Pod::sync`].
    pub fn unhold(&mut self) -> Result<()> {
        self.op(|t| t.pod.unhold())
    }

    /// See [`Pod::compact`].
    ///
    /// # Errors
    ///
    /// As [`Pod::compact`].
    pub fn compact(&mut self) -> Result<()> {
        self.op(|t| t.pod.compact())
    }

    /// Discards unsynced changes and reloads from disk; counters follow.
    ///
    /// # Errors
    ///
    /// As [`Pod::revert`], plus [`ErrorKind::NotATask`].
    pub fn revert(&mut self) -> Result<()> {
        self.pod.revert()?;
        self.load_meta()
    }

    /// Syncs and closes the tracker.
    ///
    /// # Errors
    ///
    /// As [`Pod::close`].
    pub fn close(self) -> Result<()> {
        self.pod.close()
    }

    // ---- adding ----

    /// Adds a new task; fails with [`ErrorKind::DuplicateKey`] if present.
    ///
    /// # Errors
    ///
    /// Also as [`Pod::insert`].
    pub fn add(&mut self, key: &str) -> Result<()> {
        self.add_with(key, Map::new())
    }

    /// Adds a new task carrying the user's `fields`; fails with
    /// [`ErrorKind::DuplicateKey`] if present.
    ///
    /// # Errors
    ///
    /// Also as [`Pod::insert`].
    pub fn add_with(&mut self, key: &str, fields: Map<String, Value>) -> Result<()> {
        self.op(|t| t.add_with_now(key, fields))
    }

    fn add_with_now(&mut self, key: &str, fields: Map<String, Value>) -> Result<()> {
        if self.contains_key(key) {
            return fail(ErrorKind::DuplicateKey { key: key.into() });
        }
        self.pod.insert(key, new_record(fields))
    }

    /// Adds a task unless present; returns whether it was added.
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`].
    pub fn add_if_absent(&mut self, key: &str) -> Result<bool> {
        self.op(|t| t.add_if_absent_now(key))
    }

    fn add_if_absent_now(&mut self, key: &str) -> Result<bool> {
        if self.contains_key(key) {
            return Ok(false);
        }
        self.pod.insert(key, new_record(Map::new()))?;
        Ok(true)
    }

    /// Adds every key as a new task, or none of them if any is present
    /// (or repeated).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::DuplicateKey`] naming the first duplicate; also as
    /// [`Pod::insert`].
    pub fn add_many<K: AsRef<str>>(&mut self, keys: impl IntoIterator<Item = K>) -> Result<()> {
        self.op(|t| t.add_many_now(keys))
    }

    fn add_many_now<K: AsRef<str>>(&mut self, keys: impl IntoIterator<Item = K>) -> Result<()> {
        let keys: Vec<K> = keys.into_iter().collect();
        let mut seen = std::collections::HashSet::with_capacity(keys.len());
        for key in &keys {
            let key = key.as_ref();
            if self.contains_key(key) || !seen.insert(key) {
                return fail(ErrorKind::DuplicateKey { key: key.into() });
            }
        }
        for key in &keys {
            self.pod.insert(key.as_ref(), new_record(Map::new()))?;
        }
        Ok(())
    }

    /// Adds each key that is absent; returns how many were added.
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`].
    pub fn add_many_if_absent<K: AsRef<str>>(
        &mut self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<usize> {
        let mut added = 0;
        for key in keys {
            added += usize::from(self.add_if_absent(key.as_ref())?);
        }
        Ok(added)
    }

    /// Merges the user's fields into many tasks, adding missing ones first
    /// (tastypy's `update`). Reserved fields are kept unless `fields` sets
    /// them.
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`]; [`ErrorKind::NotATask`] if `fields` sets a
    /// reserved field to a value of the wrong type.
    pub fn update<K: AsRef<str>>(
        &mut self,
        items: impl IntoIterator<Item = (K, Map<String, Value>)>,
    ) -> Result<()> {
        for (key, fields) in items {
            let key = key.as_ref();
            self.add_if_absent(key)?;
            self.update_task(key, |record| {
                if let Value::Object(obj) = record {
                    obj.extend(fields);
                }
            })?;
        }
        Ok(())
    }

    // ---- user data ----

    /// Runs `f` on the whole record of `key` and marks it dirty; a mutated
    /// field is written by the next sync. Changes to the reserved fields
    /// are honoured when they have the right type and undone otherwise.
    /// Returns `None` if the key is absent.
    ///
    /// # Errors
    ///
    /// As [`Pod::update`].
    pub fn update_task<R>(
        &mut self,
        key: &str,
        f: impl FnOnce(&mut Value) -> R,
    ) -> Result<Option<R>> {
        self.op(|t| t.update_task_now(key, f))
    }

    fn update_task_now<R>(
        &mut self,
        key: &str,
        f: impl FnOnce(&mut Value) -> R,
    ) -> Result<Option<R>> {
        let Some(mut task) = self.task_mut(key)? else {
            return Ok(None);
        };
        let out = f(&mut task);
        drop(task);
        self.pod.after_change()?;
        Ok(Some(out))
    }

    /// Mutable access to the whole record of `key`, marking it dirty; see
    /// [`update_task`](Tracker::update_task).
    ///
    /// # Errors
    ///
    /// As [`Pod::get_mut`].
    pub fn task_mut(&mut self, key: &str) -> Result<Option<TaskMut<'_>>> {
        // In shared mode `get_mut` first takes in other processes' records,
        // which may renumber slots: find the slot after it.
        let Some(record) = self.pod.get_mut(key)? else {
            return Ok(None);
        };
        let record = record.take();
        let Some(i) = self.pod.slot_of(key) else {
            return Ok(None);
        };
        let before = self.pod.task_at(i);
        Ok(Some(TaskMut {
            tracker: self,
            key: key.to_string(),
            before,
            record,
        }))
    }

    // ---- state ----

    fn meta(&self, key: &str) -> Option<TaskState> {
        self.pod.slot_of(key).map(|i| self.pod.task_at(i))
    }

    /// Applies `change` to the state of `key`, writing it into the record.
    fn change(&mut self, key: &str, change: impl FnOnce(&mut TaskState)) -> Result<()> {
        self.op(|t| t.change_now(key, change))
    }

    fn change_now(&mut self, key: &str, change: impl FnOnce(&mut TaskState)) -> Result<()> {
        // A due sync (and a compaction, which renumbers slots) happens first.
        self.pod.after_change()?;
        let Some(i) = self.pod.slot_of(key) else {
            return fail(ErrorKind::MissingKey { key: key.into() });
        };
        let before = self.pod.task_at(i);
        let mut after = before;
        change(&mut after);
        if after == before {
            return Ok(());
        }
        match self.pod.get_mut(key)? {
            Some(record) => write_meta(record, after),
            None => return fail(ErrorKind::MissingKey { key: key.into() }),
        }
        self.follow_state(i, after);
        self.pod.after_change()
    }

    /// Edits the reserved fields of `key`'s record with `f` (the tracker's
    /// state follows); fails with [`ErrorKind::MissingKey`] if absent.
    fn edit_now(&mut self, key: &str, f: impl FnOnce(&mut Map<String, Value>)) -> Result<()> {
        let edited = self.update_task_now(key, |record| {
            if let Value::Object(obj) = record {
                f(obj);
            }
        })?;
        match edited {
            Some(()) => Ok(()),
            None => fail(ErrorKind::MissingKey { key: key.into() }),
        }
    }

    /// Whether `key` is done (false for an unknown key); tastypy's `check`.
    #[doc(alias = "check")]
    pub fn done(&self, key: &str) -> bool {
        self.meta(key).is_some_and(|m| m.done)
    }

    /// How many times `key` was tried (0 for an unknown key).
    pub fn tries(&self, key: &str) -> u32 {
        self.meta(key).map_or(0, |m| m.tries)
    }

    /// Whether the program aborted `key` ([`abort`](Tracker::abort));
    /// false for an unknown key. A task out of tries is
    /// [`exhausted`](Tracker::exhausted), not aborted.
    pub fn aborted(&self, key: &str) -> bool {
        self.meta(key).is_some_and(|m| m.aborted)
    }

    /// Whether `key` is out of tries: not done, not aborted, not claimed,
    /// and tried as often as the [`max_tries`](Tracker::max_tries) limit
    /// allows (false for an unknown key, and always without a limit). Such
    /// a task is given up: no gate or claim hands it out. Raising the limit
    /// (or [`reset_tries`](Tracker::reset_tries)) makes it to do again.
    pub fn exhausted(&self, key: &str) -> bool {
        self.meta(key)
            .is_some_and(|m| counts::is_exhausted(m, self.settings.max_tries))
    }

    /// Marks `key` done. This ends a claim on it ([`claim_next`](Tracker::claim_next))
    /// and clears a retry time: the lease and the `_not_before` field are
    /// removed from the record.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MissingKey`] if absent; also as [`Pod::insert`].
    pub fn mark_done(&mut self, key: &str) -> Result<()> {
        self.op(|t| t.finish_now(key, DONE))
    }

    /// Sets the reserved flag `field` (done or aborted) of `key`, ending
    /// its claim and clearing its retry time.
    fn finish_now(&mut self, key: &str, field: &'static str) -> Result<()> {
        match self.meta(key) {
            Some(m) if m.claimed || m.delayed => self.edit_now(key, |obj| {
                obj.insert(field.into(), true.into());
                obj.remove(LEASE);
                obj.remove(NOT_BEFORE);
            }),
            _ if field == DONE => self.change_now(key, |m| m.done = true),
            _ => self.change_now(key, |m| m.aborted = true),
        }
    }

    /// Marks `key` not done.
    ///
    /// # Errors
    ///
    /// As [`mark_done`](Tracker::mark_done).
    pub fn mark_not_done(&mut self, key: &str) -> Result<()> {
        self.change(key, |m| m.done = false)
    }

    /// Adds one to the tries of `key`.
    ///
    /// # Errors
    ///
    /// As [`mark_done`](Tracker::mark_done).
    pub fn increment_tries(&mut self, key: &str) -> Result<()> {
        self.op(|t| {
            if t.meta(key).is_some_and(|m| m.tries == u32::MAX) {
                return fail(schema::too_many_tries(key));
            }
            t.change_now(key, |m| m.tries += 1)
        })
    }

    /// Takes one from the tries of `key` (not below 0).
    ///
    /// # Errors
    ///
    /// As [`mark_done`](Tracker::mark_done).
    pub fn decrement_tries(&mut self, key: &str) -> Result<()> {
        self.change(key, |m| m.tries = m.tries.saturating_sub(1))
    }

    /// Sets the tries of `key` to 0.
    ///
    /// # Errors
    ///
    /// As [`mark_done`](Tracker::mark_done).
    pub fn reset_tries(&mut self, key: &str) -> Result<()> {
        self.change(key, |m| m.tries = 0)
    }

    /// Marks `key` aborted (given up): the gates and
    /// [`claim_next`](Tracker::claim_next) skip it unless told otherwise.
    /// This ends a claim on it and clears a retry time, like
    /// [`mark_done`](Tracker::mark_done).
    ///
    /// # Errors
    ///
    /// As [`mark_done`](Tracker::mark_done).
    pub fn abort(&mut self, key: &str) -> Result<()> {
        self.op(|t| t.finish_now(key, ABORTED))
    }

    /// Clears the aborted mark of `key`.
    ///
    /// # Errors
    ///
    /// As [`mark_done`](Tracker::mark_done).
    pub fn unabort(&mut self, key: &str) -> Result<()> {
        self.change(key, |m| m.aborted = false)
    }

    // ---- gates ----

    fn is_todo(&self, meta: TaskState, aborted: Aborted) -> bool {
        let meta = match aborted {
            Aborted::Allow => TaskState {
                aborted: false,
                ..meta
            },
            Aborted::Skip => meta,
        };
        counts::is_todo(meta, self.settings.max_tries)
    }

    /// Whether `key` is to be done: present, not done, not aborted (unless
    /// `aborted` allows it), and under the try limit (or claimed by a
    /// worker), as tastypy's `should_do`. Counts nothing.
    pub fn should_do(&self, key: &str, aborted: Aborted) -> bool {
        self.meta(key).is_some_and(|m| self.is_todo(m, aborted))
    }

    /// [`should_do`](Tracker::should_do), adding `key` first if absent.
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`].
    #[doc(alias = "check_or_add")]
    pub fn should_do_add(&mut self, key: &str, aborted: Aborted) -> Result<bool> {
        self.add_if_absent(key)?;
        Ok(self.should_do(key, aborted))
    }

    /// Whether `key` should be tried now: to be done and under the try
    /// limit. When it says yes, it counts the try.
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`].
    pub fn should_try(&mut self, key: &str, aborted: Aborted) -> Result<bool> {
        self.op(|t| t.should_try_now(key, aborted))
    }

    fn should_try_now(&mut self, key: &str, aborted: Aborted) -> Result<bool> {
        match self.meta(key) {
            Some(m) if self.is_todo(m, aborted) => {
                self.increment_tries(key)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// [`should_try`](Tracker::should_try), adding `key` first if absent
    /// (tastypy's `try_it`).
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`].
    #[doc(alias = "try_it")]
    pub fn should_try_add(&mut self, key: &str, aborted: Aborted) -> Result<bool> {
        self.add_if_absent(key)?;
        self.should_try(key, aborted)
    }

    // ---- iteration ----

    /// Keys still to do, in order: not done, not aborted (unless allowed),
    /// under the try limit.
    pub fn todo_keys(&self, aborted: Aborted) -> impl Iterator<Item = &str> + '_ {
        self.pod
            .slots()
            .filter(move |&i| self.is_todo(self.pod.task_at(i), aborted))
            .map(move |i| self.pod.key_at(i))
    }

    /// `(key, record)` pairs still to do, in order.
    pub fn todo_items(&self, aborted: Aborted) -> impl Iterator<Item = Result<(&str, Value)>> + '_ {
        self.todo_keys(aborted)
            .map(|k| self.pod.get(k).map(|v| (k, v.unwrap_or(Value::Null))))
    }

    /// Aborted keys, in order.
    pub fn aborted_keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.pod
            .slots()
            .filter(move |&i| self.pod.task_at(i).aborted)
            .map(move |i| self.pod.key_at(i))
    }

    /// Keys out of tries (see [`exhausted`](Tracker::exhausted)), in order.
    pub fn exhausted_keys(&self) -> impl Iterator<Item = &str> + '_ {
        let max = self.settings.max_tries;
        self.pod
            .slots()
            .filter(move |&i| counts::is_exhausted(self.pod.task_at(i), max))
            .map(move |i| self.pod.key_at(i))
    }

    /// `(key, record)` pairs of aborted tasks, in order.
    pub fn aborted_items(&self) -> impl Iterator<Item = Result<(&str, Value)>> + '_ {
        self.aborted_keys()
            .map(|k| self.pod.get(k).map(|v| (k, v.unwrap_or(Value::Null))))
    }

    /// Like [`try_keys`](Tracker::try_keys), yielding each key with its
    /// record (read after the try is counted). Derefs to the tracker.
    pub fn try_items(&mut self, aborted: Aborted) -> TryItems<'_> {
        TryItems::new(self.try_keys(aborted))
    }

    /// Keys to try, in order, counting a try for each key as it is yielded.
    /// The iterator derefs to the tracker, so the loop body can mark tasks
    /// done through it.
    pub fn try_keys(&mut self, aborted: Aborted) -> TryKeys<'_> {
        TryKeys {
            generation: self.pod.epoch(),
            tracker: self,
            aborted,
            next: 0,
            last: None,
        }
    }
}

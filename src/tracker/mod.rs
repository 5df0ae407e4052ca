//! `Tracker`: a `Pod` of task records with gates and counters for resumable
//! loops. It owns the task-record schema: every value is a JSON object with
//! `_done` (bool), `_tries` (integer) and `_aborted` (bool) beside the
//! user's own fields. The three state fields are mirrored natively beside
//! each key, so gates and counters never parse JSON.

mod claims;
mod counts;
mod iter;
mod options;
mod schema;

pub use iter::{TaskMut, TryItems, TryKeys};
pub use options::TrackerOptions;
pub use schema::{ABORTED, DEFAULT_LEASE, DONE, LEASE, Lease, TRIES};

use crate::error::{ErrorKind, Result, fail};
use crate::index::{TaskState, ValueRef};
use crate::pod::{Pod, PodStats, RecoveryReport};
use counts::Counts;
use schema::{lease_of, meta_of, new_record, parse_meta, parse_meta_fast, write_meta};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Whether a record's JSON text has a `"_lease"` anywhere.
fn mentions_a_lease(text: &[u8]) -> bool {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"_lease\""));
    FINDER.find(text).is_some()
}

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
pub struct Tracker {
    pod: Pod<Value>,
    max_tries: u32,
    counts: Counts,
    /// Claims found in the records, by key.
    leases: HashMap<String, Lease>,
    lease: Duration,
    /// Slots before this one cannot be claimed, valid for one pod epoch.
    claim_from: (usize, (u64, u64)),
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

    fn from_pod(pod: Pod<Value>, max_tries: u32) -> Result<Self> {
        let mut tracker = Tracker {
            pod,
            max_tries,
            counts: Counts::default(),
            leases: HashMap::new(),
            lease: DEFAULT_LEASE,
            claim_from: (0, (u64::MAX, 0)),
        };
        tracker.load_meta()?;
        Ok(tracker)
    }

    /// Converts a plain pod into a tracker, adding the reserved fields to
    /// every value that lacks them (an object keeps its fields; any other
    /// value is kept under the field `"value"`). Like tastypy's
    /// `convert_to_tracker`. Returns how many records were converted.
    ///
    /// # Errors
    ///
    /// As [`Pod::sync`].
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

    /// The state (and lease) recorded in slot `i`'s value.
    fn read_meta(&self, i: usize) -> Result<(TaskState, Option<Lease>)> {
        let read = match self.pod.value_at(i) {
            // The quick parse does not look for a lease: only records with
            // none anywhere may take it.
            ValueRef::Text(t) if !mentions_a_lease(t) => match parse_meta_fast(t) {
                Some(meta) => Ok((meta, None)),
                None => parse_meta(t).map(|m| (m, None)),
            },
            ValueRef::Text(t) => serde_json::from_slice::<Value>(t)
                .map_err(|e| format!("not JSON: {e}"))
                .and_then(|v| meta_of(&v).map(|m| (m, lease_of(&v)))),
            ValueRef::Live(v) => meta_of(v).map(|m| (m, lease_of(v))),
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
        let slots: Vec<usize> = self.pod.slots().collect();
        for i in slots {
            let (meta, lease) = self.read_meta(i)?;
            if let Some(lease) = lease {
                leases.insert(self.pod.key_at(i).to_string(), lease);
            }
            self.pod.set_task_at(i, meta);
        }
        self.counts = self.recount();
        self.leases = leases;
        self.claim_from = (0, self.pod.epoch());
        Ok(())
    }

    /// The counters, counted anew from the task states.
    fn recount(&self) -> Counts {
        Counts::of(self.pod.slots().map(|i| self.pod.task_at(i)))
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
            self.check_counts();
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
            return self.load_meta();
        }
        for key in external.changed {
            let Some(i) = self.pod.slot_of(&key) else {
                // Trackers do not remove keys; if someone did, recount.
                return self.load_meta();
            };
            let before = self.pod.task_at(i);
            let (after, lease) = self.read_meta(i)?;
            self.pod.set_task_at(i, after);
            self.counts.step(before, after);
            match lease {
                Some(lease) => self.leases.insert(key, lease),
                None => self.leases.remove(&key),
            };
            self.claim_from.0 = self.claim_from.0.min(i);
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

    /// The try limit (0: none).
    pub fn max_tries(&self) -> u32 {
        self.max_tries
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
        self.pod.set_task_at(i, after);
        self.counts.step(before, after);
        if !after.done && !after.aborted {
            // The task may be claimable again.
            self.claim_from.0 = self.claim_from.0.min(i);
        }
        self.pod.after_change()
    }

    /// Whether `key` is done (false for an unknown key).
    pub fn done(&self, key: &str) -> bool {
        self.meta(key).is_some_and(|m| m.done)
    }

    /// How many times `key` was tried (0 for an unknown key).
    pub fn tries(&self, key: &str) -> u32 {
        self.meta(key).map_or(0, |m| m.tries)
    }

    /// Whether `key` was aborted (false for an unknown key).
    pub fn aborted(&self, key: &str) -> bool {
        self.meta(key).is_some_and(|m| m.aborted)
    }

    /// Marks `key` done.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MissingKey`] if absent; also as [`Pod::insert`].
    pub fn mark_done(&mut self, key: &str) -> Result<()> {
        self.change(key, |m| m.done = true)?;
        self.release(key)
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
        self.change(key, |m| m.tries = m.tries.saturating_add(1))
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

    /// Marks `key` aborted: the gates skip it unless told otherwise.
    ///
    /// # Errors
    ///
    /// As [`mark_done`](Tracker::mark_done).
    pub fn abort(&mut self, key: &str) -> Result<()> {
        self.change(key, |m| m.aborted = true)?;
        self.release(key)
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
        !meta.done
            && (aborted == Aborted::Allow || !meta.aborted)
            && (self.max_tries == 0 || meta.tries < self.max_tries)
    }

    /// Whether `key` is to be done: present, not done, and not aborted
    /// (unless `aborted` allows it). Ignores the try limit.
    pub fn should_do(&self, key: &str, aborted: Aborted) -> bool {
        self.meta(key)
            .is_some_and(|m| !m.done && (aborted == Aborted::Allow || !m.aborted))
    }

    /// [`should_do`](Tracker::should_do), adding `key` first if absent.
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`].
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

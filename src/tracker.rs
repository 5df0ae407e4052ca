//! `Tracker`: a `Pod` of task records with gates and counters for resumable
//! loops. It owns the task-record schema: every value is a JSON object with
//! `_done` (bool), `_tries` (integer) and `_aborted` (bool) beside the
//! user's own fields. The three state fields are mirrored natively beside
//! each key, so gates and counters never parse JSON.

use crate::error::{ErrorKind, Result, fail};
use crate::index::{Meta, ValueRef};
use crate::options::{Compaction, Durability, PodOptions, Recovery};
use crate::pod::{Pod, PodStats, RecoveryReport};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The reserved field: whether the task is done.
pub const DONE: &str = "_done";
/// The reserved field: how many times the task was tried.
pub const TRIES: &str = "_tries";
/// The reserved field: whether the task was given up on.
pub const ABORTED: &str = "_aborted";
/// The reserved field of a claimed task: `{"owner": "...", "until": <unix ms>}`.
pub const LEASE: &str = "_lease";

/// How long a claim lasts unless [`TrackerOptions::lease`] says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// A claim on a task: who holds it and until when (milliseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who claimed the task.
    pub owner: String,
    /// When the claim expires, in milliseconds since the Unix epoch.
    pub until_ms: u64,
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn lease_of(value: &Value) -> Option<Lease> {
    let lease = value.get(LEASE)?;
    Some(Lease {
        owner: lease.get("owner")?.as_str()?.to_string(),
        until_ms: lease.get("until")?.as_u64()?,
    })
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

/// Options for opening a [`Tracker`]: `max_tries` plus every [`PodOptions`] setting.
///
/// # Examples
///
/// ```
/// use tastypod::TrackerOptions;
/// # let dir = tempfile::tempdir()?;
/// let tracker = TrackerOptions::new()
///     .max_tries(3)
///     .sync_at(500)
///     .open(dir.path().join("jobs.tracker"))?;
/// assert_eq!(tracker.max_tries(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TrackerOptions {
    pod: PodOptions,
    max_tries: u32,
    lease: Duration,
}

impl Default for TrackerOptions {
    fn default() -> Self {
        PodOptions::new().into()
    }
}

impl From<PodOptions> for TrackerOptions {
    fn from(pod: PodOptions) -> Self {
        TrackerOptions {
            pod,
            max_tries: 0,
            lease: DEFAULT_LEASE,
        }
    }
}

impl TrackerOptions {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a claim made by [`Tracker::claim_next`] lasts before another
    /// worker may claim the task again. Default: [`DEFAULT_LEASE`] (60 s).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How many tries a task gets before the gates skip it; 0 means no
    /// limit. Default: 0.
    #[must_use]
    pub fn max_tries(mut self, max_tries: u32) -> Self {
        self.max_tries = max_tries;
        self
    }

    /// See [`PodOptions::sync_at`]. Default: 1000.
    #[must_use]
    pub fn sync_at(mut self, dirty_keys: usize) -> Self {
        self.pod = self.pod.sync_at(dirty_keys);
        self
    }

    /// See [`PodOptions::read_only`]. Default: false.
    #[must_use]
    pub fn read_only(mut self, yes: bool) -> Self {
        self.pod = self.pod.read_only(yes);
        self
    }

    /// See [`PodOptions::durability`]. Default: [`Durability::Full`].
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.pod = self.pod.durability(durability);
        self
    }

    /// See [`PodOptions::compaction`]. Default: [`Compaction::Auto`].
    #[must_use]
    pub fn compaction(mut self, compaction: Compaction) -> Self {
        self.pod = self.pod.compaction(compaction);
        self
    }

    /// See [`PodOptions::recovery`]. Default: [`Recovery::TornTail`].
    #[must_use]
    pub fn recovery(mut self, recovery: Recovery) -> Self {
        self.pod = self.pod.recovery(recovery);
        self
    }

    /// See [`PodOptions::shared`]: several processes may write the tracker
    /// at once, and [`Tracker::claim_next`] is atomic across them. Default: false.
    #[must_use]
    pub fn shared(mut self, yes: bool) -> Self {
        self.pod = self.pod.shared(yes);
        self
    }

    /// See [`PodOptions::wait_for_lock`]. Default: false.
    #[must_use]
    pub fn wait_for_lock(mut self, yes: bool) -> Self {
        self.pod = self.pod.wait_for_lock(yes);
        self
    }

    /// Opens (creating if needed) the tracker at `path`.
    ///
    /// # Errors
    ///
    /// As [`Pod::open`], plus [`ErrorKind::NotATask`] naming the key and
    /// line of a value that is not a task record.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Tracker> {
        let pod = self.pod.open(path)?;
        let mut tracker = Tracker::from_pod(pod, self.max_tries)?;
        tracker.lease = self.lease;
        Ok(tracker)
    }
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
    num_done: usize,
    num_tried: usize,
    num_aborted: usize,
    /// Claims found in the records, by key.
    leases: HashMap<String, Lease>,
    lease: Duration,
    /// Slots before this one cannot be claimed, valid for one pod epoch.
    claim_from: (usize, (u64, u64)),
}

/// Reads the three state fields from a record's JSON text.
fn parse_meta(text: &[u8]) -> std::result::Result<Meta, String> {
    if let Some(meta) = parse_meta_fast(text) {
        return Ok(meta);
    }
    let value: Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
    meta_of(&value)
}

/// The layout serde_json writes for a task whose field names all sort after
/// `_tries`: `{"_aborted":B,"_done":B,"_tries":N...`.
fn parse_meta_fast(text: &[u8]) -> Option<Meta> {
    fn boolean(t: &[u8]) -> Option<(bool, &[u8])> {
        t.strip_prefix(b"true")
            .map(|r| (true, r))
            .or_else(|| t.strip_prefix(b"false").map(|r| (false, r)))
    }
    let rest = text.strip_prefix(b"{\"_aborted\":")?;
    let (aborted, rest) = boolean(rest)?;
    let rest = rest.strip_prefix(b",\"_done\":")?;
    let (done, rest) = boolean(rest)?;
    let rest = rest.strip_prefix(b",\"_tries\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (number, rest) = rest.split_at(digits);
    if !matches!(rest.first(), Some(b',' | b'}')) || number.is_empty() || number.len() > 9 {
        return None;
    }
    let tries = std::str::from_utf8(number).ok()?.parse().ok()?;
    Some(Meta {
        tries,
        done,
        aborted,
    })
}

/// Reads the three state fields from a decoded record.
fn meta_of(value: &Value) -> std::result::Result<Meta, String> {
    let obj = value.as_object().ok_or("not a JSON object")?;
    let flag = |name: &str| {
        obj.get(name)
            .ok_or(format!("missing {name}"))?
            .as_bool()
            .ok_or(format!("{name} is not true or false"))
    };
    let tries = obj
        .get(TRIES)
        .ok_or(format!("missing {TRIES}"))?
        .as_u64()
        .ok_or(format!("{TRIES} is not a non-negative integer"))?;
    Ok(Meta {
        tries: u32::try_from(tries).unwrap_or(u32::MAX),
        done: flag(DONE)?,
        aborted: flag(ABORTED)?,
    })
}

/// Writes `meta` into the reserved fields of `value`, making it an object.
fn write_meta(value: &mut Value, meta: Meta) {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    if let Value::Object(obj) = value {
        obj.insert(DONE.into(), meta.done.into());
        obj.insert(TRIES.into(), meta.tries.into());
        obj.insert(ABORTED.into(), meta.aborted.into());
    }
}

/// A fresh task record with `fields` as the user's fields.
fn new_record(fields: Map<String, Value>) -> Value {
    let mut value = Value::Object(fields);
    write_meta(&mut value, Meta::default());
    value
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
            num_done: 0,
            num_tried: 0,
            num_aborted: 0,
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
            let Some(i) = held.index().find(&key) else {
                continue;
            };
            if let ValueRef::Text(t) = held.index().value(i)
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
    fn read_meta(&self, i: usize) -> Result<(Meta, Option<Lease>)> {
        let index = self.pod.index();
        let read = match index.value(i) {
            ValueRef::Text(t) => match parse_meta_fast(t) {
                Some(meta) => Ok((meta, None)),
                None => serde_json::from_slice::<Value>(t)
                    .map_err(|e| format!("not JSON: {e}"))
                    .and_then(|v| meta_of(&v).map(|m| (m, lease_of(&v)))),
            },
            ValueRef::Live(v) => meta_of(v).map(|m| (m, lease_of(v))),
        };
        read.map_err(|why| {
            ErrorKind::NotATask {
                path: self.pod.log_path().to_path_buf(),
                key: index.key(i).to_string(),
                line: index.line(i),
                why,
            }
            .into()
        })
    }

    /// Reads every record's state into the slots and recounts.
    pub(crate) fn load_meta(&mut self) -> Result<()> {
        let (mut done, mut tried, mut aborted) = (0, 0, 0);
        let mut leases = HashMap::new();
        let slots: Vec<usize> = self.pod.index().slots().collect();
        for i in slots {
            let (meta, lease) = self.read_meta(i)?;
            if let Some(lease) = lease {
                leases.insert(self.pod.index().key(i).to_string(), lease);
            }
            done += usize::from(meta.done);
            tried += usize::from(meta.tries > 0);
            aborted += usize::from(meta.aborted);
            self.pod.index_mut().set_meta(i, meta);
        }
        (self.num_done, self.num_tried, self.num_aborted) = (done, tried, aborted);
        self.leases = leases;
        self.claim_from = (0, self.pod.epoch());
        Ok(())
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
            self.absorb().and_then(|()| f(self))
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
        let (reloaded, changed) = self.pod.take_external();
        if reloaded {
            return self.load_meta();
        }
        for key in changed {
            let Some(i) = self.pod.index().find(&key) else {
                // Trackers do not remove keys; if someone did, recount.
                return self.load_meta();
            };
            let before = self.pod.index().meta(i);
            let (after, lease) = self.read_meta(i)?;
            self.pod.index_mut().set_meta(i, after);
            self.count(before, after);
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
        let Some(i) = self.pod.index().find(key) else {
            return Ok(None);
        };
        let before = self.pod.index().meta(i);
        Ok(Some(TaskMut {
            tracker: self,
            key: key.to_string(),
            before,
            record,
        }))
    }

    // ---- state ----

    fn meta(&self, key: &str) -> Option<Meta> {
        self.pod.index().find(key).map(|i| self.pod.index().meta(i))
    }

    /// Applies `change` to the state of `key`, writing it into the record.
    fn change(&mut self, key: &str, change: impl FnOnce(&mut Meta)) -> Result<()> {
        self.op(|t| t.change_now(key, change))
    }

    fn change_now(&mut self, key: &str, change: impl FnOnce(&mut Meta)) -> Result<()> {
        // A due sync (and a compaction, which renumbers slots) happens first.
        self.pod.after_change()?;
        let Some(i) = self.pod.index().find(key) else {
            return fail(ErrorKind::MissingKey { key: key.into() });
        };
        let before = self.pod.index().meta(i);
        let mut after = before;
        change(&mut after);
        if after == before {
            return Ok(());
        }
        match self.pod.get_mut(key)? {
            Some(record) => write_meta(record, after),
            None => return fail(ErrorKind::MissingKey { key: key.into() }),
        }
        self.pod.index_mut().set_meta(i, after);
        self.count(before, after);
        if !after.done && !after.aborted {
            // The task may be claimable again.
            self.claim_from.0 = self.claim_from.0.min(i);
        }
        self.pod.after_change()
    }

    fn count(&mut self, before: Meta, after: Meta) {
        let step = |n: &mut usize, was: bool, is: bool| {
            if was && !is {
                *n -= 1;
            } else if is && !was {
                *n += 1;
            }
        };
        step(&mut self.num_done, before.done, after.done);
        step(&mut self.num_tried, before.tries > 0, after.tries > 0);
        step(&mut self.num_aborted, before.aborted, after.aborted);
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

    fn is_todo(&self, meta: Meta, aborted: Aborted) -> bool {
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
        let index = self.pod.index();
        index
            .slots()
            .filter(move |&i| self.is_todo(index.meta(i), aborted))
            .map(move |i| index.key(i))
    }

    /// `(key, record)` pairs still to do, in order.
    pub fn todo_items(&self, aborted: Aborted) -> impl Iterator<Item = Result<(&str, Value)>> + '_ {
        self.todo_keys(aborted)
            .map(|k| self.pod.get(k).map(|v| (k, v.unwrap_or(Value::Null))))
    }

    /// Aborted keys, in order.
    pub fn aborted_keys(&self) -> impl Iterator<Item = &str> + '_ {
        let index = self.pod.index();
        index
            .slots()
            .filter(move |&i| index.meta(i).aborted)
            .map(move |i| index.key(i))
    }

    /// `(key, record)` pairs of aborted tasks, in order.
    pub fn aborted_items(&self) -> impl Iterator<Item = Result<(&str, Value)>> + '_ {
        self.aborted_keys()
            .map(|k| self.pod.get(k).map(|v| (k, v.unwrap_or(Value::Null))))
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

    // ---- claims ----

    /// Claims the next task that should be tried and is not claimed by a
    /// live lease: counts the try, writes a lease (`_lease`: owner and
    /// expiry) into the task record, and returns its key; `None` when no
    /// task is claimable now. A claim ends with [`mark_done`](Tracker::mark_done),
    /// [`abort`](Tracker::abort) or [`release`](Tracker::release) (the try
    /// stays counted); an expired lease (its worker died or hung) makes the
    /// task claimable again.
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`].
    pub fn claim_next(&mut self, owner: &str) -> Result<Option<String>> {
        self.op(|t| t.claim_next_now(owner))
    }

    fn claim_next_now(&mut self, owner: &str) -> Result<Option<String>> {
        let now = now_ms();
        let epoch = self.pod.epoch();
        if self.claim_from.1 != epoch {
            self.claim_from = (0, epoch);
        }
        let mut i = self.claim_from.0;
        let mut settled = true;
        loop {
            let index = self.pod.index();
            let Some(slot) = index.next_slot(i) else {
                return Ok(None);
            };
            i = slot + 1;
            let meta = index.meta(slot);
            if !self.is_todo(meta, Aborted::Skip) {
                if settled {
                    // Done, aborted and exhausted tasks stay unclaimable.
                    self.claim_from.0 = i;
                }
                continue;
            }
            settled = false;
            let key = index.key(slot).to_string();
            if self.leases.get(&key).is_some_and(|l| l.until_ms > now) {
                continue;
            }
            self.increment_tries(&key)?;
            let lease = Lease {
                owner: owner.to_string(),
                until_ms: now
                    .saturating_add(u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)),
            };
            let field = serde_json::json!({"owner": lease.owner, "until": lease.until_ms});
            self.update_task(&key, |r| r[LEASE] = field)?;
            self.leases.insert(key.clone(), lease);
            return Ok(Some(key));
        }
    }

    /// Ends the claim on `key` without finishing it (the try stays counted).
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`].
    pub fn release(&mut self, key: &str) -> Result<()> {
        self.op(|t| t.release_now(key))
    }

    fn release_now(&mut self, key: &str) -> Result<()> {
        if self.leases.remove(key).is_some() {
            self.update_task(key, |r| {
                if let Value::Object(obj) = r {
                    obj.remove(LEASE);
                }
            })?;
        }
        Ok(())
    }

    /// The claim on `key`, if any (possibly expired).
    pub fn lease(&self, key: &str) -> Option<&Lease> {
        self.leases.get(key)
    }

    pub(crate) fn sync_for_shutdown(&mut self) {
        self.pod.sync_for_shutdown();
    }

    /// How long claims last.
    pub fn lease_length(&self) -> Duration {
        self.lease
    }

    /// Like [`try_keys`](Tracker::try_keys), yielding each key with its
    /// record (read after the try is counted). Derefs to the tracker.
    pub fn try_items(&mut self, aborted: Aborted) -> TryItems<'_> {
        TryItems(self.try_keys(aborted))
    }

    // ---- counters ----

    /// How many tasks are done. O(1).
    pub fn num_done(&self) -> usize {
        self.num_done
    }

    /// How many tasks were tried at least once. O(1).
    pub fn num_tried(&self) -> usize {
        self.num_tried
    }

    /// How many tasks are aborted. O(1).
    pub fn num_aborted(&self) -> usize {
        self.num_aborted
    }

    fn fraction(&self, n: usize) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            n as f64 / self.len() as f64
        }
    }

    /// The fraction of tasks done (0.0 when empty).
    pub fn fraction_done(&self) -> f64 {
        self.fraction(self.num_done)
    }

    /// The fraction of tasks tried at least once (0.0 when empty).
    pub fn fraction_tried(&self) -> f64 {
        self.fraction(self.num_tried)
    }

    /// The fraction of tasks aborted (0.0 when empty).
    pub fn fraction_aborted(&self) -> f64 {
        self.fraction(self.num_aborted)
    }

    fn percent(&self, n: usize, decimals: usize) -> String {
        format!("{:.*} %", decimals, 100.0 * self.fraction(n))
    }

    /// The percentage of tasks done, like `"34.70 %"` for 2 decimals.
    pub fn percent_done(&self, decimals: usize) -> String {
        self.percent(self.num_done, decimals)
    }

    /// The percentage of tasks not done (`"0.00 %"` when empty).
    pub fn percent_not_done(&self, decimals: usize) -> String {
        self.percent(self.len() - self.num_done, decimals)
    }

    /// The percentage of tasks tried at least once.
    pub fn percent_tried(&self, decimals: usize) -> String {
        self.percent(self.num_tried, decimals)
    }

    /// The percentage of tasks never tried.
    pub fn percent_not_tried(&self, decimals: usize) -> String {
        self.percent(self.len() - self.num_tried, decimals)
    }

    /// The percentage of tasks aborted.
    pub fn percent_aborted(&self, decimals: usize) -> String {
        self.percent(self.num_aborted, decimals)
    }

    /// The percentage of tasks not aborted.
    pub fn percent_not_aborted(&self, decimals: usize) -> String {
        self.percent(self.len() - self.num_aborted, decimals)
    }

    /// A one-line summary: `done 120/300 (40.00 %), tried 150, aborted 3`.
    pub fn summary(&self) -> String {
        format!(
            "done {}/{} ({}), tried {}, aborted {}",
            self.num_done,
            self.len(),
            self.percent_done(2),
            self.num_tried,
            self.num_aborted
        )
    }
}

/// Mutable access to a task record; see [`Tracker::task_mut`]. On drop the
/// record goes back into the tracker and its reserved fields are read back
/// into the tracker's state.
pub struct TaskMut<'a> {
    tracker: &'a mut Tracker,
    key: String,
    before: Meta,
    record: Value,
}

impl Deref for TaskMut<'_> {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.record
    }
}

impl DerefMut for TaskMut<'_> {
    fn deref_mut(&mut self) -> &mut Value {
        &mut self.record
    }
}

impl Drop for TaskMut<'_> {
    fn drop(&mut self) {
        // Keep what the caller set with the right type; restore the rest.
        let mut after = self.before;
        if let Value::Object(obj) = &self.record {
            if let Some(done) = obj.get(DONE).and_then(Value::as_bool) {
                after.done = done;
            }
            if let Some(tries) = obj.get(TRIES).and_then(Value::as_u64) {
                after.tries = u32::try_from(tries).unwrap_or(u32::MAX);
            }
            if let Some(aborted) = obj.get(ABORTED).and_then(Value::as_bool) {
                after.aborted = aborted;
            }
        }
        let mut record = self.record.take();
        write_meta(&mut record, after);
        match lease_of(&record) {
            Some(lease) => self.tracker.leases.insert(self.key.clone(), lease),
            None => self.tracker.leases.remove(&self.key),
        };
        let index = self.tracker.pod.index_mut();
        // Nothing can renumber slots while this borrow lives, but find the
        // slot by key anyway: a wrong slot would lose a record.
        let Some(slot) = index.find(&self.key) else {
            return;
        };
        index.set_live(slot, record);
        index.set_meta(slot, after);
        self.tracker.count(self.before, after);
        if !after.done && !after.aborted {
            // The task may be claimable again.
            self.tracker.claim_from.0 = self.tracker.claim_from.0.min(slot);
        }
    }
}

/// Keys to try, counting a try for each as it is yielded; see
/// [`Tracker::try_keys`]. Derefs to the tracker.
pub struct TryKeys<'a> {
    tracker: &'a mut Tracker,
    aborted: Aborted,
    /// The slot to look at next.
    next: usize,
    /// The last key yielded, to re-find the place if slots are renumbered.
    last: Option<String>,
    /// The pod's epoch when `next` was found; slot numbers are only valid within one.
    generation: (u64, u64),
}

impl Iterator for TryKeys<'_> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        let index = self.tracker.pod.index();
        if self.tracker.pod.epoch() != self.generation {
            self.generation = self.tracker.pod.epoch();
            self.next = match &self.last {
                Some(k) => index.find(k).map_or(0, |i| i + 1),
                None => 0,
            };
        }
        loop {
            let index = self.tracker.pod.index();
            let i = index.next_slot(self.next)?;
            self.next = i + 1;
            if self.tracker.is_todo(index.meta(i), self.aborted) {
                let key = index.key(i).to_string();
                let counted = self.tracker.increment_tries(&key);
                self.last = Some(key.clone());
                return Some(counted.map(|()| key));
            }
        }
    }
}

/// Keys to try with their records; see [`Tracker::try_items`]. Derefs to
/// the tracker.
pub struct TryItems<'a>(TryKeys<'a>);

impl Iterator for TryItems<'_> {
    type Item = Result<(String, Value)>;

    fn next(&mut self) -> Option<Result<(String, Value)>> {
        let key = match self.0.next()? {
            Ok(key) => key,
            Err(e) => return Some(Err(e)),
        };
        Some(self.0.get(&key).map(|v| (key, v.unwrap_or(Value::Null))))
    }
}

impl Deref for TryItems<'_> {
    type Target = Tracker;
    fn deref(&self) -> &Tracker {
        &self.0
    }
}

impl DerefMut for TryItems<'_> {
    fn deref_mut(&mut self) -> &mut Tracker {
        &mut self.0
    }
}

impl Deref for TryKeys<'_> {
    type Target = Tracker;
    fn deref(&self) -> &Tracker {
        self.tracker
    }
}

impl DerefMut for TryKeys<'_> {
    fn deref_mut(&mut self) -> &mut Tracker {
        self.tracker
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_and_slow_meta_parsing_agree() {
        for text in [
            &br#"{"_aborted":false,"_done":true,"_tries":3,"url":"x"}"#[..],
            br#"{"_aborted":true,"_done":false,"_tries":0}"#,
            br#"{"A":1,"_aborted":false,"_done":false,"_tries":12}"#,
            br#"{"_done":true,"_tries":7,"_aborted":false}"#,
        ] {
            let slow = meta_of(&serde_json::from_slice(text).unwrap()).unwrap();
            assert_eq!(parse_meta(text).unwrap(), slow);
            if let Some(fast) = parse_meta_fast(text) {
                assert_eq!(fast, slow);
            }
        }
    }

    #[test]
    fn records_without_reserved_fields_are_refused() {
        for text in [
            &b"1"[..],
            br#"{"_done":true}"#,
            br#"{"_done":1,"_tries":0,"_aborted":false}"#,
            br#"{"_done":true,"_tries":-1,"_aborted":false}"#,
        ] {
            assert!(
                parse_meta(text).is_err(),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }
}

//! `Pod`: the persistent ordered dict. This file holds the handle and its
//! reads; opening and repairing is in [`open`], changes and the write path
//! in [`write`], compaction in [`rewrite`], and the multi-process mode,
//! one `Option` of its own state, in [`multi`].

mod hinting;
mod install;
mod multi;
mod open;
mod rewrite;
mod write;

use crate::error::{Error, ErrorKind, Result, fail};
use crate::fsio::LockGuard;
use crate::index::{Index, SlotTask, ValueRef};
use crate::log::LogFile;
use crate::options::PodOptions;
use crate::record;
use crate::replay::{BadLine, TornTail};
use crate::signals;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use hinting::HintUse;
pub use install::install_store;
pub(crate) use multi::{MultiProcess, operation};

/// The log file inside a store directory.
pub const LOG_FILE: &str = "pod.log";
/// The lock file inside a store directory.
pub const LOCK_FILE: &str = "pod.lock";
/// The temporary file a compaction writes before renaming it over the log.
pub const TMP_FILE: &str = "pod.log.tmp";
/// The lock file handles of the multi-process mode lock for each operation.
pub const OPLOCK_FILE: &str = "pod.oplock";

/// What opening a store found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// A torn final write that was dropped (and, for a writable open, cut
    /// from the file; kept in a copy beside the log when it was more than
    /// one partial record). In the multi-process mode, the last one this
    /// handle cut, at open or later.
    pub torn_tail: Option<TornTail>,
    /// Damaged lines skipped by [`Recovery::Salvage`](crate::Recovery::Salvage) (the first 100).
    pub skipped: Vec<BadLine>,
    /// How many damaged lines [`Recovery::Salvage`](crate::Recovery::Salvage) skipped.
    pub skipped_count: u64,
    /// Where salvage kept a copy of the damaged log.
    pub damaged_copy: Option<PathBuf>,
    /// Whether a stale temporary file from an interrupted compaction was removed.
    pub removed_temp: bool,
    /// The line of the last record, if it was complete but for its
    /// newline (which a writable open added).
    pub completed_line: Option<u64>,
    /// Things the open found risky but not wrong, as sentences: a store
    /// directory other users may write to, say.
    pub warnings: Vec<String>,
    /// Whether the open read the log through its hint file (`pod.hint`),
    /// or why it could not.
    pub hint: HintUse,
}

impl RecoveryReport {
    /// Whether the log was clean: nothing dropped, skipped, completed or
    /// removed (warnings aside).
    pub fn is_clean(&self) -> bool {
        self.torn_tail.is_none()
            && self.skipped_count == 0
            && !self.removed_temp
            && self.completed_line.is_none()
    }
}

/// A place in a store's key order (see [`Pod::cursor`]): owned, so it can
/// be kept across calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The slot to look at next.
    next: usize,
    /// The store's epoch when made: slot numbers hold within one.
    epoch: (u64, u64),
}

/// Sizes of a store, for deciding on compaction or reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PodStats {
    /// Number of keys.
    pub keys: usize,
    /// Length of the log file as this handle knows it: up to the end of
    /// its last record (the newline padding the exclusive mode's writer
    /// keeps past it is not counted; in the multi-process mode, blank
    /// lines after the last record are).
    pub log_bytes: u64,
    /// Bytes the log would have after compaction (header plus one record per key).
    pub live_bytes: u64,
    /// Bytes of superseded and removal records: `log_bytes - live_bytes`.
    pub dead_bytes: u64,
    /// Keys with changes not yet synced.
    pub dirty_keys: usize,
}

/// A persistent ordered dict: a map from string keys to JSON values,
/// iterated in first-insertion order, kept in a directory on disk.
///
/// Changes are held in memory and written to the log (and fsynced) by
/// [`sync`](Pod::sync), automatically once [`sync_at`](PodOptions::sync_at)
/// keys are dirty, and when the `Pod` is dropped (also while a panic unwinds).
/// Use [`close`](Pod::close) to see the error of that last sync.
///
/// Values are stored as JSON text and decoded when read, into `V`
/// (`serde_json::Value` unless you choose a type). Because a read returns a
/// value, not a reference into the store, tastypy's gotcha of mutating a
/// stale reference without the store noticing cannot happen: mutation goes
/// through [`get_mut`](Pod::get_mut) or [`update`](Pod::update), which mark
/// the key dirty.
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// use tastypod::Pod;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("my.pod");
///
/// let mut pod: Pod = Pod::open(&path)?;
/// pod.insert("foo", json!("bar"))?;
/// pod.update("foo", |v| *v = json!({"n": 1}))?;
/// pod.close()?;
///
/// let pod: Pod = Pod::open(&path)?;
/// assert_eq!(pod.get("foo")?, Some(json!({"n": 1})));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Example: typed values
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use tastypod::Pod;
/// # let dir = tempfile::tempdir()?;
///
/// #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
/// struct Page { url: String, size: u64 }
///
/// let mut pod: Pod<Page> = Pod::open_typed(dir.path().join("pages.pod"))?;
/// pod.insert("home", Page { url: "https://example.com".into(), size: 512 })?;
/// if let Some(page) = pod.get_mut("home")? {
///     page.size += 1;
/// }
/// assert_eq!(pod.get("home")?.map(|p| p.size), Some(513));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "POD")]
#[doc(alias = "PersistentOrderedDict")]
pub struct Pod<V = serde_json::Value>
where
    V: Serialize + DeserializeOwned,
{
    dir: PathBuf,
    opts: PodOptions,
    index: Index<V>,
    /// The log file; not attached for a read-only handle.
    log: LogFile,
    /// A compaction running beside this handle's work (exclusive mode).
    /// Declared before the lock, so it is dropped while the lock is held.
    background: Option<rewrite::Background>,
    _lock: Option<Box<dyn LockGuard>>,
    holds: usize,
    closed: bool,
    report: RecoveryReport,
    /// Bumped whenever the index is replaced (reload, compaction).
    epoch: u64,
    /// This store's entry for `sync_on_signals` (writable handles only).
    signal: Option<Arc<signals::Entry>>,
    /// A sync for a signal-driven shutdown is under way on this handle.
    in_shutdown_sync: bool,
    /// The multi-process mode's state; `None` in exclusive mode.
    multi: Option<MultiProcess>,
    /// The identity of the log file last read, to notice a compaction by
    /// another process (multi-process mode, and read-only `refresh`).
    followed_id: u64,
    /// What other processes changed since the tracker last looked.
    external: multi::External,
    /// The length of the log's first part that the hint file describes,
    /// if this handle read or wrote that hint.
    hinted: Option<u64>,
    /// The CRC-32 of the log's first bytes at some lengths, as the open
    /// found them (for the next hint).
    crc_marks: crate::replay::CrcMarks,
    /// The log's format version, as its header says.
    format: u64,
    /// The settings the log's header holds (a JSON object's text): a
    /// tracker's stored options.
    settings: Option<Vec<u8>>,
    /// How deeply operations nest (exclusive mode; the multi-process mode
    /// counts its own).
    ops: usize,
    /// The current call writes its changes without waiting for them to be
    /// durable (a claim, under [`Durability::EveryChange`]).
    lazy: bool,
    /// Whether fsyncs were deferred before the outermost operation began
    /// (multi-process mode, which defers them past its lock).
    outer_defer: bool,
}

impl<V> std::fmt::Debug for Pod<V>
where
    V: Serialize + DeserializeOwned,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pod")
            .field("path", &self.dir)
            .field("len", &self.len())
            .field("dirty", &self.dirty_len())
            .field("read_only", &self.opts.read_only)
            .field("multi_process", &self.multi.is_some())
            .field("poisoned", &self.is_poisoned())
            .finish_non_exhaustive()
    }
}

impl Pod {
    /// Opens the store in directory `path` for writing with the default
    /// options, creating the directory and an empty log if missing. Its
    /// values are `serde_json::Value`s; [`open_typed`](Pod::open_typed)
    /// opens one of another type.
    ///
    /// A torn final record (from a crash mid-write) is dropped and reported
    /// by [`recovery`](Pod::recovery).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Locked`] if another writer holds the store;
    /// [`ErrorKind::Corrupt`] naming the line if a damaged record has valid
    /// records after it; [`ErrorKind::NotAStore`] or
    /// [`ErrorKind::UnsupportedVersion`] for a file that is not a log this
    /// build reads; [`ErrorKind::Io`] if the file system fails.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), PodOptions::new())
    }
}

impl<V> Pod<V>
where
    V: Serialize + DeserializeOwned,
{
    /// [`Pod::open`] for a store whose values are of type `V` (any serde
    /// type): `let pod: Pod<Page> = Pod::open_typed(path)?`.
    ///
    /// # Errors
    ///
    /// As [`Pod::open`], plus [`ErrorKind::Decode`] later, when a stored
    /// value does not decode into `V`.
    pub fn open_typed(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), PodOptions::new())
    }

    /// The body of every open.
    pub(crate) fn open_with(path: &Path, opts: PodOptions) -> Result<Self> {
        opts.validate()?;
        let dir = path.to_path_buf();
        let mut log = LogFile::new(dir.join(LOG_FILE), dir.clone(), opts.durability);
        // The one writer of the exclusive mode writes over newline padding.
        log.set_padding(!opts.read_only && !opts.multi_process);
        let mut pod = Pod {
            dir,
            log,
            index: Index::default(),
            _lock: None,
            holds: 0,
            closed: false,
            report: RecoveryReport::default(),
            epoch: 0,
            hinted: None,
            crc_marks: Vec::new(),
            signal: None,
            in_shutdown_sync: false,
            background: None,
            multi: None,
            followed_id: 0,
            external: multi::External::default(),
            format: record::PLAIN_VERSION,
            settings: None,
            ops: 0,
            lazy: false,
            outer_defer: false,
            opts,
        };
        if pod.opts.read_only {
            pod.open_read_only()?;
        } else {
            pod.open_writable()?;
            pod.signal = Some(signals::register());
        }
        Ok(pod)
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The log file's path.
    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// What opening found and repaired (a torn tail, skipped lines).
    pub fn recovery(&self) -> &RecoveryReport {
        &self.report
    }

    /// Whether the handle refuses writes because a write or fsync failed.
    pub fn is_poisoned(&self) -> bool {
        self.log.is_poisoned()
    }

    /// The log's format version (see [`FORMAT_VERSION`](crate::FORMAT_VERSION)):
    /// 1 for a store without settings, 2 for one whose header holds them
    /// (a tracker's stored options).
    pub fn format_version(&self) -> u64 {
        self.format
    }

    /// The settings the log's header holds (a JSON object's text).
    pub(crate) fn settings(&self) -> Option<&[u8]> {
        self.settings.as_deref()
    }

    /// Whether the handle was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.opts.read_only
    }

    /// Whether the handle is in the multi-process mode
    /// ([`PodOptions::multi_process`]).
    pub fn is_multi_process(&self) -> bool {
        self.multi.is_some()
    }

    /// The bytes of the header and of the record on disk of every key
    /// whose current value it is.
    fn live_bytes(&self) -> u64 {
        record::header_len(self.settings.as_deref()) + self.index.disk_bytes()
    }

    /// Sizes of the log and of its live and dead parts.
    pub fn stats(&self) -> PodStats {
        let log_bytes = self.log.len();
        let live_bytes = self.live_bytes();
        PodStats {
            keys: self.len(),
            log_bytes,
            live_bytes,
            dead_bytes: log_bytes.saturating_sub(live_bytes),
            dirty_keys: self.dirty_len(),
        }
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.index.len() == 0
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.index.find(key).is_some()
    }

    /// The value of `key`, decoded from its JSON. A read: it never marks the
    /// key dirty and never does I/O.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Decode`], naming the key and line, if the stored JSON
    /// does not decode into `V`.
    pub fn get(&self, key: &str) -> Result<Option<V>>
    where
        V: Clone,
    {
        match self.index.find(key) {
            Some(i) => self.decode_slot(i).map(Some),
            None => Ok(None),
        }
    }

    /// The JSON text of `key`'s value, as stored (or encoded, if it has
    /// unsynced changes): always exactly one valid JSON value.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Encode`] if an unsynced value cannot be encoded.
    pub fn get_json(&self, key: &str) -> Result<Option<Cow<'_, str>>> {
        match self.index.find(key) {
            Some(i) => self.json_of(i).map(Some),
            None => Ok(None),
        }
    }

    fn decode_slot(&self, i: usize) -> Result<V>
    where
        V: Clone,
    {
        match self.index.value(i) {
            ValueRef::Live(v) => Ok(v.clone()),
            ValueRef::Text(t) => self.decode_text(i, t),
        }
    }

    fn decode_text(&self, i: usize, text: &[u8]) -> Result<V> {
        serde_json::from_slice(text).map_err(|source| {
            ErrorKind::Decode {
                path: self.log.path().to_path_buf(),
                key: self.index.key(i).to_string(),
                line: self.index.line(i),
                source,
            }
            .into()
        })
    }

    fn json_of(&self, i: usize) -> Result<Cow<'_, str>> {
        let text = match self.index.value(i) {
            ValueRef::Live(v) => {
                let bytes = write::encode(self.index.key(i), v)?;
                return String::from_utf8(bytes)
                    .map(Cow::Owned)
                    .map_err(|_| self.not_utf8(i));
            }
            ValueRef::Text(t) => t,
        };
        // Every value text was checked to be valid JSON, so UTF-8.
        std::str::from_utf8(text)
            .map(Cow::Borrowed)
            .map_err(|_| self.not_utf8(i))
    }

    fn not_utf8(&self, i: usize) -> Error {
        ErrorKind::Corrupt {
            path: self.log.path().to_path_buf(),
            line: self.index.line(i),
            offset: 0,
            reason: "value is not UTF-8".into(),
        }
        .into()
    }

    /// The keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.index.slots().map(|i| self.index.key(i))
    }

    /// The values in key order, each decoded.
    pub fn values(&self) -> impl Iterator<Item = Result<V>> + '_
    where
        V: Clone,
    {
        self.index.slots().map(|i| self.decode_slot(i))
    }

    /// `(key, value)` pairs in order, each value decoded.
    pub fn iter(&self) -> impl Iterator<Item = Result<(&str, V)>> + '_
    where
        V: Clone,
    {
        self.index
            .slots()
            .map(|i| self.decode_slot(i).map(|v| (self.index.key(i), v)))
    }

    /// `(key, JSON text)` pairs in order, without decoding the values: the
    /// fastest way to visit a whole store (what `tastypod dump` does).
    pub fn iter_json(&self) -> impl Iterator<Item = Result<(&str, Cow<'_, str>)>> + '_ {
        self.index
            .slots()
            .map(|i| self.json_of(i).map(|v| (self.index.key(i), v)))
    }

    /// A cursor at the first key, for reading the keys a page at a time
    /// with [`next_keys`](Pod::next_keys) or
    /// [`next_items_json`](Pod::next_items_json) without holding a borrow
    /// of the store (what a binding to another language needs).
    pub fn cursor(&self) -> Cursor {
        Cursor {
            next: 0,
            epoch: self.epoch(),
        }
    }

    /// The next key slots from `cursor` (up to `n`), advancing it.
    fn next_slots(&self, cursor: &mut Cursor, n: usize) -> Result<Vec<usize>> {
        if cursor.epoch != self.epoch() {
            return fail(ErrorKind::StaleCursor {
                path: self.dir.clone(),
            });
        }
        let mut slots = Vec::with_capacity(n.min(self.len()));
        while slots.len() < n {
            let Some(i) = self.index.next_slot(cursor.next) else {
                break;
            };
            cursor.next = i + 1;
            slots.push(i);
        }
        Ok(slots)
    }

    /// Up to `n` keys from `cursor`, in order, advancing it (fewer at the
    /// end; none once it is past the last key). Keys inserted meanwhile
    /// come at the end; a removed key is skipped.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::StaleCursor`] if the store's slots were renumbered
    /// since the cursor was made (a compaction, a revert, a reload).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let mut pod = tastypod::Pod::open(dir.path().join("p"))?;
    /// for k in ["a", "b", "c"] {
    ///     pod.insert(k, 1.into())?;
    /// }
    /// let mut cursor = pod.cursor();
    /// assert_eq!(pod.next_keys(&mut cursor, 2)?, ["a", "b"]);
    /// assert_eq!(pod.next_keys(&mut cursor, 2)?, ["c"]);
    /// assert!(pod.next_keys(&mut cursor, 2)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_keys(&self, cursor: &mut Cursor, n: usize) -> Result<Vec<String>> {
        let slots = self.next_slots(cursor, n)?;
        Ok(slots
            .into_iter()
            .map(|i| self.index.key(i).to_string())
            .collect())
    }

    /// [`next_keys`](Pod::next_keys) with each key's value as JSON text.
    ///
    /// # Errors
    ///
    /// As [`next_keys`](Pod::next_keys), and as [`get_json`](Pod::get_json).
    pub fn next_items_json(&self, cursor: &mut Cursor, n: usize) -> Result<Vec<(String, String)>> {
        let slots = self.next_slots(cursor, n)?;
        slots
            .into_iter()
            .map(|i| {
                let json = self.json_of(i)?.into_owned();
                Ok((self.index.key(i).to_string(), json))
            })
            .collect()
    }

    /// The keys with changes not yet synced: changed keys in order, then
    /// removed keys.
    pub fn dirty_keys(&self) -> impl Iterator<Item = &str> + '_ {
        let changed = self.index.dirty_slots().into_iter();
        changed
            .map(|i| self.index.key(i))
            .chain(self.index.removed_keys())
    }

    /// The number of keys with changes not yet synced (as
    /// [`dirty_keys`](Pod::dirty_keys) lists them).
    pub fn dirty_len(&self) -> usize {
        self.index.dirty_len()
    }

    /// [`check_writable`](Self::check_writable), after syncing for a
    /// signal-driven shutdown if one is under way.
    fn writable(&mut self) -> Result<()> {
        if let Some(signal) = signals::shutting_down()
            && !self.in_shutdown_sync
            && !signals::in_handler()
        {
            // Sync (unless the handler already did); then, unless the
            // program is to stop by itself, change nothing more: the
            // process is exiting. The call returns (never parks the thread,
            // which in a binding may hold an interpreter's lock).
            self.sync_for_shutdown();
            if signals::exits() {
                return fail(ErrorKind::ShuttingDown {
                    path: self.dir.clone(),
                    signal,
                });
            }
        }
        self.check_writable()
    }

    /// Syncs for a signal-driven shutdown and reports a failure on stderr.
    pub(crate) fn sync_for_shutdown(&mut self) {
        // Taking the entry first keeps the sync below from coming back here.
        let Some(entry) = self.signal.take() else {
            return;
        };
        self.in_shutdown_sync = true;
        // The process may exit right after: fsync here, deferring nothing.
        let outer = self.log.set_defer(false);
        let owed = self.log.take_owed();
        let syncs =
            !self.opts.read_only && !self.is_poisoned() && (self.has_unsynced() || owed.is_some());
        if !syncs {
            // Still owed: the call that deferred it waits for it.
            if let Some(ticket) = owed {
                self.log.owe(ticket);
            }
        } else if let Err(e) = self
            .sync()
            .and_then(|()| owed.map_or(Ok(()), |ticket| ticket.wait()))
        {
            eprintln!(
                "tastypod: could not sync {} on a signal: {}",
                self.dir.display(),
                crate::error_chain(&e)
            );
        }
        self.log.set_defer(outer);
        self.in_shutdown_sync = false;
        entry.mark_synced();
    }

    pub(crate) fn signal_entry(&self) -> Option<Arc<signals::Entry>> {
        self.signal.clone()
    }

    fn check_writable(&self) -> Result<()> {
        if self.opts.read_only {
            return fail(ErrorKind::ReadOnly {
                path: self.dir.clone(),
            });
        }
        self.log.writable()
    }

    /// Changes whenever slot numbers may have changed.
    pub(crate) fn epoch(&self) -> (u64, u64) {
        (self.epoch, self.index.generation())
    }

    // ---- the narrow interface a tracker works through ----

    /// The slot of `key`, if present.
    pub(crate) fn slot_of(&self, key: &str) -> Option<usize> {
        self.index.find(key)
    }

    /// The first live slot at or after `from`.
    pub(crate) fn next_slot(&self, from: usize) -> Option<usize> {
        self.index.next_slot(from)
    }

    /// The live slots, in order.
    pub(crate) fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.index.slots()
    }

    /// The key of slot `slot`.
    pub(crate) fn key_at(&self, slot: usize) -> &str {
        self.index.key(slot)
    }

    /// The task state kept in slot `slot`.
    pub(crate) fn task_at(&self, slot: usize) -> SlotTask {
        self.index.task(slot)
    }

    /// Sets the task state kept in slot `slot` (the record is the caller's
    /// to change).
    pub(crate) fn set_task_at(&mut self, slot: usize, state: SlotTask) {
        self.index.set_task(slot, state);
    }

    /// Makes `value` slot `slot`'s value, changed in place (written by the
    /// next sync).
    pub(crate) fn set_record_at(&mut self, slot: usize, value: V) {
        self.index.set_live(slot, value);
    }

    /// The value of slot `slot`: its JSON text, or a decoded value.
    pub(crate) fn value_at(&self, slot: usize) -> ValueRef<'_, V> {
        self.index.value(slot)
    }

    /// The log line of slot `slot`'s record (0 if not on disk).
    pub(crate) fn line_at(&self, slot: usize) -> u64 {
        self.index.line(slot)
    }

    /// Suspends automatic syncing until a matching [`unhold`](Pod::unhold).
    /// Holds nest. [`sync`](Pod::sync) still works while held.
    ///
    /// In the multi-process mode a hold also keeps the store's operation
    /// lock from the first operation after it to the last `unhold`, so the
    /// changes made while held reach the log together and other processes'
    /// operations wait meanwhile: keep holds short there.
    pub fn hold(&mut self) {
        self.holds += 1;
    }

    /// Ends one [`hold`](Pod::hold); when none is left, syncs if the
    /// threshold was reached while held (in the multi-process mode, appends
    /// the changes made while held and releases the operation lock).
    ///
    /// # Errors
    ///
    /// As [`sync`](Pod::sync).
    pub fn unhold(&mut self) -> Result<()> {
        self.holds = self.holds.saturating_sub(1);
        if self.opts.read_only || self.is_poisoned() {
            return self.release_kept_lock();
        }
        self.in_op(|pod| pod.after_change())
    }

    /// Whether automatic syncing is suspended.
    pub fn is_held(&self) -> bool {
        self.holds > 0
    }

    /// Holds automatic syncing for as long as the returned guard lives; the
    /// guard derefs to the `Pod`. Dropping it unholds (reporting a sync
    /// failure on stderr); [`Held::release`] unholds and returns the error.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let mut pod: tastypod::Pod = tastypod::PodOptions::new()
    ///     .sync_at(2)
    ///     .open(dir.path().join("p"))?;
    /// let mut held = pod.held();
    /// for n in 0..5 {
    ///     held.insert(&format!("k{n}"), n.into())?;
    /// }
    /// assert_eq!(held.dirty_len(), 5); // nothing written while held
    /// held.release()?; // the threshold was passed: this syncs
    /// assert_eq!(pod.dirty_len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn held(&mut self) -> Held<'_, V> {
        self.hold();
        Held {
            pod: self,
            released: false,
        }
    }

    /// Syncs and closes the store, returning the error a drop could only print.
    ///
    /// # Errors
    ///
    /// As [`sync`](Pod::sync).
    pub fn close(mut self) -> Result<()> {
        self.closed = true;
        self.holds = 0;
        self.log.set_defer(false);
        if !self.opts.read_only
            && self.has_unsynced()
            && let Err(e) = self.sync()
        {
            self.abandon_background();
            return Err(e);
        }
        let finished = self.finish_background(true);
        self.log.trim_padding();
        if self.multi.is_none() && finished.is_ok() {
            self.refresh_hint();
        }
        let released = self.release_kept_lock();
        finished.and(released)
    }

    /// Whether anything is not yet durable: dirty keys, or records
    /// appended (written or staged) but not fsynced.
    pub(crate) fn has_unsynced(&self) -> bool {
        self.index.has_changes() || self.log.has_unsynced()
    }
}

impl<V> Drop for Pod<V>
where
    V: Serialize + DeserializeOwned,
{
    fn drop(&mut self) {
        if self.closed || self.opts.read_only {
            return;
        }
        self.holds = 0;
        self.log.set_defer(false);
        if !self.is_poisoned()
            && self.has_unsynced()
            && let Err(e) = self.sync()
        {
            eprintln!(
                "tastypod: could not sync {} on drop: {}",
                self.dir.display(),
                crate::error_chain(&e)
            );
        }
        if let Err(e) = self.finish_background(true) {
            eprintln!(
                "tastypod: could not compact {} on drop: {}",
                self.dir.display(),
                crate::error_chain(&e)
            );
        }
        self.log.trim_padding();
        if self.multi.is_none() {
            self.refresh_hint();
        }
        let _ = self.release_kept_lock();
    }
}

/// A hold on a [`Pod`]'s automatic syncing; see [`Pod::held`].
pub struct Held<'a, V>
where
    V: Serialize + DeserializeOwned,
{
    pod: &'a mut Pod<V>,
    released: bool,
}

impl<V> Held<'_, V>
where
    V: Serialize + DeserializeOwned,
{
    /// Ends the hold; syncs if the threshold was reached while held.
    ///
    /// # Errors
    ///
    /// As [`Pod::sync`].
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.pod.unhold()
    }
}

impl<V> Deref for Held<'_, V>
where
    V: Serialize + DeserializeOwned,
{
    type Target = Pod<V>;
    fn deref(&self) -> &Pod<V> {
        self.pod
    }
}

impl<V> DerefMut for Held<'_, V>
where
    V: Serialize + DeserializeOwned,
{
    fn deref_mut(&mut self) -> &mut Pod<V> {
        self.pod
    }
}

impl<V> Drop for Held<'_, V>
where
    V: Serialize + DeserializeOwned,
{
    fn drop(&mut self) {
        if !self.released
            && let Err(e) = self.pod.unhold()
        {
            eprintln!(
                "tastypod: could not sync {} when a hold ended: {}",
                self.pod.dir.display(),
                crate::error_chain(&e)
            );
        }
    }
}

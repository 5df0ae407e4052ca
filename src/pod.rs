//! `Pod`: the persistent ordered dict. It owns the in-memory index, the set
//! of dirty keys, the open log and the writer lock.

use crate::compact::{self, LogPaths, Rewritten};
use crate::error::{Error, ErrorKind, Result, fail};
use crate::fsio::{Appender, LockGuard, OpLock, Storage};
use crate::index::{Chunk, Index, Loc, ValueRef};
use crate::json;
use crate::options::{Compaction, Durability, PodOptions, Recovery};
use crate::record;
use crate::replay::{self, BadLine, Replayed, TornTail};
use crate::signals;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Read;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The log file inside a store directory.
pub const LOG_FILE: &str = "pod.log";
/// The lock file inside a store directory.
pub const LOCK_FILE: &str = "pod.lock";
/// The temporary file a compaction writes before renaming it over the log.
pub const TMP_FILE: &str = "pod.log.tmp";
/// The lock file shared-mode handles lock for each operation.
pub const OPLOCK_FILE: &str = "pod.oplock";

/// What opening a store found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// A torn final write that was dropped (and, for a writable open, cut
    /// from the file; kept in a copy beside the log when it was more than
    /// one partial record). In the multi-process mode, the last one this
    /// handle cut, at open or later.
    pub torn_tail: Option<TornTail>,
    /// Damaged lines skipped by [`Recovery::Salvage`] (the first 100).
    pub skipped: Vec<BadLine>,
    /// How many damaged lines [`Recovery::Salvage`] skipped.
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

/// Sizes of a store, for deciding on compaction or reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodStats {
    /// Number of keys.
    pub keys: usize,
    /// Length of the log file.
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
/// let mut pod: Pod<Page> = Pod::open(dir.path().join("pages.pod"))?;
/// pod.insert("home", Page { url: "https://example.com".into(), size: 512 })?;
/// if let Some(page) = pod.get_mut("home")? {
///     page.size += 1;
/// }
/// assert_eq!(pod.get("home")?.map(|p| p.size), Some(513));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pod<V = serde_json::Value>
where
    V: Serialize + DeserializeOwned,
{
    dir: PathBuf,
    log_path: PathBuf,
    opts: PodOptions,
    index: Index<V>,
    /// Keys whose removal is not yet written.
    removed: HashSet<String>,
    /// The log, open for appending; `None` for a read-only handle.
    log: Option<Box<dyn Appender>>,
    /// A compaction running beside this handle's work (exclusive mode).
    /// Declared before the lock, so it is dropped while the lock is held.
    background: Option<Background>,
    _lock: Option<Box<dyn LockGuard>>,
    log_len: u64,
    /// Header plus the current on-disk record of every live key.
    live_bytes: u64,
    /// The number of lines in the log.
    lines: u64,
    holds: usize,
    poisoned: bool,
    closed: bool,
    report: RecoveryReport,
    /// Bumped whenever the index is replaced (reload, compaction).
    epoch: u64,
    /// This store's entry for `sync_on_signals` (writable handles only).
    signal: Option<Arc<signals::Entry>>,
    /// Shared mode: the per-operation lock, and how deep in operations we are.
    oplock: Option<Box<dyn OpLock>>,
    op_depth: usize,
    /// The identity of the log file last read, to notice a compaction by
    /// another process.
    log_id: u64,
    /// Keys other processes changed since the tracker last looked, and
    /// whether the whole store was reloaded.
    external: (bool, Vec<String>),
    /// Shared mode: records written since the last fsync.
    unfsynced: usize,
    /// Shared mode: the current operation is a revert, which drops pending changes.
    discarding: bool,
    /// A sync for a signal-driven shutdown is under way on this handle.
    in_shutdown_sync: bool,
}

/// Where a value text sits in a buffer of records, and its record's position.
type Placed = (Loc, u32);

/// A compaction of the log as it was at `snap_len` bytes and `snap_lines`
/// lines, running on another thread (or, under a simulated file system,
/// already run) while the handle goes on appending to the old log.
#[derive(Debug)]
struct Background {
    /// Taken when the handle switches to the new log or drops it.
    job: Option<Job>,
    snap_len: u64,
    snap_lines: u64,
    /// The handle's epoch when it started: a reload since voids it.
    epoch: u64,
    storage: Arc<dyn Storage>,
    tmp: PathBuf,
}

impl Drop for Background {
    /// Waits for a compaction the handle did not take in (it went away
    /// mid-panic, say) and removes what it wrote, before the store's lock
    /// is released.
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            drop(job.join(&self.tmp));
            let _ = self.storage.remove_file(&self.tmp);
        }
    }
}

#[derive(Debug)]
enum Job {
    Running(std::thread::JoinHandle<Result<compact::Prepared>>),
    Done(Result<compact::Prepared>),
}

impl Job {
    fn is_finished(&self) -> bool {
        match self {
            Job::Running(handle) => handle.is_finished(),
            Job::Done(_) => true,
        }
    }

    fn join(self, tmp: &Path) -> Result<compact::Prepared> {
        match self {
            Job::Done(result) => result,
            Job::Running(handle) => handle.join().unwrap_or_else(|_| {
                let panicked = std::io::Error::other("the compaction thread panicked");
                Err(Error::io("compact into", tmp, panicked))
            }),
        }
    }
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
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl<V> Pod<V>
where
    V: Serialize + DeserializeOwned,
{
    /// Opens the store in directory `path` for writing with the default
    /// options, creating the directory and an empty log if missing.
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

    pub(crate) fn open_with(path: &Path, opts: PodOptions) -> Result<Self> {
        opts.validate()?;
        let dir = path.to_path_buf();
        let log_path = dir.join(LOG_FILE);
        let mut pod = Pod {
            dir,
            log_path,
            index: Index::default(),
            removed: HashSet::new(),
            log: None,
            _lock: None,
            log_len: 0,
            live_bytes: 0,
            lines: 0,
            holds: 0,
            poisoned: false,
            closed: false,
            report: RecoveryReport::default(),
            epoch: 0,
            signal: None,
            oplock: None,
            op_depth: 0,
            log_id: 0,
            external: (false, Vec::new()),
            unfsynced: 0,
            discarding: false,
            in_shutdown_sync: false,
            background: None,
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

    fn storage(&self) -> Arc<dyn Storage> {
        Arc::clone(&self.opts.storage)
    }

    fn tmp_path(&self) -> PathBuf {
        self.dir.join(TMP_FILE)
    }

    fn open_read_only(&mut self) -> Result<()> {
        self.note_unsafe_dir();
        let replayed = self.read_log()?;
        self.report.torn_tail = replayed.torn.clone();
        self.report.skipped = replayed.skipped.clone();
        self.report.skipped_count = replayed.skipped_count;
        self.adopt(replayed);
        Ok(())
    }

    /// Warns in the report if other users may change the store's files.
    fn note_unsafe_dir(&mut self) {
        if let Ok(Some(warning)) = self.storage().unsafe_dir(&self.dir) {
            self.report.warnings.push(warning);
        }
    }

    fn open_writable(&mut self) -> Result<()> {
        let storage = self.storage();
        let dir = self.dir.clone();
        storage
            .create_dir_all(&dir)
            .map_err(|e| Error::io("create directory", &dir, e))?;
        self.note_unsafe_dir();
        let lock_path = dir.join(LOCK_FILE);
        let lock = if self.opts.shared {
            storage.lock_shared(&lock_path)
        } else {
            storage.lock(&lock_path, self.opts.wait_for_lock)
        };
        match lock.map_err(|e| Error::io("lock", &lock_path, e))? {
            Some(lock) => self._lock = Some(lock),
            None => return fail(ErrorKind::Locked { path: dir }),
        }
        if self.opts.shared {
            let path = dir.join(OPLOCK_FILE);
            let oplock = storage
                .open_oplock(&path)
                .map_err(|e| Error::io("open", &path, e))?;
            self.oplock = Some(oplock);
            // Opening repairs the log, so it runs under the operation lock.
            return self.in_op(|pod| {
                pod.open_log()?;
                pod.note_log_id()
            });
        }
        self.open_log()?;
        self.note_log_id()
    }

    /// Runs `f` as one atomic step: in shared mode (see
    /// [`PodOptions::shared`]) it holds the store's lock for the whole
    /// closure, after taking in what other processes appended, and appends
    /// this handle's changes before releasing it, so no other process's
    /// change interleaves. In exclusive mode it just runs `f`.
    ///
    /// # Errors
    ///
    /// What `f` returns, or [`ErrorKind::Io`] if the lock or the catch-up fails.
    pub fn atomically<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        self.in_op(f)
    }

    /// Runs `f` as one operation: in shared mode, under the store's
    /// operation lock, after reading what other processes appended, and
    /// with this handle's changes appended before the lock is released.
    fn in_op<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        self.op_begin()?;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        let ended = self.op_end();
        let value = match result {
            Ok(value) => value?,
            // The lock is released; let the panic go on.
            Err(panic) => std::panic::resume_unwind(panic),
        };
        ended?;
        Ok(value)
    }

    /// Starts an operation (see [`in_op`](Self::in_op)); operations nest.
    pub(crate) fn op_begin(&mut self) -> Result<()> {
        let Some(oplock) = self.oplock.as_mut() else {
            return Ok(());
        };
        self.op_depth += 1;
        if self.op_depth > 1 {
            return Ok(());
        }
        if let Err(e) = oplock.lock() {
            self.op_depth -= 1;
            return Err(Error::io("lock", &self.dir.join(OPLOCK_FILE), e));
        }
        if self.log.is_none() {
            return Ok(()); // still opening
        }
        // Others' records come in first (keeping this handle's pending
        // `get_mut` changes), then this handle's changes go out at the end.
        let caught_up = if self.discarding {
            self.catch_up()
        } else {
            self.catch_up_keeping_pending()
                .and_then(|()| self.flush_shared())
        };
        if caught_up.is_err() {
            self.op_depth -= 1;
            if let Some(oplock) = self.oplock.as_mut() {
                let _ = oplock.unlock();
            }
        }
        caught_up
    }

    /// Ends an operation; the outermost one appends this handle's changes
    /// and releases the lock.
    pub(crate) fn op_end(&mut self) -> Result<()> {
        if self.oplock.is_none() || self.op_depth == 0 {
            return Ok(());
        }
        self.op_depth -= 1;
        if self.op_depth > 0 {
            return Ok(());
        }
        let flushed = if self.log.is_some() {
            self.flush_shared()
        } else {
            Ok(())
        };
        let unlocked = match self.oplock.as_mut() {
            Some(oplock) => oplock
                .unlock()
                .map_err(|e| Error::io("unlock", &self.dir.join(OPLOCK_FILE), e)),
            None => Ok(()),
        };
        flushed?;
        unlocked
    }

    /// Shared mode: appends every dirty record (fsyncing once `sync_at`
    /// records are unsynced).
    fn flush_shared(&mut self) -> Result<()> {
        if self.dirty_len() == 0 || self.poisoned || self.opts.read_only {
            return Ok(());
        }
        let n = self.dirty_len();
        self.write_dirty(false)?;
        self.unfsynced += n;
        if self.unfsynced >= self.opts.sync_at {
            self.fsync_log()?;
        }
        Ok(())
    }

    /// Shared mode's `sync`: append, then fsync.
    fn sync_shared(&mut self) -> Result<()> {
        self.flush_shared()?;
        if self.unfsynced > 0 {
            self.fsync_log()?;
        }
        Ok(())
    }

    fn fsync_log(&mut self) -> Result<()> {
        if self.opts.durability != Durability::Full {
            self.unfsynced = 0;
            return Ok(());
        }
        let Some(log) = self.log.as_mut() else {
            return fail(ErrorKind::Poisoned {
                path: self.dir.clone(),
            });
        };
        if let Err(e) = log.sync() {
            self.poisoned = true;
            return Err(Error::io("fsync", &self.log_path, e));
        }
        self.unfsynced = 0;
        Ok(())
    }

    /// [`catch_up`](Self::catch_up), then puts this handle's pending changes
    /// (left by `get_mut`) back on top, so they are written after the
    /// others' records.
    fn catch_up_keeping_pending(&mut self) -> Result<()> {
        if self.dirty_len() == 0 {
            return self.catch_up();
        }
        let slots = self.index.dirty_slots();
        let mut changed = Vec::with_capacity(slots.len());
        for i in slots {
            let key = self.index.key(i).to_string();
            let live = self.index.take_live(i);
            let text = match (&live, self.index.value(i)) {
                (None, ValueRef::Text(t)) if self.index.is_pending(i) => Some(t.to_vec()),
                _ => None,
            };
            changed.push((key, live, text));
        }
        let removed: Vec<String> = self.removed.drain().collect();
        // Every pending change is put back below, after the others' records.
        self.index.reset_pending();
        // Put the pending changes back even if catching up failed.
        let caught_up = self.catch_up();
        // Removals first: a key removed and inserted again ends up present.
        for key in removed {
            if let Some(i) = self.index.find(&key)
                && let Some(old) = self.index.disk_value_len(i)
            {
                self.live_bytes -= record::put_len(&key, old);
            }
            self.index.remove(&key);
            self.index.pending_del(&key);
            self.removed.insert(key);
        }
        for (key, live, text) in changed {
            let hash = self.index.hash(key.as_bytes());
            match (self.index.find_hashed(hash, key.as_bytes()), live, text) {
                (_, None, Some(text)) => {
                    let put = self.index.put_pending(hash, &key, |buf| {
                        buf.extend_from_slice(&text);
                        Ok::<(), std::convert::Infallible>(())
                    });
                    if let Ok(Some(old)) = put {
                        self.live_bytes -= record::put_len(&key, old);
                    }
                }
                (Some(i), Some(value), _) => self.index.set_live(i, *value),
                (Some(i), None, None) => {
                    self.index.mark_dirty(i);
                }
                (None, Some(value), _) => {
                    self.index.push_live(hash, &key, *value);
                }
                (None, None, None) => {}
            }
        }
        caught_up
    }

    /// Applies what other processes appended since this handle last looked;
    /// reloads the whole log if another process replaced it (compaction).
    /// Holding the operation lock, a writer also repairs the end of the log
    /// as an open does: a torn tail left by a killed writer is cut (and
    /// kept aside if it is more than a partial record), a missing final
    /// newline is added. A failure doing so poisons the handle.
    fn catch_up(&mut self) -> Result<()> {
        let storage = self.storage();
        let (id, len) = storage
            .file_id(&self.log_path)
            .map_err(|e| Error::io("stat", &self.log_path, e))?;
        let repair = !self.opts.read_only && self.op_depth > 0;
        if id != self.log_id || len < self.log_len {
            let replayed = self.read_log()?;
            let (torn, needs_newline) = (replayed.torn.clone(), replayed.needs_newline);
            self.adopt(replayed);
            self.external = (true, Vec::new());
            self.log_id = id;
            if !self.opts.read_only {
                // The old handle may point at a replaced file: never append to it.
                self.log = None;
                let log = match storage.open_append(&self.log_path) {
                    Ok(log) => log,
                    Err(e) => {
                        self.poisoned = true;
                        return Err(Error::io("open", &self.log_path, e));
                    }
                };
                self.log = Some(log);
                if repair {
                    self.repair_end(torn, needs_newline)?;
                }
            }
            return Ok(());
        }
        if len == self.log_len {
            return Ok(());
        }
        let (reader, _) = storage
            .open_read_at(&self.log_path, self.log_len)
            .map_err(|e| Error::io("read", &self.log_path, e))?;
        let tail = replay::apply_tail(
            &mut self.index,
            reader,
            self.log_len,
            self.lines,
            &mut self.live_bytes,
            &self.log_path,
            self.opts.max_record,
        )?;
        self.log_len = tail.valid_len;
        self.lines = tail.lines;
        self.external.1.extend(tail.changed);
        // After a removal a key may sit in a new slot: have the tracker recount.
        self.external.0 |= tail.removed;
        if repair {
            self.repair_end(tail.torn, tail.needs_newline)?;
        }
        Ok(())
    }

    /// Cuts a torn tail (keeping it aside unless it is a partial record)
    /// and adds a missing final newline, as replay found them; any failure
    /// poisons the handle.
    fn repair_end(&mut self, torn: Option<TornTail>, needs_newline: bool) -> Result<()> {
        let repaired = self.try_repair_end(torn, needs_newline);
        if repaired.is_err() {
            self.poisoned = true;
        }
        repaired
    }

    fn try_repair_end(&mut self, torn: Option<TornTail>, needs_newline: bool) -> Result<()> {
        if torn.is_none() && !needs_newline {
            return Ok(());
        }
        let mut torn = torn;
        if let Some(t) = torn.as_mut()
            && !t.partial_record
        {
            t.copy = Some(self.copy_aside("torn", t.first.offset)?);
        }
        let valid_len = self.log_len;
        let path = self.log_path.clone();
        let Some(log) = self.log.as_mut() else {
            return fail(ErrorKind::Poisoned {
                path: self.dir.clone(),
            });
        };
        if torn.is_some() {
            log.truncate(valid_len)
                .map_err(|e| Error::io("truncate torn tail of", &path, e))?;
        }
        if needs_newline {
            log.append(b"\n")
                .map_err(|e| Error::io("append to", &path, e))?;
            self.log_len += 1;
            self.report.completed_line = Some(self.lines);
        }
        log.sync().map_err(|e| Error::io("fsync", &path, e))?;
        if torn.is_some() {
            self.report.torn_tail = torn;
        }
        Ok(())
    }

    /// Keys other processes changed since the last call, and whether the
    /// store was reloaded as a whole (shared mode).
    pub(crate) fn take_external(&mut self) -> (bool, Vec<String>) {
        std::mem::take(&mut self.external)
    }

    /// Picks up records that other processes appended (or a compaction they
    /// made) since this handle last looked, without reopening. For a
    /// read-only handle, or a shared one; an exclusive writer is the only
    /// writer, so there is nothing to pick up.
    ///
    /// # Errors
    ///
    /// As [`open`](Pod::open) for reading the log.
    pub fn refresh(&mut self) -> Result<()> {
        if self.opts.read_only {
            return self.catch_up();
        }
        self.in_op(|_| Ok(()))
    }

    /// Records the identity of the log file now in place.
    fn note_log_id(&mut self) -> Result<()> {
        self.log_id = self
            .storage()
            .file_id(&self.log_path)
            .map_err(|e| Error::io("stat", &self.log_path, e))?
            .0;
        Ok(())
    }

    /// Removes a stale temp file, creates or repairs the log, replays it and
    /// opens it for appending.
    fn open_log(&mut self) -> Result<()> {
        let storage = self.storage();
        let tmp = self.tmp_path();
        if storage
            .exists(&tmp)
            .map_err(|e| Error::io("stat", &tmp, e))?
        {
            storage
                .remove_file(&tmp)
                .map_err(|e| Error::io("remove stale", &tmp, e))?;
            self.report.removed_temp = true;
        }
        let exists = storage
            .exists(&self.log_path)
            .map_err(|e| Error::io("stat", &self.log_path, e))?;
        if !exists {
            self.rewrite(Index::default())?;
        }
        let replayed = self.read_log()?;
        // No header: an empty store (only blank lines, or a header cut
        // short while the store was created), or a salvaged one.
        let needs_rewrite = !replayed.has_header || replayed.skipped_count > 0;
        let (torn, needs_newline) = (replayed.torn.clone(), replayed.needs_newline);
        self.report.torn_tail = torn.clone();
        self.report.skipped = replayed.skipped.clone();
        self.report.skipped_count = replayed.skipped_count;
        self.adopt(replayed);
        if self.report.skipped_count > 0 {
            // Salvage never deletes data: the damaged log is kept as it was.
            self.report.damaged_copy = Some(self.copy_aside("damaged", 0)?);
        }
        if needs_rewrite {
            let cut_more_than_a_record = self
                .report
                .torn_tail
                .as_ref()
                .filter(|t| !t.partial_record)
                .map(|t| t.first.offset);
            if let Some(from) = cut_more_than_a_record {
                let copy = self.copy_aside("torn", from)?;
                if let Some(t) = self.report.torn_tail.as_mut() {
                    t.copy = Some(copy);
                }
            }
            let index = std::mem::take(&mut self.index);
            return self.rewrite(index);
        }
        let log = storage
            .open_append(&self.log_path)
            .map_err(|e| Error::io("open", &self.log_path, e))?;
        self.log = Some(log);
        self.repair_end(torn, needs_newline)
    }

    /// Reads and replays the log file.
    fn read_log(&self) -> Result<Replayed<V>> {
        let (reader, size) = self
            .storage()
            .open_read(&self.log_path)
            .map_err(|e| Error::io("open", &self.log_path, e))?;
        let salvage = self.opts.recovery == Recovery::Salvage;
        replay::replay(reader, size, &self.log_path, salvage, self.opts.max_record)
    }

    /// Makes a replayed log the in-memory state.
    fn adopt(&mut self, replayed: Replayed<V>) {
        self.epoch += 1;
        self.index = replayed.index;
        self.log_len = replayed.valid_len;
        self.live_bytes = replayed.live_bytes;
        self.lines = replayed.valid_lines;
        self.removed.clear();
    }

    /// Copies the log from byte `from` to a new file beside it,
    /// `pod.log.<what>-<secs>[-n]` (created, never overwritten, and
    /// fsynced with its directory); returns its path.
    fn copy_aside(&self, what: &str, from: u64) -> Result<PathBuf> {
        let storage = self.storage();
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut n = 0;
        let (target, mut out) = loop {
            let candidate = replay::side_name(&self.log_path, what, secs, n);
            match storage.create_new(&candidate) {
                Ok(out) => break (candidate, out),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(Error::io("create", &candidate, e)),
            }
        };
        let (mut reader, _) = storage
            .open_read_at(&self.log_path, from)
            .map_err(|e| Error::io("open", &self.log_path, e))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", &self.log_path, e)),
            };
            out.append(buf.get(..n).unwrap_or_default())
                .map_err(|e| Error::io("write", &target, e))?;
        }
        out.sync().map_err(|e| Error::io("fsync", &target, e))?;
        storage
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
        Ok(target)
    }

    /// Atomically replaces the log with the live records of `index` and
    /// reopens it for appending. On failure `index` stays the in-memory state.
    fn rewrite(&mut self, mut index: Index<V>) -> Result<()> {
        let storage = self.storage();
        let tmp = self.tmp_path();
        let paths = LogPaths {
            dir: &self.dir,
            log: &self.log_path,
            tmp: &tmp,
        };
        let result = compact::rewrite(&*storage, &paths, &index, |key, v| encode(key, v));
        let Rewritten {
            relocation,
            len,
            lines,
        } = match result {
            Ok(r) => r,
            Err(e) => {
                self.index = index;
                if e.replaced {
                    self.poisoned = true;
                    self.log = None;
                }
                return Err(e.error);
            }
        };
        index.relocate(relocation);
        // The old handle points at the replaced file.
        self.log = None;
        if let Ok((id, _)) = storage.file_id(&self.log_path) {
            self.log_id = id;
        }
        self.index = index;
        self.epoch += 1;
        self.log_len = len;
        self.live_bytes = len;
        self.lines = lines;
        match storage.open_append(&self.log_path) {
            Ok(log) => {
                self.log = Some(log);
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(Error::io("open", &self.log_path, e))
            }
        }
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The log file's path.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// What opening found and repaired (a torn tail, skipped lines).
    pub fn recovery(&self) -> &RecoveryReport {
        &self.report
    }

    /// Whether the handle refuses writes because a write or fsync failed.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Whether the handle was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.opts.read_only
    }

    /// Sizes of the log and of its live and dead parts.
    pub fn stats(&self) -> PodStats {
        PodStats {
            keys: self.len(),
            log_bytes: self.log_len,
            live_bytes: self.live_bytes,
            dead_bytes: self.log_len.saturating_sub(self.live_bytes),
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
    /// unsynced changes).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Decode`] if the stored bytes are not UTF-8;
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
                path: self.log_path.clone(),
                key: self.index.key(i).to_string(),
                line: self.index.line(i),
                source,
            }
            .into()
        })
    }

    fn json_of(&self, i: usize) -> Result<Cow<'_, str>> {
        match self.index.value(i) {
            ValueRef::Live(v) => {
                let bytes = encode(self.index.key(i), v)?;
                String::from_utf8(bytes)
                    .map(Cow::Owned)
                    .map_err(|_| self.not_utf8(i, &[0xff]))
            }
            ValueRef::Text(t) => std::str::from_utf8(t)
                .map(Cow::Borrowed)
                .map_err(|_| self.not_utf8(i, t)),
        }
    }

    fn not_utf8(&self, i: usize, text: &[u8]) -> Error {
        match serde_json::from_slice::<serde::de::IgnoredAny>(text) {
            Err(source) => ErrorKind::Decode {
                path: self.log_path.clone(),
                key: self.index.key(i).to_string(),
                line: self.index.line(i),
                source,
            }
            .into(),
            Ok(_) => ErrorKind::Corrupt {
                path: self.log_path.clone(),
                line: self.index.line(i),
                offset: 0,
                reason: "value is not UTF-8".into(),
            }
            .into(),
        }
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

    /// The keys with changes not yet synced: changed keys in order, then
    /// removed keys.
    pub fn dirty_keys(&self) -> impl Iterator<Item = &str> + '_ {
        let changed = self.index.dirty_slots().into_iter();
        changed.map(|i| self.index.key(i)).chain(
            self.removed
                .iter()
                .map(String::as_str)
                .filter(|k| !self.contains_key(k)),
        )
    }

    /// The number of keys with changes not yet synced.
    pub fn dirty_len(&self) -> usize {
        self.index.dirty_len() + self.removed.len()
    }

    /// [`check_writable`](Self::check_writable), after syncing for a
    /// signal-driven shutdown if one is under way.
    fn writable(&mut self) -> Result<()> {
        if signals::shutting_down().is_some() && !self.in_shutdown_sync && !signals::in_handler() {
            // Sync (unless the handler already did), then change nothing more.
            self.sync_for_shutdown();
            signals::wait_for_exit();
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
        if !self.opts.read_only
            && !self.poisoned
            && self.has_unsynced()
            && let Err(e) = self.sync()
        {
            eprintln!(
                "tastypod: could not sync {} on a signal: {}",
                self.dir.display(),
                crate::error_chain(&e)
            );
        }
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
        if self.poisoned || self.log.is_none() {
            return fail(ErrorKind::Poisoned {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Changes whenever slot numbers may have changed.
    pub(crate) fn epoch(&self) -> (u64, u64) {
        (self.epoch, self.index.generation())
    }

    pub(crate) fn index(&self) -> &Index<V> {
        &self.index
    }

    pub(crate) fn index_mut(&mut self) -> &mut Index<V> {
        &mut self.index
    }

    /// Syncs if enough keys are dirty and no hold is active.
    pub(crate) fn after_change(&mut self) -> Result<()> {
        if self.holds == 0 && self.dirty_len() >= self.opts.sync_at {
            self.sync()?;
        }
        Ok(())
    }

    /// Sets `key` to `value`. A new key goes to the end of the order; an
    /// existing key keeps its place.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReadOnly`] or [`ErrorKind::Poisoned`] if the handle
    /// cannot write; [`ErrorKind::Encode`] if `value` cannot be encoded
    /// (nothing changes); any error of the automatic sync this change may
    /// trigger, as [`sync`](Pod::sync) describes (a failed write leaves the
    /// change in memory, unsynced; a failed compaction after the write does
    /// not undo it).
    pub fn insert(&mut self, key: &str, value: V) -> Result<()> {
        self.in_op(|pod| pod.insert_now(key, &value))
    }

    /// [`insert`](Pod::insert) for a value the caller keeps: the value is
    /// encoded at once, so nothing is cloned.
    ///
    /// # Errors
    ///
    /// As [`insert`](Pod::insert).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let mut pod: tastypod::Pod = tastypod::Pod::open(dir.path().join("p"))?;
    /// let config = serde_json::json!({"depth": 3});
    /// pod.insert_ref("config", &config)?;
    /// assert_eq!(pod.get("config")?, Some(config));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert_ref(&mut self, key: &str, value: &V) -> Result<()> {
        self.in_op(|pod| pod.insert_now(key, value))
    }

    fn insert_now(&mut self, key: &str, value: &V) -> Result<()> {
        self.writable()?;
        let hash = self.index.hash(key.as_bytes());
        // Encoded now, into the record the next sync writes.
        let superseded = self.index.put_pending(hash, key, |buf| {
            encode_value(buf, key, value, self.opts.max_record)
        })?;
        if let Some(old) = superseded {
            self.live_bytes -= record::put_len(key, old);
        }
        self.after_change()
    }

    /// Inserts every pair, in order.
    ///
    /// # Errors
    ///
    /// As [`insert`](Pod::insert); pairs before the failing one stay inserted.
    pub fn extend<K: AsRef<str>>(&mut self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        for (k, v) in pairs {
            self.insert(k.as_ref(), v)?;
        }
        Ok(())
    }

    /// Mutable access to `key`'s value; the key is marked dirty and the
    /// change is written by the next sync.
    ///
    /// A sync that the dirty count calls for happens at the next change,
    /// since it cannot while the value is borrowed. [`update`](Pod::update)
    /// applies the threshold at once.
    ///
    /// # Errors
    ///
    /// As [`insert`](Pod::insert), plus [`ErrorKind::Decode`] if the stored
    /// value does not decode into `V`.
    pub fn get_mut(&mut self, key: &str) -> Result<Option<&mut V>> {
        // In shared mode: read what others appended; the change itself is
        // written by this handle's next call.
        self.in_op(|pod| {
            pod.writable()?;
            pod.after_change()
        })?;
        let Some(i) = self.index.find(key) else {
            return Ok(None);
        };
        match self.index.value(i) {
            ValueRef::Text(t) => {
                let value = self.decode_text(i, t)?;
                self.index.set_live(i, value);
            }
            ValueRef::Live(_) => {
                self.index.mark_dirty(i);
            }
        }
        Ok(self.index.live_value_mut(i))
    }

    /// Runs `f` on `key`'s value and marks the key dirty; returns what `f`
    /// returns, or `None` if the key is absent.
    ///
    /// # Errors
    ///
    /// As [`get_mut`](Pod::get_mut).
    pub fn update<R>(&mut self, key: &str, f: impl FnOnce(&mut V) -> R) -> Result<Option<R>> {
        self.in_op(|pod| pod.update_now(key, f))
    }

    fn update_now<R>(&mut self, key: &str, f: impl FnOnce(&mut V) -> R) -> Result<Option<R>> {
        let out = self.get_mut(key)?.map(f);
        self.after_change()?;
        Ok(out)
    }

    /// Removes `key`; returns whether it was present. A removal record is
    /// written by the next sync.
    ///
    /// # Errors
    ///
    /// As [`insert`](Pod::insert).
    pub fn remove(&mut self, key: &str) -> Result<bool> {
        self.in_op(|pod| pod.remove_now(key))
    }

    fn remove_now(&mut self, key: &str) -> Result<bool> {
        self.writable()?;
        if !self.remove_key(key) {
            return Ok(false);
        }
        self.after_change()?;
        Ok(true)
    }

    /// Removes `key` from memory and, if it has a record on disk, queues its
    /// removal record; returns whether it was present.
    fn remove_key(&mut self, key: &str) -> bool {
        let Some(i) = self.index.find(key) else {
            return false;
        };
        let on_disk = self.index.is_on_disk(i);
        if let Some(old) = self.index.disk_value_len(i) {
            self.live_bytes -= record::put_len(key, old);
        }
        self.index.remove(key);
        if on_disk && self.removed.insert(key.to_string()) {
            self.index.pending_del(key);
        }
        true
    }

    /// Marks `key` dirty so the next sync writes it again (tastypy's
    /// `update(key)`); returns whether it is present.
    ///
    /// # Errors
    ///
    /// As [`insert`](Pod::insert).
    pub fn mark_dirty(&mut self, key: &str) -> Result<bool> {
        self.in_op(|pod| pod.mark_dirty_now(key))
    }

    fn mark_dirty_now(&mut self, key: &str) -> Result<bool> {
        self.writable()?;
        let Some(i) = self.index.find(key) else {
            return Ok(false);
        };
        self.index.mark_dirty(i);
        self.after_change()?;
        Ok(true)
    }

    /// Writes every dirty record with one write call, then fsyncs the log
    /// (with [`Durability::Full`]). Its cost is proportional to the dirty
    /// keys, not to the store. Once it returns `Ok`, the changes survive a
    /// killed process and a power loss.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Encode`] if a value cannot be encoded (nothing is
    /// written); [`ErrorKind::Io`] if the write or fsync fails, after which
    /// the handle is poisoned: later writes return [`ErrorKind::Poisoned`]
    /// and reopening shows what is really on disk. If an automatic
    /// compaction fails (it runs in the background and is taken in by a
    /// later sync), that sync returns its error; the records it wrote are
    /// durable regardless, and the old log stays in place.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let mut pod: tastypod::Pod = tastypod::Pod::open(dir.path().join("p"))?;
    /// pod.insert("k", 1.into())?;
    /// assert_eq!(pod.dirty_len(), 1);
    /// pod.sync()?;
    /// assert_eq!(pod.dirty_len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sync(&mut self) -> Result<()> {
        self.in_op(|pod| pod.sync_now())
    }

    fn sync_now(&mut self) -> Result<()> {
        self.writable()?;
        if self.oplock.is_some() {
            return self.sync_shared();
        }
        let wrote = self.dirty_len() > 0;
        if wrote {
            self.write_dirty(true)?;
        }
        // A background compaction that is done switches in now.
        self.finish_background(false)?;
        if wrote {
            self.maybe_compact()?;
        }
        Ok(())
    }

    /// Writes `key`'s pending change (a new value or a removal) now, with
    /// the unsynced new keys inserted before it, so the order on disk stays
    /// the order in memory.
    ///
    /// # Errors
    ///
    /// As [`sync`](Pod::sync).
    pub fn sync_key(&mut self, key: &str) -> Result<()> {
        self.in_op(|pod| pod.sync_key_now(key))
    }

    fn sync_key_now(&mut self, key: &str) -> Result<()> {
        self.writable()?;
        if self.oplock.is_some() {
            // Shared mode appends every change at once; only the fsync is left.
            return self.sync_shared();
        }
        let target = self.index.find(key);
        let slots: Vec<usize> = match target {
            Some(t) => self
                .index
                .dirty_slots()
                .into_iter()
                .filter(|&i| i == t || (i < t && !self.index.is_on_disk(i)))
                .collect(),
            None => Vec::new(),
        };
        let removals: Vec<String> = slots
            .iter()
            .map(|&i| self.index.key(i))
            .chain(std::iter::once(key))
            .filter(|k| self.removed.contains(*k))
            .map(str::to_string)
            .collect();
        if slots.is_empty() && removals.is_empty() {
            return Ok(());
        }
        self.write_records(&removals, &slots, true)?;
        // What was just written is still in the pending block too.
        self.index.pending_superseded();
        Ok(())
    }

    /// Writes every pending change with one write call and (per the
    /// durability policy, if `fsync`) one fsync: the pending block as it
    /// is, plus records for changes made in place, when nothing in it was
    /// superseded; otherwise removals, then puts in slot order.
    fn write_dirty(&mut self, fsync: bool) -> Result<()> {
        let slots = self.index.dirty_slots();
        if self.index.pending_is_exact() {
            // Encoded before the pending chunks are taken out of the arena,
            // since encoding runs the caller's code, which may fail or panic.
            if let Some((extra, placed)) = self.encode_in_place_changes(&slots)? {
                let (block, base) = if extra.is_empty() {
                    (0, 0)
                } else {
                    self.index.append_to_pending(&extra)
                };
                if let Some((chunks, records)) = self.index.take_exact_pending() {
                    let placed = placed
                        .into_iter()
                        .map(|(value, n)| {
                            let offset = value.offset + base as u32;
                            let value = Loc {
                                block,
                                offset,
                                ..value
                            };
                            (value, records.saturating_add(n))
                        })
                        .collect();
                    return self.write_pending(chunks, records, &slots, placed, fsync);
                }
            }
        }
        let removals: Vec<String> = self.removed.iter().cloned().collect();
        self.write_records(&removals, &slots, fsync)?;
        self.index.reset_pending();
        Ok(())
    }

    /// Writes the pending chunks (holding `records` records, then the
    /// `placed` ones) with one write call and makes the dirty `slots` point
    /// at what was written.
    fn write_pending(
        &mut self,
        chunks: Vec<Chunk>,
        records: u32,
        slots: &[usize],
        placed: Vec<Placed>,
        fsync: bool,
    ) -> Result<()> {
        let parts: Vec<&[u8]> = chunks.iter().map(|(_, c)| &c[..]).collect();
        if let Err(e) = self.append_parts(&parts, fsync) {
            for (n, buf) in chunks {
                self.index.return_pending(n, buf);
            }
            // The handle is poisoned; should it ever retry, the in-place
            // records now in the last chunk must not be written twice.
            self.index.pending_superseded();
            return Err(e);
        }
        // The texts of chunks too small to keep move to the arena.
        let moved: Vec<(u32, &[u8])> = chunks
            .iter()
            .filter(|(_, c)| !Index::<V>::keeps_pending(c.len()))
            .map(|(n, c)| (*n, &c[..]))
            .collect();
        let first_line = self.lines;
        self.lines += u64::from(records) + placed.len() as u64;
        // Every put record in the pending block is live now (what they
        // superseded was discounted when they were made).
        self.live_bytes += self.index.pending_put_bytes();
        let mut placed = placed.into_iter();
        for &i in slots {
            let (value, ordinal) = match self.index.pending_value(i) {
                Some(at) => at,
                None => {
                    let Some(at) = placed.next() else {
                        continue;
                    };
                    let key = self.index.key(i);
                    if let Some(old) = self.index.disk_value_len(i) {
                        self.live_bytes -= record::put_len(key, old);
                    }
                    self.live_bytes += record::put_len(key, at.0.len as usize);
                    at
                }
            };
            let value = match moved.iter().find(|(n, _)| *n == value.block) {
                Some((_, chunk)) => {
                    let start = value.offset as usize;
                    let text = chunk.get(start..start + value.len as usize);
                    self.index.push_bytes(text.unwrap_or_default())
                }
                None => value,
            };
            let line = u32::try_from(first_line + u64::from(ordinal)).unwrap_or(u32::MAX);
            self.index.set_text(i, value, line);
        }
        drop(moved);
        self.removed.clear();
        self.index.finish_pending(chunks);
        self.index.prune_dirty();
        Ok(())
    }

    /// Put records for the dirty `slots` that have none in the pending
    /// block (changed in place, or marked dirty), and where each value text
    /// sits in them with its record's position (from 1); `None` if one of
    /// them is a key not on disk yet, which the pending block cannot order.
    fn encode_in_place_changes(&self, slots: &[usize]) -> Result<Option<(Vec<u8>, Vec<Placed>)>> {
        // Room for every record, guessing a changed value's length from its
        // old text, so the buffer is not grown record by record.
        let room: u64 = slots
            .iter()
            .filter(|&&i| !self.index.is_pending(i))
            .map(|&i| {
                let old = self.index.disk_value_len(i).unwrap_or(64);
                record::put_len(self.index.key(i), old + 16)
            })
            .sum();
        let mut buf = Vec::with_capacity(usize::try_from(room).unwrap_or(0));
        let mut placed = Vec::new();
        for &i in slots {
            if self.index.is_pending(i) {
                continue;
            }
            if !self.index.is_on_disk(i) {
                return Ok(None);
            }
            let key = self.index.key(i);
            let start = record::begin_put(&mut buf, key);
            let value_start = buf.len();
            match self.index.value(i) {
                ValueRef::Text(t) => buf.extend_from_slice(t),
                ValueRef::Live(v) => encode_value(&mut buf, key, v, self.opts.max_record)?,
            }
            let len = buf.len() - value_start;
            record::end_put(&mut buf, start);
            let value = Loc {
                block: 0,
                offset: u32::try_from(value_start).unwrap_or(u32::MAX),
                len: len as u32,
            };
            placed.push((value, placed.len() as u32 + 1));
        }
        if u32::try_from(buf.len()).is_err() {
            return Ok(None); // too big for 32-bit offsets: written the other way
        }
        Ok(Some((buf, placed)))
    }

    /// Writes removal records for `removals`, then put records for `slots`
    /// (in slot order), with one write call and (per the durability policy)
    /// one fsync.
    fn write_records(&mut self, removals: &[String], slots: &[usize], fsync: bool) -> Result<()> {
        let mut buf = Vec::with_capacity(slots.len() * 128 + removals.len() * 48);
        for key in removals {
            record::encode_del(&mut buf, key);
        }
        // Where each put's value text sits in `buf`.
        let mut placed = Vec::with_capacity(slots.len());
        for &i in slots {
            let key = self.index.key(i);
            let start = record::begin_put(&mut buf, key);
            let value_start = buf.len();
            match self.index.value(i) {
                ValueRef::Text(t) => buf.extend_from_slice(t),
                ValueRef::Live(v) => encode_value(&mut buf, key, v, self.opts.max_record)?,
            }
            let value_len = buf.len() - value_start;
            record::end_put(&mut buf, start);
            placed.push((i, value_start, value_len));
        }
        self.append(&buf, fsync)?;
        for key in removals {
            self.removed.remove(key);
        }
        self.lines += removals.len() as u64;
        for &(i, _, len) in &placed {
            let key = self.index.key(i);
            if let Some(old) = self.index.disk_value_len(i) {
                self.live_bytes -= record::put_len(key, old);
            }
            self.live_bytes += record::put_len(key, len);
        }
        // The written buffer becomes the home of the synced value texts
        // (copied instead when it is too big for 32-bit offsets).
        let adopt = u32::try_from(buf.len()).is_ok();
        let block = if adopt {
            self.index.adopt_block(std::mem::take(&mut buf))
        } else {
            0
        };
        for (i, start, len) in placed {
            self.lines += 1;
            let line = u32::try_from(self.lines).unwrap_or(u32::MAX);
            let value = if adopt {
                Loc {
                    block,
                    offset: start as u32,
                    len: len as u32,
                }
            } else {
                self.index
                    .push_bytes(buf.get(start..start + len).unwrap_or_default())
            };
            self.index.set_text(i, value, line);
        }
        self.index.prune_dirty();
        Ok(())
    }

    /// Appends `parts`, in order, to the log with one write call and fsyncs
    /// it per the durability policy; any failure poisons the handle.
    fn append_parts(&mut self, parts: &[&[u8]], fsync: bool) -> Result<()> {
        let Some(log) = self.log.as_mut() else {
            return fail(ErrorKind::Poisoned {
                path: self.dir.clone(),
            });
        };
        let written = log
            .append_parts(parts)
            .map_err(|e| Error::io("append to", &self.log_path, e))
            .and_then(|()| match self.opts.durability {
                Durability::Full if fsync => log
                    .sync()
                    .map_err(|e| Error::io("fsync", &self.log_path, e)),
                _ => Ok(()),
            });
        if written.is_err() {
            self.poisoned = true;
        }
        written?;
        self.log_len += parts.iter().map(|p| p.len() as u64).sum::<u64>();
        Ok(())
    }

    /// Appends `buf` to the log and fsyncs it per the durability policy;
    /// any failure poisons the handle.
    fn append(&mut self, buf: &[u8], fsync: bool) -> Result<()> {
        self.append_parts(&[buf], fsync)
    }

    fn maybe_compact(&mut self) -> Result<()> {
        if let Compaction::Auto {
            dead_fraction,
            min_bytes,
        } = self.opts.compaction
        {
            let dead = self.log_len.saturating_sub(self.live_bytes);
            if self.log_len >= min_bytes && dead as f64 > dead_fraction * self.log_len as f64 {
                if self.oplock.is_some() {
                    // Other processes read the log: compact under the lock.
                    return self.compact();
                }
                return self.start_background();
            }
        }
        Ok(())
    }

    /// Starts compacting the log as it is now on another thread, unless a
    /// compaction is already running; the handle goes on appending to the
    /// old log, and a later call switches to the new one.
    fn start_background(&mut self) -> Result<()> {
        if self.background.is_some() {
            return Ok(());
        }
        let Some(snapshot) = self.index.snapshot() else {
            return self.compact();
        };
        if !self.removed.is_empty() {
            return self.compact();
        }
        let storage = self.storage();
        let tmp = self.tmp_path();
        let job = if storage.allows_threads() {
            let run = {
                let (storage, tmp) = (storage.clone(), tmp.clone());
                move || compact::prepare(&*storage, &tmp, snapshot)
            };
            match std::thread::Builder::new()
                .name("tastypod-compact".into())
                .spawn(run)
            {
                Ok(handle) => Job::Running(handle),
                // No thread to be had: compact here and now.
                Err(_) => return self.compact(),
            }
        } else {
            Job::Done(compact::prepare(&*storage, &tmp, snapshot))
        };
        self.background = Some(Background {
            job: Some(job),
            snap_len: self.log_len,
            snap_lines: self.lines,
            epoch: self.epoch,
            storage,
            tmp,
        });
        Ok(())
    }

    /// Switches to the log a background compaction wrote, once it is done
    /// (waiting for it if `wait`): the records appended to the old log since
    /// its snapshot are appended to the new one, which is fsynced and
    /// renamed into place. A compaction made stale by a reload is dropped.
    ///
    /// # Errors
    ///
    /// What the compaction ran into, or [`ErrorKind::Io`] if the switch
    /// fails; before the rename nothing changes (the old log stays, the
    /// temp file is removed), after it the handle is poisoned.
    fn finish_background(&mut self, wait: bool) -> Result<()> {
        match &self.background {
            Some(Background { job: Some(job), .. }) if wait || job.is_finished() => {}
            _ => return Ok(()),
        }
        let Some(mut bg) = self.background.take() else {
            return Ok(());
        };
        let Some(job) = bg.job.take() else {
            return Ok(());
        };
        let storage = self.storage();
        let tmp = self.tmp_path();
        let abandon = |storage: &dyn Storage| {
            // Best effort: a leftover temp file is removed on the next open anyway.
            let _ = storage.remove_file(&tmp);
        };
        let prepared = match job.join(&tmp) {
            Ok(prepared) => prepared,
            Err(e) => {
                abandon(&*storage);
                return Err(e);
            }
        };
        let stale = self.poisoned
            || self.log.is_none()
            || self.epoch != bg.epoch
            || !self.index.is_current(&prepared.snapshot)
            || self.log_len < bg.snap_len;
        if stale {
            drop(prepared);
            abandon(&*storage);
            return Ok(());
        }
        let compact::Prepared {
            mut file,
            rewritten,
            snapshot,
        } = prepared;
        let mut tail = Vec::new();
        let switched = storage
            .open_read_at(&self.log_path, bg.snap_len)
            .and_then(|(r, _)| r.take(self.log_len - bg.snap_len).read_to_end(&mut tail))
            .map_err(|e| Error::io("read", &self.log_path, e))
            .and_then(|_| {
                file.append(&tail)
                    .and_then(|()| file.sync())
                    .map_err(|e| Error::io("append to", &tmp, e))
            })
            .and_then(|()| {
                storage
                    .rename(&tmp, &self.log_path)
                    .map_err(|e| Error::io("rename into place", &tmp, e))
            });
        if let Err(e) = switched {
            drop(file);
            abandon(&*storage);
            return Err(e);
        }
        // The new log is in place; the old handle points at the replaced file.
        self.log = None;
        if let Err(e) = storage.sync_dir(&self.dir) {
            self.poisoned = true;
            return Err(Error::io("fsync directory", &self.dir, e));
        }
        self.log = Some(file);
        if let Ok((id, _)) = storage.file_id(&self.log_path) {
            self.log_id = id;
        }
        let since = self.lines - bg.snap_lines;
        self.index.adopt_compacted(
            rewritten.relocation,
            &snapshot,
            bg.snap_lines,
            rewritten.lines,
        );
        self.log_len = rewritten.len + tail.len() as u64;
        self.lines = rewritten.lines + since;
        Ok(())
    }

    /// Waits for a background compaction and deletes what it wrote.
    fn abandon_background(&mut self) {
        // Dropping it waits for the thread and removes the temp file.
        self.background = None;
    }

    /// Rewrites the log with one record per key, in order, dropping
    /// superseded and removal records. Syncs first. A crash at any point
    /// leaves either the old log or the new one, complete.
    ///
    /// # Errors
    ///
    /// As [`sync`](Pod::sync). A failure before the new log is renamed into
    /// place leaves the old log and this handle as they were; a failure
    /// after it poisons the handle.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let mut pod: tastypod::Pod = tastypod::Pod::open(dir.path().join("p"))?;
    /// for n in 0..10 {
    ///     pod.insert("counter", n.into())?;
    ///     pod.sync()?;
    /// }
    /// pod.compact()?;
    /// assert_eq!(pod.stats().dead_bytes, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn compact(&mut self) -> Result<()> {
        self.in_op(|pod| pod.compact_now())
    }

    fn compact_now(&mut self) -> Result<()> {
        // This sync must not start a compaction of its own.
        let auto = std::mem::replace(&mut self.opts.compaction, Compaction::Manual);
        let synced = self.sync();
        self.opts.compaction = auto;
        synced?;
        self.abandon_background();
        self.writable()?;
        let index = std::mem::take(&mut self.index);
        self.rewrite(index)
    }

    /// Writes every pending change as one atomic step: the log is rewritten
    /// with the whole current contents (like [`compact`](Pod::compact), but
    /// without syncing first), so after a crash either all of the changes
    /// are on disk or none is. Costs time proportional to the store.
    ///
    /// # Errors
    ///
    /// As [`compact`](Pod::compact); on an error before the rename, nothing
    /// was written and the changes are still pending.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let mut pod: tastypod::Pod = tastypod::Pod::open(dir.path().join("p"))?;
    /// pod.hold();
    /// pod.insert("from", 100.into())?;
    /// pod.insert("to", 0.into())?;
    /// pod.sync_atomic()?; // both or neither
    /// assert_eq!(pod.dirty_len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sync_atomic(&mut self) -> Result<()> {
        self.in_op(|pod| pod.sync_atomic_now())
    }

    fn sync_atomic_now(&mut self) -> Result<()> {
        self.writable()?;
        self.abandon_background();
        let index = std::mem::take(&mut self.index);
        self.rewrite(index)?;
        self.removed.clear();
        Ok(())
    }

    /// Discards every unsynced change and reloads the store from the log.
    ///
    /// # Errors
    ///
    /// As [`open`](Pod::open) for reading the log.
    pub fn revert(&mut self) -> Result<()> {
        self.abandon_background();
        if self.oplock.is_none() {
            let replayed = self.read_log()?;
            self.adopt(replayed);
            return Ok(());
        }
        // Shared mode: reload under the lock, so no half-appended record of
        // another process is read, and drop this handle's pending changes.
        self.discarding = true;
        let reverted = self.in_op(|pod| {
            let replayed = pod.read_log()?;
            pod.adopt(replayed);
            pod.external = (true, Vec::new());
            Ok(())
        });
        self.discarding = false;
        reverted
    }

    /// Suspends automatic syncing until a matching [`unhold`](Pod::unhold).
    /// Holds nest. [`sync`](Pod::sync) still works while held.
    pub fn hold(&mut self) {
        self.holds += 1;
    }

    /// Ends one [`hold`](Pod::hold); when none is left, syncs if the
    /// threshold was reached while held.
    ///
    /// # Errors
    ///
    /// As [`sync`](Pod::sync).
    pub fn unhold(&mut self) -> Result<()> {
        self.holds = self.holds.saturating_sub(1);
        if self.opts.read_only || self.poisoned {
            return Ok(());
        }
        self.after_change()
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
        if !self.opts.read_only
            && self.has_unsynced()
            && let Err(e) = self.sync()
        {
            self.abandon_background();
            return Err(e);
        }
        self.finish_background(true)
    }

    /// Whether anything is not yet durable: dirty keys, or (shared mode)
    /// records appended but not fsynced.
    fn has_unsynced(&self) -> bool {
        self.dirty_len() > 0 || self.unfsynced > 0
    }
}

/// Encodes a value as compact JSON by the rules of values ([`json`]).
fn encode<V: Serialize>(key: &str, value: &V) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    json::encode(&mut out, value).map_err(|source| ErrorKind::Encode {
        key: key.to_string(),
        source,
    })?;
    Ok(out)
}

/// Appends `value`, encoded as [`encode`] does, to `buf`, refusing a value
/// whose put record for `key` would be longer than `max_record` bytes (the
/// bytes appended are then cut off again).
fn encode_value<V: Serialize>(
    buf: &mut Vec<u8>,
    key: &str,
    value: &V,
    max_record: usize,
) -> Result<()> {
    let start = buf.len();
    let encoded = json::encode(buf, value).map_err(|source| {
        Error::from(ErrorKind::Encode {
            key: key.to_string(),
            source,
        })
    });
    let value_len = buf.len() - start;
    // The line without its newline.
    let len = record::put_len(key, value_len) - 1;
    let checked = encoded.and_then(|()| {
        if len > max_record as u64 {
            return fail(ErrorKind::RecordTooLarge {
                key: key.to_string(),
                len,
                max: max_record as u64,
            });
        }
        Ok(())
    });
    if checked.is_err() {
        buf.truncate(start);
    }
    checked
}

impl<V> Drop for Pod<V>
where
    V: Serialize + DeserializeOwned,
{
    fn drop(&mut self) {
        if self.closed || self.opts.read_only {
            return;
        }
        if !self.poisoned
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

//! Opening a store: the lock, a stale temp file, replaying the log and
//! repairing its end (a torn tail cut, a missing newline added), and the
//! copies a repair keeps beside the log.

use super::{LOCK_FILE, MultiProcess, OPLOCK_FILE, Pod, TMP_FILE};
use crate::error::{Error, ErrorKind, Result, fail};
use crate::fsio::Storage;
use crate::index::Index;
use crate::options::{PodOptions, Recovery};
use crate::replay::{self, Replayed, TornTail};
use crate::shared::SharedPod;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

impl PodOptions {
    /// Opens (creating if needed, unless read-only) the store at `path`
    /// with these options; `V` is the type of its values
    /// (`serde_json::Value` unless said otherwise).
    ///
    /// # Errors
    ///
    /// See [`Pod::open`].
    pub fn open<V>(&self, path: impl AsRef<Path>) -> Result<Pod<V>>
    where
        V: Serialize + DeserializeOwned,
    {
        Pod::open_with(path.as_ref(), self.clone())
    }

    /// [`open`](PodOptions::open), as a handle the threads of this process
    /// share ([`SharedPod`]).
    ///
    /// # Errors
    ///
    /// See [`Pod::open`].
    pub fn open_shared<V>(&self, path: impl AsRef<Path>) -> Result<SharedPod<V>>
    where
        V: Serialize + DeserializeOwned + Send + 'static,
    {
        Ok(self.open(path)?.into())
    }
}

impl<V> Pod<V>
where
    V: Serialize + DeserializeOwned,
{
    pub(super) fn storage(&self) -> Arc<dyn Storage> {
        Arc::clone(&self.opts.storage)
    }

    pub(super) fn tmp_path(&self) -> PathBuf {
        self.dir.join(TMP_FILE)
    }

    pub(super) fn open_read_only(&mut self) -> Result<()> {
        self.note_unsafe_dir();
        // Noted before the read: a compaction in between makes the next
        // `refresh` read the log anew, which is harmless.
        if let Ok((id, _)) = self.storage().file_id(self.log.path()) {
            self.followed_id = id;
        }
        let replayed = self.replay_log()?;
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

    pub(super) fn open_writable(&mut self) -> Result<()> {
        let storage = self.storage();
        let dir = self.dir.clone();
        storage
            .create_dir_all(&dir)
            .map_err(|e| Error::io("create directory", &dir, e))?;
        self.note_unsafe_dir();
        let lock_path = dir.join(LOCK_FILE);
        let multi = self.opts.multi_process;
        let lock = if multi {
            storage.lock_shared(&lock_path)
        } else {
            storage.lock(&lock_path, self.opts.wait_for_lock)
        };
        match lock.map_err(|e| Error::io("lock", &lock_path, e))? {
            Some(lock) => self._lock = Some(lock),
            None => return fail(ErrorKind::Locked { path: dir }),
        }
        if multi {
            let path = dir.join(OPLOCK_FILE);
            let oplock = storage
                .open_oplock(&path)
                .map_err(|e| Error::io("open", &path, e))?;
            self.multi = Some(MultiProcess::new(oplock));
            // Opening repairs the log, so it runs under the operation lock.
            return self.in_op(|pod| {
                pod.open_log()?;
                pod.note_log_id()
            });
        }
        self.open_log()
    }

    /// Records the identity of the log file now in place (multi-process mode).
    pub(super) fn note_log_id(&mut self) -> Result<()> {
        self.followed_id = self
            .storage()
            .file_id(self.log.path())
            .map_err(|e| Error::io("stat", self.log.path(), e))?
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
            .exists(self.log.path())
            .map_err(|e| Error::io("stat", self.log.path(), e))?;
        if !exists {
            self.rewrite(Index::default())?;
        }
        let replayed = self.replay_log()?;
        // No header: an empty store (only blank lines, or a header cut
        // short while the store was created), or a salvaged one.
        let needs_rewrite = !replayed.has_header || replayed.skipped_count > 0;
        let (torn, needs_newline) = (replayed.torn.clone(), replayed.needs_newline);
        // A multi-process handle's place is after any blank lines past the
        // last record; a hint must end at a record.
        let blank_tail = replayed.valid_len != replayed.content_len;
        self.report.torn_tail = torn.clone();
        self.report.skipped = replayed.skipped.clone();
        self.report.skipped_count = replayed.skipped_count;
        self.adopt(replayed);
        if self.report.skipped_count > 0 {
            // Salvage never deletes data: the damaged log is kept as it was.
            self.report.damaged_copy = Some(self.copy_aside("damaged", 0)?);
        }
        if needs_rewrite {
            let more_than_a_record = self
                .report
                .torn_tail
                .as_ref()
                .filter(|t| !t.partial_record)
                .map(|t| t.first.offset);
            if let Some(from) = more_than_a_record {
                let copy = self.copy_aside("torn", from)?;
                if let Some(t) = self.report.torn_tail.as_mut() {
                    t.copy = Some(copy);
                }
            }
            let index = std::mem::take(&mut self.index);
            return self.rewrite(index);
        }
        self.log.reopen(&*storage)?;
        self.repair_end(torn, needs_newline)?;
        // A large log read whole (no hint, or a stale one) gets a hint for
        // the next open.
        if !(blank_tail && self.multi.is_some()) {
            self.refresh_hint();
        }
        Ok(())
    }

    /// Replays the log at open: through its hint file if a usable one is
    /// there, else whole.
    fn replay_log(&mut self) -> Result<Replayed<V>> {
        match self.replay_hinted()? {
            Some(replayed) => Ok(replayed),
            None => self.read_log(),
        }
    }

    /// Reads and replays the log file. A writable open that does not
    /// salvage maps it (where the storage maps files): the value texts of
    /// its records stay in the map, in the kernel's page cache, not in this
    /// process's memory. A read-only handle holds no lock and a salvage
    /// keeps what a strict open cuts, so they copy (DESIGN.md, "Mapped logs").
    pub(super) fn read_log(&self) -> Result<Replayed<V>> {
        let path = self.log.path();
        let storage = self.storage();
        let salvage = self.opts.recovery == Recovery::Salvage;
        let map = !self.opts.read_only && !salvage;
        let open = || -> Result<(Box<dyn std::io::Read + Send>, u64, _)> {
            if map
                && let Some((reader, len, log)) = storage
                    .open_mapped(path)
                    .map_err(|e| Error::io("open", path, e))?
            {
                return Ok((reader, len, Some(log)));
            }
            let (reader, len) = storage
                .open_read(path)
                .map_err(|e| Error::io("open", path, e))?;
            Ok((reader, len, None))
        };
        replay::replay_mapped(open, path, salvage, self.opts.max_record)
    }

    /// Whether this handle's place in the log is the end of its last
    /// record rather than of the blank lines after it: the exclusive writer
    /// writes over those blank lines (its padding), and a read-only handle
    /// reads on from there (the writer may write records over them); a
    /// multi-process writer appends after them.
    pub(super) fn follows_content_end(&self) -> bool {
        self.log.pads() || self.opts.read_only
    }

    /// Makes a replayed log the in-memory state.
    pub(super) fn adopt(&mut self, replayed: Replayed<V>) {
        self.epoch += 1;
        self.crc_marks = replayed.crc_marks;
        self.index = replayed.index;
        self.format = replayed.version;
        self.settings = replayed.settings;
        if self.follows_content_end() {
            self.log
                .set_position(replayed.content_len, replayed.content_lines);
        } else {
            self.log
                .set_position(replayed.valid_len, replayed.valid_lines);
        }
        // Bytes past the handle's place may be cut or written over (a torn
        // tail, the padding): a CRC of them says nothing of the log to come.
        let place = self.log.len();
        self.crc_marks.retain(|(at, _)| *at <= place);
        #[cfg(debug_assertions)]
        self.index.check();
    }

    /// Cuts a torn tail (keeping it aside unless it is a partial record)
    /// and adds a missing final newline, as replay found them; any failure
    /// poisons the handle ([`LogFile::repair_end`](crate::log::LogFile::repair_end)).
    pub(super) fn repair_end(&mut self, torn: Option<TornTail>, needs_newline: bool) -> Result<()> {
        let mut torn = torn;
        let cut = torn.as_ref().map(|_| self.log.len());
        let keep_from = torn
            .as_ref()
            .filter(|t| !t.partial_record)
            .map(|t| t.first.offset);
        let (storage, dir) = (self.storage(), self.dir.clone());
        let log = self.log.path().to_path_buf();
        let mut copy = None;
        self.log.repair_end(cut, needs_newline, || {
            if let Some(from) = keep_from {
                copy = Some(copy_aside(&*storage, &log, &dir, "torn", from)?);
            }
            Ok(())
        })?;
        if let Some(t) = torn.as_mut() {
            t.copy = copy;
        }
        if torn.is_some() {
            self.report.torn_tail = torn;
        }
        if needs_newline {
            self.report.completed_line = Some(self.log.lines());
        }
        Ok(())
    }

    /// Copies the log from byte `from` to a new file beside it,
    /// `pod.log.<what>-<secs>[-n]` (created, never overwritten, and
    /// fsynced with its directory); returns its path.
    pub(super) fn copy_aside(&self, what: &str, from: u64) -> Result<PathBuf> {
        copy_aside(&*self.storage(), self.log.path(), &self.dir, what, from)
    }
}

/// Copies the log `log` of the store `dir` from byte `from` to a new file
/// beside it, `pod.log.<what>-<secs>[-n]` (created, never overwritten, and
/// fsynced with its directory); returns its path.
fn copy_aside(
    storage: &dyn Storage,
    log: &Path,
    dir: &Path,
    what: &str,
    from: u64,
) -> Result<PathBuf> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut n = 0;
    let (target, mut out) = loop {
        let candidate = replay::side_name(log, what, secs, n);
        match storage.create_new(&candidate) {
            Ok(out) => break (candidate, out),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) => return Err(Error::io("create", &candidate, e)),
        }
    };
    let (mut reader, _) = storage
        .open_read_at(log, from)
        .map_err(|e| Error::io("open", log, e))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", log, e)),
        };
        out.append(buf.get(..n).unwrap_or_default())
            .map_err(|e| Error::io("write", &target, e))?;
    }
    out.sync().map_err(|e| Error::io("fsync", &target, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))?;
    Ok(target)
}

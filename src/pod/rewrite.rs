//! Rewriting the log: `compact`, `sync_atomic`, and automatic compaction,
//! which in exclusive mode runs on another thread beside the handle's work
//! and is switched in by a later sync. `revert` is here too: it replaces
//! the in-memory state with the log's.

use super::Pod;
use crate::compact::{self, LogPaths, Rewritten};
use crate::error::{Error, Result};
use crate::fsio::Storage;
use crate::index::Index;
use crate::options::Compaction;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A compaction of the log as it was at `snap_len` bytes and `snap_lines`
/// lines, running on another thread (or, under a simulated file system,
/// already run) while the handle goes on appending to the old log.
#[derive(Debug)]
pub(super) struct Background {
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

impl<V> Pod<V>
where
    V: Serialize + DeserializeOwned,
{
    /// Atomically replaces the log with the live records of `index` and
    /// reopens it for appending. On failure `index` stays the in-memory state.
    pub(super) fn rewrite(&mut self, mut index: Index<V>) -> Result<()> {
        let storage = self.storage();
        let tmp = self.tmp_path();
        let log_path = self.log.path().to_path_buf();
        let paths = LogPaths {
            tmp: &tmp,
            settings: self.settings.as_deref(),
        };
        let max_record = self.opts.max_record;
        let written = compact::rewrite(&*storage, &paths, &index, |buf, key, v| {
            super::write::encode_value(buf, key, v, max_record)
        })
        .and_then(|(file, rewritten)| {
            let (len, lines) = (rewritten.len, rewritten.lines);
            self.log
                .install(&*storage, &tmp, file, len, lines)
                .map(|()| rewritten)
        });
        let Rewritten {
            relocation,
            len,
            crc,
            ..
        } = match written {
            Ok(r) => r,
            Err(e) => {
                self.index = index;
                return Err(e);
            }
        };
        // The index's blocks are now the new log's (whose places it knows).
        index.relocate(relocation);
        self.index = index;
        self.crc_marks = vec![(len, crc)];
        self.drop_hint();
        self.epoch += 1;
        self.format = crate::record::FORMAT_VERSION;
        // The new log's identity, to tell another process's rewrite from ours.
        self.followed_id = storage
            .file_id(&log_path)
            .map_err(|e| Error::io("stat", &log_path, e))?
            .0;
        Ok(())
    }

    pub(super) fn maybe_compact(&mut self) -> Result<()> {
        let Compaction::Auto {
            dead_fraction,
            min_bytes,
        } = self.opts.compaction
        else {
            return Ok(());
        };
        let stats = self.stats();
        let (log, dead) = (stats.log_bytes, stats.dead_bytes);
        if log < min_bytes || dead as f64 <= dead_fraction * log as f64 {
            return Ok(());
        }
        if self.multi.is_some() {
            // Other processes read the log: compact under the lock.
            return self.compact();
        }
        self.start_background()
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
        let storage = self.storage();
        let tmp = self.tmp_path();
        let job = if storage.allows_threads() {
            let run = {
                let (storage, tmp) = (storage.clone(), tmp.clone());
                let settings = self.settings.clone();
                move || {
                    let paths = LogPaths {
                        tmp: &tmp,
                        settings: settings.as_deref(),
                    };
                    compact::prepare(&*storage, &paths, snapshot)
                }
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
            let paths = LogPaths {
                tmp: &tmp,
                settings: self.settings.as_deref(),
            };
            Job::Done(compact::prepare(&*storage, &paths, snapshot))
        };
        self.background = Some(Background {
            job: Some(job),
            snap_len: self.log.len(),
            snap_lines: self.log.lines(),
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
    /// What the compaction ran into, or [`ErrorKind::Io`](crate::ErrorKind::Io)
    /// if the switch fails; before the rename nothing changes (the old log
    /// stays, the temp file is removed), after it the handle is poisoned.
    pub(super) fn finish_background(&mut self, wait: bool) -> Result<()> {
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
        let log_path = self.log.path().to_path_buf();
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
        // The tail is read back from the file: the records staged for the
        // next fsync's leader are written first.
        if let Err(e) = self.log.flush_staged() {
            drop(prepared);
            abandon(&*storage);
            return Err(e);
        }
        let (log_len, log_lines) = (self.log.len(), self.log.lines());
        let stale = self.log.writable().is_err()
            || self.epoch != bg.epoch
            || !self.index.is_current(&prepared.snapshot)
            || log_len < bg.snap_len;
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
        let copied = storage
            .open_read_at(&log_path, bg.snap_len)
            .and_then(|(r, _)| r.take(log_len - bg.snap_len).read_to_end(&mut tail))
            .map_err(|e| Error::io("read", &log_path, e))
            .and_then(|_| {
                file.append(&tail)
                    .and_then(|()| file.sync())
                    .map_err(|e| Error::io("append to", &tmp, e))
            });
        if let Err(e) = copied {
            drop(file);
            abandon(&*storage);
            return Err(e);
        }
        let since = log_lines - bg.snap_lines;
        let len = rewritten.len + tail.len() as u64;
        let mut crc = rewritten.crc.clone();
        crc.update(&tail);
        self.log
            .install(&*storage, &tmp, file, len, rewritten.lines + since)?;
        self.crc_marks = vec![(len, crc)];
        // The new log's header is of this version, whatever the old one's.
        self.format = crate::record::FORMAT_VERSION;
        self.index.adopt_compacted(
            rewritten.relocation,
            &snapshot,
            bg.snap_lines,
            rewritten.lines,
        );
        self.drop_hint();
        Ok(())
    }

    /// Waits for a background compaction and deletes what it wrote.
    pub(super) fn abandon_background(&mut self) {
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
        self.in_op(|pod| {
            // This sync must not start a compaction of its own.
            let auto = std::mem::replace(&mut pod.opts.compaction, Compaction::Manual);
            let synced = pod.sync();
            pod.opts.compaction = auto;
            synced?;
            pod.abandon_background();
            pod.writable()?;
            let index = std::mem::take(&mut pod.index);
            pod.rewrite(index)
        })
    }

    /// Writes every pending change as one atomic step: after a crash either
    /// all of the changes are on disk or none is. Every [`sync`](Pod::sync)
    /// is atomic (its records are one batch; a log written by an older
    /// build, of version 1 or 2, is rewritten whole as version 3 by its
    /// first sync of several changes), so this is a sync.
    ///
    /// # Errors
    ///
    /// As [`sync`](Pod::sync); nothing of a failed call is kept after a
    /// crash, and the changes are still pending.
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
        self.in_op(|pod| {
            pod.writable()?;
            // Every sync of a version-3 log is one batch, all or nothing;
            // an older log is rewritten as version 3 by a sync of several
            // changes.
            pod.sync_now()
        })
    }

    /// Whether the next write needs a batch line that the log's version
    /// (1 or 2, written by an older build) does not allow: more than one
    /// change is pending. A single record is written as it always was, so
    /// an older build keeps reading the log until then.
    pub(super) fn needs_upgrade(&self) -> bool {
        self.format < crate::record::BATCH_VERSION && self.index.dirty_len() >= 2
    }

    /// Writes the pending changes by rewriting the log whole as version 3
    /// (atomically, as a compaction does): from then on every sync is one
    /// framed batch.
    pub(super) fn upgrade(&mut self) -> Result<()> {
        self.abandon_background();
        let index = std::mem::take(&mut self.index);
        self.rewrite(index)?;
        if let Some(m) = self.multi.as_mut() {
            m.note_fsynced();
        }
        Ok(())
    }

    /// Replaces the settings the log's header holds (the text of a JSON
    /// object, or none) by rewriting the log with every pending change, like
    /// [`compact`](Pod::compact). A log with settings is format version 2.
    /// Nothing happens if the settings are already these.
    pub(crate) fn set_settings(&mut self, settings: Option<Vec<u8>>) -> Result<()> {
        self.in_op(|pod| {
            if pod.settings == settings {
                return Ok(());
            }
            pod.writable()?;
            let old = std::mem::replace(&mut pod.settings, settings);
            let rewritten = pod.compact();
            if rewritten.is_err() && !pod.is_poisoned() {
                // The old log, and so its header, is still in place.
                pod.settings = old;
            }
            rewritten
        })
    }

    /// Discards every unsynced change and reloads the store from the log.
    ///
    /// # Errors
    ///
    /// As [`open`](Pod::open) for reading the log.
    pub fn revert(&mut self) -> Result<()> {
        self.abandon_background();
        if self.multi.is_none() {
            // What the handle wrote is what it reloads.
            if self.log.is_attached() {
                self.log.flush_staged()?;
            }
            let replayed = self.read_log()?;
            self.adopt(replayed);
            return Ok(());
        }
        // Multi-process mode: reload under the lock, so no half-appended
        // record of another process is read, and drop this handle's
        // pending changes.
        self.in_discarding_op(|pod| {
            let replayed = pod.read_log()?;
            pod.adopt(replayed);
            pod.note_reloaded();
            Ok(())
        })
    }
}

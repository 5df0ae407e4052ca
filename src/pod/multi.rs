//! The multi-process mode ([`PodOptions::multi_process`](crate::PodOptions::multi_process)):
//! each operation takes the store's operation lock, catches up on what
//! other processes appended (by the line rules of an open), does its work
//! and appends its records before releasing the lock. Catching up is also
//! how a read-only handle follows writers ([`Pod::refresh`]).

use super::Pod;
use crate::error::{Error, Result};
use crate::fsio::OpLock;
use crate::replay;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The state of the multi-process mode.
#[derive(Debug)]
pub(crate) struct MultiProcess {
    oplock: Box<dyn OpLock>,
    /// How deeply operations nest (the outermost takes and releases the lock).
    depth: usize,
    /// Whether this handle holds the operation lock (an operation runs, or
    /// a hold keeps it).
    locked: bool,
    /// Records appended since the last fsync (for `sync_at`; whether any
    /// append is not durable is the log's to say).
    unfsynced: usize,
    /// The current operation is a revert, which drops pending changes.
    discarding: bool,
}

/// What other processes changed since the tracker last looked.
#[derive(Debug, Default)]
pub(crate) struct External {
    /// The store was reloaded as a whole (every key may have changed).
    pub reloaded: bool,
    /// Keys whose records were applied.
    pub changed: Vec<String>,
}

impl MultiProcess {
    pub(super) fn new(oplock: Box<dyn OpLock>) -> Self {
        MultiProcess {
            oplock,
            depth: 0,
            locked: false,
            unfsynced: 0,
            discarding: false,
        }
    }

    /// Notes that everything appended is durable.
    pub(super) fn note_fsynced(&mut self) {
        self.unfsynced = 0;
    }
}

/// Runs `f` on `on` between `begin` and `end` (an operation of the
/// multi-process mode, which takes and releases the store's lock): `end`
/// runs whether `f` succeeds, fails or panics (the panic goes on after it).
/// Every handle's operations go through this one guard.
pub(crate) fn operation<S, R>(
    on: &mut S,
    begin: impl FnOnce(&mut S) -> Result<()>,
    end: impl FnOnce(&mut S) -> Result<()>,
    f: impl FnOnce(&mut S) -> Result<R>,
) -> Result<R> {
    begin(on)?;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(on)));
    let ended = end(on);
    let value = match result {
        Ok(value) => value?,
        // The lock is released; let the panic go on.
        Err(panic) => std::panic::resume_unwind(panic),
    };
    ended?;
    Ok(value)
}

impl<V> Pod<V>
where
    V: Serialize + DeserializeOwned,
{
    /// Runs `f` as one atomic step: in the multi-process mode it holds the
    /// store's operation lock for the whole closure, after taking in what
    /// other processes appended, and appends this handle's changes before
    /// releasing it, so no other process's change interleaves. In exclusive
    /// mode it just runs `f`.
    ///
    /// # Errors
    ///
    /// What `f` returns, or [`ErrorKind::Io`](crate::ErrorKind::Io) if the
    /// lock or the catch-up fails.
    pub fn atomically<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        self.in_op(f)
    }

    /// Runs `f` as one operation: in the multi-process mode, under the
    /// store's operation lock, after reading what other processes appended,
    /// and with this handle's changes appended before the lock is released.
    pub(crate) fn in_op<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        operation(self, Pod::op_begin, Pod::op_end, f)
    }

    /// [`in_op`](Self::in_op) for a revert: this handle's pending changes
    /// are dropped, not appended.
    pub(super) fn in_discarding_op<R>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<R>,
    ) -> Result<R> {
        if let Some(m) = self.multi.as_mut() {
            m.discarding = true;
        }
        let result = self.in_op(f);
        if let Some(m) = self.multi.as_mut() {
            m.discarding = false;
        }
        result
    }

    /// Starts an operation (see [`in_op`](Self::in_op)); operations nest.
    pub(crate) fn op_begin(&mut self) -> Result<()> {
        let Some(m) = self.multi.as_mut() else {
            self.ops += 1;
            return Ok(());
        };
        m.depth += 1;
        if m.depth == 1 {
            // Fsyncs wait until the lock is released (see `op_end`).
            self.outer_defer = self.log.set_defer(true);
        }
        if m.depth > 1 || m.locked {
            // Nested, or a hold keeps the lock: nobody else wrote since.
            return Ok(());
        }
        if let Err(e) = m.oplock.lock() {
            m.depth -= 1;
            self.log.set_defer(self.outer_defer);
            return Err(Error::io("lock", &self.dir.join(super::OPLOCK_FILE), e));
        }
        m.locked = true;
        let discarding = m.discarding;
        if !self.log.is_attached() && !self.log.is_poisoned() {
            return Ok(()); // still opening
        }
        // Others' records come in first (keeping this handle's changes made
        // in place), then this handle's changes go out.
        let caught_up = if discarding {
            self.catch_up()
        } else {
            self.catch_up_keeping_changes().and_then(|()| self.flush())
        };
        if caught_up.is_err() {
            if let Some(m) = self.multi.as_mut() {
                m.depth -= 1;
            }
            let _ = self.unlock();
            self.log.set_defer(self.outer_defer);
            // Best effort: a failed fsync poisons, which the error above reports anyway.
            if !self.outer_defer {
                let _ = self.wait_owed();
            }
        }
        caught_up
    }

    /// Ends an operation; the outermost one appends this handle's changes
    /// and releases the lock, unless a hold keeps both.
    pub(crate) fn op_end(&mut self) -> Result<()> {
        let Some(m) = self.multi.as_mut() else {
            self.ops = self.ops.saturating_sub(1);
            return if self.ops == 0 {
                self.end_of_call()
            } else {
                Ok(())
            };
        };
        if m.depth == 0 {
            return Ok(());
        }
        m.depth -= 1;
        if m.depth > 0 {
            return Ok(());
        }
        let mut ended = Ok(());
        if self.holds == 0 || self.log.is_poisoned() {
            let flushed = if self.log.is_attached() {
                self.flush().and_then(|()| self.end_of_call())
            } else {
                Ok(())
            };
            let unlocked = self.unlock();
            ended = flushed.and(unlocked);
        }
        // The fsyncs the operation owes are made with the lock released,
        // so other processes' operations do not wait on the disk.
        self.log.set_defer(self.outer_defer);
        let waited = if self.outer_defer {
            Ok(())
        } else {
            self.wait_owed()
        };
        ended.and(waited)
    }

    /// Releases the operation lock if a hold kept it after its last
    /// operation (without appending: the caller synced or cannot).
    pub(super) fn release_kept_lock(&mut self) -> Result<()> {
        match self.multi.as_ref() {
            Some(m) if m.locked && m.depth == 0 => self.unlock(),
            _ => Ok(()),
        }
    }

    fn unlock(&mut self) -> Result<()> {
        let Some(m) = self.multi.as_mut() else {
            return Ok(());
        };
        m.locked = false;
        m.oplock
            .unlock()
            .map_err(|e| Error::io("unlock", &self.dir.join(super::OPLOCK_FILE), e))
    }

    /// Appends every pending change (fsyncing once `sync_at` records are
    /// unfsynced), unless held.
    fn flush(&mut self) -> Result<()> {
        if self.holds > 0
            || !self.index.has_changes()
            || self.log.is_poisoned()
            || self.opts.read_only
        {
            return Ok(());
        }
        let n = self.dirty_len();
        self.write_pending(false)?;
        let Some(m) = self.multi.as_mut() else {
            return Ok(());
        };
        m.unfsynced += n.max(1);
        if m.unfsynced >= self.opts.sync_at {
            self.log.fsync()?;
            if let Some(m) = self.multi.as_mut() {
                m.note_fsynced();
            }
        }
        Ok(())
    }

    /// The multi-process mode's `sync`: append (a hold notwithstanding), then fsync.
    pub(super) fn sync_multi(&mut self) -> Result<()> {
        if self.index.has_changes() {
            let n = self.dirty_len();
            self.write_pending(false)?;
            if let Some(m) = self.multi.as_mut() {
                m.unfsynced += n.max(1);
            }
        }
        // Nothing to do if every append is durable already.
        self.log.fsync()?;
        if let Some(m) = self.multi.as_mut() {
            m.note_fsynced();
        }
        Ok(())
    }

    /// [`catch_up`](Self::catch_up), then puts this handle's pending changes
    /// back on top, so they are written after the others' records.
    fn catch_up_keeping_changes(&mut self) -> Result<()> {
        if !self.index.has_changes() || !self.log_changed()? {
            return self.catch_up();
        }
        let changes = self.index.take_changes();
        // Put the changes back even if catching up failed.
        let caught_up = self.catch_up();
        let max_record = self.opts.max_record;
        let restored = self.index.restore_changes(changes, |buf, key, value| {
            super::write::encode_value(buf, key, value, max_record)
        });
        caught_up.and(restored)
    }

    /// Whether the log is not as this handle last left it (another process
    /// appended, or replaced it).
    fn log_changed(&self) -> Result<bool> {
        let path = self.log.path();
        let (id, len) = self
            .storage()
            .file_id(path)
            .map_err(|e| Error::io("stat", path, e))?;
        Ok(id != self.followed_id || len != self.log.len())
    }

    /// Applies what other processes appended since this handle last looked;
    /// reloads the whole log if another process replaced it (compaction).
    /// Holding the operation lock, a writer also repairs the end of the log
    /// as an open does: a torn tail left by a killed writer is cut (and
    /// kept aside if it is more than a partial record), a missing final
    /// newline is added. A failure doing so poisons the handle.
    fn catch_up(&mut self) -> Result<()> {
        let storage = self.storage();
        let path = self.log.path().to_path_buf();
        let (id, len) = storage
            .file_id(&path)
            .map_err(|e| Error::io("stat", &path, e))?;
        let repair = !self.opts.read_only && self.multi.as_ref().is_some_and(|m| m.locked);
        if id != self.followed_id || len < self.log.len() {
            let replayed = self.read_log()?;
            let (torn, needs_newline) = (replayed.torn.clone(), replayed.needs_newline);
            self.adopt(replayed);
            self.note_reloaded();
            self.followed_id = id;
            if !self.opts.read_only {
                // The old handle may point at a replaced file: never append to it.
                self.log.reopen(&*storage)?;
                if repair {
                    self.repair_end(torn, needs_newline)?;
                }
            }
            return Ok(());
        }
        if len == self.log.len() {
            return Ok(());
        }
        let (reader, _) = storage
            .open_read_at(&path, self.log.len())
            .map_err(|e| Error::io("read", &path, e))?;
        let tail = replay::apply_tail(
            &mut self.index,
            reader,
            self.log.len(),
            self.log.lines(),
            replay::TailOf {
                path: &path,
                version: self.format,
            },
            self.opts.max_record,
        )?;
        if self.follows_content_end() {
            self.log.set_position(tail.content_len, tail.content_lines);
        } else {
            self.log.set_position(tail.valid_len, tail.lines);
        }
        self.external.changed.extend(tail.changed);
        // After a removal a key may sit in a new slot: have the tracker recount.
        self.external.reloaded |= tail.removed;
        if repair {
            self.repair_end(tail.torn, tail.needs_newline)?;
        }
        Ok(())
    }

    /// Notes that the whole store was read anew (every key may have changed).
    pub(super) fn note_reloaded(&mut self) {
        self.external = External {
            reloaded: true,
            changed: Vec::new(),
        };
    }

    /// What other processes changed since the last call.
    pub(crate) fn take_external(&mut self) -> External {
        std::mem::take(&mut self.external)
    }

    /// Picks up records that other processes appended (or a compaction they
    /// made) since this handle last looked, without reopening. For a
    /// read-only handle, or one in the multi-process mode; an exclusive
    /// writer is the only writer, so there is nothing to pick up.
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
}

//! The open log file of a writable handle: appends, fsyncs and cuts, and
//! the one poison latch every failed write, fsync or cut goes through.
//!
//! The one writer of the exclusive mode writes over **newline padding**: the
//! file reaches [`Storage::padding`] bytes (256 KiB) past its last record in newlines (blank
//! lines, which every reader skips), written and fsynced once, so an append
//! and its `fdatasync` overwrite bytes the file already has instead of
//! growing it, and the fsync need not write the file's size. A clean close
//! cuts the padding off. The multi-process mode appends with `O_APPEND`
//! and never pads.
//!
//! After a failed write or fsync the kernel may have dropped the dirty
//! pages, so a retry that succeeds would prove nothing: the handle refuses
//! every later write (`Poisoned`) and a reopen replays what is really on
//! disk.

use crate::error::{Error, ErrorKind, Result, fail};
use crate::fsio::{Appender, Storage};
use crate::group_commit::{Syncer, Ticket, Writer, lock_writer};
use crate::options::Durability;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Appends of at most this many bytes are small: padding pays for them.
const SMALL_APPEND: u64 = 16 * 1024;

/// Appends of at most this many bytes on a shared handle are staged for
/// the fsync's leader to write (`crate::group_commit`); larger ones are
/// written at once.
const MAX_STAGED: u64 = 16 * 1024;

/// How many small appends in a row start the padding.
const QUIET_APPENDS: u64 = 4;

/// The size of a page: the unit in which a power loss keeps or loses what
/// was written over existing bytes.
const PAGE: u64 = 4096;

/// Whether `len` bytes written at `at` touch more than one page.
fn crosses_a_page(at: u64, len: u64) -> bool {
    len > 0 && at / PAGE != (at + len - 1) / PAGE
}

/// The log file, its length and line count as this handle knows them.
#[derive(Debug)]
pub(crate) struct LogFile {
    path: PathBuf,
    /// The store directory (named by `Poisoned`).
    dir: PathBuf,
    /// Open for writing (appending, or over the padding), with the records
    /// staged for the next fsync's leader to write
    /// ([`crate::group_commit`]); `None` for a read-only handle, while
    /// opening, or once the file was replaced and not yet reopened.
    file: Option<Arc<Mutex<Writer>>>,
    /// The end of the last record (where the next one goes).
    len: u64,
    lines: u64,
    /// Whether this handle writes over padding (the exclusive mode's writer).
    pads: bool,
    /// How far past the last record the padding reaches once extended.
    pad_size: u64,
    /// The file's size as this handle left it: `len` plus the padding.
    padded_to: u64,
    /// Small appends in a row that went over the padding (or could have):
    /// padding is written after [`QUIET_APPENDS`] of them, not for a
    /// command that writes once, nor between syncs of several records
    /// that must not go over it.
    quiet: u64,
    poisoned: bool,
    durability: Durability,
    /// The fsyncs of this log, shared with the threads waiting on them.
    syncer: Arc<Syncer>,
    /// Fsyncs are owed, not made: the caller waits on [`take_owed`](Self::take_owed)'s
    /// ticket once it has let go of its locks.
    defer: bool,
    /// The appends a deferred fsync owes.
    owed: Option<Ticket>,
}

impl LogFile {
    /// The log `path` of the store `dir`, not open yet.
    pub(crate) fn new(path: PathBuf, dir: PathBuf, durability: Durability) -> Self {
        let path_for_syncer = path.clone();
        LogFile {
            path,
            dir,
            file: None,
            len: 0,
            lines: 0,
            pads: false,
            pad_size: 0,
            padded_to: 0,
            quiet: 0,
            poisoned: false,
            durability,
            syncer: Syncer::new(path_for_syncer),
            defer: false,
            owed: None,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Makes this handle write over newline padding (`true`: the one
    /// writer of the exclusive mode) or append with `O_APPEND`; takes
    /// effect at the next [`reopen`](Self::reopen).
    pub(crate) fn set_padding(&mut self, pads: bool) {
        self.pads = pads;
    }

    /// Whether this handle writes over newline padding.
    pub(crate) fn pads(&self) -> bool {
        self.pads
    }

    /// The log's length as this handle knows it.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The log's number of lines as this handle knows it.
    pub(crate) fn lines(&self) -> u64 {
        self.lines
    }

    /// Sets what this handle knows of the file (after reading it, or after
    /// a rewrite).
    pub(crate) fn set_position(&mut self, len: u64, lines: u64) {
        self.len = len;
        self.lines = lines;
    }

    /// Opens the file at the log's path for appending, as the log's
    /// handle (at open, or after another process replaced the log). The
    /// handle on a replaced file is dropped first, so nothing is ever
    /// appended to it; a failure poisons.
    pub(crate) fn reopen(&mut self, storage: &dyn Storage) -> Result<()> {
        // Records staged for the file this handle leaves reach it first
        // (none are, on every path that reopens; this keeps it so).
        if self.file.is_some() && !self.is_poisoned() {
            self.flush_staged()?;
        }
        self.file = None;
        self.syncer.attach(None);
        let opened = if self.pads {
            storage.open_write_at(&self.path, self.len)
        } else {
            storage.open_append(&self.path).map(|file| (file, self.len))
        };
        match opened.and_then(|(file, size)| Ok((file.try_clone()?, file, size))) {
            Ok((for_fsyncs, file, size)) => {
                let writer = Arc::new(Mutex::new(Writer::new(file)));
                self.file = Some(Arc::clone(&writer));
                // Past the last record: blank lines (padding), or a torn
                // tail that the caller cuts next.
                self.padded_to = size.max(self.len);
                self.quiet = 0;
                self.pad_size = storage.padding();
                // Appends not yet durable stay so: the next fsync (through
                // the new handle) covers them if this is the same file, and
                // is harmless if another process replaced it (its file,
                // fsynced before the rename, holds them).
                self.syncer.attach(Some((for_fsyncs, writer)));
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(Error::io("open", &self.path, e))
            }
        }
    }

    /// The one way the log is replaced: `tmp`, complete and fsynced (its
    /// writing handle `file` is closed here), is renamed over the log, the
    /// directory fsynced, and the new log opened for writing at its end
    /// ([`reopen`](Self::reopen): `O_APPEND` in the multi-process mode,
    /// where others append to it too), `len` bytes and
    /// `lines` lines long. A failure of the rename changes nothing (the old
    /// log stays, `tmp` is removed); after it, a failure poisons.
    pub(crate) fn install(
        &mut self,
        storage: &dyn Storage,
        tmp: &Path,
        file: Box<dyn Appender>,
        len: u64,
        lines: u64,
    ) -> Result<()> {
        drop(file);
        // Records staged for the old log are written to it first: until the
        // directory is fsynced the rename may not survive a power loss, and
        // an fsync of the old file (by a leader running meanwhile) must
        // cover them there.
        if let Err(e) = self.flush_staged() {
            let _ = storage.remove_file(tmp);
            return Err(e);
        }
        if let Err(e) = storage.rename(tmp, &self.path) {
            // Best effort: a leftover temp file is removed on the next open anyway.
            let _ = storage.remove_file(tmp);
            return Err(Error::io("rename into place", tmp, e));
        }
        // The old handle points at the replaced file. Nothing was staged
        // since the flush above (this handle's lock is held).
        self.file = None;
        if let Err(e) = storage.sync_dir(&self.dir) {
            self.poisoned = true;
            return Err(Error::io("fsync directory", &self.dir, e));
        }
        self.len = len;
        self.lines = lines;
        // What was appended to the replaced log is in its successor, which
        // was complete and fsynced before the rename.
        self.syncer.all_durable();
        self.reopen(storage)
    }

    /// Repairs the end of the log as replay found it: `keep` first keeps
    /// what is to be cut (a copy beside the log), then the file is cut back
    /// to `valid_len` (if `cut`) and a missing final newline is added (if
    /// `newline`). Any failure poisons: nothing may be appended after an
    /// end that was not repaired.
    pub(crate) fn repair_end(
        &mut self,
        cut: Option<u64>,
        newline: bool,
        keep: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        if let Err(e) = keep() {
            self.poisoned = true;
            return Err(e);
        }
        if let Some(valid_len) = cut {
            self.cut(valid_len)?;
        }
        if newline {
            self.complete_last_line()?;
        }
        Ok(())
    }

    /// Whether the log is open for appending.
    pub(crate) fn is_attached(&self) -> bool {
        self.file.is_some()
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned || self.syncer.failed()
    }

    /// Fails with `Poisoned` unless writes can go on.
    pub(crate) fn writable(&self) -> Result<()> {
        if self.is_poisoned() || self.file.is_none() {
            return fail(ErrorKind::Poisoned {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Runs `f` on the open file (see [`after_staged`](Self::after_staged));
    /// a failure poisons.
    fn with_file(
        &mut self,
        op: &'static str,
        f: impl FnOnce(&mut dyn Appender) -> std::io::Result<()>,
    ) -> Result<()> {
        self.writable()?;
        self.after_staged(f)?.map_err(|e| {
            self.poisoned = true;
            Error::io(op, &self.path, e)
        })
    }

    /// Runs `f` on the open file once the records staged on it are written
    /// (so the file receives everything in the order of the calls, and the
    /// padding never lies past records not yet written: a crash would leave
    /// a hole before it), and gives what `f` returned, without poisoning
    /// for it. Fails if there is no file, or if what is staged cannot be
    /// written (which poisons).
    fn after_staged(
        &mut self,
        f: impl FnOnce(&mut dyn Appender) -> std::io::Result<()>,
    ) -> Result<std::io::Result<()>> {
        let Some(writer) = self.file.clone() else {
            return fail(ErrorKind::Poisoned {
                path: self.dir.clone(),
            });
        };
        let mut writer = lock_writer(&writer);
        if let Err(e) = writer.write_staged() {
            drop(writer);
            return Err(self.staged_write_failed(e));
        }
        Ok(f(&mut *writer.file))
    }

    /// Poisons the handle, and fails the calls waiting for the staged
    /// records that could not be written.
    fn staged_write_failed(&mut self, e: std::io::Error) -> Error {
        self.poisoned = true;
        self.syncer.fail(&e);
        Error::io("append to", &self.path, e)
    }

    /// Writes the records staged for the next fsync's leader now: before
    /// anything reads the log file back.
    pub(crate) fn flush_staged(&mut self) -> Result<()> {
        if !self.has_staged() {
            return Ok(());
        }
        self.with_file("append to", |_| Ok(()))
    }

    /// Whether records are staged and not yet written to the file.
    pub(crate) fn has_staged(&self) -> bool {
        self.file
            .as_ref()
            .is_some_and(|writer| lock_writer(writer).has_staged())
    }

    /// Appends `parts` (holding `lines` lines) with one write call, then
    /// fsyncs if `fsync` and the durability policy asks for it. A write
    /// that fails part-way (a full disk) is cut back off, if the file lets
    /// it, before the handle is poisoned: what was never acknowledged
    /// leaves no torn tail behind.
    pub(crate) fn append(&mut self, parts: &[&[u8]], lines: u64, fsync: bool) -> Result<()> {
        let len = self.len;
        let appended = parts.iter().map(|p| p.len() as u64).sum::<u64>();
        // A write over the padding must be safe whatever subset of its
        // pages a power loss keeps (there is no file size to hold back the
        // rest): one record is whole or damaged with no valid line after
        // it, and lines within one page stay together. A sync of several
        // records across pages goes where the file grows: the padding is
        // cut first.
        let over_padding = lines <= 1 || !crosses_a_page(len, appended);
        if self.padded_to > len && !over_padding {
            self.with_file("cut the padding of", |f| f.truncate(len))?;
            self.padded_to = len;
        }
        // A call on a shared handle (which waits for what it owes once it
        // lets go of the store's lock) stages its records: the leader of the
        // fsync it waits for writes them, with the other waiting calls'
        // ones; one that needs no fsync (a claim) writes what is staged
        // itself, without the lock (`crate::group_commit`). A large append
        // (a sync of many records) is written at once: copying it into the
        // stage would cost more than the write it shares.
        let staged = self.defer
            && self.pads
            && self.durability != Durability::Process
            && appended <= MAX_STAGED;
        if staged {
            self.writable()?;
            if let Some(writer) = &self.file {
                lock_writer(writer).stage(len, parts);
            }
        } else {
            self.with_file("append to", |f| {
                f.append_parts(parts).inspect_err(|_| {
                    // Best effort: a torn tail left here is cut by the next open.
                    let _ = f.truncate(len);
                })
            })?;
        }
        self.len += appended;
        self.lines += lines;
        self.padded_to = self.padded_to.max(self.len);
        let small = appended <= self.pad_size.min(SMALL_APPEND);
        self.quiet = if over_padding && small {
            self.quiet + 1
        } else {
            0
        };
        self.grow_padding();
        self.syncer.note_append();
        if fsync {
            self.fsync()?;
        } else if staged {
            self.owe(self.syncer.write_ticket());
        }
        Ok(())
    }

    /// Makes everything appended durable (unless the durability is
    /// [`Durability::Process`]): with one fsync, shared with the other
    /// threads waiting for one ([`crate::group_commit`]); while fsyncs are
    /// deferred, the caller waits for it later. Nothing to do if every
    /// append is durable already. A failed fsync poisons.
    pub(crate) fn fsync(&mut self) -> Result<()> {
        self.writable()?;
        if self.durability == Durability::Process || !self.syncer.has_unsynced() {
            return Ok(());
        }
        let ticket = self.syncer.ticket();
        if self.defer {
            self.owe(ticket);
            return Ok(());
        }
        ticket.wait().inspect_err(|_| self.poisoned = true)
    }

    /// The fsyncs of this log (the same for the handle's whole life).
    pub(crate) fn syncer(&self) -> Arc<Syncer> {
        Arc::clone(&self.syncer)
    }

    /// Whether appends were made that are not durable yet.
    pub(crate) fn has_unsynced(&self) -> bool {
        self.syncer.has_unsynced()
    }

    /// Defers fsyncs (`true`) or makes them at once (`false`); returns the
    /// setting before.
    pub(crate) fn set_defer(&mut self, defer: bool) -> bool {
        std::mem::replace(&mut self.defer, defer)
    }

    /// Adds `ticket` to what the deferred calls owe.
    pub(crate) fn owe(&mut self, ticket: Ticket) {
        self.owed = Some(ticket.and(self.owed.take()));
    }

    /// The fsync owed since fsyncs were deferred, if any, to be waited on
    /// once the caller let go of its locks.
    pub(crate) fn take_owed(&mut self) -> Option<Ticket> {
        self.owed.take()
    }

    /// Cuts the file back to `len` bytes (a torn tail), then fsyncs it.
    fn cut(&mut self, len: u64) -> Result<()> {
        self.with_file("truncate torn tail of", |f| f.truncate(len))?;
        self.len = len;
        self.padded_to = len;
        self.with_file("fsync", |f| f.sync())
    }

    /// Adds the newline a complete last record lacks, then fsyncs.
    fn complete_last_line(&mut self) -> Result<()> {
        self.with_file("append to", |f| f.append(b"\n"))?;
        self.len += 1;
        self.padded_to = self.padded_to.max(self.len);
        self.with_file("fsync", |f| f.sync())
    }

    /// Pads the file to [`Storage::padding`] bytes past the last record once
    /// fewer than a sixteenth of that are left, after [`QUIET_APPENDS`]
    /// small appends in a row that could go over the padding: a large
    /// append pays for its size update once for many records (padding
    /// ahead of large appends would write every byte twice), and a store
    /// that syncs several records at a time would cut the padding again.
    /// Padding is an optimisation: if it cannot be written (a full disk),
    /// what was written of it is cut off and appends go on without.
    fn grow_padding(&mut self) {
        let min_room = self.pad_size / 16;
        if !self.pads || self.quiet < QUIET_APPENDS || self.padded_to >= self.len + min_room {
            return;
        }
        let (len, from) = (self.len, self.padded_to);
        let to = len + self.pad_size;
        // Best effort: a failure leaves the file unpadded (or, if what is
        // staged could not be written, the handle poisoned, which the
        // call's fsync reports).
        let padded = self.after_staged(|file| {
            file.pad(from, to - from).inspect_err(|_| {
                // Blank lines, harmless if the cut fails too.
                let _ = file.truncate(len);
            })
        });
        match padded {
            Ok(Ok(())) => self.padded_to = to,
            // A write into the page cache fails for want of room (a full
            // disk, a quota), rarely else; a failed write-back would be
            // reported by the next fsync, which poisons.
            Ok(Err(_)) => self.padded_to = len,
            Err(_) => {}
        }
    }

    /// Cuts the padding off (at a clean close), so the file ends with its
    /// last record. Best effort, and not fsynced: padding left by a crash
    /// is blank lines, and the next writer writes over it.
    pub(crate) fn trim_padding(&mut self) {
        if self.padded_to <= self.len || self.writable().is_err() {
            return;
        }
        let len = self.len;
        if matches!(self.after_staged(|file| file.truncate(len)), Ok(Ok(()))) {
            self.padded_to = len;
        }
    }
}

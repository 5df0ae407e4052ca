//! The writing handle of a log, and the records staged on it for the
//! leader of the next fsync to write (see [`super`], "The leader writes").

use crate::fsio::Appender;
use std::io;
use std::sync::{Mutex, MutexGuard};

/// The writing handle of a log, and the records staged on it for the next
/// fsync's leader to write (see [`super`]).
#[derive(Debug)]
pub(crate) struct Writer {
    /// The file, open for writing.
    pub(crate) file: Box<dyn Appender>,
    /// Records appended (counted by [`Syncer::note_append`](super::Syncer::note_append)) and not yet
    /// written, in the order of the calls.
    staged: Vec<u8>,
    /// Where the first of them goes (the file's end without them).
    staged_at: u64,
    /// A write of staged records failed: they were dropped, and every
    /// later write of staged records fails too (set under this writer's
    /// lock, so that no other thread finds the stage empty and takes the
    /// dropped records for written).
    failed: Option<(io::ErrorKind, String)>,
}

impl Writer {
    pub(crate) fn new(file: Box<dyn Appender>) -> Self {
        Writer {
            file,
            staged: Vec::new(),
            staged_at: 0,
            failed: None,
        }
    }

    /// Stages `parts`, which go at byte `at` of the file (its end once
    /// what is staged already is written).
    pub(crate) fn stage(&mut self, at: u64, parts: &[&[u8]]) {
        if self.staged.is_empty() {
            self.staged_at = at;
        }
        for part in parts {
            self.staged.extend_from_slice(part);
        }
    }

    /// Whether records are staged, or were and could not be written (then
    /// the next write of what is staged reports that failure: nothing may
    /// take the dropped records for written).
    pub(crate) fn has_staged(&self) -> bool {
        !self.staged.is_empty() || self.failed.is_some()
    }

    /// Writes what is staged with one write call. If it fails, what was
    /// written of it is cut back off (best effort: a torn tail is cut by
    /// the next open anyway) and the staged records are dropped; the caller
    /// fails the [`Syncer`](super::Syncer), so the calls that staged them fail too.
    pub(crate) fn write_staged(&mut self) -> io::Result<()> {
        if let Some((kind, message)) = &self.failed {
            return Err(io::Error::new(*kind, message.clone()));
        }
        if self.staged.is_empty() {
            return Ok(());
        }
        let written = self.file.append(&self.staged);
        if let Err(e) = &written {
            let _ = self.file.truncate(self.staged_at);
            self.failed = Some((e.kind(), e.to_string()));
        }
        self.staged.clear();
        written
    }
}

/// Locks a log's writer (a panic while it was held leaves it usable: every
/// change to it is complete or not made).
pub(crate) fn lock_writer(writer: &Mutex<Writer>) -> MutexGuard<'_, Writer> {
    writer.lock().unwrap_or_else(|e| e.into_inner())
}

//! Group commit: the fsyncs of a log, shared by every thread that waits for
//! one.
//!
//! Every append is numbered. A thread that needs its appends durable asks
//! for the number of the last append it made (its ticket) and waits: if an
//! fsync is already running, it waits for that one to end and looks again;
//! if none is, it becomes the leader, notes the number of the last append
//! made by anyone, runs one `fdatasync` on a handle of its own (no store
//! lock is held meanwhile) and, when it returns, marks everything up to
//! that number durable and wakes the others. Appends made while an fsync
//! runs are taken by the next one, so with `n` threads writing, one fsync
//! serves up to `n` of them.

use crate::fsio::Appender;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The fsync state of one log, shared by its handle and the threads
/// waiting on it.
#[derive(Debug)]
pub(crate) struct Syncer {
    /// The log, named by errors.
    path: PathBuf,
    state: Mutex<State>,
    /// Notified when an fsync ends.
    ended: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// The number of the last append.
    written: u64,
    /// Every append up to this number is durable.
    durable: u64,
    /// An fsync runs.
    leading: bool,
    /// The handle fsyncs go through (a second handle on the log's file).
    handle: Option<Arc<Mutex<Box<dyn Appender>>>>,
    /// An fsync failed: the kernel may have dropped the pages, so nothing
    /// appended since can be called durable again.
    failed: Option<(io::ErrorKind, String)>,
}

/// The appends a call made and must see durable before it returns.
#[derive(Debug, Clone)]
pub(crate) struct Ticket {
    syncer: Arc<Syncer>,
    upto: u64,
}

impl Ticket {
    /// Waits until the appends of this ticket are durable (leading an fsync
    /// if none runs).
    ///
    /// # Errors
    ///
    /// The error of the fsync that should have made them durable (or of an
    /// earlier one that failed).
    pub(crate) fn wait(&self) -> crate::Result<()> {
        self.syncer
            .wait(self.upto)
            .map_err(|e| crate::Error::io("fsync", &self.syncer.path, e))
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Syncer {
    pub(crate) fn new(path: PathBuf) -> Arc<Self> {
        Arc::new(Syncer {
            path,
            state: Mutex::new(State::default()),
            ended: Condvar::new(),
        })
    }

    /// Fsyncs go through `handle` from now on, and everything appended so
    /// far is durable (the log was just opened, or replaced by a complete,
    /// fsynced file).
    pub(crate) fn attach(&self, handle: Option<Box<dyn Appender>>) {
        let mut state = lock(&self.state);
        state.handle = handle.map(|h| Arc::new(Mutex::new(h)));
        state.durable = state.written;
    }

    /// Numbers an append just made; returns its number.
    pub(crate) fn note_append(&self) -> u64 {
        let mut state = lock(&self.state);
        state.written += 1;
        state.written
    }

    /// Whether appends were made that are not durable yet.
    pub(crate) fn has_unsynced(&self) -> bool {
        let state = lock(&self.state);
        state.durable < state.written
    }

    /// Whether an fsync failed.
    pub(crate) fn failed(&self) -> bool {
        lock(&self.state).failed.is_some()
    }

    /// A ticket for every append made so far.
    pub(crate) fn ticket(self: &Arc<Self>) -> Ticket {
        let upto = lock(&self.state).written;
        Ticket {
            syncer: Arc::clone(self),
            upto,
        }
    }

    /// Waits until append `upto` is durable, leading an fsync if none runs.
    fn wait(&self, upto: u64) -> io::Result<()> {
        let mut state = lock(&self.state);
        loop {
            if let Some((kind, message)) = &state.failed {
                return Err(io::Error::new(*kind, message.clone()));
            }
            if state.durable >= upto {
                return Ok(());
            }
            if state.leading {
                state = self.ended.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let Some(handle) = state.handle.clone() else {
                return Err(io::Error::other("the log is not open for writing"));
            };
            state.leading = true;
            let target = state.written;
            drop(state);
            let synced = handle.lock().unwrap_or_else(|e| e.into_inner()).sync();
            state = lock(&self.state);
            state.leading = false;
            match synced {
                Ok(()) => state.durable = state.durable.max(target),
                Err(e) => state.failed = Some((e.kind(), e.to_string())),
            }
            self.ended.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimStorage;
    use std::path::Path;

    #[test]
    fn one_fsync_serves_every_append_before_it() -> Result<(), Box<dyn std::error::Error>> {
        let sim = SimStorage::new();
        let path = Path::new("/s/log");
        let storage: &dyn crate::fsio::Storage = &sim;
        storage.create_dir_all(Path::new("/s"))?;
        let mut file = storage.create_new(path)?;
        let syncer = Syncer::new(path.to_path_buf());
        syncer.attach(Some(file.try_clone()?));
        for part in [b"a\n", b"b\n"] {
            file.append(part)?;
            syncer.note_append();
        }
        assert!(syncer.has_unsynced());
        assert_eq!(sim.read_durable(path), Some(Vec::new()));
        syncer.ticket().wait()?;
        assert!(!syncer.has_unsynced());
        assert_eq!(sim.read_durable(path), Some(b"a\nb\n".to_vec()));
        assert_eq!(sim.fsyncs(), 1);
        // Nothing new: no fsync needed, none made.
        syncer.ticket().wait()?;
        assert_eq!(sim.fsyncs(), 1);
        Ok(())
    }
}

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
//!
//! A thread that finds other threads in the middle of a call on the same
//! handle ([`Syncer::enter`]: they are about to append), or released by
//! the last fsync and not yet back with their next call, waits for them
//! before it starts, at most as long as the last fsync took (and 2 ms), so
//! that threads released together by one fsync are taken by the next one
//! together, rather than in two groups taking turns. The end of an fsync
//! counts the threads it releases (by the tickets they wait for) before
//! any of them runs again, so a thread the scheduler wakes late is still
//! waited for. A thread alone, or threads busy with their own work between
//! calls, never wait for that.
//!
//! **The leader writes.** A call on a handle that threads share, whose
//! records must be durable before it returns, does not write them itself
//! while it holds the store's lock: it *stages* them in the log's
//! [`Writer`], in the order of the calls, and the leader of the next fsync
//! writes everything staged with one write call, then fsyncs. `n` threads
//! completing together cost one write and one fsync, not `n` writes made
//! one after the other under the store's lock. Every other use of the file
//! (a write that is not staged, padding, a cut, reading the log back)
//! writes what is staged first, so the file always receives the records in
//! the order of the calls. A staged record belongs to a call that has not
//! returned yet (it waits for the fsync that covers it), so a crash can only
//! lose records nobody was told are stored. A failed write of staged
//! records fails every waiter, as a failed fsync does.
//!
//! When the last fsync took at most [`SPIN_FOR_FSYNCS_UP_TO`] (a fast
//! disk), waiters do not sleep on the condition variable: they yield the
//! processor and look again ([`SPINS_BETWEEN_YIELDS`] times with a spin
//! hint between two yields), for at most twice the last fsync's time, since
//! a sleep and wake-up cost about as much as such an fsync. On a slow disk
//! they sleep.

mod writer;

pub(crate) use writer::{Writer, lock_writer};

use crate::fsio::Appender;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The longest a leader waits for the threads in the middle of a call.
const MAX_GATHER: Duration = Duration::from_millis(2);

thread_local! {
    /// The syncer (its address) whose fsync released this thread last, until
    /// the thread begins its next call on it.
    static RETURNING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The fsync state of one log, shared by its handle and the threads
/// waiting on it.
#[derive(Debug)]
pub(crate) struct Syncer {
    /// The log, named by errors.
    path: PathBuf,
    state: Mutex<State>,
    /// Notified when an fsync ends, or when no thread is in the middle of a
    /// call any more and none of them is coming to lead.
    ended: Condvar,
    /// How many fsyncs ended (read without the lock by waiters that spin).
    fsyncs_ended: std::sync::atomic::AtomicU64,
    /// `State::failed` is set (it is never unset): read without the lock
    /// by the check every write makes first.
    has_failed: AtomicBool,
}

/// Waiters spin (yielding the processor) for an fsync that takes at most
/// this long, rather than sleep: a wake-up costs about as much as such an
/// fsync on a loaded machine, and the spinning is bounded by the fsync.
const SPIN_FOR_FSYNCS_UP_TO: Duration = Duration::from_micros(500);

/// Between two yields, a waiter for a short fsync looks at its end this
/// many times with a spin hint (a few µs). A yield alone, with more threads
/// than cores, hands the core to another waiter and looks again only when
/// the scheduler comes back, which made up much of the time between two
/// fsyncs: with 4 threads on 2 cores, 2.7-3.4x one thread's durable
/// completions yielding only, 3.4-3.7x with these spins.
const SPINS_BETWEEN_YIELDS: u32 = 200;

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
    /// The log's writing handle, whose staged records a leader writes
    /// before its fsync.
    writer: Option<Arc<Mutex<Writer>>>,
    /// An fsync failed: the kernel may have dropped the pages, so nothing
    /// appended since can be called durable again.
    failed: Option<(io::ErrorKind, String)>,
    /// Threads in the middle of a call on a shared handle.
    busy: usize,
    /// Threads an fsync released that have not begun their next call.
    returning: usize,
    /// Threads waiting for an fsync (the leader among them).
    waiting: usize,
    /// The tickets they wait for (how many threads wait for each), so the
    /// end of an fsync knows how many it releases before they run again.
    tickets: std::collections::BTreeMap<u64, usize>,
    /// How many threads were waiting when the last fsync ended.
    released: usize,
    /// Threads waiting for the busy ones before one of them leads.
    gathering: usize,
    /// Since when they wait.
    gathering_since: Option<Instant>,
    /// How long the last fsync took.
    last_fsync: Duration,
}

/// What a syncer works through: a handle on the log for its fsyncs, and the
/// log's writer (for the staged records).
pub(crate) type Handles = (Box<dyn Appender>, Arc<Mutex<Writer>>);

/// The appends a call made and must see durable before it returns, or,
/// for a call whose records need not be durable (a claim), only written to
/// the file.
#[derive(Debug, Clone)]
pub(crate) struct Ticket {
    syncer: Arc<Syncer>,
    upto: u64,
    /// Whether the appends must be durable (fsynced), not only written.
    fsync: bool,
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
        if !self.fsync {
            return self
                .syncer
                .write_staged()
                .map_err(|e| crate::Error::io("append to", &self.syncer.path, e));
        }
        self.syncer
            .wait(self.upto)
            .map_err(|e| crate::Error::io("fsync", &self.syncer.path, e))
    }

    /// Whether waiting on this ticket waits for an fsync (and may lead
    /// one), not only for a write.
    pub(crate) fn waits_for_fsync(&self) -> bool {
        self.fsync
    }

    /// The ticket that asks for what this one and `other` (if any) ask for.
    pub(crate) fn and(self, other: Option<Ticket>) -> Ticket {
        match other {
            Some(other) => Ticket {
                syncer: self.syncer,
                upto: self.upto.max(other.upto),
                fsync: self.fsync || other.fsync,
            },
            None => self,
        }
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
            fsyncs_ended: std::sync::atomic::AtomicU64::new(0),
            has_failed: AtomicBool::new(false),
        })
    }

    /// Notes a thread in the middle of a call (it may append soon) until
    /// the returned guard is dropped.
    pub(crate) fn enter(&self) -> Busy<'_> {
        let mut state = lock(&self.state);
        state.busy += 1;
        if RETURNING.with(|r| r.replace(0)) == self.id() {
            state.returning = state.returning.saturating_sub(1);
        }
        Busy(self)
    }

    /// This syncer's identity, for [`RETURNING`].
    fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Notes that the calling thread was released by an fsync, which
    /// counted it as expected back with its next call soon.
    fn note_returning(&self) {
        RETURNING.with(|r| r.set(self.id()));
    }

    /// Fsyncs go through `handle` from now on, after writing what is
    /// staged on `writer`.
    pub(crate) fn attach(&self, handles: Option<Handles>) {
        let mut state = lock(&self.state);
        let (handle, writer) = handles.map_or((None, None), |(h, w)| (Some(h), Some(w)));
        state.handle = handle.map(|h| Arc::new(Mutex::new(h)));
        state.writer = writer;
    }

    /// Fails every waiter, now and later, with `error` (a write of staged
    /// records failed outside an fsync's leader): the records were never
    /// written, so no fsync may vouch for them.
    pub(crate) fn fail(&self, error: &io::Error) {
        let mut state = lock(&self.state);
        if state.failed.is_none() {
            self.set_failed(&mut state, error);
        }
        self.ended.notify_all();
    }

    /// Records `error` as the failure every waiter gets from now on (under
    /// the lock `state` comes from), and raises the flag
    /// [`failed`](Self::failed) reads without it.
    fn set_failed(&self, state: &mut State, error: &io::Error) {
        state.failed = Some((error.kind(), error.to_string()));
        self.has_failed.store(true, Ordering::Release);
    }

    /// Everything appended so far is durable: the log was replaced by a
    /// complete, fsynced file holding it.
    pub(crate) fn all_durable(&self) {
        let mut state = lock(&self.state);
        state.durable = state.written;
        // Every waiter is satisfied: none is counted by a later fsync.
        state.tickets.clear();
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

    /// Whether an fsync (or a write of staged records) failed.
    pub(crate) fn failed(&self) -> bool {
        self.has_failed.load(Ordering::Acquire)
    }

    /// A ticket for every append made so far to be durable.
    pub(crate) fn ticket(self: &Arc<Self>) -> Ticket {
        let upto = lock(&self.state).written;
        Ticket {
            syncer: Arc::clone(self),
            upto,
            fsync: true,
        }
    }

    /// A ticket for every append made so far to be written to the file (the
    /// records staged so far, by whoever writes them first).
    pub(crate) fn write_ticket(self: &Arc<Self>) -> Ticket {
        Ticket {
            fsync: false,
            ..self.ticket()
        }
    }

    /// Writes the records staged on the log's writer, if any, now (for a
    /// call that needs them written, not fsynced, once it let go of the
    /// store's lock). A failure fails every waiter, as in
    /// [`Writer::write_staged`].
    fn write_staged(&self) -> io::Result<()> {
        let writer = {
            let state = lock(&self.state);
            if let Some((kind, message)) = state.failed.clone() {
                return Err(io::Error::new(kind, message));
            }
            state.writer.clone()
        };
        let Some(writer) = writer else {
            return Ok(());
        };
        let written = lock_writer(&writer).write_staged();
        if let Err(e) = &written {
            self.fail(e);
        }
        written
    }

    /// Waits until append `upto` is durable, leading an fsync if none runs.
    fn wait(&self, upto: u64) -> io::Result<()> {
        let mut state = lock(&self.state);
        let mut waiting = false;
        loop {
            if let Some((kind, message)) = state.failed.clone() {
                if waiting {
                    state.waiting -= 1;
                }
                return Err(io::Error::new(kind, message));
            }
            if state.durable >= upto {
                if waiting {
                    state.waiting -= 1;
                    // Released with others (the fsync's end counted them as
                    // returning): the next fsync waits for them.
                    if state.released > 1 {
                        self.note_returning();
                    }
                } else if state.gathering > 0 && state.busy == 0 && state.returning == 0 {
                    // Nothing to fsync for this thread, and nobody else is
                    // coming: those waiting to gather may lead now.
                    self.ended.notify_all();
                }
                return Ok(());
            }
            if !waiting {
                waiting = true;
                state.waiting += 1;
                *state.tickets.entry(upto).or_default() += 1;
            }
            if state.leading {
                let last = state.last_fsync;
                if last > Duration::ZERO && last <= SPIN_FOR_FSYNCS_UP_TO {
                    // A short fsync: look for its end without sleeping.
                    let seen = self.fsyncs_ended.load(std::sync::atomic::Ordering::Acquire);
                    drop(state);
                    let deadline = Instant::now() + last * 2;
                    while self.fsyncs_ended.load(std::sync::atomic::Ordering::Acquire) == seen
                        && Instant::now() < deadline
                    {
                        std::thread::yield_now();
                        for _ in 0..SPINS_BETWEEN_YIELDS {
                            if self.fsyncs_ended.load(std::sync::atomic::Ordering::Acquire) != seen
                            {
                                break;
                            }
                            std::hint::spin_loop();
                        }
                    }
                    state = lock(&self.state);
                    if state.leading
                        && self.fsyncs_ended.load(std::sync::atomic::Ordering::Acquire) == seen
                    {
                        state = self.ended.wait(state).unwrap_or_else(|e| e.into_inner());
                    }
                    continue;
                }
                state = self.ended.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            if state.busy > 0 || state.returning > 0 {
                // Others are about to append: the last of them leads (it
                // runs already, no wake-up needed), unless they are slow.
                let since = *state.gathering_since.get_or_insert_with(Instant::now);
                let limit = state.last_fsync.min(MAX_GATHER);
                if let Some(left) = (since + limit).checked_duration_since(Instant::now()) {
                    if limit <= SPIN_FOR_FSYNCS_UP_TO {
                        // As for a short fsync: look again without sleeping.
                        drop(state);
                        std::thread::yield_now();
                        state = lock(&self.state);
                        continue;
                    }
                    state.gathering += 1;
                    state = match self.ended.wait_timeout(state, left) {
                        Ok((guard, _)) => guard,
                        Err(poisoned) => poisoned.into_inner().0,
                    };
                    state.gathering -= 1;
                    continue;
                }
                // Those not back by now went on to other work (or ended).
                state.returning = 0;
            }
            let writer = state.writer.clone();
            let Some(handle) = state.handle.clone() else {
                state.waiting -= 1;
                state.gathering_since = None;
                return Err(io::Error::other("the log is not open for writing"));
            };
            state.leading = true;
            state.gathering_since = None;
            let target = state.written;
            drop(state);
            let started = Instant::now();
            // A panic in the fsync (a storage that panics) must not leave
            // `leading` set, which would block every waiter for good.
            let synced = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // The records staged up to now (those up to `target`
                // among them) reach the file first, with one write.
                if let Some(writer) = &writer {
                    lock_writer(writer).write_staged().map_err(|e| {
                        io::Error::new(e.kind(), format!("writing the staged records: {e}"))
                    })?;
                }
                handle.lock().unwrap_or_else(|e| e.into_inner()).sync()
            }));
            let (synced, panic) = match synced {
                Ok(result) => (result, None),
                Err(panic) => (Err(io::Error::other("the fsync panicked")), Some(panic)),
            };
            let took = started.elapsed();
            state = lock(&self.state);
            state.leading = false;
            state.last_fsync = took;
            self.fsyncs_ended
                .fetch_add(1, std::sync::atomic::Ordering::Release);
            match synced {
                Ok(()) => state.durable = state.durable.max(target),
                Err(e) => self.set_failed(&mut state, &e),
            }
            // The threads this fsync releases, counted now (not when each
            // runs again, which on a busy machine may come after another
            // thread already led the next fsync without them).
            let released: usize = if state.failed.is_some() {
                let all = state.tickets.values().sum();
                state.tickets.clear();
                all
            } else {
                let rest = state.tickets.split_off(&(target + 1));
                let done = std::mem::replace(&mut state.tickets, rest);
                done.values().sum()
            };
            state.released = released;
            if released > 1 && state.failed.is_none() {
                state.returning += released;
            }
            if state.waiting > 1 {
                self.ended.notify_all();
            }
            if let Some(panic) = panic {
                state.waiting -= 1;
                drop(state);
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// A thread in the middle of a call; see [`Syncer::enter`].
#[derive(Debug)]
pub(crate) struct Busy<'a>(&'a Syncer);

impl Busy<'_> {
    /// Ends the call's busy part; `will_wait` says whether the thread is
    /// about to wait for an fsync (and so to lead one, if it is the last).
    pub(crate) fn leave(self, will_wait: bool) {
        let syncer = self.0;
        std::mem::forget(self);
        syncer.leave(will_wait);
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.leave(false);
    }
}

impl Syncer {
    fn leave(&self, will_wait: bool) {
        let mut state = lock(&self.state);
        state.busy = state.busy.saturating_sub(1);
        // Threads wait for the busy ones to come and lead; one that leaves
        // without waiting wakes them.
        if state.busy == 0 && state.returning == 0 && state.gathering > 0 && !will_wait {
            self.ended.notify_all();
        }
    }
}

// On the simulated file system, which the feature `sim` builds.
#[cfg(all(test, feature = "sim"))]
mod tests {
    use super::*;
    use crate::sim::SimStorage;
    use std::path::Path;

    const LOG: &str = "/s/log";

    /// A simulated file system, a log's writer, and its syncer.
    type SimLog = (SimStorage, Arc<Mutex<Writer>>, Arc<Syncer>);

    /// A new log on a simulated file system, its writer, and its syncer
    /// fsyncing through a second handle.
    fn log_on_sim() -> Result<SimLog, Box<dyn std::error::Error>> {
        let sim = SimStorage::new();
        let storage: &dyn crate::fsio::Storage = &sim;
        storage.create_dir_all(Path::new("/s"))?;
        let file = storage.create_new(Path::new(LOG))?;
        let syncer = Syncer::new(LOG.into());
        let for_fsyncs = file.try_clone()?;
        let writer = Arc::new(Mutex::new(Writer::new(file)));
        syncer.attach(Some((for_fsyncs, Arc::clone(&writer))));
        Ok((sim, writer, syncer))
    }

    #[test]
    fn one_fsync_serves_every_append_before_it() -> Result<(), Box<dyn std::error::Error>> {
        let (sim, writer, syncer) = log_on_sim()?;
        let path = Path::new(LOG);
        for part in [b"a\n", b"b\n"] {
            lock_writer(&writer).file.append(part)?;
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

    #[test]
    fn the_leader_writes_what_is_staged_with_one_write_then_fsyncs()
    -> Result<(), Box<dyn std::error::Error>> {
        let (sim, writer, syncer) = log_on_sim()?;
        let path = Path::new(LOG);
        let mut at = 0;
        for part in [&b"a\n"[..], b"bb\n", b"c\n"] {
            lock_writer(&writer).stage(at, &[part]);
            at += part.len() as u64;
            syncer.note_append();
        }
        // Staged: not in the file yet.
        assert_eq!(sim.read(path), Some(Vec::new()));
        let ops = sim.ops();
        syncer.ticket().wait()?;
        assert_eq!(sim.read_durable(path), Some(b"a\nbb\nc\n".to_vec()));
        // One write, one fsync.
        assert_eq!((sim.ops() - ops, sim.fsyncs()), (2, 1));
        assert!(!lock_writer(&writer).has_staged());
        Ok(())
    }

    #[test]
    fn a_failed_write_of_staged_records_fails_their_waiters()
    -> Result<(), Box<dyn std::error::Error>> {
        let (sim, writer, syncer) = log_on_sim()?;
        lock_writer(&writer).stage(0, &[b"a\n"]);
        syncer.note_append();
        // The next storage operation (the leader's write) fails: no fsync
        // may then vouch for the record.
        sim.fail_at(Some((sim.ops() + 1, crate::sim::FailMode::Once)));
        let err = syncer.ticket().wait().map(|()| "no error").unwrap_err();
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            cause.as_deref().is_some_and(|c| c.contains("staged")),
            "{err}: {cause:?}"
        );
        assert_eq!(sim.fsyncs(), 0);
        assert!(syncer.failed());
        assert_eq!(sim.read_durable(Path::new(LOG)), Some(Vec::new()));
        Ok(())
    }

    #[test]
    fn after_a_failed_write_of_staged_records_no_later_write_or_fsync_succeeds()
    -> Result<(), Box<dyn std::error::Error>> {
        let (sim, writer, syncer) = log_on_sim()?;
        lock_writer(&writer).stage(0, &[b"a\n"]);
        syncer.note_append();
        sim.fail_at(Some((sim.ops() + 1, crate::sim::FailMode::Once)));
        assert!(lock_writer(&writer).write_staged().is_err());
        // The record was dropped: a thread that looks before the failure
        // reaches the syncer must not take it for written (a flush before
        // reading the log back asks `has_staged`), nor may a leader fsync
        // for it.
        assert!(lock_writer(&writer).has_staged());
        assert!(lock_writer(&writer).write_staged().is_err());
        assert!(syncer.ticket().wait().is_err());
        assert_eq!(sim.fsyncs(), 0);
        Ok(())
    }

    #[test]
    fn a_failed_fsync_fails_every_waiter_and_stays_failed() -> Result<(), Box<dyn std::error::Error>>
    {
        let (sim, writer, syncer) = log_on_sim()?;
        lock_writer(&writer).file.append(b"a\n")?;
        syncer.note_append();
        let ticket = syncer.ticket();
        // The next storage operation (the fsync) fails.
        sim.fail_at(Some((sim.ops() + 1, crate::sim::FailMode::Once)));
        assert!(ticket.wait().is_err());
        assert!(syncer.failed());
        // Later fsyncs cannot vouch for those pages: every wait fails.
        assert!(syncer.ticket().wait().is_err());
        Ok(())
    }
}

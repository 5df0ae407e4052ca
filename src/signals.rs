//! Sync on Ctrl-C, SIGTERM and SIGHUP, installed only when the program asks:
//! [`sync_on_signals`] (sync, then exit) or [`stop_on_signals`] (sync, then
//! let the program stop by itself).
//!
//! Every writable store registers an entry here when it opens. On the first
//! signal, a handler thread syncs every store it can reach; then
//! `sync_on_signals` exits the process with 128 + the signal number (130 for
//! SIGINT, 143 for SIGTERM, 129 for SIGHUP), while `stop_on_signals` sets
//! the flag [`stop_requested`] returns and lets the program run on:
//!
//! - a [`SharedPod`](crate::SharedPod) or [`SharedTracker`](crate::SharedTracker)
//!   is synced by the handler thread itself, as soon as its lock is free;
//! - a plain [`Pod`](crate::Pod) or [`Tracker`](crate::Tracker) is synced by
//!   the thread that owns it, at its next writing call; with
//!   `sync_on_signals` that call (and every later one) then fails with
//!   [`ErrorKind::ShuttingDown`](crate::ErrorKind::ShuttingDown), so
//!   nothing changes after the sync, and the thread is never parked.
//!
//! The handler waits up to [`GRACE`] (5 s) for every store, then exits
//! anyway (`sync_on_signals`); a plain store whose thread makes no writing
//! call in that time keeps only what it had synced (as after `kill -9`).
//! With either, a second signal exits at once with 128 + its number; the
//! append-only log makes that safe (a torn tail is dropped on open).

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// How long the handler of [`sync_on_signals`] waits for stores to sync
/// before it exits anyway: 5 seconds.
pub const GRACE: Duration = Duration::from_secs(5);

/// The signal being handled, or 0.
static SHUTDOWN: AtomicI32 = AtomicI32::new(0);
static INSTALLED: OnceLock<()> = OnceLock::new();
/// What the first signal does: exit after syncing (false) or stop (true).
static STOP_MODE: AtomicBool = AtomicBool::new(false);
/// A signal asked the program to stop ([`stop_on_signals`]).
static STOP: AtomicBool = AtomicBool::new(false);
static REGISTRY: Mutex<Vec<Weak<Entry>>> = Mutex::new(Vec::new());

/// A closure that syncs a shared store if its lock is free: `Some(true)`
/// synced, `Some(false)` busy, `None` gone.
type SyncShared = Box<dyn Fn() -> Option<bool> + Send + Sync>;

/// One open writable store.
#[derive(Default)]
pub(crate) struct Entry {
    synced: AtomicBool,
    shared: Mutex<Option<SyncShared>>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("synced", &self.synced.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Entry {
    /// Records that the store is synced for the shutdown.
    pub(crate) fn mark_synced(&self) {
        self.synced.store(true, Ordering::SeqCst);
    }

    /// Lets the handler thread sync the store itself (shared handles).
    pub(crate) fn set_shared(&self, sync: SyncShared) {
        *self.shared.lock().unwrap_or_else(|e| e.into_inner()) = Some(sync);
    }
}

/// Registers a newly opened writable store.
pub(crate) fn register() -> Arc<Entry> {
    let entry = Arc::new(Entry::default());
    let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    registry.retain(|w| w.strong_count() > 0);
    registry.push(Arc::downgrade(&entry));
    entry
}

/// The signal being handled, if a shutdown is under way.
pub(crate) fn shutting_down() -> Option<i32> {
    match SHUTDOWN.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

thread_local! {
    /// Set on the handler thread, whose syncs must not wait for the exit.
    static IN_HANDLER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this is the signal handler thread.
pub(crate) fn in_handler() -> bool {
    IN_HANDLER.with(std::cell::Cell::get)
}

/// Whether the first signal exits the process (rather than asking the
/// program to stop).
pub(crate) fn exits() -> bool {
    !STOP_MODE.load(Ordering::SeqCst)
}

/// Whether a signal asked the program to stop (after [`stop_on_signals`]):
/// a loop polls this and ends, so the program can finish its work (print a
/// summary, close its stores) and exit by itself.
/// [`Tracker::claim_next_wait`](crate::Tracker::claim_next_wait) returns
/// early when it is set.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Installs handlers for SIGINT, SIGTERM and SIGHUP that sync every open
/// writable store and exit with 128 + the signal number. Call it once, early;
/// later calls do nothing. A library never installs handlers by itself.
///
/// # Errors
///
/// [`ErrorKind::Io`](crate::ErrorKind::Io) if the handlers cannot be installed.
///
/// # Examples
///
/// ```no_run
/// tastypod::sync_on_signals()?;
/// let mut tracker = tastypod::Tracker::open("jobs.tracker")?;
/// // ... a long loop; Ctrl-C syncs the tracker and exits with status 130.
/// # Ok::<(), tastypod::Error>(())
/// ```
pub fn sync_on_signals() -> Result<()> {
    STOP_MODE.store(false, Ordering::SeqCst);
    install()
}

/// Installs handlers for SIGINT, SIGTERM and SIGHUP that sync every open
/// writable store and set the flag [`stop_requested`] returns, so the
/// program stops by itself (its loop polls the flag); a second signal exits
/// at once with 128 + the signal number. Call it once, early; it replaces
/// [`sync_on_signals`] if that was called. A library never installs
/// handlers by itself.
///
/// # Errors
///
/// [`ErrorKind::Io`](crate::ErrorKind::Io) if the handlers cannot be installed.
///
/// # Examples
///
/// ```no_run
/// tastypod::stop_on_signals()?;
/// let mut tracker = tastypod::Tracker::open("jobs.tracker")?;
/// let mut worked = 0;
/// while !tastypod::stop_requested() {
///     match tracker.claim_next("me")? {
///         tastypod::Claim::Task(task) => {
///             // ... the work ...
///             tracker.mark_done(&task.key)?;
///             worked += 1;
///         }
///         _ => break,
///     }
/// }
/// println!("{worked} tasks done this run; {}", tracker.summary());
/// # Ok::<(), tastypod::Error>(())
/// ```
pub fn stop_on_signals() -> Result<()> {
    STOP_MODE.store(true, Ordering::SeqCst);
    install()
}

fn install() -> Result<()> {
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let io = |e| {
        Error::io(
            "install signal handlers for",
            std::path::Path::new("the process"),
            e,
        )
    };
    let second = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // Registered first, so it sees `second` still false on the first signal.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&second))
            .map_err(io)?;
        signal_hook::flag::register(sig, Arc::clone(&second)).map_err(io)?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(io)?;
    std::thread::Builder::new()
        .name("tastypod-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                shut_down(sig);
            }
        })
        .map_err(io)?;
    let _ = INSTALLED.set(());
    Ok(())
}

/// Syncs what can be synced, then exits with 128 + `sig`, or (stop mode)
/// sets the stop flag.
fn shut_down(sig: i32) {
    IN_HANDLER.with(|h| h.set(true));
    SHUTDOWN.store(sig, Ordering::SeqCst);
    if !exits() {
        STOP.store(true, Ordering::SeqCst);
    }
    let deadline = Instant::now() + GRACE;
    loop {
        let entries: Vec<Arc<Entry>> = REGISTRY
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let mut waiting = 0;
        for entry in &entries {
            if entry.synced.load(Ordering::SeqCst) {
                continue;
            }
            let shared = entry.shared.lock().unwrap_or_else(|e| e.into_inner());
            match shared.as_ref().map(|sync| sync()) {
                Some(Some(true)) | Some(None) => entry.mark_synced(),
                Some(Some(false)) | None => waiting += 1,
            }
        }
        if waiting == 0 {
            break;
        }
        if Instant::now() >= deadline {
            if !exits() {
                // The program syncs them as it stops (or on drop).
                return;
            }
            eprintln!(
                "tastypod: signal {sig}: {waiting} stores did not sync within {GRACE:?}; exiting anyway"
            );
            std::process::exit(128 + sig);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if !exits() {
        eprintln!(
            "tastypod: signal {sig}: stores synced, stopping (a second signal exits at once)"
        );
        return;
    }
    eprintln!("tastypod: signal {sig}: stores synced, exiting");
    std::process::exit(128 + sig);
}

//! `SharedTracker`: a [`Tracker`] that the threads of a worker pool share,
//! with a claim that waits for work without polling.

use super::{let_handler_sync, lock};
use crate::error::Result;
use crate::group_commit::{Syncer, Ticket};
use crate::queue::TaskQueue;
use crate::tracker::{
    Aborted, Claim, FreedClaims, Lease, TaskCounts, TaskState, Tracker, TrackerOptions,
};
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A [`Tracker`] that threads share, with atomic claims for worker pools.
///
/// A worker loop claims a task, works, and marks it done or releases it;
/// [`claim_next_wait`](SharedTracker::claim_next_wait) sleeps while every
/// task left is claimed by another worker (or waits for a retry) and wakes
/// when one finishes, so a frontier that grows as workers add tasks keeps
/// every worker busy.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tastypod::{Claim, RetryDelay, SharedTracker, TrackerOptions};
/// # let dir = tempfile::tempdir()?;
/// let options = TrackerOptions::new()
///     .max_tries(3)
///     .retry_delay(RetryDelay::Fixed(Duration::from_millis(10)));
/// let tracker = options.open_shared(dir.path().join("jobs"))?;
/// tracker.add_many_if_absent(["a", "b", "c"])?;
/// std::thread::scope(|s| {
///     for _ in 0..2 {
///         let tracker = tracker.clone();
///         s.spawn(move || loop {
///             match tracker.claim_next_wait(Duration::from_secs(10))? {
///                 Claim::Task(task) => {
///                     // ... the work; on a failure: tracker.release(&task.key)?
///                     tracker.mark_done(&task.key)?;
///                 }
///                 Claim::Wait(_) => continue,
///                 Claim::Finished => return Ok::<(), tastypod::Error>(()),
///             }
///         });
///     }
/// });
/// assert_eq!(tracker.counts().done, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct SharedTracker {
    inner: Arc<Mutex<Tracker>>,
    /// Notified after every change made through any clone.
    changed: Arc<Condvar>,
    /// How many threads sleep on `changed` (no wake-up call without one).
    sleepers: Arc<AtomicUsize>,
    owner: Arc<str>,
    /// The fsyncs of the tracker's log (group commit).
    syncer: Arc<Syncer>,
}

/// A name for this process's claims: `pid-<pid>-<n>`.
fn default_owner() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "pid-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl From<Tracker> for SharedTracker {
    fn from(tracker: Tracker) -> Self {
        let entry = tracker.pod().signal_entry();
        let syncer = tracker.pod().syncer();
        let inner = Arc::new(Mutex::new(tracker));
        let_handler_sync(entry, &inner, Tracker::sync_for_shutdown);
        SharedTracker {
            inner,
            changed: Arc::new(Condvar::new()),
            sleepers: Arc::new(AtomicUsize::new(0)),
            owner: default_owner().into(),
            syncer,
        }
    }
}

impl SharedTracker {
    /// Opens (creating if needed) the tracker at `path` with the default
    /// options for sharing; [`TrackerOptions::open_shared`] takes options.
    ///
    /// # Errors
    ///
    /// As [`TrackerOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        TrackerOptions::new().open_shared(path)
    }

    /// The same tracker, claiming under the name `owner` (written into
    /// each lease, so `jq` shows who holds a task).
    #[must_use]
    pub fn with_owner(&self, owner: &str) -> Self {
        SharedTracker {
            inner: Arc::clone(&self.inner),
            changed: Arc::clone(&self.changed),
            sleepers: Arc::clone(&self.sleepers),
            owner: owner.into(),
            syncer: Arc::clone(&self.syncer),
        }
    }

    /// Whether `other` is a handle on the same tracker (a clone, or
    /// [`with_owner`](SharedTracker::with_owner) of one).
    pub fn same_tracker(&self, other: &SharedTracker) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The name claims are made under.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Runs `f` on the tracker, then wakes the waiting workers.
    fn change<R>(&self, f: impl FnOnce(&mut Tracker) -> Result<R>) -> Result<R> {
        self.with(true, f)
    }

    /// Runs `f` with the tracker locked and its fsyncs deferred; wakes the
    /// waiting workers if `wake`; then, with the lock released, waits for
    /// the fsync that `f`'s changes need (group commit: one fsync serves
    /// every worker waiting for one, and no worker's claim waits on the
    /// disk).
    fn with<R>(&self, wake: bool, f: impl FnOnce(&mut Tracker) -> Result<R>) -> Result<R> {
        let busy = self.syncer.enter();
        let (out, owed) = {
            let mut tracker = lock(&self.inner);
            tracker.defer_fsyncs(true);
            let out = f(&mut tracker);
            tracker.defer_fsyncs(false);
            (out, tracker.take_owed())
        };
        busy.leave(owed.as_ref().is_some_and(Ticket::waits_for_fsync));
        // A sleeper counted itself under the lock before sleeping, so one
        // that slept before this change is seen here; one that came after
        // it saw the change.
        if wake && self.sleepers.load(Ordering::SeqCst) > 0 {
            self.changed.notify_all();
        }
        let waited = owed.map_or(Ok(()), |ticket| ticket.wait());
        let out = out?;
        waited?;
        Ok(out)
    }

    /// Runs `f` on the tracker without changing it. In the multi-process
    /// mode the tracker first takes in what other processes wrote (if that
    /// fails, `f` sees what this handle saw last; the next writing call
    /// reports the error).
    fn read<R>(&self, f: impl FnOnce(&Tracker) -> R) -> R {
        let mut tracker = lock(&self.inner);
        if !tracker.pod().is_multi_process() {
            return f(&tracker);
        }
        tracker.defer_fsyncs(true);
        // A failure here is reported by the next writing call.
        let _ = tracker.refresh();
        tracker.defer_fsyncs(false);
        let owed = tracker.take_owed();
        let out = f(&tracker);
        drop(tracker);
        if let Some(ticket) = owed {
            // As above: a failed fsync poisons the handle, which the next
            // writing call reports.
            let _ = ticket.wait();
        }
        out
    }

    /// Runs `f` with the tracker locked: no other thread's call
    /// interleaves, and in the multi-process mode no other process's
    /// either. For steps of several calls; every single call has a method
    /// of its own. Workers waiting in
    /// [`claim_next_wait`](SharedTracker::claim_next_wait) are woken after
    /// it, as after any change.
    ///
    /// # Errors
    ///
    /// What `f` returns, or an error taking the store's lock.
    pub fn locked<R>(&self, f: impl FnOnce(&mut Tracker) -> Result<R>) -> Result<R> {
        self.change(|t| t.atomically(f))
    }

    /// See [`Tracker::claim_next`]; claims under [`owner`](SharedTracker::owner).
    ///
    /// # Errors
    ///
    /// As [`Tracker::claim_next`].
    pub fn claim_next(&self) -> Result<Claim> {
        self.with(false, |t| t.claim_next(&self.owner))
    }

    /// See [`Tracker::claim_many`]; claims under [`owner`](SharedTracker::owner).
    ///
    /// # Errors
    ///
    /// As [`Tracker::claim_next`].
    pub fn claim_many(&self, n: usize) -> Result<Vec<Lease>> {
        self.with(false, |t| t.claim_many(&self.owner, n))
    }

    /// [`claim_next`](SharedTracker::claim_next), waiting up to `timeout`
    /// while the answer is [`Claim::Wait`]: returns a task, `Finished`, or
    /// `Wait` when the time is up (or at once when
    /// [`stop_requested`](crate::stop_requested)). It sleeps until another
    /// worker of this process changes the tracker (marks a task done,
    /// releases one, adds some) or the next lease ends or retry delay
    /// passes; in the multi-process mode it also looks again every 50 ms for
    /// other processes' changes (each look reads only what they appended).
    ///
    /// # Errors
    ///
    /// As [`Tracker::claim_next`].
    pub fn claim_next_wait(&self, timeout: Duration) -> Result<Claim> {
        let deadline = Instant::now() + timeout;
        let mut busy = Some(self.syncer.enter());
        let mut tracker = lock(&self.inner);
        tracker.defer_fsyncs(true);
        // The fsync owed so far, kept here while the lock is let go (another
        // thread's call would take it from the handle).
        let mut owed_before = None;
        let claim = loop {
            let claim = match tracker.claim_next(&self.owner) {
                Ok(Claim::Wait(until)) => until,
                other => break other,
            };
            let multi = tracker.pod().is_multi_process();
            let now = tracker.clock_now();
            let Some(pause) = crate::tracker::pause_before(claim, now, deadline, multi) else {
                break Ok(Claim::Wait(claim));
            };
            if let Some(ticket) = tracker.take_owed() {
                owed_before = Some(ticket.and(owed_before.take()));
            }
            tracker.defer_fsyncs(false);
            // Asleep, this thread is about to append nothing.
            drop(busy.take());
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            tracker = match self.changed.wait_timeout(tracker, pause) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            busy = Some(self.syncer.enter());
            tracker.defer_fsyncs(true);
        };
        tracker.defer_fsyncs(false);
        // Everything owed before and after a sleep.
        let owed = match tracker.take_owed() {
            Some(ticket) => Some(ticket.and(owed_before)),
            None => owed_before,
        };
        drop(tracker);
        if let Some(busy) = busy {
            busy.leave(owed.as_ref().is_some_and(Ticket::waits_for_fsync));
        }
        let waited = owed.map_or(Ok(()), |ticket| ticket.wait());
        let claim = claim?;
        waited?;
        Ok(claim)
    }

    /// See [`Tracker::mark_done`] (ends the claim).
    ///
    /// # Errors
    ///
    /// As [`Tracker::mark_done`].
    pub fn mark_done(&self, key: &str) -> Result<()> {
        self.change(|t| t.mark_done(key))
    }

    /// See [`Tracker::mark_done_with`]: done, with `fields` in the same record.
    ///
    /// # Errors
    ///
    /// As [`Tracker::mark_done_with`].
    pub fn mark_done_with(&self, key: &str, fields: Map<String, Value>) -> Result<()> {
        self.change(|t| t.mark_done_with(key, fields))
    }

    /// See [`Tracker::abort`] (ends the claim).
    ///
    /// # Errors
    ///
    /// As [`Tracker::abort`].
    pub fn abort(&self, key: &str) -> Result<()> {
        self.change(|t| t.abort(key))
    }

    /// See [`Tracker::abort_with`]: aborted, with why in the same record.
    ///
    /// # Errors
    ///
    /// As [`Tracker::abort_with`].
    pub fn abort_with(&self, key: &str, fields: Map<String, Value>) -> Result<()> {
        self.change(|t| t.abort_with(key, fields))
    }

    /// See [`Tracker::release`]: ends the claim; the task is retried after
    /// the retry delay, or exhausted if that was its last try.
    ///
    /// # Errors
    ///
    /// As [`Tracker::release`].
    pub fn release(&self, key: &str) -> Result<()> {
        self.change(|t| t.release(key))
    }

    /// See [`Tracker::release_after`].
    ///
    /// # Errors
    ///
    /// As [`Tracker::release`].
    pub fn release_after(&self, key: &str, delay: Duration) -> Result<()> {
        self.change(|t| t.release_after(key, delay))
    }

    /// See [`Tracker::release_with`]: released, with why in the same record.
    ///
    /// # Errors
    ///
    /// As [`Tracker::release_with`].
    pub fn release_with(&self, key: &str, fields: Map<String, Value>) -> Result<()> {
        self.change(|t| t.release_with(key, fields))
    }

    /// See [`Tracker::complete`]: done, fenced by the lease.
    ///
    /// # Errors
    ///
    /// As [`Tracker::complete`].
    pub fn complete(&self, lease: &Lease, fields: Map<String, Value>) -> Result<()> {
        self.change(|t| t.complete(lease, fields))
    }

    /// See [`Tracker::abort_claim`].
    ///
    /// # Errors
    ///
    /// As [`Tracker::complete`].
    pub fn abort_claim(&self, lease: &Lease, fields: Map<String, Value>) -> Result<()> {
        self.change(|t| t.abort_claim(lease, fields))
    }

    /// See [`Tracker::release_claim`].
    ///
    /// # Errors
    ///
    /// As [`Tracker::complete`].
    pub fn release_claim(
        &self,
        lease: &Lease,
        delay: Option<Duration>,
        fields: Map<String, Value>,
    ) -> Result<()> {
        self.change(|t| t.release_claim(lease, delay, fields))
    }

    /// See [`Tracker::extend_claim`].
    ///
    /// # Errors
    ///
    /// As [`Tracker::complete`].
    pub fn extend_claim(&self, lease: &Lease) -> Result<Lease> {
        self.change(|t| t.extend_claim(lease))
    }

    /// Adds each key that is absent as a new task, in one step (see
    /// [`Tracker::add_many_if_absent`]); returns how many were added.
    ///
    /// # Errors
    ///
    /// As [`Tracker::add_many_if_absent`].
    pub fn add_many_if_absent<K: AsRef<str>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<usize> {
        self.change(|t| t.add_many_if_absent(keys))
    }

    /// See [`Tracker::get`]: the whole record of `key`.
    ///
    /// # Errors
    ///
    /// In the multi-process mode, an error taking in other processes' records.
    pub fn get(&self, key: &str) -> Result<Option<Value>> {
        self.locked(|t| t.get(key))
    }

    /// See [`Tracker::state`].
    ///
    /// # Errors
    ///
    /// As [`get`](SharedTracker::get).
    pub fn state(&self, key: &str) -> Result<Option<TaskState>> {
        self.locked(|t| Ok(t.state(key)))
    }

    /// See [`Tracker::update_task`].
    ///
    /// # Errors
    ///
    /// As [`Tracker::update_task`].
    pub fn update_task<R>(&self, key: &str, f: impl FnOnce(&mut Value) -> R) -> Result<Option<R>> {
        self.change(|t| t.update_task(key, f))
    }

    /// See [`Tracker::update_fields`].
    ///
    /// # Errors
    ///
    /// As [`Tracker::update_fields`].
    pub fn update_fields(&self, key: &str, fields: Map<String, Value>) -> Result<bool> {
        self.change(|t| t.update_fields(key, fields))
    }

    /// See [`Tracker::done`].
    pub fn done(&self, key: &str) -> bool {
        self.read(|t| t.done(key))
    }

    /// See [`Tracker::tries`].
    pub fn tries(&self, key: &str) -> u32 {
        self.read(|t| t.tries(key))
    }

    /// See [`Tracker::aborted`].
    pub fn aborted(&self, key: &str) -> bool {
        self.read(|t| t.aborted(key))
    }

    /// See [`Tracker::exhausted`].
    pub fn exhausted(&self, key: &str) -> bool {
        self.read(|t| t.exhausted(key))
    }

    /// See [`Tracker::counts`]: every count at once (what this handle knows;
    /// in the multi-process mode [`refresh`](SharedTracker::refresh) first
    /// takes in other processes' changes).
    pub fn counts(&self) -> TaskCounts {
        self.read(Tracker::counts)
    }

    /// See [`Tracker::summary`].
    pub fn summary(&self) -> String {
        self.read(Tracker::summary)
    }

    /// See [`Tracker::max_tries`].
    pub fn max_tries(&self) -> u32 {
        self.read(Tracker::max_tries)
    }

    /// Up to `limit` keys still to do, in order (see [`Tracker::todo_keys`]).
    pub fn todo_keys(&self, limit: usize) -> Vec<String> {
        self.read(|t| {
            t.todo_keys(Aborted::Skip)
                .take(limit)
                .map(str::to_string)
                .collect()
        })
    }

    /// See [`Tracker::refresh`].
    ///
    /// # Errors
    ///
    /// As [`Tracker::refresh`].
    pub fn refresh(&self) -> Result<()> {
        self.change(Tracker::refresh)
    }

    /// See [`Tracker::remove`].
    ///
    /// # Errors
    ///
    /// As [`Tracker::remove`].
    pub fn remove(&self, key: &str) -> Result<bool> {
        self.change(|t| t.remove(key))
    }

    /// See [`Tracker::freed_at_open`]: the claims the open freed.
    pub fn freed_at_open(&self) -> FreedClaims {
        self.read(|t| t.freed_at_open().clone())
    }

    /// See [`Tracker::sync`]. The fsync is made with the tracker unlocked
    /// (and shared with the other workers waiting for one), so the other
    /// workers' claims do not wait on the disk.
    ///
    /// # Errors
    ///
    /// As [`Tracker::sync`].
    pub fn sync(&self) -> Result<()> {
        self.with(false, Tracker::sync)
    }
}

impl TaskQueue for SharedTracker {
    fn add_keys(&self, keys: &[&str]) -> Result<usize> {
        self.add_many_if_absent(keys)
    }

    fn claim(&self) -> Result<Claim> {
        self.claim_next()
    }

    fn claim_many(&self, n: usize) -> Result<Vec<Lease>> {
        SharedTracker::claim_many(self, n)
    }

    fn claim_wait(&self, timeout: Duration) -> Result<Claim> {
        self.claim_next_wait(timeout)
    }

    fn complete(&self, lease: &Lease, fields: Map<String, Value>) -> Result<()> {
        SharedTracker::complete(self, lease, fields)
    }

    /// One step under the lock, so one fsync for them all.
    fn complete_many(&self, items: &[(Lease, Map<String, Value>)]) -> Result<Vec<bool>> {
        self.change(|t| {
            t.atomically(|t| {
                items
                    .iter()
                    .map(|(lease, fields)| match t.complete(lease, fields.clone()) {
                        Ok(()) => Ok(true),
                        Err(e) if matches!(e.kind(), crate::ErrorKind::LeaseLost { .. }) => {
                            Ok(false)
                        }
                        Err(e) => Err(e),
                    })
                    .collect()
            })
        })
    }

    fn abort_claim(&self, lease: &Lease, fields: Map<String, Value>) -> Result<()> {
        SharedTracker::abort_claim(self, lease, fields)
    }

    fn release_claim(
        &self,
        lease: &Lease,
        delay: Option<Duration>,
        fields: Map<String, Value>,
    ) -> Result<()> {
        SharedTracker::release_claim(self, lease, delay, fields)
    }

    fn extend_claim(&self, lease: &Lease) -> Result<Lease> {
        SharedTracker::extend_claim(self, lease)
    }

    fn get(&self, key: &str) -> Result<Option<Value>> {
        SharedTracker::get(self, key)
    }

    fn state(&self, key: &str) -> Result<Option<TaskState>> {
        SharedTracker::state(self, key)
    }

    fn update_fields(&self, key: &str, fields: Map<String, Value>) -> Result<bool> {
        SharedTracker::update_fields(self, key, fields)
    }

    fn counts(&self) -> Result<TaskCounts> {
        self.refresh()?;
        Ok(SharedTracker::counts(self))
    }

    fn todo_keys(&self, limit: usize) -> Result<Vec<String>> {
        self.refresh()?;
        Ok(SharedTracker::todo_keys(self, limit))
    }

    fn sync(&self) -> Result<()> {
        SharedTracker::sync(self)
    }
}

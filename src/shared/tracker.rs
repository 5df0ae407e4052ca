//! `SharedTracker`: a [`Tracker`] that the threads of a worker pool share,
//! with a claim that waits for work without polling.

use super::{let_handler_sync, lock};
use crate::error::Result;
use crate::tracker::{Claim, Tracker, TrackerOptions};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
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
/// let tracker = SharedTracker::open(options, dir.path().join("jobs"))?;
/// tracker.locked(|t| t.add_many(["a", "b", "c"]))?;
/// std::thread::scope(|s| {
///     for _ in 0..2 {
///         let tracker = tracker.clone();
///         s.spawn(move || loop {
///             match tracker.claim_next_wait(Duration::from_secs(10))? {
///                 Claim::Task(key) => {
///                     // ... the work; on a failure: tracker.release(&key)?
///                     tracker.mark_done(&key)?;
///                 }
///                 Claim::Wait(_) => continue,
///                 Claim::Finished => return Ok::<(), tastypod::Error>(()),
///             }
///         });
///     }
/// });
/// assert_eq!(tracker.locked(|t| Ok(t.num_done()))?, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct SharedTracker {
    inner: Arc<Mutex<Tracker>>,
    /// Notified after every change made through any clone.
    changed: Arc<Condvar>,
    owner: Arc<str>,
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
        let inner = Arc::new(Mutex::new(tracker));
        let_handler_sync(entry, &inner, Tracker::sync_for_shutdown);
        SharedTracker {
            inner,
            changed: Arc::new(Condvar::new()),
            owner: default_owner().into(),
        }
    }
}

impl SharedTracker {
    /// Opens the tracker at `path` with `options` for sharing.
    ///
    /// # Errors
    ///
    /// As [`TrackerOptions::open`].
    pub fn open(options: TrackerOptions, path: impl AsRef<Path>) -> Result<Self> {
        Ok(options.open(path)?.into())
    }

    /// The same tracker, claiming under the name `owner` (written into
    /// each lease, so `jq` shows who holds a task).
    #[must_use]
    pub fn with_owner(&self, owner: &str) -> Self {
        SharedTracker {
            inner: Arc::clone(&self.inner),
            changed: Arc::clone(&self.changed),
            owner: owner.into(),
        }
    }

    /// The name claims are made under.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Runs `f` on the tracker, then wakes the waiting workers.
    fn change<R>(&self, f: impl FnOnce(&mut Tracker) -> Result<R>) -> Result<R> {
        let out = f(&mut lock(&self.inner));
        self.changed.notify_all();
        out
    }

    /// Runs `f` with the tracker locked: no other thread's call
    /// interleaves, and in the multi-process mode no other process's either.
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
        lock(&self.inner).claim_next(&self.owner)
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
        let mut tracker = lock(&self.inner);
        loop {
            let claim = tracker.claim_next(&self.owner)?;
            let Claim::Wait(until) = claim else {
                return Ok(claim);
            };
            let multi = tracker.pod().is_multi_process();
            let Some(pause) = crate::tracker::pause_before(until, deadline, multi) else {
                return Ok(claim);
            };
            tracker = match self.changed.wait_timeout(tracker, pause) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// See [`Tracker::mark_done`] (ends the claim).
    ///
    /// # Errors
    ///
    /// As [`Tracker::mark_done`].
    pub fn mark_done(&self, key: &str) -> Result<()> {
        self.change(|t| t.mark_done(key))
    }

    /// See [`Tracker::abort`] (ends the claim).
    ///
    /// # Errors
    ///
    /// As [`Tracker::abort`].
    pub fn abort(&self, key: &str) -> Result<()> {
        self.change(|t| t.abort(key))
    }

    /// See [`Tracker::release`]: ends the claim; the task is retried after
    /// the retry delay, or aborted if that was its last try.
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

    /// Adds each key that is absent as a new task (see
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

    /// See [`Tracker::sync`].
    ///
    /// # Errors
    ///
    /// As [`Tracker::sync`].
    pub fn sync(&self) -> Result<()> {
        lock(&self.inner).sync()
    }
}

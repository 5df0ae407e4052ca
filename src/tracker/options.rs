//! [`TrackerOptions`]: the tracker's settings (`max_tries`, the lease
//! length, the retry delay), stored with the tracker, and every
//! [`PodOptions`] setting.

use super::clock::{Clock, SystemClock};
use super::settings::Given;
use super::{RetryDelay, Tracker};
use crate::error::Result;
use crate::options::{Compaction, Durability, PodOptions, Recovery};
use crate::shared::SharedTracker;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Options for opening a [`Tracker`]: its settings plus every [`PodOptions`] setting.
///
/// The tracker's settings ([`max_tries`](TrackerOptions::max_tries),
/// [`lease`](TrackerOptions::lease), [`retry_delay`](TrackerOptions::retry_delay))
/// are stored with the tracker (in its log's header) by a writable open
/// that gives any of them, and used by every later open that does not
/// give them, and by the `tastypod` command-line tool. A setting given to
/// an open wins over the stored one; a read-only open stores nothing.
///
/// # Examples
///
/// ```
/// use tastypod::TrackerOptions;
/// # let dir = tempfile::tempdir()?;
/// let tracker = TrackerOptions::new()
///     .max_tries(3)
///     .sync_at(500)
///     .open(dir.path().join("jobs.tracker"))?;
/// assert_eq!(tracker.max_tries(), 3);
/// drop(tracker);
///
/// // Stored: a later open that does not say uses 3 as well.
/// let tracker = tastypod::Tracker::open(dir.path().join("jobs.tracker"))?;
/// assert_eq!(tracker.max_tries(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TrackerOptions {
    pub(super) pod: PodOptions,
    pub(super) given: Given,
    clock: Arc<dyn Clock>,
}

impl Default for TrackerOptions {
    fn default() -> Self {
        PodOptions::new().into()
    }
}

impl From<PodOptions> for TrackerOptions {
    fn from(pod: PodOptions) -> Self {
        TrackerOptions {
            pod,
            given: Given::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl TrackerOptions {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a claim made by [`Tracker::claim_next`] lasts before another
    /// worker may claim the task again. A lease that ends without its
    /// worker finishing the task (the worker hung, or died in another
    /// process) makes the task claimable again at once, its try still
    /// counted: on its last try ([`max_tries`](Self::max_tries)) the task
    /// is given up (*exhausted*) instead. A worker whose lease ended and
    /// whose task another worker claimed since can no longer finish it
    /// ([`Tracker::complete`] fails with `LeaseLost`);
    /// [`Tracker::extend_claim`] renews a lease before it ends. In the
    /// exclusive mode an open frees every claim of an earlier run at once,
    /// leases notwithstanding ([`Tracker::freed_at_open`]). Stored with the
    /// tracker. Default: the stored length, else
    /// [`DEFAULT_LEASE`](crate::DEFAULT_LEASE) (60 s).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.given.lease = Some(lease);
        self
    }

    /// How many tries a task gets. A try is counted by each
    /// [`Tracker::claim_next`] that hands the task out, and by each gate
    /// ([`Tracker::should_try`], [`Tracker::try_keys`]) that says yes. A
    /// task whose tries reach the limit and that is not claimed is
    /// *exhausted* ([`Tracker::exhausted`]): given up, never handed out
    /// again, but not *aborted* (that is [`Tracker::abort`]'s). So a claim
    /// on the last try that ends without `mark_done` (a release, an expired
    /// lease, a crash before the next open) gives the task up. Raising the
    /// limit makes exhausted tasks to do again. 0 means no limit. Stored
    /// with the tracker. Default: the stored limit, else 0.
    #[must_use]
    pub fn max_tries(mut self, max_tries: u32) -> Self {
        self.given.max_tries = Some(max_tries);
        self
    }

    /// How long a task released by [`Tracker::release`] waits before
    /// [`Tracker::claim_next`] hands it out again. Stored with the tracker.
    /// Default: the stored delay, else [`RetryDelay::None`].
    #[must_use]
    pub fn retry_delay(mut self, delay: RetryDelay) -> Self {
        self.given.retry = Some(delay);
        self
    }

    /// See [`PodOptions::sync_at`]. Default: 1000.
    #[must_use]
    pub fn sync_at(mut self, dirty_keys: usize) -> Self {
        self.pod = self.pod.sync_at(dirty_keys);
        self
    }

    /// See [`PodOptions::read_only`]. Default: false.
    #[must_use]
    pub fn read_only(mut self, yes: bool) -> Self {
        self.pod = self.pod.read_only(yes);
        self
    }

    /// See [`PodOptions::durability`]. Default: [`Durability::Full`].
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.pod = self.pod.durability(durability);
        self
    }

    /// See [`PodOptions::compaction`]. Default: [`Compaction::Auto`].
    #[must_use]
    pub fn compaction(mut self, compaction: Compaction) -> Self {
        self.pod = self.pod.compaction(compaction);
        self
    }

    /// See [`PodOptions::recovery`]. Default: [`Recovery::TornTail`].
    #[must_use]
    pub fn recovery(mut self, recovery: Recovery) -> Self {
        self.pod = self.pod.recovery(recovery);
        self
    }

    /// See [`PodOptions::multi_process`]: several processes may write the
    /// tracker at once, and [`Tracker::claim_next`] is atomic across them.
    /// Default: false.
    #[must_use]
    pub fn multi_process(mut self, yes: bool) -> Self {
        self.pod = self.pod.multi_process(yes);
        self
    }

    /// See [`PodOptions::simulated`] (tests only).
    #[cfg(feature = "sim")]
    #[doc(hidden)]
    #[must_use]
    pub fn simulated(mut self, storage: crate::sim::SimStorage) -> Self {
        self.pod = self.pod.simulated(storage);
        self
    }

    /// See [`PodOptions::max_record_size`]. Default: 128 MiB.
    #[must_use]
    pub fn max_record_size(mut self, bytes: usize) -> Self {
        self.pod = self.pod.max_record_size(bytes);
        self
    }

    /// See [`PodOptions::wait_for_lock`]. Default: false.
    #[must_use]
    pub fn wait_for_lock(mut self, yes: bool) -> Self {
        self.pod = self.pod.wait_for_lock(yes);
        self
    }

    /// Opens (creating if needed) the tracker at `path`.
    ///
    /// # Errors
    ///
    /// As [`Pod::open`](crate::Pod::open), plus [`ErrorKind::NotATask`](crate::ErrorKind::NotATask) naming the key and
    /// line of a value that is not a task record, and
    /// [`ErrorKind::BadSettings`](crate::ErrorKind::BadSettings) if the stored settings cannot be read.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Tracker> {
        let pod = self.pod.open(path)?;
        Tracker::from_pod(pod, self.given, Arc::clone(&self.clock))
    }

    /// [`open`](TrackerOptions::open), as a handle the threads of a worker
    /// pool share ([`SharedTracker`]).
    ///
    /// # Errors
    ///
    /// As [`open`](TrackerOptions::open).
    pub fn open_shared(&self, path: impl AsRef<Path>) -> Result<SharedTracker> {
        Ok(self.open(path)?.into())
    }

    /// The tracker settings given to these options.
    #[cfg(feature = "postgres")]
    pub(crate) fn given(&self) -> super::settings::Given {
        self.given
    }

    /// Measures leases and retry delays by `clock` instead of the system's
    /// (tests only: a [`ManualClock`](crate::ManualClock) moves only when
    /// told, so no lease test sleeps).
    #[doc(hidden)]
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

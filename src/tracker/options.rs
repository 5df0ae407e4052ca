//! [`TrackerOptions`]: `max_tries`, the lease length, and every
//! [`PodOptions`] setting.

use super::{DEFAULT_LEASE, Tracker};
use crate::error::Result;
use crate::options::{Compaction, Durability, PodOptions, Recovery};
use std::path::Path;
use std::time::Duration;

/// Options for opening a [`Tracker`]: `max_tries` plus every [`PodOptions`] setting.
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
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TrackerOptions {
    pub(super) pod: PodOptions,
    pub(super) max_tries: u32,
    pub(super) lease: Duration,
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
            max_tries: 0,
            lease: DEFAULT_LEASE,
        }
    }
}

impl TrackerOptions {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a claim made by [`Tracker::claim_next`] lasts before another
    /// worker may claim the task again. Default: [`DEFAULT_LEASE`] (60 s).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How many tries a task gets before the gates skip it; 0 means no
    /// limit. Default: 0.
    #[must_use]
    pub fn max_tries(mut self, max_tries: u32) -> Self {
        self.max_tries = max_tries;
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
    /// As [`Pod::open`], plus [`ErrorKind::NotATask`] naming the key and
    /// line of a value that is not a task record.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Tracker> {
        let pod = self.pod.open(path)?;
        let mut tracker = Tracker::from_pod(pod, self.max_tries)?;
        tracker.lease = self.lease;
        Ok(tracker)
    }
}

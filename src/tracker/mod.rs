//! `Tracker`: a `Pod` of task records with gates and counters for resumable
//! loops. Its parts: the record codec ([`schema`]), the state mirrored
//! beside each key ([`mirror`]), the changes ([`changes`]), the gates and
//! iteration ([`gates`], [`iter`]), claims for worker pools ([`claims`],
//! [`schedule`]), the counters ([`counts`]), the stored settings
//! ([`settings`], [`options`]) and the clock ([`clock`]).

mod changes;
mod claims;
mod clock;
pub(crate) mod counts;
mod gates;
mod iter;
mod mirror;
mod options;
mod schedule;
mod schema;
mod settings;

pub(crate) use claims::pause_before;
pub use claims::{Claim, FreedClaims};
pub use clock::{Clock, ManualClock};
#[cfg(feature = "postgres")]
pub(crate) use clock::{duration_ms, millis, time_of};
pub use counts::TaskCounts;
pub use iter::{TaskMut, TryItems, TryKeys};
pub use options::TrackerOptions;
#[cfg(feature = "postgres")]
pub(crate) use schema::user_fields;
pub use schema::{
    ABORTED, DEFAULT_LEASE, DONE, LEASE, Lease, NOT_BEFORE, RESERVED, Status, TRIES, TaskState,
};
pub use settings::RetryDelay;

use crate::error::{Error, ErrorKind, Result};
use crate::pod::{Pod, PodStats, RecoveryReport};
use counts::Counts;
use schedule::Schedule;
use serde_json::Value;
use settings::Given;
pub(crate) use settings::Settings;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Whether a gate or iterator considers aborted tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aborted {
    /// Aborted tasks are not to be done (tastypy's default).
    #[default]
    Skip,
    /// Aborted tasks count as to be done, like any other.
    Allow,
}

/// A progress tracker: a [`Pod`] whose values are task records, with gates
/// and counters that make resumable loops short.
///
/// # Examples
///
/// ```
/// use tastypod::{Aborted, TrackerOptions};
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("crawl.tracker");
/// let mut tracker = TrackerOptions::new().max_tries(3).open(&path)?;
/// tracker.add_many_if_absent(["a", "b", "c"])?;
///
/// let mut tasks = tracker.try_keys(Aborted::Skip);
/// while let Some(key) = tasks.next() {
///     let key = key?;
///     if key != "b" {
///         tasks.mark_done(&key)?; // `tasks` derefs to the tracker
///     }
/// }
/// drop(tasks);
/// assert_eq!(tracker.num_done(), 2);
/// assert_eq!(tracker.percent_done(1), "66.7 %");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[doc(alias = "ProgressTracker")]
pub struct Tracker {
    pod: Pod<Value>,
    /// The settings in force: those given to the open over the stored ones.
    settings: Settings,
    /// The settings given to the open (they win over stored ones on a reload).
    given: Given,
    counts: Counts,
    /// Claims found in the records (`_lease`), by key.
    leases: HashMap<String, Lease>,
    /// Retry times found in the records (`_not_before`, unix ms), by key.
    not_before: HashMap<String, u64>,
    schedule: Schedule,
    clock: Arc<dyn Clock>,
    /// The claims the open freed.
    freed_at_open: FreedClaims,
}

impl Tracker {
    /// Opens (creating if needed) the tracker at `path` with the default
    /// options (no limit on tries).
    ///
    /// # Errors
    ///
    /// See [`TrackerOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        TrackerOptions::new().open(path)
    }

    /// Makes a tracker of an opened pod: reads its stored settings (and
    /// stores the given ones if they differ, unless read-only), reads every
    /// record's state, and frees the claims no worker can hold any more.
    fn from_pod(pod: Pod<Value>, given: Given, clock: Arc<dyn Clock>) -> Result<Self> {
        Tracker::from_pod_or_back(pod, given, clock).map_err(|(e, _)| e)
    }

    /// The tracker over `pod`, a store opened as a [`Pod`], if every record
    /// in it is a task: as [`Tracker::open`] would open it, with no
    /// settings given (a writable one frees the claims an earlier run
    /// left). Otherwise the error ([`ErrorKind::NotATask`] names the first
    /// record that is not a task) and `pod` back, unchanged but for the
    /// tracker's own bookkeeping in its slots: a look at a store that may
    /// or may not be a tracker reads it once (`tastypod stat`).
    ///
    /// # Errors
    ///
    /// The error and the pod, as above; [`ErrorKind::BadSettings`] for
    /// stored settings that cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// use tastypod::{Pod, Tracker};
    /// # let dir = tempfile::tempdir()?;
    /// let mut pod = Pod::open(dir.path().join("p"))?;
    /// pod.insert("k", 1.into())?;
    /// let (error, pod) = Tracker::from_opened(pod).unwrap_err();
    /// assert!(matches!(error.kind(), tastypod::ErrorKind::NotATask { .. }));
    /// assert_eq!(pod.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[expect(clippy::result_large_err, reason = "the pod is handed back whole")]
    pub fn from_opened(pod: Pod<Value>) -> std::result::Result<Self, (Error, Pod<Value>)> {
        Tracker::from_pod_or_back(pod, Given::default(), Arc::new(clock::SystemClock))
    }

    /// [`from_pod`](Self::from_pod), handing the pod back on a failure.
    #[expect(clippy::result_large_err, reason = "the pod is handed back whole")]
    fn from_pod_or_back(
        pod: Pod<Value>,
        given: Given,
        clock: Arc<dyn Clock>,
    ) -> std::result::Result<Self, (Error, Pod<Value>)> {
        let mut tracker = Tracker {
            pod,
            settings: Settings::default(),
            given,
            counts: Counts::default(),
            leases: HashMap::new(),
            not_before: HashMap::new(),
            schedule: Schedule::default(),
            clock,
            freed_at_open: FreedClaims::default(),
        };
        let opened = tracker.op(|t| {
            let stored = t.stored_settings()?;
            t.settings = given.over(stored.unwrap_or_default());
            if !t.pod.is_read_only() && !given.is_empty() && stored != Some(t.settings) {
                let header = t.settings.into_header(t.pod.settings());
                t.pod.set_settings(Some(header))?;
            }
            t.load_states()?;
            t.free_stale_claims()
        });
        match opened {
            Ok(()) => Ok(tracker),
            Err(e) => Err((e, tracker.pod)),
        }
    }

    /// The settings the log's header holds, if any.
    fn stored_settings(&self) -> Result<Option<Settings>> {
        Settings::from_header(self.pod.settings()).map_err(|reason| {
            ErrorKind::BadSettings {
                path: self.pod.log_path().to_path_buf(),
                reason,
            }
            .into()
        })
    }

    /// Runs `f` as one atomic step; see [`Pod::atomically`].
    ///
    /// # Errors
    ///
    /// What `f` returns, or [`ErrorKind::Io`] if the lock or the catch-up fails.
    pub fn atomically<R>(&mut self, f: impl FnOnce(&mut Tracker) -> Result<R>) -> Result<R> {
        self.op(f)
    }

    /// Runs `f` as one store operation: in the multi-process mode, under
    /// the store's lock and after taking in what other processes wrote.
    fn op<R>(&mut self, f: impl FnOnce(&mut Tracker) -> Result<R>) -> Result<R> {
        crate::pod::operation(
            self,
            |t| t.pod.op_begin(),
            |t| t.pod.op_end(),
            |t| {
                t.absorb()?;
                let out = f(t)?;
                t.check_counts();
                Ok(out)
            },
        )
    }

    /// [`op`](Self::op) for a claim: under [`Durability::EveryChange`](crate::Durability::EveryChange)
    /// its records are written at once but not waited for (the next
    /// durable change takes them along).
    fn claim_op<R>(&mut self, f: impl FnOnce(&mut Tracker) -> Result<R>) -> Result<R> {
        let lazy_before = self.pod.set_lazy(true);
        crate::pod::operation(
            self,
            move |t| {
                let begun = t.pod.op_begin();
                if begun.is_err() {
                    t.pod.set_lazy(lazy_before);
                }
                begun
            },
            move |t| {
                let ended = t.pod.op_end();
                t.pod.set_lazy(lazy_before);
                ended
            },
            |t| {
                t.absorb()?;
                let out = f(t)?;
                t.check_counts();
                Ok(out)
            },
        )
    }

    /// See [`Pod::defer_fsyncs`].
    pub(crate) fn defer_fsyncs(&mut self, defer: bool) -> bool {
        self.pod.defer_fsyncs(defer)
    }

    /// See [`Pod::take_owed`].
    pub(crate) fn take_owed(&mut self) -> Option<crate::group_commit::Ticket> {
        self.pod.take_owed()
    }

    /// Picks up what other processes wrote since this handle last looked
    /// (multi-process mode), or newly synced records (read-only handles).
    ///
    /// # Errors
    ///
    /// As [`Pod::refresh`], plus [`ErrorKind::NotATask`].
    pub fn refresh(&mut self) -> Result<()> {
        if self.pod.is_read_only() {
            self.pod.refresh()?;
            return self.absorb();
        }
        self.op(|_| Ok(()))
    }

    /// The underlying pod, for reading.
    pub fn pod(&self) -> &Pod<Value> {
        &self.pod
    }

    /// The try limit (0: none): given to the open, else stored with the
    /// tracker, else 0.
    pub fn max_tries(&self) -> u32 {
        self.settings.max_tries
    }

    /// How long a released task waits before it is claimed again: given to
    /// the open, else stored with the tracker, else [`RetryDelay::None`].
    pub fn retry_delay(&self) -> RetryDelay {
        self.settings.retry
    }

    /// How long claims last: given to the open, else stored with the
    /// tracker, else [`DEFAULT_LEASE`](crate::DEFAULT_LEASE) (60 s).
    pub fn lease_length(&self) -> std::time::Duration {
        self.settings.lease
    }

    /// The tracker's directory.
    pub fn path(&self) -> &Path {
        self.pod.path()
    }

    /// What opening found and repaired.
    pub fn recovery(&self) -> &RecoveryReport {
        self.pod.recovery()
    }

    /// Sizes of the log.
    pub fn stats(&self) -> PodStats {
        self.pod.stats()
    }

    /// The number of tasks.
    pub fn len(&self) -> usize {
        self.pod.len()
    }

    /// Whether there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.pod.is_empty()
    }

    /// Whether `key` is a task.
    pub fn contains_key(&self, key: &str) -> bool {
        self.pod.contains_key(key)
    }

    /// The task keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.pod.keys()
    }

    /// The whole record of `key` (reserved and user fields).
    ///
    /// # Errors
    ///
    /// As [`Pod::get`].
    pub fn get(&self, key: &str) -> Result<Option<Value>> {
        self.pod.get(key)
    }

    /// `(key, record)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = Result<(&str, Value)>> + '_ {
        self.pod.iter()
    }

    /// The number of keys with unsynced changes.
    pub fn dirty_len(&self) -> usize {
        self.pod.dirty_len()
    }

    /// See [`Pod::sync`].
    ///
    /// # Errors
    ///
    /// As [`Pod::sync`].
    pub fn sync(&mut self) -> Result<()> {
        self.op(|t| t.pod.sync())
    }

    /// See [`Pod::hold`].
    pub fn hold(&mut self) {
        self.pod.hold();
    }

    /// See [`Pod::unhold`].
    ///
    /// # Errors
    ///
    /// As [`Pod::sync`].
    pub fn unhold(&mut self) -> Result<()> {
        self.op(|t| t.pod.unhold())
    }

    /// See [`Pod::compact`].
    ///
    /// # Errors
    ///
    /// As [`Pod::compact`].
    pub fn compact(&mut self) -> Result<()> {
        self.op(|t| t.pod.compact())
    }

    /// Discards unsynced changes and reloads from disk; counters follow.
    ///
    /// # Errors
    ///
    /// As [`Pod::revert`], plus [`ErrorKind::NotATask`].
    pub fn revert(&mut self) -> Result<()> {
        self.pod.revert()?;
        self.load_states()
    }

    /// Syncs and closes the tracker.
    ///
    /// # Errors
    ///
    /// As [`Pod::close`].
    pub fn close(self) -> Result<()> {
        self.pod.close()
    }

    pub(crate) fn sync_for_shutdown(&mut self) {
        self.pod.sync_for_shutdown();
    }

    /// Now, by the tracker's clock.
    fn now(&self) -> std::time::SystemTime {
        self.clock.now()
    }

    /// Now, by the tracker's clock (for the shared handle's waits).
    pub(crate) fn clock_now(&self) -> std::time::SystemTime {
        self.now()
    }
}

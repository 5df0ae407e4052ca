//! [`TaskQueue`]: what a pool of workers needs of a tracker, whatever keeps
//! its tasks. The file store's [`SharedTracker`](crate::SharedTracker)
//! implements it; so does the PostgreSQL tracker. Worker code written
//! against it runs on either, and one conformance suite
//! (`tests/conformance/`) checks both.

use crate::error::{ErrorKind, Result};
use crate::tracker::{Claim, Lease, TaskCounts, TaskState};
use serde_json::{Map, Value};
use std::time::Duration;

/// A tracker that the workers of a pool share (every method takes `&self`;
/// an implementation is `Send + Sync`). Tasks follow the states of
/// DESIGN.md's "Tracker states": a claim counts a try and hands out a
/// [`Lease`]; the lease fences its worker, so a worker whose lease was
/// taken over (it expired and another worker claimed the task) cannot
/// finish the task: those calls fail with
/// [`ErrorKind::LeaseLost`](crate::ErrorKind::LeaseLost).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tastypod::{Claim, TaskQueue, TrackerOptions};
///
/// /// One worker's loop, for any backend.
/// fn work(queue: &dyn TaskQueue) -> tastypod::Result<usize> {
///     let mut done = 0;
///     loop {
///         match queue.claim_wait(Duration::from_secs(10))? {
///             Claim::Task(lease) => {
///                 let mut result = serde_json::Map::new();
///                 result.insert("len".into(), lease.key.len().into());
///                 queue.complete(&lease, result)?;
///                 done += 1;
///             }
///             Claim::Wait(_) => continue,
///             Claim::Finished => return Ok(done),
///         }
///     }
/// }
///
/// # let dir = tempfile::tempdir()?;
/// let tracker = TrackerOptions::new().open_shared(dir.path().join("jobs"))?;
/// tracker.add_many_if_absent(["a", "bb", "ccc"])?;
/// assert_eq!(work(&tracker)?, 3);
/// assert_eq!(TaskQueue::counts(&tracker)?.done, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait TaskQueue: Send + Sync {
    /// Adds each key that is absent as a new task, all in one step (one
    /// round trip to a server); returns how many were added.
    ///
    /// # Errors
    ///
    /// The backend's error; nothing is added then.
    fn add_keys(&self, keys: &[&str]) -> Result<usize>;

    /// Claims one claimable task: counts its try and hands out its lease.
    /// [`Claim::Wait`] when tasks are left but none is claimable now,
    /// [`Claim::Finished`] when none is left.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn claim(&self) -> Result<Claim>;

    /// Claims up to `n` tasks at once; fewer (or none) if fewer are
    /// claimable now.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn claim_many(&self, n: usize) -> Result<Vec<Lease>>;

    /// [`claim`](TaskQueue::claim), waiting up to `timeout` while the
    /// answer is [`Claim::Wait`] (and returning early once
    /// [`stop_requested`](crate::stop_requested)).
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn claim_wait(&self, timeout: Duration) -> Result<Claim>;

    /// Marks the task of `lease` done, merging `fields` into its record.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::LeaseLost`](crate::ErrorKind::LeaseLost) if the lease
    /// is no longer the task's claim (nothing changes).
    fn complete(&self, lease: &Lease, fields: Map<String, Value>) -> Result<()>;

    /// Marks many claimed tasks done at once, each with its fields merged
    /// into its record; returns, item by item, whether it was completed
    /// (`false`: its lease was lost, and nothing changed for it). A
    /// backend does it in one step where it can (one statement, one fsync).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidValue`] if some fields hold a reserved name; the
    /// backend's error.
    fn complete_many(&self, items: &[(Lease, Map<String, Value>)]) -> Result<Vec<bool>> {
        items
            .iter()
            .map(
                |(lease, fields)| match self.complete(lease, fields.clone()) {
                    Ok(()) => Ok(true),
                    Err(e) if matches!(e.kind(), ErrorKind::LeaseLost { .. }) => Ok(false),
                    Err(e) => Err(e),
                },
            )
            .collect()
    }

    /// Aborts the task of `lease` (the program gives up on it), merging
    /// `fields` into its record.
    ///
    /// # Errors
    ///
    /// As [`complete`](TaskQueue::complete).
    fn abort_claim(&self, lease: &Lease, fields: Map<String, Value>) -> Result<()>;

    /// Ends the claim of `lease` without finishing: the task waits `delay`
    /// (the retry delay if `None`) before it is claimable again, or is
    /// exhausted if that was its last try; `fields` are merged into its
    /// record.
    ///
    /// # Errors
    ///
    /// As [`complete`](TaskQueue::complete).
    fn release_claim(
        &self,
        lease: &Lease,
        delay: Option<Duration>,
        fields: Map<String, Value>,
    ) -> Result<()>;

    /// Extends the claim of `lease` by the lease length from now; returns
    /// the new lease.
    ///
    /// # Errors
    ///
    /// As [`complete`](TaskQueue::complete).
    fn extend_claim(&self, lease: &Lease) -> Result<Lease>;

    /// The whole record of `key` (reserved and user fields), if it is a task.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn get(&self, key: &str) -> Result<Option<Value>>;

    /// The state of `key`, if it is a task.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn state(&self, key: &str) -> Result<Option<TaskState>>;

    /// Merges `fields` into the user's fields of `key`'s record, by the
    /// backend (never a read-modify-write by the caller); returns whether
    /// `key` is a task.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidValue`](crate::ErrorKind::InvalidValue) if
    /// `fields` holds a reserved field.
    fn update_fields(&self, key: &str, fields: Map<String, Value>) -> Result<bool>;

    /// Every count.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn counts(&self) -> Result<TaskCounts>;

    /// A one-line summary of the counts ([`TaskCounts::summary`]).
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn summary(&self) -> Result<String> {
        Ok(self.counts()?.summary())
    }

    /// Up to `limit` keys still to do, in order.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn todo_keys(&self, limit: usize) -> Result<Vec<String>>;

    /// Makes every change made so far durable.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn sync(&self) -> Result<()>;
}

//! Claims for worker pools: a task handed to one worker under a lease.
//!
//! The states of a task and what moves it between them (DESIGN.md,
//! "Tracker states", says the same for other implementations):
//!
//! - *to do*: not done, not aborted, and under the try limit. It is
//!   *claimable* unless it is *claimed* (its record holds a `_lease` that
//!   has not expired) or *waiting* (its record holds a `_not_before` still
//!   ahead).
//! - [`claim_next`](Tracker::claim_next) takes a claimable task: one try is
//!   counted and a lease is written. A claimed task stays to do even on its
//!   last try, until the claim ends.
//! - [`mark_done`](Tracker::mark_done) and [`abort`](Tracker::abort) end
//!   the claim: *done* and *aborted* tasks are never claimed.
//! - [`release`](Tracker::release) ends the claim without finishing: after
//!   the last try the task is *exhausted*, else it waits for the retry delay.
//! - An expired lease (its worker died or hung) ends the claim as a release
//!   without a delay would; a writable exclusive open ends every claim at
//!   once (no worker of an earlier run can still hold one). The tries the
//!   claims counted stay counted, so a claim on the last try that ends this
//!   way leaves the task exhausted too.
//! - *Exhausted* tasks (out of tries and not claimed: the gates'
//!   [`should_try`](Tracker::should_try) counts tries too) are never claimed.
//!   They are not *aborted*: that is the program's own verdict
//!   ([`abort`](Tracker::abort)). Raising the try limit makes them to do.

use super::Tracker;
use super::schema::{LEASE, Lease, NOT_BEFORE, TRIES, now_ms};
use crate::error::{ErrorKind, Result, fail};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What [`Tracker::claim_next`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Claim {
    /// This task is claimed for you: finish it with
    /// [`mark_done`](Tracker::mark_done), [`abort`](Tracker::abort) or
    /// [`release`](Tracker::release) before its lease ends.
    Task(String),
    /// Nothing is claimable now, but tasks are still to do: claimed by
    /// other workers, or waiting for a retry. At this time one becomes
    /// claimable (a lease ends or a retry delay passes); a worker that
    /// finishes its task may make one claimable sooner.
    Wait(SystemTime),
    /// Nothing is left to do: every task is done, aborted or out of tries.
    Finished,
}

impl Claim {
    /// The claimed task's key, if a task was claimed.
    pub fn task(self) -> Option<String> {
        match self {
            Claim::Task(key) => Some(key),
            _ => None,
        }
    }

    /// Whether nothing is left to do.
    pub fn is_finished(&self) -> bool {
        matches!(self, Claim::Finished)
    }
}

/// How a claim ends without the task being done or aborted.
#[derive(Clone, Copy)]
enum Ending {
    /// The worker released it; the retry delay (or this one) applies.
    Released(Option<Duration>),
    /// Its lease expired, or an exclusive open freed it.
    Freed,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How often a wait looks again in the multi-process mode, where other
/// processes' changes wake no one.
pub(crate) const POLL: Duration = Duration::from_millis(50);

impl Tracker {
    /// Claims the next task that is claimable (see [`Claim`]): counts the
    /// try, writes a lease (`_lease`: `owner` and the expiry, [`lease_length`](Tracker::lease_length)
    /// from now) into the task record, and returns its key. Tasks released
    /// with no delay are claimed before tasks never tried. Costs O(log n)
    /// (plus, once per task, a look at it), never a scan of the tracker.
    ///
    /// A claim ends with [`mark_done`](Tracker::mark_done),
    /// [`abort`](Tracker::abort) or [`release`](Tracker::release) (the try
    /// stays counted); an expired lease (its worker died or hung) makes the
    /// task claimable again, or leaves it [`exhausted`](Tracker::exhausted)
    /// (given up) if that was its last try.
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`](crate::Pod::insert).
    ///
    /// # Examples
    ///
    /// ```
    /// use tastypod::{Claim, TrackerOptions};
    /// # let dir = tempfile::tempdir()?;
    /// let mut tracker = TrackerOptions::new().max_tries(2).open(dir.path().join("t"))?;
    /// tracker.add_many(["a", "b"])?;
    /// assert_eq!(tracker.claim_next("me")?, Claim::Task("a".into()));
    /// assert_eq!(tracker.claim_next("me")?, Claim::Task("b".into()));
    /// assert!(matches!(tracker.claim_next("me")?, Claim::Wait(_))); // both claimed
    /// tracker.mark_done("a")?;
    /// tracker.release("b")?; // a retry, at once (no retry delay set)
    /// assert_eq!(tracker.claim_next("me")?, Claim::Task("b".into()));
    /// tracker.release("b")?; // its last try: out of tries
    /// assert_eq!(tracker.claim_next("me")?, Claim::Finished);
    /// assert!(tracker.exhausted("b") && !tracker.aborted("b"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn claim_next(&mut self, owner: &str) -> Result<Claim> {
        self.op(|t| t.claim_next_now(owner))
    }

    fn claim_next_now(&mut self, owner: &str) -> Result<Claim> {
        let now = now_ms();
        let max = self.settings.max_tries;
        loop {
            // A change below may compact the log and renumber the slots.
            self.schedule.follow_epoch(self.pod.epoch());
            let next = match self.schedule.take_due(now) {
                Some(i) => Some(i),
                None => self.schedule.advance(|from| self.pod.next_slot(from)),
            };
            let Some(i) = next else {
                break;
            };
            let Some(ready) = self.ready_at(i) else {
                continue;
            };
            if ready > now {
                self.schedule.note(self.pod.epoch(), i, Some(ready));
                continue;
            }
            let state = self.pod.task_at(i);
            let key = self.pod.key_at(i).to_string();
            if state.claimed && max > 0 && state.tries >= max {
                // A claim on the last try expired: that try failed.
                self.end_claim_now(&key, Ending::Freed)?;
                continue;
            }
            if state.tries == u32::MAX {
                return fail(super::schema::too_many_tries(&key));
            }
            let until = now.saturating_add(millis(self.settings.lease));
            let lease = json!({"owner": owner, "until": until});
            self.edit_now(&key, |obj| {
                let tries = obj.get(TRIES).and_then(Value::as_u64).unwrap_or(0);
                obj.insert(TRIES.into(), tries.saturating_add(1).into());
                obj.insert(LEASE.into(), lease);
                obj.remove(NOT_BEFORE);
            })?;
            return Ok(Claim::Task(key));
        }
        Ok(match self.schedule.earliest() {
            Some(t) => Claim::Wait(UNIX_EPOCH + Duration::from_millis(t)),
            None => Claim::Finished,
        })
    }

    /// [`claim_next`](Tracker::claim_next), waiting up to `timeout` while
    /// the answer is [`Claim::Wait`]: returns a task, `Finished`, or `Wait`
    /// when the time is up (or at once when [`stop_requested`](crate::stop_requested)).
    /// It sleeps until the next lease ends or retry delay passes; in the
    /// multi-process mode it also looks again every 50 ms for other
    /// processes' changes (each look reads only what they appended).
    ///
    /// # Errors
    ///
    /// As [`claim_next`](Tracker::claim_next).
    pub fn claim_next_wait(&mut self, owner: &str, timeout: Duration) -> Result<Claim> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let claim = self.claim_next(owner)?;
            let Claim::Wait(until) = claim else {
                return Ok(claim);
            };
            let Some(pause) = pause_before(until, deadline, self.pod.is_multi_process()) else {
                return Ok(claim);
            };
            std::thread::sleep(pause);
        }
    }

    /// Ends the claim on `key` without finishing the task (the try stays
    /// counted). If that was its last try (see
    /// [`max_tries`](Tracker::max_tries)), the task is
    /// [`exhausted`](Tracker::exhausted) (given up); otherwise it
    /// becomes claimable again after the [`retry_delay`](Tracker::retry_delay)
    /// for the tries it had (`_not_before` in the record). Does nothing if
    /// `key` is not claimed.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MissingKey`] if absent; also as [`Pod::insert`](crate::Pod::insert).
    pub fn release(&mut self, key: &str) -> Result<()> {
        self.op(|t| t.end_claim_now(key, Ending::Released(None)))
    }

    /// [`release`](Tracker::release), with `delay` instead of the retry
    /// delay (unless it was the last try, which leaves the task exhausted).
    ///
    /// # Errors
    ///
    /// As [`release`](Tracker::release).
    pub fn release_after(&mut self, key: &str, delay: Duration) -> Result<()> {
        self.op(|t| t.end_claim_now(key, Ending::Released(Some(delay))))
    }

    fn end_claim_now(&mut self, key: &str, ending: Ending) -> Result<()> {
        let Some(state) = self.meta(key) else {
            return fail(ErrorKind::MissingKey { key: key.into() });
        };
        if !state.claimed {
            return Ok(());
        }
        let max = self.settings.max_tries;
        let last = max > 0 && state.tries >= max;
        let delay = match ending {
            Ending::Released(delay) => {
                delay.unwrap_or_else(|| self.settings.retry.after_try(state.tries))
            }
            Ending::Freed => Duration::ZERO,
        };
        let retry_at = now_ms().saturating_add(millis(delay));
        self.edit_now(key, |obj| {
            obj.remove(LEASE);
            // After the last try the task is exhausted: out of tries, not
            // aborted (that is the program's word), so raising the limit
            // makes it to do again.
            if last || delay == Duration::ZERO {
                obj.remove(NOT_BEFORE);
            } else {
                obj.insert(NOT_BEFORE.into(), retry_at.into());
            }
        })
    }

    /// Ends the claims no worker can hold: in the exclusive mode every
    /// claim (the lock proves the last run is gone), in the multi-process
    /// mode the expired ones. Read-only handles change nothing.
    pub(super) fn free_stale_claims(&mut self) -> Result<()> {
        if self.pod.is_read_only() || self.leases.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let exclusive = !self.pod.is_multi_process();
        let mut stale: Vec<String> = self
            .leases
            .iter()
            .filter(|(_, lease)| exclusive || lease.until_ms <= now)
            .map(|(key, _)| key.clone())
            .collect();
        stale.sort_by_key(|key| self.pod.slot_of(key));
        for key in stale {
            self.end_claim_now(&key, Ending::Freed)?;
        }
        Ok(())
    }

    /// The claim on `key`, if any (possibly expired).
    pub fn lease(&self, key: &str) -> Option<&Lease> {
        self.leases.get(key)
    }

    /// When `key` may be claimed again after a release with a delay
    /// (`_not_before`), if it waits (the time may have passed).
    pub fn not_before(&self, key: &str) -> Option<SystemTime> {
        let ms = *self.not_before.get(key)?;
        Some(UNIX_EPOCH + Duration::from_millis(ms))
    }

    pub(crate) fn sync_for_shutdown(&mut self) {
        self.pod.sync_for_shutdown();
    }

    /// How long claims last: given to the open, else stored with the
    /// tracker, else [`DEFAULT_LEASE`](crate::DEFAULT_LEASE) (60 s).
    pub fn lease_length(&self) -> Duration {
        self.settings.lease
    }
}

/// How long a wait for `until` sleeps before it looks again, or `None` if
/// the wait is over (`deadline` passed, or a stop was requested).
pub(crate) fn pause_before(
    until: SystemTime,
    deadline: std::time::Instant,
    multi_process: bool,
) -> Option<Duration> {
    let now = std::time::Instant::now();
    if now >= deadline || crate::signals::stop_requested() {
        return None;
    }
    let due = until
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
        // A lease's end is known to the millisecond: look just after it.
        .saturating_add(Duration::from_millis(1));
    // Look at the stop flag now and then.
    let mut pause = due.min(deadline - now).min(Duration::from_millis(200));
    if multi_process {
        pause = pause.min(POLL);
    }
    Some(pause)
}

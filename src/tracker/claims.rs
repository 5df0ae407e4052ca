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
//!
//! A claim's [`Lease`] fences its worker: finishing a task through it
//! ([`complete`](Tracker::complete), [`abort_claim`](Tracker::abort_claim),
//! [`release_claim`](Tracker::release_claim)) fails with `LeaseLost` once
//! another claim of the task was made, or the task was finished.

use super::changes::Finish;
use super::clock::{duration_ms, millis, time_of};
use super::schema::{too_many_tries, user_fields};
use super::{Lease, TaskState, Tracker};
use crate::error::{ErrorKind, Result, fail};
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime};

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Claim {
    /// This task is claimed for you (its lease tells which, until when,
    /// and which try this is: the claim counted it): finish it with
    /// [`mark_done`](Tracker::mark_done), [`abort`](Tracker::abort) or
    /// [`release`](Tracker::release) (or, fenced by the lease,
    /// [`complete`](Tracker::complete) and its siblings) before its lease
    /// ends. A claim on the task's last try
    /// ([`max_tries`](crate::TrackerOptions::max_tries)) that ends any
    /// other way (a release, the lease running out, the process killed
    /// before the next open) gives the task up: it is *exhausted*.
    Task(Lease),
    /// Nothing is claimable now, but tasks are still to do: claimed by
    /// other workers, or waiting for a retry. At this time one becomes
    /// claimable (a lease ends or a retry delay passes); a worker that
    /// finishes its task may make one claimable sooner.
    Wait(SystemTime),
    /// Nothing is left to do: every task is done, aborted or out of tries.
    Finished,
}

impl Claim {
    /// The claimed task's lease, if a task was claimed.
    pub fn task(self) -> Option<Lease> {
        match self {
            Claim::Task(lease) => Some(lease),
            _ => None,
        }
    }

    /// The claimed task's key, if a task was claimed.
    pub fn key(&self) -> Option<&str> {
        match self {
            Claim::Task(lease) => Some(&lease.key),
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

/// How often a wait looks again in the multi-process mode, where other
/// processes' changes wake no one.
pub(crate) const POLL: Duration = Duration::from_millis(50);

impl Tracker {
    /// Claims the next task that is claimable (see [`Claim`]): counts the
    /// try, writes a lease (`_lease`: `owner` and the expiry, [`lease_length`](Tracker::lease_length)
    /// from now) into the task record, and returns it. Tasks released with
    /// no delay are claimed before tasks never tried. Costs O(log n) (plus,
    /// once per task, a look at it), never a scan of the tracker.
    ///
    /// **When a try is counted, and when a task is given up.** Each claim
    /// counts one try, whatever becomes of it. A claim ends with
    /// [`mark_done`](Tracker::mark_done), [`abort`](Tracker::abort) or
    /// [`release`](Tracker::release) (the try stays counted); an expired
    /// lease (its worker died or hung) makes the task claimable again, and
    /// a writable exclusive open ends every claim left by an earlier run.
    /// A task whose tries reached [`max_tries`](Tracker::max_tries) and
    /// whose claim ended without `mark_done` (a release, an expired lease,
    /// a kill before the next open) is *exhausted*: given up, never handed
    /// out again (not even if its worker finished the work a moment before
    /// it was killed), until the limit is raised.
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
    /// assert_eq!(tracker.claim_next("me")?.key(), Some("a"));
    /// assert_eq!(tracker.claim_next("me")?.key(), Some("b"));
    /// assert!(matches!(tracker.claim_next("me")?, Claim::Wait(_))); // both claimed
    /// tracker.mark_done("a")?;
    /// tracker.release("b")?; // a retry, at once (no retry delay set)
    /// assert_eq!(tracker.claim_next("me")?.key(), Some("b"));
    /// tracker.release("b")?; // its last try: out of tries
    /// assert_eq!(tracker.claim_next("me")?, Claim::Finished);
    /// assert!(tracker.exhausted("b") && !tracker.aborted("b"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn claim_next(&mut self, owner: &str) -> Result<Claim> {
        self.claim_op(|t| t.claim_next_now(owner))
    }

    /// Claims up to `n` claimable tasks at once (in one operation), as
    /// [`claim_next`](Tracker::claim_next) would one by one; fewer (or
    /// none) if fewer are claimable now.
    ///
    /// # Errors
    ///
    /// As [`claim_next`](Tracker::claim_next).
    pub fn claim_many(&mut self, owner: &str, n: usize) -> Result<Vec<Lease>> {
        self.claim_op(|t| {
            let mut leases = Vec::new();
            while leases.len() < n {
                match t.claim_next_now(owner)? {
                    Claim::Task(lease) => leases.push(lease),
                    Claim::Wait(_) | Claim::Finished => break,
                }
            }
            Ok(leases)
        })
    }

    pub(super) fn claim_next_now(&mut self, owner: &str) -> Result<Claim> {
        let now = millis(self.now());
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
                self.end_claim_now(&key, Ending::Freed, None)?;
                continue;
            }
            let tries = state
                .tries
                .checked_add(1)
                .ok_or_else(|| too_many_tries(&key))?;
            let lease = Lease {
                key: key.clone(),
                owner: owner.to_string(),
                until: time_of(now.saturating_add(duration_ms(self.settings.lease))),
                try_number: tries,
            };
            let claimed = lease.clone();
            self.apply_now(
                &key,
                |s| {
                    s.tries = tries;
                    s.lease = Some(claimed);
                    s.not_before = None;
                    Ok(())
                },
                None,
            )?;
            return Ok(Claim::Task(lease));
        }
        Ok(match self.schedule.earliest() {
            Some(t) => Claim::Wait(time_of(t)),
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
            let multi = self.pod.is_multi_process();
            let Some(pause) = pause_before(until, self.now(), deadline, multi) else {
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
        self.op(|t| t.end_claim_now(key, Ending::Released(None), None))
    }

    /// [`release`](Tracker::release), with `delay` instead of the retry
    /// delay (unless it was the last try, which leaves the task exhausted).
    ///
    /// # Errors
    ///
    /// As [`release`](Tracker::release).
    pub fn release_after(&mut self, key: &str, delay: Duration) -> Result<()> {
        self.op(|t| t.end_claim_now(key, Ending::Released(Some(delay)), None))
    }

    /// [`release`](Tracker::release), merging the user's `fields` (why the
    /// try failed, say) into the same record.
    ///
    /// # Errors
    ///
    /// As [`release`](Tracker::release); [`ErrorKind::InvalidValue`] if
    /// `fields` holds a reserved field.
    pub fn release_with(&mut self, key: &str, fields: Map<String, Value>) -> Result<()> {
        let fields = user_fields(key, fields)?;
        self.op(|t| t.end_claim_now(key, Ending::Released(None), Some(fields)))
    }

    fn end_claim_now(
        &mut self,
        key: &str,
        ending: Ending,
        fields: Option<Map<String, Value>>,
    ) -> Result<()> {
        let Some(state) = self.slot_state(key) else {
            return fail(ErrorKind::MissingKey { key: key.into() });
        };
        if !state.claimed {
            return match fields {
                Some(fields) => self.apply_now(key, |_| Ok(()), Some(fields)),
                None => Ok(()),
            };
        }
        let max = self.settings.max_tries;
        let last = max > 0 && state.tries >= max;
        let delay = match ending {
            Ending::Released(delay) => {
                delay.unwrap_or_else(|| self.settings.retry.after_try(state.tries))
            }
            Ending::Freed => Duration::ZERO,
        };
        let retry_at = self.now() + delay;
        // After the last try the task is exhausted: out of tries, not
        // aborted (that is the program's word), so raising the limit makes
        // it to do again.
        let change = |s: &mut TaskState| {
            s.lease = None;
            s.not_before = (!last && delay > Duration::ZERO).then_some(retry_at);
            Ok(())
        };
        self.apply_now(key, change, fields)
    }

    /// Ends the claims no worker can hold: in the exclusive mode every
    /// claim (the lock proves the last run is gone), in the multi-process
    /// mode the expired ones. Read-only handles change nothing.
    pub(super) fn free_stale_claims(&mut self) -> Result<()> {
        if self.pod.is_read_only() || self.leases.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let exclusive = !self.pod.is_multi_process();
        let mut stale: Vec<String> = self
            .leases
            .iter()
            .filter(|(_, lease)| exclusive || lease.until <= now)
            .map(|(key, _)| key.clone())
            .collect();
        stale.sort_by_key(|key| self.pod.slot_of(key));
        for key in stale {
            self.end_claim_now(&key, Ending::Freed, None)?;
            if self.exhausted(&key) {
                self.freed_at_open.exhausted.push(key);
            } else {
                self.freed_at_open.freed.push(key);
            }
        }
        Ok(())
    }

    /// The claims this open freed: the tasks a run left claimed (it was
    /// killed, or ended without finishing them), in the exclusive mode
    /// every claim, in the multi-process mode the expired ones. Each freed
    /// claim keeps its try counted; for a task on its last try that means
    /// it is given up ([`exhausted`](Tracker::exhausted)).
    pub fn freed_at_open(&self) -> &FreedClaims {
        &self.freed_at_open
    }

    // ---- fenced by the lease ----

    /// Fails with [`ErrorKind::LeaseLost`] unless `lease` is still the
    /// task's claim: the task is neither done nor aborted, its tries are
    /// the lease's try number (no later claim was made), and a claim it
    /// holds is the lease owner's. A lease that expired with no other
    /// claim made since still counts: the work it did is kept.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::LeaseLost`] as above; [`ErrorKind::MissingKey`] if the
    /// task is gone.
    pub fn check_claim(&self, lease: &Lease) -> Result<()> {
        let Some(i) = self.pod.slot_of(&lease.key) else {
            return fail(ErrorKind::MissingKey {
                key: lease.key.clone(),
            });
        };
        let state = self.state_at(i);
        let lost = |why: String| {
            fail(ErrorKind::LeaseLost {
                key: lease.key.clone(),
                why,
            })
        };
        if state.done {
            return lost("the task is done already".into());
        }
        if state.aborted {
            return lost("the task was aborted".into());
        }
        if state.tries != lease.try_number {
            return lost(format!(
                "the lease was for try {}, and the task has had {} tries since another claim",
                lease.try_number, state.tries
            ));
        }
        match &state.lease {
            Some(current) if current.owner != lease.owner => {
                lost(format!("it is claimed by {:?} now", current.owner))
            }
            _ => Ok(()),
        }
    }

    /// Marks the task of `lease` done, with the user's `fields` merged into
    /// its record, if `lease` is still its claim ([`check_claim`](Tracker::check_claim)).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::LeaseLost`] if another worker claimed the task since
    /// (nothing changes); also as [`mark_done_with`](Tracker::mark_done_with).
    pub fn complete(&mut self, lease: &Lease, fields: Map<String, Value>) -> Result<()> {
        let fields = user_fields(&lease.key, fields)?;
        self.op(|t| {
            t.check_claim(lease)?;
            t.finish_now(&lease.key, Finish::Done, fields)
        })
    }

    /// Aborts the task of `lease` (see [`abort`](Tracker::abort)), fenced
    /// as [`complete`](Tracker::complete) is.
    ///
    /// # Errors
    ///
    /// As [`complete`](Tracker::complete).
    pub fn abort_claim(&mut self, lease: &Lease, fields: Map<String, Value>) -> Result<()> {
        let fields = user_fields(&lease.key, fields)?;
        self.op(|t| {
            t.check_claim(lease)?;
            t.finish_now(&lease.key, Finish::Aborted, fields)
        })
    }

    /// Releases the task of `lease` (see [`release`](Tracker::release);
    /// `delay` instead of the retry delay if given), fenced as
    /// [`complete`](Tracker::complete) is.
    ///
    /// # Errors
    ///
    /// As [`complete`](Tracker::complete).
    pub fn release_claim(
        &mut self,
        lease: &Lease,
        delay: Option<Duration>,
        fields: Map<String, Value>,
    ) -> Result<()> {
        let fields = user_fields(&lease.key, fields)?;
        self.op(|t| {
            t.check_claim(lease)?;
            let key = &lease.key;
            if t.lease(key).is_none() {
                // Its lease ended (and no one claimed it since): just record why.
                return t.apply_now(key, |_| Ok(()), Some(fields));
            }
            t.end_claim_now(key, Ending::Released(delay), Some(fields))
        })
    }

    /// Extends the claim of `lease` to [`lease_length`](Tracker::lease_length)
    /// from now; returns the new lease.
    ///
    /// # Errors
    ///
    /// As [`complete`](Tracker::complete).
    pub fn extend_claim(&mut self, lease: &Lease) -> Result<Lease> {
        self.claim_op(|t| {
            t.check_claim(lease)?;
            let extended = Lease {
                until: t.now() + t.settings.lease,
                try_number: t.tries(&lease.key),
                ..lease.clone()
            };
            let written = extended.clone();
            t.apply_now(
                &lease.key,
                |s| {
                    s.lease = Some(written);
                    Ok(())
                },
                None,
            )?;
            Ok(extended)
        })
    }
}

/// How long a wait for `until` sleeps before it looks again, or `None` if
/// the wait is over (`deadline` passed, or a stop was requested). `now` is
/// the tracker's clock.
pub(crate) fn pause_before(
    until: SystemTime,
    now: SystemTime,
    deadline: std::time::Instant,
    multi_process: bool,
) -> Option<Duration> {
    let instant = std::time::Instant::now();
    if instant >= deadline || crate::signals::stop_requested() {
        return None;
    }
    let due = until
        .duration_since(now)
        .unwrap_or(Duration::ZERO)
        // A lease's end is known to the millisecond: look just after it.
        .saturating_add(Duration::from_millis(1));
    // Look at the stop flag now and then.
    let mut pause = due.min(deadline - instant).min(Duration::from_millis(200));
    if multi_process {
        pause = pause.min(POLL);
    }
    Some(pause)
}

/// The claims an open freed ([`Tracker::freed_at_open`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FreedClaims {
    /// Tasks claimable again; the try each claim counted stays counted.
    pub freed: Vec<String>,
    /// Tasks whose freed claim was their last try: given up (exhausted).
    /// Raising [`max_tries`](crate::TrackerOptions::max_tries), or
    /// `tastypod tracker reset --exhausted`, makes them to do again.
    pub exhausted: Vec<String>,
}

impl FreedClaims {
    /// Whether the open freed no claim.
    pub fn is_empty(&self) -> bool {
        self.freed.is_empty() && self.exhausted.is_empty()
    }
}

/// `freed 2 claims left unfinished by an earlier run (tries stay counted): a, b; given up on their last try: c`.
impl std::fmt::Display for FreedClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn list(keys: &[String]) -> String {
            const SHOWN: usize = 10;
            let mut text = keys
                .iter()
                .take(SHOWN)
                .map(|k| serde_json::Value::from(k.as_str()).to_string())
                .collect::<Vec<_>>()
                .join(", ");
            if keys.len() > SHOWN {
                text.push_str(&format!(" and {} more", keys.len() - SHOWN));
            }
            text
        }
        let n = self.freed.len() + self.exhausted.len();
        write!(
            f,
            "freed {n} claim{} left unfinished by an earlier run (each try stays counted)",
            if n == 1 { "" } else { "s" }
        )?;
        if !self.freed.is_empty() {
            write!(f, "; to do again: {}", list(&self.freed))?;
        }
        if !self.exhausted.is_empty() {
            write!(
                f,
                "; given up, that was their last try: {}",
                list(&self.exhausted)
            )?;
        }
        Ok(())
    }
}

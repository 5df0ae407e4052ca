//! The tracker's counters: how many tasks are done, aborted, exhausted,
//! claimed, tried and to do, and how many tries were made in all, kept in
//! step with every change; [`TaskCounts`], what every tracker backend
//! reports; the fractions and percentages of them.

use super::Tracker;
use crate::index::SlotTask;

/// Whether a task is still to do: not done, not aborted, and under the try
/// limit or claimed (a claim on the last try is still running).
pub(crate) fn is_todo(state: SlotTask, max_tries: u32) -> bool {
    !state.done && !state.aborted && (max_tries == 0 || state.tries < max_tries || state.claimed)
}

/// Whether a task is out of tries: not done, not aborted by the program,
/// not claimed, and its tries reached the try limit. Raising the limit
/// makes it to do again.
pub(crate) fn is_exhausted(state: SlotTask, max_tries: u32) -> bool {
    !state.done && !state.aborted && !state.claimed && max_tries > 0 && state.tries >= max_tries
}

/// A tracker's counts, as every backend reports them
/// ([`Tracker::counts`], [`TaskQueue::counts`](crate::TaskQueue::counts)).
/// A task is counted by what its record says (a claim whose lease ended
/// counts as claimed until a claim or an open ends it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskCounts {
    /// Tasks in all.
    pub total: usize,
    /// Tasks done.
    pub done: usize,
    /// Tasks the program aborted.
    pub aborted: usize,
    /// Tasks out of tries (not done, not aborted, not claimed).
    pub exhausted: usize,
    /// Tasks still to do: not done, not aborted, not exhausted (claimed
    /// ones included).
    pub todo: usize,
    /// Tasks a worker holds a claim on.
    pub claimed: usize,
    /// Tasks tried at least once.
    pub tried: usize,
    /// Tries made in all, over every task.
    pub tries: u64,
}

impl TaskCounts {
    /// `done 120/300 (40.00 %), tried 150 (170 tries), aborted 3, exhausted 2`.
    pub fn summary(&self) -> String {
        format!(
            "done {}/{} ({}), tried {} ({} tries), aborted {}, exhausted {}",
            self.done,
            self.total,
            percent(self.done, self.total, 2),
            self.tried,
            self.tries,
            self.aborted,
            self.exhausted
        )
    }
}

/// `n` of `total` as `"34.70 %"` (with `decimals` decimals; 0 % of none).
pub(crate) fn percent(n: usize, total: usize, decimals: usize) -> String {
    format!("{:.*} %", decimals, 100.0 * fraction(n, total))
}

/// `n` of `total` as a fraction (0.0 of none).
pub(crate) fn fraction(n: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 / total as f64
    }
}

/// The counters a tracker keeps in step. The task state in each slot is the
/// authority; these follow every change, and debug builds check them
/// against a recount. A new task's state counts nowhere, so adding one
/// needs no step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub done: usize,
    pub tried: usize,
    pub tries: u64,
    pub aborted: usize,
    pub claimed: usize,
    pub exhausted: usize,
    /// Tasks not to do (see [`is_todo`]).
    pub settled: usize,
    /// The try limit `todo` is counted with (0: none).
    pub max_tries: u32,
}

impl Counts {
    /// Counts over every task state.
    pub(crate) fn of(states: impl Iterator<Item = SlotTask>, max_tries: u32) -> Self {
        let mut counts = Counts {
            max_tries,
            ..Counts::default()
        };
        for state in states {
            counts.step(SlotTask::default(), state);
        }
        counts
    }

    /// Follows one task going from `before` to `after`.
    pub(crate) fn step(&mut self, before: SlotTask, after: SlotTask) {
        fn one(n: &mut usize, was: bool, is: bool) {
            if was && !is {
                *n = n.saturating_sub(1);
            } else if is && !was {
                *n += 1;
            }
        }
        let max = self.max_tries;
        one(&mut self.done, before.done, after.done);
        one(&mut self.aborted, before.aborted, after.aborted);
        one(&mut self.claimed, before.claimed, after.claimed);
        one(
            &mut self.exhausted,
            is_exhausted(before, max),
            is_exhausted(after, max),
        );
        one(
            &mut self.settled,
            !is_todo(before, max),
            !is_todo(after, max),
        );
        one(&mut self.tried, before.tries > 0, after.tries > 0);
        self.tries = (self.tries + u64::from(after.tries)).saturating_sub(u64::from(before.tries));
    }
}

impl Tracker {
    /// Every count at once. O(1).
    pub fn counts(&self) -> TaskCounts {
        let c = self.counts;
        TaskCounts {
            total: self.len(),
            done: c.done,
            aborted: c.aborted,
            exhausted: c.exhausted,
            todo: self.len().saturating_sub(c.settled),
            claimed: c.claimed,
            tried: c.tried,
            tries: c.tries,
        }
    }

    /// How many tasks are done. O(1).
    pub fn num_done(&self) -> usize {
        self.counts.done
    }

    /// How many tasks were tried at least once. O(1).
    pub fn num_tried(&self) -> usize {
        self.counts.tried
    }

    /// How many tries were made in all, over every task (the sum of their
    /// `_tries`). O(1).
    pub fn num_tries(&self) -> u64 {
        self.counts.tries
    }

    /// How many tasks the program aborted ([`abort`](Tracker::abort)). O(1).
    pub fn num_aborted(&self) -> usize {
        self.counts.aborted
    }

    /// How many tasks are out of tries: not done, not aborted, not claimed,
    /// with as many tries as the try limit allows (see
    /// [`exhausted`](Tracker::exhausted)). O(1).
    pub fn num_exhausted(&self) -> usize {
        self.counts.exhausted
    }

    /// How many tasks are still to do: not done, not aborted, and under the
    /// try limit or claimed by a worker (what
    /// [`todo_keys`](Tracker::todo_keys)`(Aborted::Skip)` yields). O(1).
    pub fn num_todo(&self) -> usize {
        self.len().saturating_sub(self.counts.settled)
    }

    /// How many tasks are claimed by a worker (their leases may have
    /// expired). O(1).
    pub fn num_claimed(&self) -> usize {
        self.counts.claimed
    }

    /// The fraction of tasks done (0.0 when empty).
    pub fn fraction_done(&self) -> f64 {
        fraction(self.counts.done, self.len())
    }

    /// The fraction of tasks tried at least once (0.0 when empty).
    pub fn fraction_tried(&self) -> f64 {
        fraction(self.counts.tried, self.len())
    }

    /// The fraction of tasks aborted (0.0 when empty).
    pub fn fraction_aborted(&self) -> f64 {
        fraction(self.counts.aborted, self.len())
    }

    /// The percentage of tasks done, like `"34.70 %"` for 2 decimals.
    pub fn percent_done(&self, decimals: usize) -> String {
        percent(self.counts.done, self.len(), decimals)
    }

    /// The percentage of tasks not done (`"0.00 %"` when empty).
    pub fn percent_not_done(&self, decimals: usize) -> String {
        percent(self.len() - self.counts.done, self.len(), decimals)
    }

    /// The percentage of tasks tried at least once.
    pub fn percent_tried(&self, decimals: usize) -> String {
        percent(self.counts.tried, self.len(), decimals)
    }

    /// The percentage of tasks never tried.
    pub fn percent_not_tried(&self, decimals: usize) -> String {
        percent(self.len() - self.counts.tried, self.len(), decimals)
    }

    /// The percentage of tasks aborted.
    pub fn percent_aborted(&self, decimals: usize) -> String {
        percent(self.counts.aborted, self.len(), decimals)
    }

    /// The percentage of tasks not aborted.
    pub fn percent_not_aborted(&self, decimals: usize) -> String {
        percent(self.len() - self.counts.aborted, self.len(), decimals)
    }

    /// A one-line summary (see [`TaskCounts::summary`]):
    /// `done 120/300 (40.00 %), tried 150 (170 tries), aborted 3, exhausted 2`.
    pub fn summary(&self) -> String {
        self.counts().summary()
    }
}

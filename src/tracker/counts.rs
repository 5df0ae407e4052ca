//! The tracker's counters: how many tasks are done, tried and aborted,
//! kept in step with every change, and the fractions and percentages of
//! them.

use super::Tracker;
use crate::index::TaskState;

/// How many tasks are done, tried (at least once), aborted, claimed and
/// settled (no longer to do). The task state in each slot is the authority;
/// these follow every change, and debug builds check them against a
/// recount. A new task's state counts nowhere, so adding one needs no step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub done: usize,
    pub tried: usize,
    pub aborted: usize,
    pub claimed: usize,
    /// Tasks out of tries (see [`is_exhausted`]).
    pub exhausted: usize,
    /// Tasks not to do (see [`is_todo`]).
    pub settled: usize,
    /// The try limit `todo` is counted with (0: none).
    pub max_tries: u32,
}

/// Whether a task is still to do: not done, not aborted, and under the try
/// limit or claimed (a claim on the last try is still running).
pub(crate) fn is_todo(state: TaskState, max_tries: u32) -> bool {
    !state.done && !state.aborted && (max_tries == 0 || state.tries < max_tries || state.claimed)
}

/// Whether a task is out of tries: not done, not aborted by the program,
/// not claimed, and its tries reached the try limit. Raising the limit makes
/// it to do again.
pub(crate) fn is_exhausted(state: TaskState, max_tries: u32) -> bool {
    !state.done && !state.aborted && !state.claimed && max_tries > 0 && state.tries >= max_tries
}

impl Counts {
    /// Counts over every task state.
    pub(crate) fn of(states: impl Iterator<Item = TaskState>, max_tries: u32) -> Self {
        let mut counts = Counts {
            max_tries,
            ..Counts::default()
        };
        for state in states {
            counts.step(TaskState::default(), state);
        }
        counts
    }

    /// Follows one task going from `before` to `after`.
    pub(crate) fn step(&mut self, before: TaskState, after: TaskState) {
        fn one(n: &mut usize, was: bool, is: bool) {
            if was && !is {
                *n = n.saturating_sub(1);
            } else if is && !was {
                *n += 1;
            }
        }
        one(&mut self.done, before.done, after.done);
        one(&mut self.aborted, before.aborted, after.aborted);
        one(&mut self.claimed, before.claimed, after.claimed);
        one(
            &mut self.exhausted,
            is_exhausted(before, self.max_tries),
            is_exhausted(after, self.max_tries),
        );
        one(
            &mut self.settled,
            !is_todo(before, self.max_tries),
            !is_todo(after, self.max_tries),
        );
        if before.tries > 0 || after.tries > 0 {
            self.step_tries(before.tries, after.tries);
        }
    }

    fn step_tries(&mut self, before: u32, after: u32) {
        if before > 0 && after == 0 {
            self.tried = self.tried.saturating_sub(1);
        } else if after > 0 && before == 0 {
            self.tried += 1;
        }
    }
}

impl Tracker {
    /// How many tasks are done. O(1).
    pub fn num_done(&self) -> usize {
        self.counts.done
    }

    /// How many tasks were tried at least once. O(1).
    pub fn num_tried(&self) -> usize {
        self.counts.tried
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

    fn fraction(&self, n: usize) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            n as f64 / self.len() as f64
        }
    }

    /// The fraction of tasks done (0.0 when empty).
    pub fn fraction_done(&self) -> f64 {
        self.fraction(self.counts.done)
    }

    /// The fraction of tasks tried at least once (0.0 when empty).
    pub fn fraction_tried(&self) -> f64 {
        self.fraction(self.counts.tried)
    }

    /// The fraction of tasks aborted (0.0 when empty).
    pub fn fraction_aborted(&self) -> f64 {
        self.fraction(self.counts.aborted)
    }

    fn percent(&self, n: usize, decimals: usize) -> String {
        format!("{:.*} %", decimals, 100.0 * self.fraction(n))
    }

    /// The percentage of tasks done, like `"34.70 %"` for 2 decimals.
    pub fn percent_done(&self, decimals: usize) -> String {
        self.percent(self.counts.done, decimals)
    }

    /// The percentage of tasks not done (`"0.00 %"` when empty).
    pub fn percent_not_done(&self, decimals: usize) -> String {
        self.percent(self.len() - self.counts.done, decimals)
    }

    /// The percentage of tasks tried at least once.
    pub fn percent_tried(&self, decimals: usize) -> String {
        self.percent(self.counts.tried, decimals)
    }

    /// The percentage of tasks never tried.
    pub fn percent_not_tried(&self, decimals: usize) -> String {
        self.percent(self.len() - self.counts.tried, decimals)
    }

    /// The percentage of tasks aborted.
    pub fn percent_aborted(&self, decimals: usize) -> String {
        self.percent(self.counts.aborted, decimals)
    }

    /// The percentage of tasks not aborted.
    pub fn percent_not_aborted(&self, decimals: usize) -> String {
        self.percent(self.len() - self.counts.aborted, decimals)
    }

    /// A one-line summary: `done 120/300 (40.00 %), tried 150, aborted 3,
    /// exhausted 2`.
    pub fn summary(&self) -> String {
        format!(
            "done {}/{} ({}), tried {}, aborted {}, exhausted {}",
            self.counts.done,
            self.len(),
            self.percent_done(2),
            self.counts.tried,
            self.counts.aborted,
            self.counts.exhausted
        )
    }
}

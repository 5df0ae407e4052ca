//! The claim schedule: where [`Tracker::claim_next`](super::Tracker::claim_next)
//! finds the next task without scanning the tracker.
//!
//! Slots are looked at once, in order, by a cursor. A slot behind the
//! cursor that is still to do but not claimable yet (claimed under a live
//! lease, or released with a retry time still ahead) waits in a queue keyed
//! by the time it becomes claimable. Every change to a task behind the
//! cursor updates its entry, so the queue holds exactly the tasks behind
//! the cursor that are to do, each at its exact time:
//!
//! - the next claimable task is the queue's first entry if its time has
//!   come, else the cursor's next task that is claimable now;
//! - when the cursor is at the end, the queue's first time is when a task
//!   can next be claimed, and an empty queue means the tracker is finished.
//!
//! A claim costs O(log n) plus the slots the cursor passes (each once).
//! Slot numbers hold within one pod epoch; a new epoch (a compaction or a
//! reload) starts the schedule over.

use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Default)]
pub(crate) struct Schedule {
    /// The pod epoch the slot numbers belong to.
    epoch: (u64, u64),
    /// Slots below this one have been looked at.
    cursor: usize,
    /// `(time in unix ms, slot)` of each waiting task behind the cursor.
    queue: BTreeSet<(u64, usize)>,
    /// The time of each slot in `queue`.
    time_of: HashMap<usize, u64>,
}

impl Schedule {
    /// Starts over if the slot numbers changed.
    pub(crate) fn follow_epoch(&mut self, epoch: (u64, u64)) {
        if self.epoch != epoch {
            *self = Schedule {
                epoch,
                ..Schedule::default()
            };
        }
    }

    /// Slot `i` (of the pod epoch `epoch`) becomes claimable at `ready`
    /// (unix ms), or is no longer to do (`None`).
    pub(crate) fn note(&mut self, epoch: (u64, u64), i: usize, ready: Option<u64>) {
        self.follow_epoch(epoch);
        if i >= self.cursor {
            // The cursor will look at it.
            return;
        }
        if let Some(t) = self.time_of.remove(&i) {
            self.queue.remove(&(t, i));
        }
        if let Some(t) = ready {
            self.queue.insert((t, i));
            self.time_of.insert(i, t);
        }
    }

    /// Takes the first queued slot whose time is at most `now`.
    pub(crate) fn take_due(&mut self, now: u64) -> Option<usize> {
        let &(t, i) = self.queue.first()?;
        if t > now {
            return None;
        }
        self.queue.remove(&(t, i));
        self.time_of.remove(&i);
        Some(i)
    }

    /// The slot the cursor looks at next, if any; `next` finds the first
    /// live slot from a position. Moves the cursor past it. (New tasks get
    /// slots after every other, so the cursor meets them too.)
    pub(crate) fn advance(&mut self, next: impl FnOnce(usize) -> Option<usize>) -> Option<usize> {
        let found = next(self.cursor)?;
        self.cursor = found + 1;
        Some(found)
    }

    /// When the first waiting task becomes claimable (unix ms).
    pub(crate) fn earliest(&self) -> Option<u64> {
        self.queue.first().map(|&(t, _)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_slots_come_back_at_their_time() {
        let e = (1, 1);
        let mut s = Schedule::default();
        s.follow_epoch(e);
        let slots = [0usize, 1, 2];
        let next = |from: usize| slots.iter().copied().find(|&i| i >= from);
        assert_eq!(s.advance(next), Some(0));
        s.note(e, 0, Some(50));
        assert_eq!(s.advance(next), Some(1));
        s.note(e, 1, Some(20));
        assert_eq!(s.take_due(10), None);
        assert_eq!(s.earliest(), Some(20));
        assert_eq!(s.take_due(30), Some(1));
        s.note(e, 0, None);
        assert_eq!(s.earliest(), None);
        assert_eq!(s.advance(next), Some(2));
        assert_eq!(s.advance(next), None);
        s.note(e, 2, Some(5));
        assert_eq!(s.take_due(5), Some(2));
        s.note(e, 7, Some(1));
        assert_eq!(
            s.take_due(9),
            None,
            "slots ahead of the cursor are not queued"
        );
        s.follow_epoch((2, 0));
        assert_eq!(s.earliest(), None);
    }
}

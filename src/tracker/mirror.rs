//! The state mirrored beside each key: every record's [`TaskState`], kept
//! in its slot (done, aborted, tries, and whether it is claimed or waiting)
//! and, for claims and retry times, in two maps; the counters and the claim
//! schedule follow every change. Records are read only through the codec
//! ([`super::schema`]).

use super::clock::{millis, time_of};
use super::counts::{self, Counts};
use super::schedule::Schedule;
use super::{Lease, TaskState, Tracker};
use crate::error::{ErrorKind, Result};
use crate::index::{SlotTask, ValueRef};
use std::collections::HashMap;

impl Tracker {
    /// The state slot `i`'s record holds, read from its value.
    pub(super) fn read_state(&self, i: usize) -> Result<TaskState> {
        let key = self.pod.key_at(i);
        let read = match self.pod.value_at(i) {
            ValueRef::Text(t) => TaskState::from_text(key, t),
            ValueRef::Live(v) => TaskState::from_record(key, v),
        };
        read.map_err(|why| {
            ErrorKind::NotATask {
                path: self.pod.log_path().to_path_buf(),
                key: key.to_string(),
                line: self.pod.line_at(i),
                why,
            }
            .into()
        })
    }

    /// Reads every record's state into the mirror and recounts.
    pub(super) fn load_states(&mut self) -> Result<()> {
        let mut leases = HashMap::new();
        let mut not_before = HashMap::new();
        let slots: Vec<usize> = self.pod.slots().collect();
        for i in slots {
            let state = self.read_state(i)?;
            let key = self.pod.key_at(i);
            if let Some(lease) = &state.lease {
                leases.insert(key.to_string(), lease.clone());
            }
            if let Some(t) = state.not_before {
                not_before.insert(key.to_string(), millis(t));
            }
            self.pod.set_task_at(i, state.slot());
        }
        self.counts = self.recount();
        self.leases = leases;
        self.not_before = not_before;
        self.schedule = Schedule::default();
        Ok(())
    }

    /// The state of slot `i`, as the mirror holds it.
    pub(super) fn state_at(&self, i: usize) -> TaskState {
        let slot = self.pod.task_at(i);
        let key = self.pod.key_at(i);
        let lease = slot
            .claimed
            .then(|| self.leases.get(key).cloned())
            .flatten();
        let not_before = slot
            .delayed
            .then(|| self.not_before.get(key).copied().map(time_of))
            .flatten();
        TaskState {
            done: slot.done,
            tries: slot.tries,
            aborted: slot.aborted,
            lease,
            not_before,
        }
    }

    /// The slot state of `key`, if it is a task.
    pub(super) fn slot_state(&self, key: &str) -> Option<SlotTask> {
        self.pod.slot_of(key).map(|i| self.pod.task_at(i))
    }

    /// The counters, counted anew from the slots.
    fn recount(&self) -> Counts {
        Counts::of(
            self.pod.slots().map(|i| self.pod.task_at(i)),
            self.settings.max_tries,
        )
    }

    /// Makes slot `i`'s mirrored state `state` (which its record now
    /// holds): the counters, the claims, the retry times and the claim
    /// schedule follow.
    pub(super) fn follow(&mut self, i: usize, state: &TaskState) {
        let before = self.pod.task_at(i);
        let after = state.slot();
        self.pod.set_task_at(i, after);
        self.counts.step(before, after);
        let key = self.pod.key_at(i);
        match &state.lease {
            Some(lease) => drop(self.leases.insert(key.to_string(), lease.clone())),
            None if before.claimed => drop(self.leases.remove(key)),
            None => {}
        }
        match state.not_before {
            Some(t) => drop(self.not_before.insert(key.to_string(), millis(t))),
            None if before.delayed => drop(self.not_before.remove(key)),
            None => {}
        }
        let ready = self.ready_at(i);
        self.schedule.note(self.pod.epoch(), i, ready);
    }

    /// When slot `i`'s task can be claimed (unix ms; 0: now), or `None` if
    /// it is not to do.
    pub(super) fn ready_at(&self, i: usize) -> Option<u64> {
        let state = self.pod.task_at(i);
        if !counts::is_todo(state, self.settings.max_tries) {
            return None;
        }
        let key = || self.pod.key_at(i);
        let lease = match state.claimed {
            true => self.leases.get(key()).map_or(0, |l| millis(l.until)),
            false => 0,
        };
        let retry = match state.delayed {
            true => self.not_before.get(key()).copied().unwrap_or(0),
            false => 0,
        };
        Some(lease.max(retry))
    }

    /// Debug builds: the counters agree with the task states.
    pub(super) fn check_counts(&self) {
        #[cfg(debug_assertions)]
        if self.len() <= 4096 {
            debug_assert_eq!(self.counts, self.recount(), "the counters drifted");
        }
    }

    /// Takes in the records other processes wrote (multi-process mode).
    pub(super) fn absorb(&mut self) -> Result<()> {
        let external = self.pod.take_external();
        if external.reloaded {
            // A rewrite may have changed the stored settings too.
            let stored = self.stored_settings()?;
            self.settings = self.given.over(stored.unwrap_or_default());
            return self.load_states();
        }
        for key in external.changed {
            let Some(i) = self.pod.slot_of(&key) else {
                // Removed (`Tracker::remove`, in another process): slots
                // may have moved, so recount.
                return self.load_states();
            };
            let state = self.read_state(i)?;
            self.follow(i, &state);
        }
        Ok(())
    }

    /// The claim on `key`, if any (possibly expired).
    pub fn lease(&self, key: &str) -> Option<&Lease> {
        self.leases.get(key)
    }

    /// When `key` may be claimed again after a release with a delay
    /// (`_not_before`), if it waits (the time may have passed).
    pub fn not_before(&self, key: &str) -> Option<std::time::SystemTime> {
        self.not_before.get(key).copied().map(time_of)
    }

    /// Everything `key`'s record says of its state, or `None` if it is not
    /// a task.
    pub fn state(&self, key: &str) -> Option<TaskState> {
        self.pod.slot_of(key).map(|i| self.state_at(i))
    }
}

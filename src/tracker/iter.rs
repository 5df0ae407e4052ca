//! Iterating a tracker: [`TryKeys`] and [`TryItems`], which count a try
//! for each task they yield, and [`TaskMut`], mutable access to a record.

use super::{Aborted, TaskState, Tracker};
use crate::error::Result;
use serde_json::Value;
use std::ops::{Deref, DerefMut};

/// Mutable access to a task record; see [`Tracker::task_mut`]. On drop the
/// record goes back into the tracker and its reserved fields are read back
/// into the tracker's state.
pub struct TaskMut<'a> {
    tracker: &'a mut Tracker,
    key: String,
    before: TaskState,
    record: Value,
}

impl<'a> TaskMut<'a> {
    pub(super) fn new(
        tracker: &'a mut Tracker,
        key: String,
        before: TaskState,
        record: Value,
    ) -> Self {
        TaskMut {
            tracker,
            key,
            before,
            record,
        }
    }
}

impl Deref for TaskMut<'_> {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.record
    }
}

impl DerefMut for TaskMut<'_> {
    fn deref_mut(&mut self) -> &mut Value {
        &mut self.record
    }
}

impl Drop for TaskMut<'_> {
    fn drop(&mut self) {
        // Keep what the caller set with the right type; restore the rest.
        let after = self.before.merged_from(&self.key, &self.record);
        let mut record = self.record.take();
        after.write_to(&mut record);
        let pod = &mut self.tracker.pod;
        // Nothing can renumber slots while this borrow lives, but find the
        // slot by key anyway: a wrong slot would lose a record.
        let Some(slot) = pod.slot_of(&self.key) else {
            return;
        };
        pod.set_record_at(slot, record);
        self.tracker.follow(slot, &after);
    }
}

/// Keys to try, counting a try for each as it is yielded; see
/// [`Tracker::try_keys`]. Derefs to the tracker.
pub struct TryKeys<'a> {
    tracker: &'a mut Tracker,
    aborted: Aborted,
    /// The slot to look at next.
    next: usize,
    /// The last key yielded, to re-find the place if slots are renumbered.
    last: Option<String>,
    /// The pod's epoch when `next` was found; slot numbers are only valid within one.
    generation: (u64, u64),
}

impl<'a> TryKeys<'a> {
    pub(super) fn new(tracker: &'a mut Tracker, aborted: Aborted) -> Self {
        TryKeys {
            generation: tracker.pod.epoch(),
            tracker,
            aborted,
            next: 0,
            last: None,
        }
    }
}

impl Iterator for TryKeys<'_> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        let pod = &self.tracker.pod;
        if pod.epoch() != self.generation {
            self.generation = pod.epoch();
            self.next = match &self.last {
                Some(k) => pod.slot_of(k).map_or(0, |i| i + 1),
                None => 0,
            };
        }
        loop {
            let pod = &self.tracker.pod;
            let i = pod.next_slot(self.next)?;
            self.next = i + 1;
            if self.tracker.is_todo(pod.task_at(i), self.aborted) {
                let key = pod.key_at(i).to_string();
                let counted = self.tracker.increment_tries(&key);
                self.last = Some(key.clone());
                return Some(counted.map(|()| key));
            }
        }
    }
}

/// Keys to try with their records; see [`Tracker::try_items`]. Derefs to
/// the tracker.
pub struct TryItems<'a>(TryKeys<'a>);

impl<'a> TryItems<'a> {
    pub(super) fn new(keys: TryKeys<'a>) -> Self {
        TryItems(keys)
    }
}

impl Iterator for TryItems<'_> {
    type Item = Result<(String, Value)>;

    fn next(&mut self) -> Option<Result<(String, Value)>> {
        let key = match self.0.next()? {
            Ok(key) => key,
            Err(e) => return Some(Err(e)),
        };
        Some(self.0.get(&key).map(|v| (key, v.unwrap_or(Value::Null))))
    }
}

impl Deref for TryItems<'_> {
    type Target = Tracker;
    fn deref(&self) -> &Tracker {
        &self.0
    }
}

impl DerefMut for TryItems<'_> {
    fn deref_mut(&mut self) -> &mut Tracker {
        &mut self.0
    }
}

impl Deref for TryKeys<'_> {
    type Target = Tracker;
    fn deref(&self) -> &Tracker {
        self.tracker
    }
}

impl DerefMut for TryKeys<'_> {
    fn deref_mut(&mut self) -> &mut Tracker {
        self.tracker
    }
}

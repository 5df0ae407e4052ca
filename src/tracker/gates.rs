//! Reading a tracker's tasks: the state of one, the gates of resumable
//! loops (`should_do`, `should_try`), and the keys and records still to do,
//! aborted or exhausted, in order.

use super::counts::{is_exhausted, is_todo};
use super::iter::{TryItems, TryKeys};
use super::{Aborted, Tracker};
use crate::error::Result;
use crate::index::SlotTask;
use serde_json::Value;

impl Tracker {
    /// Whether `key` is done (false for an unknown key); tastypy's `check`.
    #[doc(alias = "check")]
    pub fn done(&self, key: &str) -> bool {
        self.slot_state(key).is_some_and(|m| m.done)
    }

    /// How many times `key` was tried (0 for an unknown key).
    pub fn tries(&self, key: &str) -> u32 {
        self.slot_state(key).map_or(0, |m| m.tries)
    }

    /// Whether the program aborted `key` ([`abort`](Tracker::abort));
    /// false for an unknown key. A task out of tries is
    /// [`exhausted`](Tracker::exhausted), not aborted.
    pub fn aborted(&self, key: &str) -> bool {
        self.slot_state(key).is_some_and(|m| m.aborted)
    }

    /// Whether `key` is out of tries: not done, not aborted, not claimed,
    /// and tried as often as the [`max_tries`](Tracker::max_tries) limit
    /// allows (false for an unknown key, and always without a limit). Such
    /// a task is given up: no gate or claim hands it out. Raising the limit
    /// (or [`reset_tries`](Tracker::reset_tries)) makes it to do again.
    pub fn exhausted(&self, key: &str) -> bool {
        self.slot_state(key)
            .is_some_and(|m| is_exhausted(m, self.settings.max_tries))
    }

    pub(super) fn is_todo(&self, state: SlotTask, aborted: Aborted) -> bool {
        let state = match aborted {
            Aborted::Allow => SlotTask {
                aborted: false,
                ..state
            },
            Aborted::Skip => state,
        };
        is_todo(state, self.settings.max_tries)
    }

    /// Whether `key` is to be done: present, not done, not aborted (unless
    /// `aborted` allows it), and under the try limit (or claimed by a
    /// worker), as tastypy's `should_do`. Counts nothing.
    pub fn should_do(&self, key: &str, aborted: Aborted) -> bool {
        self.slot_state(key)
            .is_some_and(|m| self.is_todo(m, aborted))
    }

    /// [`should_do`](Tracker::should_do), adding `key` first if absent.
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`](crate::Pod::insert).
    #[doc(alias = "check_or_add")]
    pub fn should_do_add(&mut self, key: &str, aborted: Aborted) -> Result<bool> {
        self.add_if_absent(key)?;
        Ok(self.should_do(key, aborted))
    }

    /// Whether `key` should be tried now: to be done and under the try
    /// limit. When it says yes, it counts the try.
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`](crate::Pod::insert).
    pub fn should_try(&mut self, key: &str, aborted: Aborted) -> Result<bool> {
        self.op(|t| match t.slot_state(key) {
            Some(m) if t.is_todo(m, aborted) => {
                t.increment_tries(key)?;
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    /// [`should_try`](Tracker::should_try), adding `key` first if absent
    /// (tastypy's `try_it`).
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`](crate::Pod::insert).
    #[doc(alias = "try_it")]
    pub fn should_try_add(&mut self, key: &str, aborted: Aborted) -> Result<bool> {
        self.add_if_absent(key)?;
        self.should_try(key, aborted)
    }

    /// Keys still to do, in order: not done, not aborted (unless allowed),
    /// under the try limit.
    pub fn todo_keys(&self, aborted: Aborted) -> impl Iterator<Item = &str> + '_ {
        self.pod
            .slots()
            .filter(move |&i| self.is_todo(self.pod.task_at(i), aborted))
            .map(move |i| self.pod.key_at(i))
    }

    /// `(key, record)` pairs still to do, in order.
    pub fn todo_items(&self, aborted: Aborted) -> impl Iterator<Item = Result<(&str, Value)>> + '_ {
        self.todo_keys(aborted)
            .map(|k| self.pod.get(k).map(|v| (k, v.unwrap_or(Value::Null))))
    }

    /// Aborted keys, in order.
    pub fn aborted_keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.pod
            .slots()
            .filter(move |&i| self.pod.task_at(i).aborted)
            .map(move |i| self.pod.key_at(i))
    }

    /// `(key, record)` pairs of aborted tasks, in order.
    pub fn aborted_items(&self) -> impl Iterator<Item = Result<(&str, Value)>> + '_ {
        self.aborted_keys()
            .map(|k| self.pod.get(k).map(|v| (k, v.unwrap_or(Value::Null))))
    }

    /// Keys out of tries (see [`exhausted`](Tracker::exhausted)), in order.
    pub fn exhausted_keys(&self) -> impl Iterator<Item = &str> + '_ {
        let max = self.settings.max_tries;
        self.pod
            .slots()
            .filter(move |&i| is_exhausted(self.pod.task_at(i), max))
            .map(move |i| self.pod.key_at(i))
    }

    /// Like [`try_keys`](Tracker::try_keys), yielding each key with its
    /// record (read after the try is counted). Derefs to the tracker.
    pub fn try_items(&mut self, aborted: Aborted) -> TryItems<'_> {
        TryItems::new(self.try_keys(aborted))
    }

    /// Keys to try, in order, counting a try for each key as it is yielded.
    /// The iterator derefs to the tracker, so the loop body can mark tasks
    /// done through it.
    pub fn try_keys(&mut self, aborted: Aborted) -> TryKeys<'_> {
        TryKeys::new(self, aborted)
    }
}

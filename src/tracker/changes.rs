//! Changing a tracker: adding tasks, changing their records, and the
//! state changes. Every state change goes one way ([`Tracker::apply_now`]):
//! the new [`TaskState`] is worked out from the mirror, written into the
//! record by the codec, and then mirrored (DESIGN.md, invariant 8).

use super::iter::TaskMut;
use super::schema::{conform, new_record, too_many_tries, user_fields};
use super::{TaskState, Tracker};
use crate::error::{ErrorKind, Result, fail};
use crate::index::ValueRef;
use crate::pod::Pod;
use serde_json::{Map, Value};

impl Tracker {
    // ---- adding ----

    /// Adds a new task; fails with [`ErrorKind::DuplicateKey`] if present.
    ///
    /// # Errors
    ///
    /// Also as [`Pod::insert`].
    pub fn add(&mut self, key: &str) -> Result<()> {
        self.add_with(key, Map::new())
    }

    /// Adds a new task carrying the user's `fields`; fails with
    /// [`ErrorKind::DuplicateKey`] if present.
    ///
    /// # Errors
    ///
    /// Also as [`Pod::insert`]; [`ErrorKind::InvalidValue`] if `fields`
    /// holds a reserved field.
    pub fn add_with(&mut self, key: &str, fields: Map<String, Value>) -> Result<()> {
        self.op(|t| {
            if t.contains_key(key) {
                return fail(ErrorKind::DuplicateKey { key: key.into() });
            }
            let fields = user_fields(key, fields)?;
            t.pod.insert(key, new_record(fields))
        })
    }

    /// Adds a task unless present; returns whether it was added.
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`].
    pub fn add_if_absent(&mut self, key: &str) -> Result<bool> {
        self.op(|t| t.add_if_absent_now(key))
    }

    fn add_if_absent_now(&mut self, key: &str) -> Result<bool> {
        if self.contains_key(key) {
            return Ok(false);
        }
        self.pod.insert(key, new_record(Map::new()))?;
        Ok(true)
    }

    /// Adds every key as a new task, or none of them if any is present
    /// (or repeated).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::DuplicateKey`] naming the first duplicate; also as
    /// [`Pod::insert`].
    pub fn add_many<K: AsRef<str>>(&mut self, keys: impl IntoIterator<Item = K>) -> Result<()> {
        let keys: Vec<K> = keys.into_iter().collect();
        self.op(|t| {
            let mut seen = std::collections::HashSet::with_capacity(keys.len());
            for key in &keys {
                let key = key.as_ref();
                if t.contains_key(key) || !seen.insert(key) {
                    return fail(ErrorKind::DuplicateKey { key: key.into() });
                }
            }
            for key in &keys {
                t.pod.insert(key.as_ref(), new_record(Map::new()))?;
            }
            Ok(())
        })
    }

    /// Adds each key that is absent, in one step (in the multi-process
    /// mode, one operation); returns how many were added.
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`].
    pub fn add_many_if_absent<K: AsRef<str>>(
        &mut self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<usize> {
        let keys: Vec<K> = keys.into_iter().collect();
        self.op(|t| {
            let mut added = 0;
            for key in &keys {
                added += usize::from(t.add_if_absent_now(key.as_ref())?);
            }
            Ok(added)
        })
    }

    /// Merges the user's fields into many tasks, adding missing ones first
    /// (tastypy's `update`). Reserved fields are kept unless `fields` sets
    /// them to a value of the right type.
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`].
    pub fn update<K: AsRef<str>>(
        &mut self,
        items: impl IntoIterator<Item = (K, Map<String, Value>)>,
    ) -> Result<()> {
        for (key, fields) in items {
            let key = key.as_ref();
            self.add_if_absent(key)?;
            self.update_task(key, |record| {
                if let Value::Object(obj) = record {
                    obj.extend(fields);
                }
            })?;
        }
        Ok(())
    }

    /// Removes the task `key` (tastypy's `del tracker[key]`); returns
    /// whether it was there. A removal is rare: it costs a recount of every
    /// task (O(n)). A worker holding a claim on it fails to finish it
    /// (`MissingKey`, or `LeaseLost` through its lease).
    ///
    /// # Errors
    ///
    /// As [`Pod::remove`].
    pub fn remove(&mut self, key: &str) -> Result<bool> {
        self.op(|t| {
            if !t.pod.remove(key)? {
                return Ok(false);
            }
            t.load_states()?;
            Ok(true)
        })
    }

    // ---- user data ----

    /// Runs `f` on the whole record of `key` and marks it dirty; a mutated
    /// field is written by the next sync. Changes to the reserved fields
    /// are honoured when they have the right type and undone otherwise.
    /// Returns `None` if the key is absent.
    ///
    /// # Errors
    ///
    /// As [`Pod::update`].
    pub fn update_task<R>(
        &mut self,
        key: &str,
        f: impl FnOnce(&mut Value) -> R,
    ) -> Result<Option<R>> {
        self.op(|t| {
            let Some(mut task) = t.task_mut(key)? else {
                return Ok(None);
            };
            let out = f(&mut task);
            drop(task);
            t.pod.after_change()?;
            Ok(Some(out))
        })
    }

    /// Merges `fields` into the user's fields of `key`'s record (a field
    /// set to `null` stays, as `null`); returns whether the key is a task.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidValue`] if `fields` holds a reserved field; also
    /// as [`Pod::insert`].
    pub fn update_fields(&mut self, key: &str, fields: Map<String, Value>) -> Result<bool> {
        let fields = user_fields(key, fields)?;
        self.op(|t| {
            if !t.contains_key(key) {
                return Ok(false);
            }
            t.apply_now(key, |_| Ok(()), Some(fields))?;
            Ok(true)
        })
    }

    /// Mutable access to the whole record of `key`, marking it dirty; see
    /// [`update_task`](Tracker::update_task).
    ///
    /// # Errors
    ///
    /// As [`Pod::get_mut`].
    pub fn task_mut(&mut self, key: &str) -> Result<Option<TaskMut<'_>>> {
        // In the multi-process mode `get_mut` first takes in other
        // processes' records, which may renumber slots: find the slot after it.
        let Some(record) = self.pod.get_mut(key)? else {
            return Ok(None);
        };
        let record = record.take();
        let Some(i) = self.pod.slot_of(key) else {
            return Ok(None);
        };
        let before = self.state_at(i);
        Ok(Some(TaskMut::new(self, key.to_string(), before, record)))
    }

    // ---- state ----

    /// The one way a task's state changes: `change` turns the mirrored
    /// state into the new one, which is written into the record (with the
    /// user's `fields` merged in, if any) and mirrored. Nothing is written
    /// if neither changes anything.
    pub(super) fn apply_now(
        &mut self,
        key: &str,
        change: impl FnOnce(&mut TaskState) -> Result<()>,
        fields: Option<Map<String, Value>>,
    ) -> Result<()> {
        // A due sync (and a compaction, which renumbers slots) happens first.
        self.pod.after_change()?;
        let Some(i) = self.pod.slot_of(key) else {
            return fail(ErrorKind::MissingKey { key: key.into() });
        };
        let before = self.state_at(i);
        let mut after = before.clone();
        change(&mut after)?;
        if after == before && fields.as_ref().is_none_or(Map::is_empty) {
            return Ok(());
        }
        match self.pod.get_mut(key)? {
            Some(record) => {
                if let (Some(fields), Value::Object(obj)) = (fields, &mut *record) {
                    obj.extend(fields);
                }
                after.write_to(record);
            }
            None => return fail(ErrorKind::MissingKey { key: key.into() }),
        }
        // `get_mut` may have taken in other processes' records: find the slot again.
        if let Some(i) = self.pod.slot_of(key) {
            self.follow(i, &after);
        }
        self.pod.after_change()
    }

    /// [`apply_now`](Self::apply_now) as one operation.
    fn apply(
        &mut self,
        key: &str,
        change: impl FnOnce(&mut TaskState) -> Result<()>,
    ) -> Result<()> {
        self.op(|t| t.apply_now(key, change, None))
    }

    /// Marks `key` done. This ends a claim on it ([`claim_next`](Tracker::claim_next))
    /// and clears a retry time: the lease and the `_not_before` field are
    /// removed from the record.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MissingKey`] if absent; also as [`Pod::insert`].
    pub fn mark_done(&mut self, key: &str) -> Result<()> {
        self.mark_done_with(key, Map::new())
    }

    /// [`mark_done`](Tracker::mark_done), merging the user's `fields` (a
    /// result, say) into the same record.
    ///
    /// # Errors
    ///
    /// As [`mark_done`](Tracker::mark_done); [`ErrorKind::InvalidValue`]
    /// if `fields` holds a reserved field.
    pub fn mark_done_with(&mut self, key: &str, fields: Map<String, Value>) -> Result<()> {
        let fields = user_fields(key, fields)?;
        self.op(|t| t.finish_now(key, Finish::Done, fields))
    }

    /// Sets a task done or aborted, ending its claim and clearing its retry
    /// time, with the user's `fields` merged into the record.
    pub(super) fn finish_now(
        &mut self,
        key: &str,
        how: Finish,
        fields: Map<String, Value>,
    ) -> Result<()> {
        let change = |s: &mut TaskState| {
            match how {
                Finish::Done => s.done = true,
                Finish::Aborted => s.aborted = true,
            }
            s.lease = None;
            s.not_before = None;
            Ok(())
        };
        self.apply_now(key, change, Some(fields))
    }

    /// Marks `key` not done.
    ///
    /// # Errors
    ///
    /// As [`mark_done`](Tracker::mark_done).
    pub fn mark_not_done(&mut self, key: &str) -> Result<()> {
        self.apply(key, |s| {
            s.done = false;
            Ok(())
        })
    }

    /// Adds one to the tries of `key`.
    ///
    /// # Errors
    ///
    /// As [`mark_done`](Tracker::mark_done); [`ErrorKind::InvalidValue`] at
    /// the most tries a tracker counts (4294967295).
    pub fn increment_tries(&mut self, key: &str) -> Result<()> {
        self.apply(key, |s| {
            s.tries = s.tries.checked_add(1).ok_or_else(|| too_many_tries(key))?;
            Ok(())
        })
    }

    /// Takes one from the tries of `key` (not below 0).
    ///
    /// # Errors
    ///
    /// As [`mark_done`](Tracker::mark_done).
    pub fn decrement_tries(&mut self, key: &str) -> Result<()> {
        self.apply(key, |s| {
            s.tries = s.tries.saturating_sub(1);
            Ok(())
        })
    }

    /// Sets the tries of `key` to 0.
    ///
    /// # Errors
    ///
    /// As [`mark_done`](Tracker::mark_done).
    pub fn reset_tries(&mut self, key: &str) -> Result<()> {
        self.apply(key, |s| {
            s.tries = 0;
            Ok(())
        })
    }

    /// Marks `key` aborted: the program gives up on it (a page that is
    /// gone, say), and the gates and [`claim_next`](Tracker::claim_next)
    /// skip it unless told otherwise. This ends a claim on it and clears a
    /// retry time, like [`mark_done`](Tracker::mark_done). A task out of
    /// tries is not aborted but [`exhausted`](Tracker::exhausted).
    ///
    /// # Errors
    ///
    /// As [`mark_done`](Tracker::mark_done).
    pub fn abort(&mut self, key: &str) -> Result<()> {
        self.abort_with(key, Map::new())
    }

    /// [`abort`](Tracker::abort), merging the user's `fields` (why, say)
    /// into the same record.
    ///
    /// # Errors
    ///
    /// As [`mark_done_with`](Tracker::mark_done_with).
    pub fn abort_with(&mut self, key: &str, fields: Map<String, Value>) -> Result<()> {
        let fields = user_fields(key, fields)?;
        self.op(|t| t.finish_now(key, Finish::Aborted, fields))
    }

    /// Clears the aborted mark of `key`.
    ///
    /// # Errors
    ///
    /// As [`mark_done`](Tracker::mark_done).
    pub fn unabort(&mut self, key: &str) -> Result<()> {
        self.apply(key, |s| {
            s.aborted = false;
            Ok(())
        })
    }

    /// Converts a plain pod into a tracker, adding the reserved fields to
    /// every value that lacks them (an object keeps its fields; any other
    /// value is kept under the field `"value"`). Like tastypy's
    /// `convert_to_tracker`. Returns how many records were converted.
    ///
    /// # Errors
    ///
    /// As [`Pod::sync`].
    #[doc(alias = "convert_to_tracker")]
    pub fn convert_pod(pod: &mut Pod<Value>) -> Result<usize> {
        let keys: Vec<String> = pod.keys().map(str::to_string).collect();
        let mut converted = 0;
        let mut held = pod.held();
        for key in keys {
            let Some(i) = held.slot_of(&key) else {
                continue;
            };
            if let ValueRef::Text(t) = held.value_at(i)
                && TaskState::from_text(&key, t).is_ok()
            {
                continue;
            }
            if held.update(&key, |v| conform(&key, v))? == Some(true) {
                converted += 1;
            }
        }
        held.release()?;
        pod.sync()?;
        Ok(converted)
    }
}

/// How a task is finished.
#[derive(Debug, Clone, Copy)]
pub(super) enum Finish {
    Done,
    Aborted,
}

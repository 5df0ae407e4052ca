//! The task-record codec: the one place that reads and writes the reserved
//! fields of a task record. Every value of a tracker is a JSON object with
//! `_done` (bool), `_tries` (an integer from 0 to 4294967295) and
//! `_aborted` (bool) beside the user's own fields, `_lease`
//! (`{"owner": "...", "until": <unix ms>}`) while a worker holds it, and
//! `_not_before` (unix ms) while a released task waits for its retry.
//!
//! [`TaskState`] is what those fields say. The tracker reads it from a
//! record's text (quickly, for the layout tastypod writes) or from a
//! decoded record, writes every change from it, and mirrors it beside each
//! key; the command-line tool's import and counts, the PostgreSQL tracker's
//! columns and the Python package map to the same fields (DESIGN.md,
//! "Tracker records").

use super::clock::{millis, time_of};
use crate::index::SlotTask;
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime};

/// The reserved field: whether the task is done.
pub const DONE: &str = "_done";
/// The reserved field: how many times the task was tried.
pub const TRIES: &str = "_tries";
/// The reserved field: whether the program gave up on the task.
pub const ABORTED: &str = "_aborted";
/// The reserved field of a claimed task: `{"owner": "...", "until": <unix ms>}`.
pub const LEASE: &str = "_lease";
/// The reserved field of a released task waiting for its retry: the time
/// (milliseconds since the Unix epoch) before which it is not claimed.
pub const NOT_BEFORE: &str = "_not_before";

/// Every reserved field, in the order tastypod writes them.
pub const RESERVED: [&str; 5] = [ABORTED, DONE, LEASE, NOT_BEFORE, TRIES];

/// How long a claim lasts unless [`TrackerOptions::lease`](crate::TrackerOptions::lease)
/// says otherwise: 60 seconds.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// A claim on a task: which task, who holds it, until when, and which try
/// of the task it is. Handed out by a claim, it is also the worker's proof
/// of the claim: a call that finishes a task through its lease
/// ([`TaskQueue::complete`](crate::TaskQueue::complete), say) fails with
/// [`ErrorKind::LeaseLost`](crate::ErrorKind::LeaseLost) once another
/// claim of the task was made (its try number moved on), so no task is
/// finished by two workers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// The task's key.
    pub key: String,
    /// Who claimed the task.
    pub owner: String,
    /// When the claim ends unless it is extended.
    pub until: SystemTime,
    /// The try this claim is: the task's tries, counting this one.
    pub try_number: u32,
}

impl Lease {
    /// The task's key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Where a task is in its life (DESIGN.md, "Tracker states").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// Not done, not aborted, under the try limit, not claimed, not
    /// waiting: a claim hands it out.
    Todo,
    /// A worker holds it under a lease that has not ended.
    Claimed,
    /// Released, it waits for its retry time.
    Waiting,
    /// Done.
    Done,
    /// The program gave up on it ([`abort`](crate::Tracker::abort)).
    Aborted,
    /// Out of tries: no claim or gate hands it out until the limit is
    /// raised or its tries are reset.
    Exhausted,
}

/// What a task record's reserved fields say: the one state type every
/// reader and writer of task records goes through.
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// use tastypod::{Status, TaskState};
///
/// let record = json!({"_aborted": false, "_done": false, "_tries": 3, "url": "x"});
/// let state = TaskState::from_record("page", &record)?;
/// assert_eq!(state.tries, 3);
/// assert_eq!(state.status(3, std::time::SystemTime::now()), Status::Exhausted);
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TaskState {
    /// `_done`.
    pub done: bool,
    /// `_tries`.
    pub tries: u32,
    /// `_aborted`: the program gave up on the task.
    pub aborted: bool,
    /// `_lease`, while a claim holds the task (expired or not).
    pub lease: Option<Lease>,
    /// `_not_before`, while a released task waits for its retry (the time
    /// may have passed).
    pub not_before: Option<SystemTime>,
}

/// Whether a record's JSON text has a `"_lease"` or `"_not_before"` anywhere.
fn mentions_a_claim(text: &[u8]) -> bool {
    use memchr::memmem::Finder;
    static LEASE_FIELD: std::sync::LazyLock<Finder<'static>> =
        std::sync::LazyLock::new(|| Finder::new(b"\"_lease\""));
    static NOT_BEFORE_FIELD: std::sync::LazyLock<Finder<'static>> =
        std::sync::LazyLock::new(|| Finder::new(b"\"_not_before\""));
    LEASE_FIELD.find(text).is_some() || NOT_BEFORE_FIELD.find(text).is_some()
}

/// The lease a `_lease` field holds, if it has the right shape.
fn lease_field(key: &str, field: &Value, tries: u32) -> Option<Lease> {
    Some(Lease {
        key: key.to_string(),
        owner: field.get("owner")?.as_str()?.to_string(),
        until: time_of(field.get("until")?.as_u64()?),
        try_number: tries,
    })
}

fn too_many(tries: u64) -> String {
    format!(
        "{TRIES} is {tries}, more tries than a tracker counts ({})",
        u32::MAX
    )
}

impl TaskState {
    /// Reads the reserved fields of `record`, the record of `key`.
    ///
    /// # Errors
    ///
    /// What is missing or of the wrong type, as a sentence.
    pub fn from_record(key: &str, record: &Value) -> Result<Self, String> {
        let obj = record.as_object().ok_or("not a JSON object")?;
        let flag = |name: &str| {
            obj.get(name)
                .ok_or(format!("missing {name}"))?
                .as_bool()
                .ok_or(format!("{name} is not true or false"))
        };
        let tries = obj
            .get(TRIES)
            .ok_or(format!("missing {TRIES}"))?
            .as_u64()
            .ok_or(format!("{TRIES} is not a non-negative integer"))?;
        let tries = u32::try_from(tries).map_err(|_| too_many(tries))?;
        let lease = match obj.get(LEASE) {
            None => None,
            Some(field) => Some(lease_field(key, field, tries).ok_or_else(|| {
                format!("{LEASE} is not {{\"owner\": a string, \"until\": unix ms}}")
            })?),
        };
        let not_before = match obj.get(NOT_BEFORE) {
            None => None,
            Some(t) => Some(time_of(
                t.as_u64()
                    .ok_or(format!("{NOT_BEFORE} is not a time in unix milliseconds"))?,
            )),
        };
        Ok(TaskState {
            done: flag(DONE)?,
            tries,
            aborted: flag(ABORTED)?,
            lease,
            not_before,
        })
    }

    /// Reads the reserved fields from a record's JSON text: quickly for
    /// the layout tastypod writes, else by decoding it.
    pub(crate) fn from_text(key: &str, text: &[u8]) -> Result<Self, String> {
        if let Some(state) = Self::from_text_fast(text) {
            return Ok(state);
        }
        let value: Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
        Self::from_record(key, &value)
    }

    /// The layout serde_json writes for a task without a claim or a retry
    /// time whose other field names sort after `_tries`:
    /// `{"_aborted":B,"_done":B,"_tries":N...`. `None` for anything else.
    pub(crate) fn from_text_fast(text: &[u8]) -> Option<Self> {
        fn boolean(t: &[u8]) -> Option<(bool, &[u8])> {
            t.strip_prefix(b"true")
                .map(|r| (true, r))
                .or_else(|| t.strip_prefix(b"false").map(|r| (false, r)))
        }
        if mentions_a_claim(text) {
            return None;
        }
        let rest = text.strip_prefix(b"{\"_aborted\":")?;
        let (aborted, rest) = boolean(rest)?;
        let rest = rest.strip_prefix(b",\"_done\":")?;
        let (done, rest) = boolean(rest)?;
        let rest = rest.strip_prefix(b",\"_tries\":")?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (number, rest) = rest.split_at(digits);
        if !matches!(rest.first(), Some(b',' | b'}')) || number.is_empty() || number.len() > 9 {
            return None;
        }
        let tries = std::str::from_utf8(number).ok()?.parse().ok()?;
        Some(TaskState {
            done,
            tries,
            aborted,
            lease: None,
            not_before: None,
        })
    }

    /// What the user left in the reserved fields of `record` after
    /// changing it as a whole: each field of the right type is taken, any
    /// other keeps its value in `self`.
    pub(crate) fn merged_from(&self, key: &str, record: &Value) -> Self {
        let mut merged = self.clone();
        let Value::Object(obj) = record else {
            return merged;
        };
        if let Some(done) = obj.get(DONE).and_then(Value::as_bool) {
            merged.done = done;
        }
        if let Some(tries) = obj
            .get(TRIES)
            .and_then(Value::as_u64)
            .and_then(|t| u32::try_from(t).ok())
        {
            merged.tries = tries;
        }
        if let Some(aborted) = obj.get(ABORTED).and_then(Value::as_bool) {
            merged.aborted = aborted;
        }
        // A claim or a retry time the user wrote, or removed, is taken as
        // written; one of the wrong shape keeps what was there.
        merged.lease = match obj.get(LEASE) {
            None => None,
            Some(field) => lease_field(key, field, merged.tries).or(merged.lease),
        };
        merged.not_before = match obj.get(NOT_BEFORE) {
            None => None,
            Some(t) => t.as_u64().map(time_of).or(merged.not_before),
        };
        if let Some(lease) = merged.lease.as_mut() {
            lease.try_number = merged.tries;
        }
        merged
    }

    /// Writes every reserved field into `record` (making it an object),
    /// adding or removing `_lease` and `_not_before` as they are set.
    pub fn write_to(&self, record: &mut Value) {
        if !record.is_object() {
            *record = Value::Object(Map::new());
        }
        let Value::Object(obj) = record else {
            return;
        };
        obj.insert(DONE.into(), self.done.into());
        obj.insert(TRIES.into(), self.tries.into());
        obj.insert(ABORTED.into(), self.aborted.into());
        match &self.lease {
            Some(lease) => {
                let mut field = Map::new();
                field.insert("owner".into(), lease.owner.clone().into());
                field.insert("until".into(), millis(lease.until).into());
                obj.insert(LEASE.into(), Value::Object(field));
            }
            None => drop(obj.remove(LEASE)),
        }
        match self.not_before {
            Some(t) => drop(obj.insert(NOT_BEFORE.into(), millis(t).into())),
            None => drop(obj.remove(NOT_BEFORE)),
        }
    }

    /// Where the task is at `now` under the try limit `max_tries` (0: none).
    pub fn status(&self, max_tries: u32, now: SystemTime) -> Status {
        let out_of_tries = max_tries > 0 && self.tries >= max_tries;
        if self.done {
            Status::Done
        } else if self.aborted {
            Status::Aborted
        } else if self.lease.as_ref().is_some_and(|l| l.until > now) {
            Status::Claimed
        } else if out_of_tries {
            Status::Exhausted
        } else if self.not_before.is_some_and(|t| t > now) {
            Status::Waiting
        } else {
            Status::Todo
        }
    }

    /// Whether the task is out of tries under the limit `max_tries` (0:
    /// none): not done, not aborted, no claim, and `max_tries` tries. (Its
    /// [`status`](TaskState::status) is then `Exhausted` at any time.)
    pub fn is_exhausted(&self, max_tries: u32) -> bool {
        crate::tracker::counts::is_exhausted(self.slot(), max_tries)
    }

    /// The state as a slot keeps it.
    pub(crate) fn slot(&self) -> SlotTask {
        SlotTask {
            tries: self.tries,
            done: self.done,
            aborted: self.aborted,
            claimed: self.lease.is_some(),
            delayed: self.not_before.is_some(),
        }
    }
}

/// A fresh task record with `fields` as the user's fields.
pub(crate) fn new_record(fields: Map<String, Value>) -> Value {
    let mut value = Value::Object(fields);
    TaskState::default().write_to(&mut value);
    value
}

/// Makes `record` a task record (tastypy's `convert_to_tracker`): an
/// object keeps its fields, any other value goes under `"value"`; the
/// three state fields of the right type are kept, the others set to a
/// fresh task's. Returns whether anything changed.
pub(crate) fn conform(key: &str, record: &mut Value) -> bool {
    if TaskState::from_record(key, record).is_ok() {
        return false;
    }
    if !record.is_object() {
        let mut obj = Map::new();
        obj.insert("value".into(), record.take());
        *record = Value::Object(obj);
    }
    let state = TaskState::default().merged_from(key, record);
    state.write_to(record);
    true
}

/// The user's fields of `fields` that may go into a record: a reserved
/// field is the tracker's to write.
pub(crate) fn user_fields(
    key: &str,
    fields: Map<String, Value>,
) -> crate::Result<Map<String, Value>> {
    match fields.keys().find(|f| RESERVED.contains(&f.as_str())) {
        Some(field) => Err(crate::ErrorKind::InvalidValue {
            key: key.to_string(),
            reason: format!("{field} is a reserved field, which the tracker writes"),
        }
        .into()),
        None => Ok(fields),
    }
}

/// The error for a try beyond the most a tracker counts.
pub(crate) fn too_many_tries(key: &str) -> crate::ErrorKind {
    crate::ErrorKind::InvalidValue {
        key: key.to_string(),
        reason: format!("{TRIES} would pass {}, the most a tracker counts", u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fast_and_full_reading_agree() {
        for text in [
            &br#"{"_aborted":false,"_done":true,"_tries":3,"url":"x"}"#[..],
            br#"{"_aborted":true,"_done":false,"_tries":0}"#,
            br#"{"A":1,"_aborted":false,"_done":false,"_tries":12}"#,
            br#"{"_done":true,"_tries":7,"_aborted":false}"#,
            br#"{"_aborted":false,"_done":false,"_lease":{"owner":"w","until":5},"_tries":1}"#,
            br#"{"_aborted":false,"_done":false,"_not_before":9,"_tries":2}"#,
        ] {
            let value: Value = serde_json::from_slice(text).unwrap();
            let full = TaskState::from_record("k", &value).unwrap();
            assert_eq!(TaskState::from_text("k", text).unwrap(), full);
            if let Some(fast) = TaskState::from_text_fast(text) {
                assert_eq!(fast, full);
            }
        }
    }

    #[test]
    fn records_without_reserved_fields_are_refused() {
        for text in [
            &b"1"[..],
            br#"{"_done":true}"#,
            br#"{"_done":1,"_tries":0,"_aborted":false}"#,
            br#"{"_done":true,"_tries":-1,"_aborted":false}"#,
            br#"{"_done":false,"_tries":4294967296,"_aborted":false}"#,
            br#"{"_done":false,"_tries":1,"_aborted":false,"_lease":{"owner":1}}"#,
            br#"{"_done":false,"_tries":1,"_aborted":false,"_not_before":"soon"}"#,
        ] {
            assert!(
                TaskState::from_text("k", text).is_err(),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn writing_then_reading_gives_the_state_back() {
        let state = TaskState {
            done: false,
            tries: 2,
            aborted: false,
            lease: Some(Lease {
                key: "k".into(),
                owner: "w1".into(),
                until: time_of(1_700_000_000_123),
                try_number: 2,
            }),
            not_before: Some(time_of(1_700_000_000_999)),
        };
        let mut record = json!({"url": "x"});
        state.write_to(&mut record);
        assert_eq!(TaskState::from_record("k", &record).unwrap(), state);
        assert_eq!(record["url"], json!("x"));
        let cleared = TaskState {
            lease: None,
            not_before: None,
            ..state
        };
        cleared.write_to(&mut record);
        assert!(record.get(LEASE).is_none() && record.get(NOT_BEFORE).is_none());
    }

    #[test]
    fn the_status_follows_the_tracker_states() {
        let now = time_of(1000);
        let lease = |until| Lease {
            key: "k".into(),
            owner: "w".into(),
            until: time_of(until),
            try_number: 2,
        };
        let s = |tries, lease, not_before: Option<u64>| TaskState {
            tries,
            lease,
            not_before: not_before.map(time_of),
            ..TaskState::default()
        };
        assert_eq!(s(0, None, None).status(2, now), Status::Todo);
        assert_eq!(s(2, None, None).status(2, now), Status::Exhausted);
        assert_eq!(s(2, None, None).status(0, now), Status::Todo);
        assert_eq!(
            s(2, Some(lease(2000)), None).status(2, now),
            Status::Claimed
        );
        assert_eq!(
            s(2, Some(lease(500)), None).status(2, now),
            Status::Exhausted
        );
        assert_eq!(s(1, Some(lease(500)), None).status(2, now), Status::Todo);
        assert_eq!(s(1, None, Some(2000)).status(2, now), Status::Waiting);
        let done = TaskState {
            done: true,
            aborted: true,
            ..TaskState::default()
        };
        assert_eq!(done.status(2, now), Status::Done);
    }

    #[test]
    fn conform_keeps_what_is_right_and_fixes_the_rest() {
        let mut v = json!({"_done": 1, "_tries": 4, "x": 1});
        assert!(conform("k", &mut v));
        assert_eq!(
            v,
            json!({"_aborted": false, "_done": false, "_tries": 4, "x": 1})
        );
        let mut v = json!(7);
        assert!(conform("k", &mut v));
        assert_eq!(v["value"], json!(7));
        assert!(!conform("k", &mut v));
    }
}

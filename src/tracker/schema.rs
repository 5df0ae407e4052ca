//! The task-record schema: every value of a tracker is a JSON object with
//! `_done` (bool), `_tries` (non-negative integer) and `_aborted` (bool)
//! beside the user's own fields, `_lease` while a worker holds it, and
//! `_not_before` while a released task waits for its retry.

use crate::index::TaskState;
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The reserved field: whether the task is done.
pub const DONE: &str = "_done";
/// The reserved field: how many times the task was tried.
pub const TRIES: &str = "_tries";
/// The reserved field: whether the task was given up on.
pub const ABORTED: &str = "_aborted";
/// The reserved field of a claimed task: `{"owner": "...", "until": <unix ms>}`.
pub const LEASE: &str = "_lease";
/// The reserved field of a released task waiting for its retry: the time
/// (milliseconds since the Unix epoch) before which it is not claimed.
pub const NOT_BEFORE: &str = "_not_before";

/// How long a claim lasts unless [`TrackerOptions::lease`](crate::TrackerOptions::lease)
/// says otherwise: 60 seconds.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// A claim on a task: who holds it and until when (milliseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who claimed the task.
    pub owner: String,
    /// When the claim expires, in milliseconds since the Unix epoch.
    pub until_ms: u64,
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The `_not_before` time of a record, if it has one.
pub(crate) fn not_before_of(value: &Value) -> Option<u64> {
    value.get(NOT_BEFORE)?.as_u64()
}

pub(crate) fn lease_of(value: &Value) -> Option<Lease> {
    let lease = value.get(LEASE)?;
    Some(Lease {
        owner: lease.get("owner")?.as_str()?.to_string(),
        until_ms: lease.get("until")?.as_u64()?,
    })
}

/// Reads the three state fields from a record's JSON text.
pub(crate) fn parse_meta(text: &[u8]) -> std::result::Result<TaskState, String> {
    if let Some(meta) = parse_meta_fast(text) {
        return Ok(meta);
    }
    let value: Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
    meta_of(&value)
}

/// The layout serde_json writes for a task whose field names all sort after
/// `_tries`: `{"_aborted":B,"_done":B,"_tries":N...`.
pub(crate) fn parse_meta_fast(text: &[u8]) -> Option<TaskState> {
    fn boolean(t: &[u8]) -> Option<(bool, &[u8])> {
        t.strip_prefix(b"true")
            .map(|r| (true, r))
            .or_else(|| t.strip_prefix(b"false").map(|r| (false, r)))
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
        tries,
        done,
        aborted,
        claimed: false,
        delayed: false,
    })
}

/// Reads the three state fields from a decoded record.
pub(crate) fn meta_of(value: &Value) -> std::result::Result<TaskState, String> {
    let obj = value.as_object().ok_or("not a JSON object")?;
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
    let tries = u32::try_from(tries).map_err(|_| {
        format!(
            "{TRIES} is {tries}, more tries than a tracker counts ({})",
            u32::MAX
        )
    })?;
    Ok(TaskState {
        tries,
        done: flag(DONE)?,
        aborted: flag(ABORTED)?,
        claimed: false,
        delayed: false,
    })
}

/// The error for a try beyond the most a tracker counts.
pub(crate) fn too_many_tries(key: &str) -> crate::ErrorKind {
    crate::ErrorKind::InvalidValue {
        key: key.to_string(),
        reason: format!("{TRIES} would pass {}, the most a tracker counts", u32::MAX),
    }
}

/// Writes `meta` into the reserved fields of `value`, making it an object.
pub(crate) fn write_meta(value: &mut Value, meta: TaskState) {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    if let Value::Object(obj) = value {
        obj.insert(DONE.into(), meta.done.into());
        obj.insert(TRIES.into(), meta.tries.into());
        obj.insert(ABORTED.into(), meta.aborted.into());
    }
}

/// A fresh task record with `fields` as the user's fields.
pub(crate) fn new_record(fields: Map<String, Value>) -> Value {
    let mut value = Value::Object(fields);
    write_meta(&mut value, TaskState::default());
    value
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn fast_and_slow_meta_parsing_agree() {
        for text in [
            &br#"{"_aborted":false,"_done":true,"_tries":3,"url":"x"}"#[..],
            br#"{"_aborted":true,"_done":false,"_tries":0}"#,
            br#"{"A":1,"_aborted":false,"_done":false,"_tries":12}"#,
            br#"{"_done":true,"_tries":7,"_aborted":false}"#,
        ] {
            let slow = meta_of(&serde_json::from_slice(text).unwrap()).unwrap();
            assert_eq!(parse_meta(text).unwrap(), slow);
            if let Some(fast) = parse_meta_fast(text) {
                assert_eq!(fast, slow);
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
        ] {
            assert!(
                parse_meta(text).is_err(),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }
}

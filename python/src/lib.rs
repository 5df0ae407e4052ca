//! `tastypod._tastypod`: the native half of the Python package. It holds
//! the stores (`tastypod::SharedPod`, `tastypod::SharedTracker`) and turns
//! Python objects into JSON text and back; the Python half
//! (`python/tastypod/`) gives them tastypy's API. Every call that may touch
//! the disk or wait for a lock runs with the interpreter released.

mod convert;
mod errors;
mod pg;

use convert::{Key, read_json, write_json};
use errors::to_py;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::Mutex;
use std::time::Duration;
use tastypod::{
    Aborted, Claim, Durability, ErrorKind, PodOptions, SharedPod, SharedTracker, TrackerOptions,
};

type Raw = Box<RawValue>;

/// `obj` as compact JSON text.
#[pyfunction]
fn dumps(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    value_text(obj)
}

/// The Python object of the JSON text `text`.
#[pyfunction]
fn loads<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map_err(|e| PyValueError::new_err(format!("not one JSON value: {e}")))?;
    read_json(py, text)
}

/// The JSON text of `value` (the store checks it by its value rules).
fn value_text(value: &Bound<'_, PyAny>) -> PyResult<String> {
    // Room for a small record's value at once (growing from empty
    // reallocates five times on the way to 100 bytes).
    let mut text = String::with_capacity(128);
    write_json(value, &mut text, 0)?;
    Ok(text)
}

fn durability(durable: bool) -> Durability {
    if durable {
        Durability::EveryChange
    } else {
        Durability::Full
    }
}

/// Whether two JSON texts hold the same value (numbers as JSON reads
/// them, members in any order): a value read from text written by another
/// program (`1E2`, other spacing or member order) and written back
/// unchanged gives other text for the same value.
fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// A value read and the JSON text it was read from.
type Tracked<'py> = (Bound<'py, PyAny>, String);

/// An open store of JSON values (a `POD`'s native half).
#[pyclass(module = "tastypod._tastypod", frozen)]
struct NativePod {
    /// `None` once closed.
    pod: Mutex<Option<SharedPod<Raw>>>,
    read_only: bool,
}

impl NativePod {
    /// The JSON text of `key`'s value, if present.
    fn text(&self, py: Python<'_>, key: &str) -> PyResult<Option<String>> {
        self.with(py, |p| {
            p.locked(|p| Ok(p.get_json(key)?.map(|t| t.into_owned())))
        })
    }

    /// The open store, or the error a closed one gives.
    fn pod(&self, py: Python<'_>) -> PyResult<SharedPod<Raw>> {
        match &*self.pod.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(pod) => Ok(pod.clone()),
            None => Err(errors::closed(py)),
        }
    }

    /// Runs `f` on the store with the interpreter released.
    fn with<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&SharedPod<Raw>) -> tastypod::Result<R> + Send,
    ) -> PyResult<R> {
        let pod = self.pod(py)?;
        py.detach(|| f(&pod)).map_err(|e| to_py(py, &e))
    }
}

#[pymethods]
impl NativePod {
    #[new]
    #[pyo3(signature = (path, sync_at=1000, read_only=false, multi_process=false, durable=false))]
    fn new(
        py: Python<'_>,
        path: std::path::PathBuf,
        sync_at: usize,
        read_only: bool,
        multi_process: bool,
        durable: bool,
    ) -> PyResult<Self> {
        let options = PodOptions::new()
            .sync_at(sync_at.max(1))
            .read_only(read_only)
            .multi_process(multi_process)
            .durability(durability(durable));
        let pod = py
            .detach(|| options.open::<Raw>(&path))
            .map_err(|e| to_py(py, &e))?;
        Ok(NativePod {
            pod: Mutex::new(Some(pod.into())),
            read_only,
        })
    }

    #[getter]
    fn read_only(&self) -> bool {
        self.read_only
    }

    #[getter]
    fn closed(&self) -> bool {
        self.pod.lock().unwrap_or_else(|e| e.into_inner()).is_none()
    }

    fn get_json(&self, py: Python<'_>, key: Key<'_>) -> PyResult<Option<String>> {
        self.text(py, &key)
    }

    /// The value of `key`; `KeyError` if absent.
    fn get<'py>(&self, py: Python<'py>, key: Key<'_>) -> PyResult<Bound<'py, PyAny>> {
        let key: &str = &key;
        match self.text(py, key)? {
            Some(text) => read_json(py, &text),
            None => Err(pyo3::exceptions::PyKeyError::new_err(key.to_string())),
        }
    }

    /// The value of `key` and the JSON text it was read from (to tell at
    /// write-back whether the program changed it); `KeyError` if absent.
    fn get_tracked<'py>(&self, py: Python<'py>, key: Key<'_>) -> PyResult<Tracked<'py>> {
        let key: &str = &key;
        match self.text(py, key)? {
            Some(text) => Ok((read_json(py, &text)?, text)),
            None => Err(pyo3::exceptions::PyKeyError::new_err(key.to_string())),
        }
    }

    /// Sets `key` to `value` (converted to JSON, refused as a whole if it
    /// cannot be).
    fn set(&self, py: Python<'_>, key: Key<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let key: &str = &key;
        let text = value_text(value)?;
        self.with(py, |p| p.insert_json(key, &text))
    }

    /// Writes back the values of the dict `values` (key -> `(value, text
    /// it was read from)`: values read through the pod and kept) that the
    /// program changed since it read them, with one lock for all, each
    /// only if its text differs from the one stored. A value the store
    /// cannot hold (JSON cannot express it, its text breaks the store's
    /// value rules, or its record would be too long) is skipped; every
    /// other one is written, then the first such error is raised. Any
    /// other error (the store's own: I/O, a poisoned handle) stops at once.
    /// Returns how many were written.
    fn set_many_if_changed(&self, py: Python<'_>, values: &Bound<'_, PyDict>) -> PyResult<usize> {
        let mut texts = Vec::with_capacity(values.len());
        let mut refused: Option<PyErr> = None;
        for (key, held) in values.iter() {
            let text = Key::extract(key.as_borrowed()).and_then(|k| {
                let (value, read): (Bound<'_, PyAny>, Key<'_>) = held.extract()?;
                let text = value_text(&value)?;
                if text == *read || same_json(&text, &read) {
                    // Not changed since it was read: nothing to write (and
                    // in the multi-process mode, another process's newer
                    // value must not be overwritten with it).
                    return Ok(None);
                }
                tastypod::check_json(&k, &text).map_err(|e| to_py(py, &e))?;
                Ok(Some((k.to_string(), text)))
            });
            match text {
                Ok(Some(pair)) => texts.push(pair),
                Ok(None) => {}
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        let (written, refused_by_store) = self.with(py, |p| {
            p.locked(|p| {
                let mut written = 0;
                let mut refused_by_store = None;
                for (key, text) in &texts {
                    if p.get_json(key)?.as_deref() == Some(text.as_str()) {
                        continue;
                    }
                    match p.insert_json(key, text) {
                        Ok(()) => written += 1,
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::RecordTooLarge { .. } | ErrorKind::InvalidValue { .. }
                            ) =>
                        {
                            refused_by_store.get_or_insert(e);
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok((written, refused_by_store))
            })
        })?;
        match (refused, refused_by_store) {
            (Some(e), _) => Err(e),
            (None, Some(e)) => Err(to_py(py, &e)),
            (None, None) => Ok(written),
        }
    }

    fn remove(&self, py: Python<'_>, key: Key<'_>) -> PyResult<bool> {
        let key: &str = &key;
        self.with(py, |p| p.remove(key))
    }

    fn contains(&self, py: Python<'_>, key: Key<'_>) -> PyResult<bool> {
        let key: &str = &key;
        self.with(py, |p| p.contains_key(key))
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, SharedPod::len)
    }

    fn keys(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.with(py, SharedPod::keys)
    }

    /// The next `n` pairs after `cursor`, values as Python objects (with
    /// `texts`, triples with the JSON text each value was read from); the
    /// cursor moves past them.
    #[pyo3(signature = (cursor, n, texts=false))]
    fn items_page<'py>(
        &self,
        py: Python<'py>,
        cursor: &NativeCursor,
        n: usize,
        texts: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut at = cursor.get();
        let page = self.with(py, |p| p.next_items_json(&mut at, n))?;
        cursor.set(at);
        if texts {
            // (key, value, text read): for a writable pod, which tracks them.
            let triples = page
                .into_iter()
                .map(|(k, v)| Ok((k, read_json(py, &v)?, v)))
                .collect::<PyResult<Vec<_>>>()?;
            return PyList::new(py, triples);
        }
        // The values first, then the pairs: in this order of allocation a
        // page cost CPython's cycle collector less than made pair by pair
        // (W3, measured: 1.1 s against 1.45 s).
        let values = page
            .iter()
            .map(|(_, v)| read_json(py, v))
            .collect::<PyResult<Vec<_>>>()?;
        let pairs = page
            .iter()
            .zip(values)
            .map(|((k, _), v)| convert::pair(PyString::new(py, k), v))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, pairs)
    }

    /// The next `n` keys after `cursor`.
    fn keys_page(&self, py: Python<'_>, cursor: &NativeCursor, n: usize) -> PyResult<Vec<String>> {
        let mut at = cursor.get();
        let keys = self.with(py, |p| p.next_keys(&mut at, n))?;
        cursor.set(at);
        Ok(keys)
    }

    /// A place before the first key, for `items_page` and `keys_page`.
    fn cursor(&self, py: Python<'_>) -> PyResult<NativeCursor> {
        let pod = self.pod(py)?;
        Ok(NativeCursor {
            at: Mutex::new(pod.cursor()),
        })
    }

    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, SharedPod::sync)
    }

    fn sync_key(&self, py: Python<'_>, key: Key<'_>) -> PyResult<()> {
        let key: &str = &key;
        self.with(py, |p| p.locked(|p| p.sync_key(key)))
    }

    fn mark_dirty(&self, py: Python<'_>, key: Key<'_>) -> PyResult<bool> {
        let key: &str = &key;
        self.with(py, |p| p.locked(|p| p.mark_dirty(key)))
    }

    fn dirty_len(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |p| p.locked(|p| Ok(p.dirty_len())))
    }

    fn hold(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |p| {
            p.locked(|p| {
                p.hold();
                Ok(())
            })
        })
    }

    fn unhold(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |p| p.locked(|p| p.unhold()))
    }

    fn is_held(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |p| p.locked(|p| Ok(p.is_held())))
    }

    fn revert(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |p| p.locked(|p| p.revert()))
    }

    fn compact(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, SharedPod::compact)
    }

    /// Syncs and closes; later calls raise. Closing twice does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let pod = self.pod.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(pod) = pod else {
            return Ok(());
        };
        let synced = if self.read_only {
            Ok(())
        } else {
            py.detach(|| pod.sync())
        };
        // The store (and its lock) goes with the last reference.
        py.detach(|| drop(pod));
        synced.map_err(|e| to_py(py, &e))
    }
}

/// A place in a store's key order.
#[pyclass(module = "tastypod._tastypod", frozen)]
struct NativeCursor {
    at: Mutex<tastypod::Cursor>,
}

impl NativeCursor {
    fn get(&self) -> tastypod::Cursor {
        self.at.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, at: tastypod::Cursor) {
        *self.at.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

/// What `claim_next` found: `("task", key, try_number)`, `("wait",
/// seconds)` or `("finished",)`.
type ClaimTuple = (String, Option<String>, Option<f64>);

fn claim_tuple(claim: Claim) -> ClaimTuple {
    match claim {
        Claim::Task(lease) => (
            "task".into(),
            Some(lease.key),
            Some(f64::from(lease.try_number)),
        ),
        Claim::Wait(until) => {
            let secs = until
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
                .as_secs_f64();
            ("wait".into(), None, Some(secs))
        }
        _ => ("finished".into(), None, None),
    }
}

fn aborted(allow_aborted: bool) -> Aborted {
    if allow_aborted {
        Aborted::Allow
    } else {
        Aborted::Skip
    }
}

/// total, done, aborted, exhausted, todo, claimed, tried, tries.
type CountsTuple = (usize, usize, usize, usize, usize, usize, usize, u64);

/// `c` as the tuple the Python layer reads.
fn counts_tuple(c: &tastypod::TaskCounts) -> CountsTuple {
    (
        c.total,
        c.done,
        c.aborted,
        c.exhausted,
        c.todo,
        c.claimed,
        c.tried,
        c.tries,
    )
}

/// An open tracker (a `Tracker`'s native half).
#[pyclass(module = "tastypod._tastypod", frozen)]
struct NativeTracker {
    tracker: Mutex<Option<SharedTracker>>,
    read_only: bool,
}

impl NativeTracker {
    /// The JSON text of `key`'s record, if present.
    fn text(&self, py: Python<'_>, key: &str) -> PyResult<Option<String>> {
        let value = self.with(py, |t| t.get(key))?;
        Ok(value.map(|v| v.to_string()))
    }

    fn tracker(&self, py: Python<'_>) -> PyResult<SharedTracker> {
        match &*self.tracker.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(t) => Ok(t.clone()),
            None => Err(errors::closed(py)),
        }
    }

    /// Runs `f` on the tracker, locked, with the interpreter released (in
    /// the multi-process mode after taking in other processes' changes).
    fn with<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut tastypod::Tracker) -> tastypod::Result<R> + Send,
    ) -> PyResult<R> {
        let tracker = self.tracker(py)?;
        py.detach(|| tracker.locked(f)).map_err(|e| to_py(py, &e))
    }

    /// Runs `f` on the shared handle with the interpreter released.
    fn shared<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&SharedTracker) -> tastypod::Result<R> + Send,
    ) -> PyResult<R> {
        let tracker = self.tracker(py)?;
        py.detach(|| f(&tracker)).map_err(|e| to_py(py, &e))
    }
}

#[pymethods]
impl NativeTracker {
    #[new]
    #[pyo3(signature = (path, max_tries=None, sync_at=1000, read_only=false, multi_process=false, durable=false, lease=None))]
    #[expect(
        clippy::too_many_arguments,
        reason = "the Python constructor's keyword arguments"
    )]
    fn new(
        py: Python<'_>,
        path: std::path::PathBuf,
        max_tries: Option<u32>,
        sync_at: usize,
        read_only: bool,
        multi_process: bool,
        durable: bool,
        lease: Option<f64>,
    ) -> PyResult<Self> {
        let mut options = TrackerOptions::new()
            .sync_at(sync_at.max(1))
            .read_only(read_only)
            .multi_process(multi_process)
            .durability(durability(durable));
        if let Some(n) = max_tries {
            options = options.max_tries(n);
        }
        if let Some(secs) = lease {
            let lease = Duration::try_from_secs_f64(secs)
                .map_err(|e| PyValueError::new_err(format!("lease: {e}")))?;
            options = options.lease(lease);
        }
        let tracker = py
            .detach(|| options.open_shared(&path))
            .map_err(|e| to_py(py, &e))?;
        Ok(NativeTracker {
            tracker: Mutex::new(Some(tracker)),
            read_only,
        })
    }

    #[getter]
    fn read_only(&self) -> bool {
        self.read_only
    }

    #[getter]
    fn closed(&self) -> bool {
        self.tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    fn get_json(&self, py: Python<'_>, key: Key<'_>) -> PyResult<Option<String>> {
        self.text(py, &key)
    }

    /// The value of `key`; `KeyError` if absent.
    fn get<'py>(&self, py: Python<'py>, key: Key<'_>) -> PyResult<Bound<'py, PyAny>> {
        let key: &str = &key;
        match self.text(py, key)? {
            Some(text) => read_json(py, &text),
            None => Err(pyo3::exceptions::PyKeyError::new_err(key.to_string())),
        }
    }

    /// The value of `key` and the JSON text it was read from (to tell at
    /// write-back whether the program changed it); `KeyError` if absent.
    fn get_tracked<'py>(&self, py: Python<'py>, key: Key<'_>) -> PyResult<Tracked<'py>> {
        let key: &str = &key;
        match self.text(py, key)? {
            Some(text) => Ok((read_json(py, &text)?, text)),
            None => Err(pyo3::exceptions::PyKeyError::new_err(key.to_string())),
        }
    }

    /// Replaces the record of `key` unless it holds that already, adding
    /// the task if absent; returns whether it wrote. With `keep_state`
    /// (a record read earlier and changed in place) only the user's fields
    /// are taken from `value`: the task's state stays as it is now, since
    /// calls made since may have changed it. Otherwise the reserved fields
    /// of `value` are honoured when well typed.
    ///
    /// With `read` (the text the record was read from), a record the
    /// program did not change since is not written: in the multi-process
    /// mode another process may have changed it meanwhile.
    #[pyo3(signature = (key, value, keep_state=false, read=None))]
    fn set_if_changed(
        &self,
        py: Python<'_>,
        key: Key<'_>,
        value: &Bound<'_, PyAny>,
        keep_state: bool,
        read: Option<Key<'_>>,
    ) -> PyResult<bool> {
        let key: &str = &key;
        let text = value_text(value)?;
        if read.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        tastypod::check_json(key, &text).map_err(|e| to_py(py, &e))?;
        let new: Value =
            serde_json::from_str(&text).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let Value::Object(mut fields) = new else {
            return Err(PyValueError::new_err(format!(
                "the record of {key:?} must be a dict (a task's record is a JSON object)"
            )));
        };
        // With `keep_state`, only the user's fields count: a state call
        // since the read changes the others in the dict the program holds,
        // and they are never taken from it.
        let user = |fields: &serde_json::Map<String, Value>| {
            let mut fields = fields.clone();
            if keep_state {
                fields.retain(|k, _| !tastypod::RESERVED.contains(&k.as_str()));
            }
            fields
        };
        // The record as it was read, if known.
        let read = match read.as_deref().map(serde_json::from_str::<Value>) {
            Some(Ok(Value::Object(read))) => Some(user(&read)),
            _ => None,
        };
        if read.as_ref() == Some(&user(&fields)) {
            // Not changed since it was read.
            return Ok(false);
        }
        self.with(py, |t| {
            if !t.contains_key(key) {
                t.add(key)?;
            }
            let Some(Value::Object(old)) = t.get(key)? else {
                return Err(tastypod::ErrorKind::InvalidValue {
                    key: key.into(),
                    reason: "its record is not a JSON object".into(),
                }
                .into());
            };
            if keep_state && let Some(read) = &read {
                // Only the fields the program changed since the read go on
                // the record as it is now: another process's changes to
                // other fields made meanwhile stay.
                let mine = user(&fields);
                let mut merged = old.clone();
                for (k, v) in &mine {
                    if read.get(k) != Some(v) {
                        merged.insert(k.clone(), v.clone());
                    }
                }
                for k in read.keys() {
                    if !mine.contains_key(k) {
                        merged.remove(k);
                    }
                }
                fields = merged;
            } else if keep_state {
                fields.retain(|k, _| !tastypod::RESERVED.contains(&k.as_str()));
                for (k, v) in &old {
                    if tastypod::RESERVED.contains(&k.as_str()) {
                        fields.insert(k.clone(), v.clone());
                    }
                }
            }
            if old == fields {
                return Ok(false);
            }
            t.update_task(key, |record| *record = Value::Object(fields))?;
            Ok(true)
        })
    }

    fn contains(&self, py: Python<'_>, key: Key<'_>) -> PyResult<bool> {
        let key: &str = &key;
        self.with(py, |t| Ok(t.contains_key(key)))
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |t| Ok(t.len()))
    }

    fn keys(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.with(py, |t| Ok(t.keys().map(str::to_string).collect()))
    }

    /// The records of `keys` (`None` for an absent one), in one step, each
    /// with the JSON text it was read from.
    fn records_tracked<'py>(
        &self,
        py: Python<'py>,
        keys: Vec<String>,
    ) -> PyResult<Vec<Option<Tracked<'py>>>> {
        let texts = self.with(py, |t| {
            keys.iter()
                .map(|k| Ok(t.get(k)?.map(|v| v.to_string())))
                .collect::<tastypod::Result<Vec<_>>>()
        })?;
        texts
            .into_iter()
            .map(|t| t.map(|t| Ok((read_json(py, &t)?, t))).transpose())
            .collect()
    }

    fn remove(&self, py: Python<'_>, key: Key<'_>) -> PyResult<bool> {
        let key: &str = &key;
        self.shared(py, |t| t.remove(key))
    }

    fn add(&self, py: Python<'_>, key: Key<'_>) -> PyResult<()> {
        let key: &str = &key;
        self.with(py, |t| t.add(key))
    }

    fn add_if_absent(&self, py: Python<'_>, key: Key<'_>) -> PyResult<bool> {
        let key: &str = &key;
        self.with(py, |t| t.add_if_absent(key))
    }

    fn add_many(&self, py: Python<'_>, keys: Vec<String>) -> PyResult<()> {
        self.with(py, |t| t.add_many(&keys))
    }

    fn add_many_if_absent(&self, py: Python<'_>, keys: Vec<String>) -> PyResult<usize> {
        self.shared(py, |t| t.add_many_if_absent(&keys))
    }

    fn done(&self, py: Python<'_>, key: Key<'_>) -> PyResult<bool> {
        let key: &str = &key;
        self.with(py, |t| Ok(t.done(key)))
    }

    fn tries(&self, py: Python<'_>, key: Key<'_>) -> PyResult<u32> {
        let key: &str = &key;
        self.with(py, |t| Ok(t.tries(key)))
    }

    fn aborted(&self, py: Python<'_>, key: Key<'_>) -> PyResult<bool> {
        let key: &str = &key;
        self.with(py, |t| Ok(t.aborted(key)))
    }

    fn exhausted(&self, py: Python<'_>, key: Key<'_>) -> PyResult<bool> {
        let key: &str = &key;
        self.with(py, |t| Ok(t.exhausted(key)))
    }

    fn should_do(&self, py: Python<'_>, key: Key<'_>, allow_aborted: bool) -> PyResult<bool> {
        let key: &str = &key;
        self.with(py, |t| Ok(t.should_do(key, aborted(allow_aborted))))
    }

    fn should_try(&self, py: Python<'_>, key: Key<'_>, allow_aborted: bool) -> PyResult<bool> {
        let key: &str = &key;
        self.with(py, |t| t.should_try(key, aborted(allow_aborted)))
    }

    fn check_or_add(&self, py: Python<'_>, key: Key<'_>, allow_aborted: bool) -> PyResult<bool> {
        let key: &str = &key;
        self.with(py, |t| t.should_do_add(key, aborted(allow_aborted)))
    }

    fn try_it(&self, py: Python<'_>, key: Key<'_>, allow_aborted: bool) -> PyResult<bool> {
        let key: &str = &key;
        self.with(py, |t| t.should_try_add(key, aborted(allow_aborted)))
    }

    fn mark_done(&self, py: Python<'_>, key: Key<'_>) -> PyResult<()> {
        let key: &str = &key;
        self.shared(py, |t| t.mark_done(key))
    }

    fn mark_not_done(&self, py: Python<'_>, key: Key<'_>) -> PyResult<()> {
        let key: &str = &key;
        self.with(py, |t| t.mark_not_done(key))
    }

    fn increment_tries(&self, py: Python<'_>, key: Key<'_>) -> PyResult<()> {
        let key: &str = &key;
        self.with(py, |t| t.increment_tries(key))
    }

    fn decrement_tries(&self, py: Python<'_>, key: Key<'_>) -> PyResult<()> {
        let key: &str = &key;
        self.with(py, |t| t.decrement_tries(key))
    }

    fn reset_tries(&self, py: Python<'_>, key: Key<'_>) -> PyResult<()> {
        let key: &str = &key;
        self.with(py, |t| t.reset_tries(key))
    }

    fn abort(&self, py: Python<'_>, key: Key<'_>) -> PyResult<()> {
        let key: &str = &key;
        self.shared(py, |t| t.abort(key))
    }

    fn unabort(&self, py: Python<'_>, key: Key<'_>) -> PyResult<()> {
        let key: &str = &key;
        self.with(py, |t| t.unabort(key))
    }

    fn todo_keys(&self, py: Python<'_>, allow_aborted: bool) -> PyResult<Vec<String>> {
        self.with(py, |t| {
            Ok(t.todo_keys(aborted(allow_aborted))
                .map(str::to_string)
                .collect())
        })
    }

    /// The counts: total, done, aborted, exhausted, todo, claimed, tried, tries.
    fn counts(&self, py: Python<'_>) -> PyResult<CountsTuple> {
        let c = self.with(py, |t| Ok(t.counts()))?;
        Ok(counts_tuple(&c))
    }

    fn summary(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |t| Ok(t.summary()))
    }

    fn max_tries(&self, py: Python<'_>) -> PyResult<u32> {
        self.shared(py, |t| Ok(t.max_tries()))
    }

    /// Claims the next task: `("task", key, try)`, `("wait", None, secs)`
    /// or `("finished", None, None)`; waits up to `timeout` seconds while
    /// the answer would be "wait" (0: not at all).
    fn claim_next(&self, py: Python<'_>, timeout: f64) -> PyResult<ClaimTuple> {
        let wait = Duration::try_from_secs_f64(timeout.max(0.0))
            .map_err(|e| PyValueError::new_err(format!("timeout: {e}")))?;
        let claim = self.shared(py, |t| {
            if wait.is_zero() {
                t.claim_next()
            } else {
                t.claim_next_wait(wait)
            }
        })?;
        Ok(claim_tuple(claim))
    }

    #[pyo3(signature = (key, delay=None))]
    fn release(&self, py: Python<'_>, key: Key<'_>, delay: Option<f64>) -> PyResult<()> {
        let key: &str = &key;
        match delay {
            Some(secs) => {
                let delay = Duration::try_from_secs_f64(secs.max(0.0))
                    .map_err(|e| PyValueError::new_err(format!("delay: {e}")))?;
                self.shared(py, |t| t.release_after(key, delay))
            }
            None => self.shared(py, |t| t.release(key)),
        }
    }

    /// The claims the open freed: `(to do again, given up)`.
    fn freed_at_open(&self, py: Python<'_>) -> PyResult<(Vec<String>, Vec<String>)> {
        let freed = self.shared(py, |t| Ok(t.freed_at_open()))?;
        Ok((freed.freed, freed.exhausted))
    }

    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        self.shared(py, SharedTracker::sync)
    }

    fn dirty_len(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |t| Ok(t.dirty_len()))
    }

    fn hold(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |t| {
            t.hold();
            Ok(())
        })
    }

    fn unhold(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |t| t.unhold())
    }

    fn revert(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |t| t.revert())
    }

    fn compact(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |t| t.compact())
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let tracker = self
            .tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(tracker) = tracker else {
            return Ok(());
        };
        let synced = if self.read_only {
            Ok(())
        } else {
            py.detach(|| tracker.sync())
        };
        py.detach(|| drop(tracker));
        synced.map_err(|e| to_py(py, &e))
    }
}

/// The native half of the `tastypod` package.
#[pymodule]
fn _tastypod(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativePod>()?;
    m.add_class::<NativeTracker>()?;
    m.add_class::<NativeCursor>()?;
    m.add_class::<pg::NativePgTracker>()?;
    m.add_function(wrap_pyfunction!(dumps, m)?)?;
    m.add_function(wrap_pyfunction!(loads, m)?)?;
    m.add("FORMAT_VERSION", tastypod::FORMAT_VERSION)?;
    Ok(())
}

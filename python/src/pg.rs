//! `NativePgTracker`: a tracker on PostgreSQL (`tastypod::PgTracker`) for
//! the Python package's `PgTracker` (`tastypod.connect(url)`). Calls by key
//! (`mark_done(key)`, `release(key)`, `abort(key)`) finish through the
//! lease this handle got when it claimed the task, so a worker whose lease
//! was taken over gets `LeaseLostError` instead of finishing a task twice;
//! a task this handle did not claim is finished through its current claim.

use crate::convert::{read_json, write_json};
use crate::errors::{closed, to_py};
use crate::{ClaimTuple, CountsTuple, claim_tuple, counts_tuple};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tastypod::{Claim, Lease, PgTracker, TaskQueue, TrackerOptions};

#[pyclass(module = "tastypod._tastypod", frozen)]
pub struct NativePgTracker {
    tracker: Mutex<Option<PgTracker>>,
    /// The leases of the claims made through this handle, by key.
    leases: Mutex<HashMap<String, Lease>>,
}

fn seconds(name: &str, secs: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(secs.max(0.0))
        .map_err(|e| PyValueError::new_err(format!("{name}: {e}")))
}

/// A dict of fields as a JSON object (`None`: no fields).
fn fields_of(fields: Option<&Bound<'_, PyAny>>) -> PyResult<Map<String, Value>> {
    let Some(fields) = fields else {
        return Ok(Map::new());
    };
    let mut text = String::new();
    write_json(fields, &mut text, 0)?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(PyValueError::new_err("fields must be a dict")),
    }
}

/// How a call by key ends the task's claim.
#[derive(Clone, Copy)]
enum Finish {
    Done,
    Abort,
    Release(Option<Duration>),
}

impl NativePgTracker {
    fn tracker(&self, py: Python<'_>) -> PyResult<PgTracker> {
        match &*self.tracker.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(t) => Ok(t.clone()),
            None => Err(closed(py)),
        }
    }

    fn call<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&PgTracker) -> tastypod::Result<R> + Send,
    ) -> PyResult<R> {
        let tracker = self.tracker(py)?;
        py.detach(|| f(&tracker)).map_err(|e| to_py(py, &e))
    }

    fn keep(&self, lease: &Lease) {
        self.leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(lease.key.clone(), lease.clone());
    }

    fn finish(
        &self,
        py: Python<'_>,
        key: &str,
        how: Finish,
        fields: Map<String, Value>,
    ) -> PyResult<()> {
        let held = self
            .leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        let kept = held.clone();
        let out = self.call(py, |t| {
            let lease = match held {
                Some(lease) => lease,
                None => match t.current_claim(key)? {
                    Some(lease) => lease,
                    None => {
                        return Err(tastypod::ErrorKind::MissingKey {
                            key: key.to_string(),
                        }
                        .into());
                    }
                },
            };
            match how {
                Finish::Done => t.complete(&lease, fields),
                Finish::Abort => t.abort_claim(&lease, fields),
                Finish::Release(delay) => t.release_claim(&lease, delay, fields),
            }
        });
        // A call that failed keeps its lease: a later call by key goes
        // through it again (and fails again if it was lost), never through
        // another worker's claim.
        if let (Err(_), Some(lease)) = (&out, kept) {
            self.keep(&lease);
        }
        out
    }
}

#[pymethods]
impl NativePgTracker {
    #[new]
    #[pyo3(signature = (url, max_tries=None, lease=None, retry_delay=None))]
    fn new(
        py: Python<'_>,
        url: &str,
        max_tries: Option<u32>,
        lease: Option<f64>,
        retry_delay: Option<f64>,
    ) -> PyResult<Self> {
        let mut options = TrackerOptions::new();
        if let Some(n) = max_tries {
            options = options.max_tries(n);
        }
        if let Some(secs) = lease {
            options = options.lease(seconds("lease", secs)?);
        }
        if let Some(secs) = retry_delay {
            let delay = seconds("retry_delay", secs)?;
            options = options.retry_delay(if delay.is_zero() {
                tastypod::RetryDelay::None
            } else {
                tastypod::RetryDelay::Fixed(delay)
            });
        }
        let tracker = py
            .detach(|| options.open_postgres(url))
            .map_err(|e| to_py(py, &e))?;
        Ok(NativePgTracker {
            tracker: Mutex::new(Some(tracker)),
            leases: Mutex::new(HashMap::new()),
        })
    }

    #[getter]
    fn closed(&self) -> bool {
        self.tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    #[getter]
    fn url(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.tracker(py)?.url().to_string())
    }

    #[getter]
    fn name(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.tracker(py)?.name().to_string())
    }

    fn max_tries(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.tracker(py)?.max_tries())
    }

    fn add_many_if_absent(&self, py: Python<'_>, keys: Vec<String>) -> PyResult<usize> {
        self.call(py, |t| {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let mut added = 0;
            for chunk in refs.chunks(10_000) {
                added += t.add_keys(chunk)?;
            }
            Ok(added)
        })
    }

    /// The record of `key` (reserved fields and the user's), or `None`.
    fn get<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let record = self.call(py, |t| t.get(key))?;
        record.map(|r| read_json(py, &r.to_string())).transpose()
    }

    /// `(done, tries, aborted, claimed)`, or `None` if `key` is not a task.
    fn state(&self, py: Python<'_>, key: &str) -> PyResult<Option<(bool, u32, bool, bool)>> {
        let state = self.call(py, |t| t.state(key))?;
        Ok(state.map(|s| (s.done, s.tries, s.aborted, s.lease.is_some())))
    }

    /// Merges `fields` into the record of `key` (by the server); returns
    /// whether `key` is a task.
    fn update(&self, py: Python<'_>, key: &str, fields: &Bound<'_, PyAny>) -> PyResult<bool> {
        let fields = fields_of(Some(fields))?;
        self.call(py, |t| t.update_fields(key, fields))
    }

    /// Claims a task: `("task", key, try)`, `("wait", None, secs)` or
    /// `("finished", None, None)`, waiting up to `timeout` seconds while
    /// the answer would be "wait".
    fn claim(&self, py: Python<'_>, timeout: f64) -> PyResult<ClaimTuple> {
        let wait = seconds("timeout", timeout)?;
        let claim = self.call(py, |t| {
            if wait.is_zero() {
                t.claim()
            } else {
                t.claim_wait(wait)
            }
        })?;
        if let Claim::Task(lease) = &claim {
            self.keep(lease);
        }
        Ok(claim_tuple(claim))
    }

    /// Claims up to `n` tasks: `[(key, try), ...]`.
    fn claim_many(&self, py: Python<'_>, n: usize) -> PyResult<Vec<(String, u32)>> {
        let leases = self.call(py, |t| t.claim_many(n))?;
        for lease in &leases {
            self.keep(lease);
        }
        Ok(leases.into_iter().map(|l| (l.key, l.try_number)).collect())
    }

    #[pyo3(signature = (key, fields=None))]
    fn mark_done(
        &self,
        py: Python<'_>,
        key: &str,
        fields: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let fields = fields_of(fields)?;
        self.finish(py, key, Finish::Done, fields)
    }

    #[pyo3(signature = (key, fields=None))]
    fn abort(&self, py: Python<'_>, key: &str, fields: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let fields = fields_of(fields)?;
        self.finish(py, key, Finish::Abort, fields)
    }

    #[pyo3(signature = (key, delay=None, fields=None))]
    fn release(
        &self,
        py: Python<'_>,
        key: &str,
        delay: Option<f64>,
        fields: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let delay = delay.map(|d| seconds("delay", d)).transpose()?;
        let fields = fields_of(fields)?;
        self.finish(py, key, Finish::Release(delay), fields)
    }

    /// Extends this handle's claim on `key` by the lease length.
    fn extend(&self, py: Python<'_>, key: &str) -> PyResult<()> {
        let held = self
            .leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned();
        let Some(lease) = held else {
            return Err(PyValueError::new_err(format!(
                "{key:?} is not claimed through this handle"
            )));
        };
        let extended = self.call(py, |t| t.extend_claim(&lease))?;
        self.keep(&extended);
        Ok(())
    }

    fn counts(&self, py: Python<'_>) -> PyResult<CountsTuple> {
        let c = self.call(py, |t| t.counts())?;
        Ok(counts_tuple(&c))
    }

    fn summary(&self, py: Python<'_>) -> PyResult<String> {
        self.call(py, |t| t.summary())
    }

    #[pyo3(signature = (allow_aborted=false, limit=None))]
    fn todo_keys(
        &self,
        py: Python<'_>,
        allow_aborted: bool,
        limit: Option<usize>,
    ) -> PyResult<Vec<String>> {
        self.call(py, |t| {
            t.todo_keys_with(limit.unwrap_or(usize::MAX), allow_aborted)
        })
    }

    fn close(&self) {
        self.tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

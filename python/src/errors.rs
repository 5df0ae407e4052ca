//! The store's errors as the package's Python exceptions (defined in
//! `tastypod/_errors.py`): the class by the error's kind, the message as
//! the Rust error gives it (its causes included), and `.path` and `.line`
//! where the error names them.

use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use tastypod::{Error, ErrorKind};

/// The Python exception class for `e`, by name in `tastypod._errors`.
fn class_name(e: &Error) -> &'static str {
    match e.kind() {
        ErrorKind::Locked { .. } => "LockedError",
        ErrorKind::Corrupt { .. } | ErrorKind::NotAStore { .. } => "CorruptError",
        ErrorKind::UnsupportedVersion { .. } => "CorruptError",
        ErrorKind::Poisoned { .. } => "PoisonedError",
        ErrorKind::ReadOnly { .. } => "ReadOnlyError",
        ErrorKind::DuplicateKey { .. } => "DuplicateKeyError",
        ErrorKind::NotATask { .. } => "NotATrackerError",
        ErrorKind::LeaseLost { .. } => "LeaseLostError",
        ErrorKind::ShuttingDown { .. } => "ShuttingDownError",
        _ => "Error",
    }
}

/// `e` as a Python exception.
pub fn to_py(py: Python<'_>, e: &Error) -> PyErr {
    let message = tastypod::error_chain(e);
    match e.kind() {
        // Python's own kinds, as a dict and `json` raise them.
        ErrorKind::MissingKey { key } => return PyKeyError::new_err(key.clone()),
        ErrorKind::InvalidValue { .. } | ErrorKind::RecordTooLarge { .. } => {
            return PyValueError::new_err(message);
        }
        ErrorKind::Encode { .. } => return PyTypeError::new_err(message),
        _ => {}
    }
    let made = (|| -> PyResult<PyErr> {
        let module = py.import("tastypod._errors")?;
        let class = module.getattr(class_name(e))?;
        let exc = class.call1((message.clone(),))?;
        if let Some(path) = e.path() {
            exc.setattr("path", path.to_string_lossy().into_owned())?;
        }
        if let Some(line) = e.line() {
            exc.setattr("line", line)?;
        }
        Ok(PyErr::from_value(exc))
    })();
    made.unwrap_or_else(|err| err)
}

/// The error of a call on a closed handle.
pub fn closed(py: Python<'_>) -> PyErr {
    let made = (|| -> PyResult<PyErr> {
        let class = py.import("tastypod._errors")?.getattr("ClosedError")?;
        Ok(PyErr::from_value(class.call1(("the store is closed",))?))
    })();
    made.unwrap_or_else(|err| err)
}

//! Python objects to JSON text and back, in Rust: no `json.dumps` round
//! trip per value. Objects keep their members' order both ways.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Appends `obj` as compact JSON to `out`, by JSON's rules as Python's
/// `json` module applies them (keys of objects become strings, tuples
/// become arrays), refusing what the store cannot hold exactly: `NaN` and
/// infinities, integers beyond 64 bits (`ValueError`), and objects JSON has
/// no form for (`TypeError`).
pub fn write_json(obj: &Bound<'_, PyAny>, out: &mut String, depth: usize) -> PyResult<()> {
    if depth > tastypod::MAX_DEPTH as usize {
        return Err(PyValueError::new_err(format!(
            "value nested deeper than {} levels (or holding itself)",
            tastypod::MAX_DEPTH
        )));
    }
    // The most frequent kinds first; `bool` before `int`, which it subclasses.
    if let Ok(s) = obj.cast::<PyString>() {
        write_str(&text_of(s.as_borrowed())?, out);
    } else if obj.is_none() {
        out.push_str("null");
    } else if let Ok(b) = obj.cast::<PyBool>() {
        out.push_str(if b.is_true() { "true" } else { "false" });
    } else if let Ok(i) = obj.cast::<PyInt>() {
        write_int(i, out)?;
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        write_float(f.value(), out)?;
    } else if let Ok(d) = obj.cast::<PyDict>() {
        out.push('{');
        for (n, (k, v)) in d.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            write_member_name(&k, out)?;
            out.push(':');
            write_json(&v, out, depth + 1)?;
        }
        out.push('}');
    } else if let Ok(l) = obj.cast::<PyList>() {
        out.push('[');
        for (n, item) in l.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            write_json(&item, out, depth + 1)?;
        }
        out.push(']');
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        out.push('[');
        for (n, item) in t.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            write_json(&item, out, depth + 1)?;
        }
        out.push(']');
    } else {
        return Err(PyTypeError::new_err(format!(
            "Object of type {} is not JSON serializable",
            obj.get_type().name()?
        )));
    }
    Ok(())
}

fn write_int(i: &Bound<'_, PyInt>, out: &mut String) -> PyResult<()> {
    if let Ok(n) = i.extract::<i64>() {
        out.push_str(itoa::Buffer::new().format(n));
    } else if let Ok(n) = i.extract::<u64>() {
        out.push_str(itoa::Buffer::new().format(n));
    } else {
        return Err(PyValueError::new_err(format!(
            "integer {} is beyond 64 bits: the store keeps every number exactly, and refuses one it cannot",
            i.str()?
        )));
    }
    Ok(())
}

fn write_float(f: f64, out: &mut String) -> PyResult<()> {
    if !f.is_finite() {
        return Err(PyValueError::new_err(format!(
            "Out of range float values are not JSON compliant: {f}"
        )));
    }
    // serde_json writes the shortest text that reads back as the same f64.
    let text = serde_json::to_string(&f).map_err(|e| PyValueError::new_err(e.to_string()))?;
    out.push_str(&text);
    Ok(())
}

fn write_str(s: &str, out: &mut String) {
    // Every byte is looked at (no early exit), so the loop runs on vectors.
    let plain = !s.bytes().fold(false, |seen, b| {
        seen | (b == b'"') | (b == b'\\') | (b < 0x20)
    });
    if plain {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else if let Ok(text) = serde_json::to_string(s) {
        // (A `str` always serializes.)
        out.push_str(&text);
    }
}

/// Appends the name a dict key gets as a JSON member, as `json.dumps`
/// gives it, quoted.
fn write_member_name(k: &Bound<'_, PyAny>, out: &mut String) -> PyResult<()> {
    if let Ok(s) = k.cast::<PyString>() {
        write_str(&text_of(s.as_borrowed())?, out);
    } else if k.is_none() {
        out.push_str("\"null\"");
    } else if let Ok(b) = k.cast::<PyBool>() {
        out.push_str(if b.is_true() { "\"true\"" } else { "\"false\"" });
    } else if let Ok(i) = k.cast::<PyInt>() {
        write_str(&i.str()?.to_cow()?, out);
    } else if let Ok(f) = k.cast::<PyFloat>() {
        let mut text = String::new();
        write_float(f.value(), &mut text)?;
        write_str(&text, out);
    } else {
        return Err(PyTypeError::new_err(format!(
            "keys must be str, int, float, bool or None, not {}",
            k.get_type().name()?
        )));
    }
    Ok(())
}

/// The UTF-8 text of a `str`, without a copy: CPython keeps a string's
/// UTF-8 form in the object (made once, on first request) and
/// `PyUnicode_AsUTF8AndSize` hands it out. PyO3 calls it only when built
/// for the limited API of Python 3.10 or later; on the 3.9 ABI its
/// `to_cow` encodes a new `bytes` object for every string instead. The
/// function has been exported by every CPython since 3.3 (it joined the
/// limited API in 3.10), so it is declared here.
#[cfg(not(windows))]
pub fn text_of<'a>(s: Borrowed<'a, '_, PyString>) -> PyResult<std::borrow::Cow<'a, str>> {
    unsafe extern "C" {
        fn PyUnicode_AsUTF8AndSize(
            unicode: *mut pyo3::ffi::PyObject,
            size: *mut pyo3::ffi::Py_ssize_t,
        ) -> *const std::ffi::c_char;
    }
    let mut len: pyo3::ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a live `str` (the borrow keeps it alive for 'a) and
    // the GIL is held (a `Bound` proves it). On success the function
    // returns a pointer to `len` bytes of UTF-8 that the string object
    // owns and never changes or frees while the object lives (a `str` is
    // immutable, its UTF-8 form is made once and freed with it), so
    // borrowing them for 'a is sound, also while a call reads them with the
    // interpreter released (the caller's reference keeps the object alive
    // until the call returns); on failure (a lone
    // surrogate cannot be UTF-8) it returns null with an exception set,
    // which `PyErr::fetch` takes.
    let bytes = unsafe {
        let ptr = PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut len);
        if ptr.is_null() {
            return Err(PyErr::fetch(s.py()));
        }
        std::slice::from_raw_parts(ptr.cast::<u8>(), usize::try_from(len).unwrap_or(0))
    };
    // CPython's UTF-8 form is valid UTF-8; checking costs little and
    // keeps the claim out of the safety argument.
    std::str::from_utf8(bytes)
        .map(std::borrow::Cow::Borrowed)
        .map_err(|e| PyValueError::new_err(format!("string is not UTF-8: {e}")))
}

/// A key argument: a `str`'s text, borrowed from the object (see [`text_of`]).
pub struct Key<'a>(std::borrow::Cow<'a, str>);

impl std::ops::Deref for Key<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'a> FromPyObject<'a, '_> for Key<'a> {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, '_, PyAny>) -> PyResult<Self> {
        Ok(Key(text_of(ob.cast::<PyString>()?)?))
    }
}

/// The UTF-8 text of a `str` (PyO3's `to_cow`, which on the 3.9 ABI copies).
#[cfg(windows)]
pub fn text_of<'a>(s: Borrowed<'a, '_, PyString>) -> PyResult<std::borrow::Cow<'a, str>> {
    Ok(std::borrow::Cow::Owned(s.to_cow()?.into_owned()))
}

/// The tuple `(key, value)` of a value read from JSON, left out of the
/// cycle collector's lists when the value is a scalar (`str`, `int`,
/// `float`, `bool`, `None`: no container), by CPython's own rule for
/// tuples (`_PyTuple_MaybeUntrack` untracks a tuple once its collector
/// sees that no item is a collected object). A million such pairs held by
/// the program are then not walked by every full collection. A pair whose
/// value is a dict or a list stays tracked: the program may put a
/// container, or the pair itself, into the value later.
pub fn pair<'py>(
    key: Bound<'py, PyString>,
    value: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    // `read_json` makes only these two containers; every other value it
    // makes is an exact scalar, which holds no reference to anything.
    let scalar =
        !(value.is_exact_instance_of::<PyDict>() || value.is_exact_instance_of::<PyList>());
    let tuple = PyTuple::new(key.py(), [key.into_any(), value])?;
    if scalar {
        // SAFETY: `tuple` is a live tuple (a collected object) that this
        // thread just made, and the GIL is held (a `Bound` proves both).
        // Untracking only takes it off the collector's lists; every
        // reference it holds stays counted. Its items, a `str` and a
        // scalar, are not collected objects and can never refer to
        // anything, so no cycle can ever run through it: CPython untracks
        // exactly such tuples itself.
        unsafe { pyo3::ffi::PyObject_GC_UnTrack(tuple.as_ptr().cast()) };
    }
    Ok(tuple)
}

/// The Python object for the JSON text `json` (one value, as the store
/// holds them: valid, so an error here is not expected).
pub fn read_json<'py>(py: Python<'py>, json: &str) -> PyResult<Bound<'py, PyAny>> {
    // Stored values are nested at most MAX_DEPTH deep, within serde_json's limit.
    let mut de = serde_json::Deserializer::from_str(json);
    let value = ToPython { py }
        .deserialize(&mut de)
        .map_err(|e| PyValueError::new_err(format!("stored value does not read: {e}")))?;
    Ok(value)
}

/// The most member names kept in [`NAMES`].
const MAX_NAMES: usize = 1024;
/// The longest member name kept in [`NAMES`] (bytes), so the cache holds
/// at most 64 KiB of text for the life of the process.
const MAX_NAME_LEN: usize = 64;

/// Member names made so far (at most [`MAX_NAMES`], the first met of at
/// most [`MAX_NAME_LEN`] bytes), by a
/// fast hash of their text, for every read: records of one shape share
/// their member names, so each name is made once and its hash (which the
/// `str` caches) computed once, instead of once per value read.
static NAMES: std::sync::LazyLock<std::sync::Mutex<NameMap>> =
    std::sync::LazyLock::new(Default::default);

/// Member names by their text.
type NameMap = std::collections::HashMap<Box<str>, Py<PyString>, foldhash::fast::RandomState>;

/// The `str` of the member name `name`.
fn member<'py>(py: Python<'py>, name: &str) -> Bound<'py, PyString> {
    // Taken only with the GIL held, and nothing done under it can run
    // Python code (making a `str` allocates no collected object, so no
    // collection and no finalizer runs): no thread can come back for it
    // while holding it, and none waits on it long.
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = names.get(name) {
        return s.bind(py).clone();
    }
    let s = PyString::new(py, name);
    if names.len() < MAX_NAMES && name.len() <= MAX_NAME_LEN {
        names.insert(name.into(), s.clone().unbind());
    }
    s
}

/// Builds Python objects while serde_json reads the text.
#[derive(Clone, Copy)]
struct ToPython<'py> {
    py: Python<'py>,
}

fn py_err<E: serde::de::Error>(e: PyErr) -> E {
    E::custom(e.to_string())
}

impl<'de, 'py> DeserializeSeed<'de> for ToPython<'py> {
    type Value = Bound<'py, PyAny>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, 'py> Visitor<'de> for ToPython<'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.py.None().into_bound(self.py))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(PyBool::new(self.py, v).to_owned().into_any())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match v.into_pyobject(self.py) {
            Ok(int) => Ok(int.into_any()),
            Err(never) => match never {},
        }
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        match v.into_pyobject(self.py) {
            Ok(int) => Ok(int.into_any()),
            Err(never) => match never {},
        }
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(PyFloat::new(self.py, v).into_any())
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PyString::new(self.py, v).into_any())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let list = PyList::empty(self.py);
        while let Some(item) = seq.next_element_seed(self)? {
            list.append(item).map_err(py_err)?;
        }
        Ok(list.into_any())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let dict = PyDict::new(self.py);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let name = member(self.py, &key);
            let value = map.next_value_seed(self)?;
            dict.set_item(name, value).map_err(py_err)?;
        }
        Ok(dict.into_any())
    }
}

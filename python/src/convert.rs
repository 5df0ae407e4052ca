//! Python objects to JSON text and back, in Rust: no `json.dumps` round
//! trip per value. Objects keep their members' order both ways.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt::Write as _;

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
        write_str(&s.to_cow()?, out);
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
            write_str(&member_name(&k)?, out);
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
        let _ = write!(out, "{n}");
    } else if let Ok(n) = i.extract::<u64>() {
        let _ = write!(out, "{n}");
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
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else if let Ok(text) = serde_json::to_string(s) {
        // (A `str` always serializes.)
        out.push_str(&text);
    }
}

/// The name a dict key gets as a JSON member, as `json.dumps` gives it.
fn member_name(k: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = k.cast::<PyString>() {
        return Ok(s.to_cow()?.into_owned());
    }
    if k.is_none() {
        return Ok("null".into());
    }
    if let Ok(b) = k.cast::<PyBool>() {
        return Ok(if b.is_true() { "true" } else { "false" }.into());
    }
    if let Ok(i) = k.cast::<PyInt>() {
        return Ok(i.str()?.to_cow()?.into_owned());
    }
    if let Ok(f) = k.cast::<PyFloat>() {
        let mut out = String::new();
        write_float(f.value(), &mut out)?;
        return Ok(out);
    }
    Err(PyTypeError::new_err(format!(
        "keys must be str, int, float, bool or None, not {}",
        k.get_type().name()?
    )))
}

/// The Python object for the JSON text `json` (one value, as the store
/// holds them: valid, so an error here is not expected).
pub fn read_json<'py>(py: Python<'py>, json: &str) -> PyResult<Bound<'py, PyAny>> {
    read_json_with(py, json, &Names::default())
}

/// [`read_json`], taking member names from `names` (shared by the values of
/// one page: records of one shape share their member names, so each name
/// is made once and its hash computed once).
pub fn read_json_with<'py>(
    py: Python<'py>,
    json: &str,
    names: &Names<'py>,
) -> PyResult<Bound<'py, PyAny>> {
    // Stored values are nested at most MAX_DEPTH deep, within serde_json's limit.
    let mut de = serde_json::Deserializer::from_str(json);
    let value = ToPython { py, names }
        .deserialize(&mut de)
        .map_err(|e| PyValueError::new_err(format!("stored value does not read: {e}")))?;
    Ok(value)
}

/// Member names made so far (at most [`Names::MAX`]), by a fast hash of
/// their text (a name is looked up for every member read).
#[derive(Default)]
pub struct Names<'py>(
    std::cell::RefCell<
        std::collections::HashMap<String, Bound<'py, PyString>, foldhash::fast::RandomState>,
    >,
);

impl<'py> Names<'py> {
    const MAX: usize = 256;

    fn get(&self, py: Python<'py>, name: &str) -> Bound<'py, PyString> {
        let mut map = self.0.borrow_mut();
        if let Some(s) = map.get(name) {
            return s.clone();
        }
        let s = PyString::new(py, name);
        if map.len() < Self::MAX {
            map.insert(name.to_string(), s.clone());
        }
        s
    }
}

/// Builds Python objects while serde_json reads the text.
#[derive(Clone, Copy)]
struct ToPython<'py, 'n> {
    py: Python<'py>,
    names: &'n Names<'py>,
}

fn py_err<E: serde::de::Error>(e: PyErr) -> E {
    E::custom(e.to_string())
}

impl<'de, 'py> DeserializeSeed<'de> for ToPython<'py, '_> {
    type Value = Bound<'py, PyAny>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, 'py> Visitor<'de> for ToPython<'py, '_> {
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
            let name = self.names.get(self.py, &key);
            let value = map.next_value_seed(self)?;
            dict.set_item(name, value).map_err(py_err)?;
        }
        Ok(dict.into_any())
    }
}

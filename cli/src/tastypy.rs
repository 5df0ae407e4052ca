//! tastypy's on-disk format, as its `JSONSerializer` reads and writes it.
//!
//! A store is a directory of parts `0.json`, `1.json`, ... (or
//! `0.json.gz`, ... when gzipped), 1000 records each but the last. Each
//! record is one line `serialize_key(key) TAB json.dumps(value) LF`, where
//! `serialize_key` is `json.dumps(key)` with every backslash doubled and
//! every tab written as `\t`. Reading undoes the tab escape (a `\t` not
//! after a backslash), then the doubling, then `json.loads` the key. Keys
//! are strings, integers or tuples (lists in JSON) of them; values come
//! from Python's `json.dumps`, which also writes `NaN` and `Infinity`.

use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::io;

/// Records per part file, as tastypy writes them.
pub const PART_SIZE: usize = 1000;

/// The tastypod key of a tastypy key as it is on disk: a string key as it
/// is, any other key (an integer, a tuple) as its compact JSON text.
pub fn decode_key(serialized: &str) -> Result<String, String> {
    let tabs = unescape_tabs(serialized);
    let unescaped = unescape_slashes(&tabs);
    let key: Value = serde_json::from_str(&unescaped)
        .map_err(|e| format!("the key {serialized} is not a tastypy key: {e}"))?;
    match key {
        Value::String(s) => Ok(s),
        _ => compact(&unescaped)
            .map_err(|e| format!("the key {serialized} is not a tastypy key: {e}")),
    }
}

/// The valid JSON text `text` without whitespace and with its strings
/// written as serde_json writes them (which is `Value`'s compact form),
/// but its numbers as they are: an integer key beyond 64 bits keeps every
/// digit, where a `Value` would round it to an `f64`.
fn compact(text: &str) -> Result<String, serde_json::Error> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let mut end = i + 1;
                while end < b.len() && b[end] != b'"' {
                    end += if b[end] == b'\\' { 2 } else { 1 };
                }
                let string = text.get(i..=end).unwrap_or(&text[i..]);
                let s: String = serde_json::from_str(string)?;
                out.push_str(&serde_json::to_string(&s)?);
                i = end + 1;
            }
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            _ => {
                // Copy up to the next quote or whitespace (ASCII, so always
                // a character boundary).
                let end = b[i..]
                    .iter()
                    .position(|c| matches!(c, b'"' | b' ' | b'\t' | b'\n' | b'\r'))
                    .map_or(b.len(), |n| i + n);
                out.push_str(&text[i..end]);
                i = end;
            }
        }
    }
    Ok(out)
}

/// tastypy's `_UNESCAPE_TAB_PATTERN`: `(^|[^\\])\\t` becomes the prefix
/// and a tab, left to right without overlaps (as `re.sub` does).
fn unescape_tabs(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    if !s.contains("\\t") {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if i == 0 && b.starts_with(b"\\t") {
            out.push(b'\t');
            i = 2;
        } else if b[i] != b'\\' && b[i + 1..].starts_with(b"\\t") {
            out.extend_from_slice(&[b[i], b'\t']);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    // Only ASCII bytes were replaced, so the text is still UTF-8.
    Cow::Owned(String::from_utf8(out).unwrap_or_else(|_| s.to_string()))
}

/// tastypy's `_UNESCAPE_SLASH_PATTERN`: every `\\` becomes `\`.
fn unescape_slashes(s: &str) -> Cow<'_, str> {
    if s.contains("\\\\") {
        Cow::Owned(s.replace("\\\\", "\\"))
    } else {
        Cow::Borrowed(s)
    }
}

/// A tastypod key as tastypy writes a string key.
pub fn encode_key(key: &str) -> String {
    dumps(&Value::String(key.to_string()))
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
}

/// `value` as Python's `json.dumps` writes it: `", "` and `": "` between
/// items, every character outside printable ASCII as `\uXXXX`.
pub fn dumps(value: &Value) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    // Writing a Value into memory cannot fail.
    let _ = value.serialize(&mut ser);
    String::from_utf8(out).unwrap_or_default()
}

struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for c in fragment.chars() {
            if (' '..='~').contains(&c) {
                w.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// `text` (a Python `json.dumps` value) with `NaN`, `Infinity` and
/// `-Infinity` outside strings replaced by `null`, and how many were
/// replaced; `Err` with the first one if `replace` is false.
pub fn finite_only(text: &str, replace: bool) -> Result<(Cow<'_, str>, usize), &'static str> {
    const WORDS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];
    if !WORDS.iter().any(|w| text.contains(w)) {
        return Ok((Cow::Borrowed(text), 0));
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut replaced = 0;
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if let Some(word) = WORDS.iter().find(|w| b[i..].starts_with(w.as_bytes())) {
            if !replace {
                return Err(word);
            }
            out.push_str(&text[copied..i]);
            out.push_str("null");
            i += word.len();
            copied = i;
            replaced += 1;
            continue;
        }
        i += 1;
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    Ok((Cow::Owned(out), replaced))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_as_tastypy_reads_them() {
        for (line_key, key) in [
            (r#""yo""#, "yo"),
            (r#"[1, 1]"#, "[1,1]"),
            (r#""caf\\u00e9""#, "café"),
            (r#""C:\\\\temp\\\\new""#, r"C:\temp\new"),
            (r#""say \\"hi\\"""#, r#"say "hi""#),
            ("7", "7"),
            (r#"["a", [2, "b"]]"#, r#"["a",[2,"b"]]"#),
            (r#""tab\\there""#, "tab\there"),
            // Integers beyond 64 bits keep every digit (a Value would round them).
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            (
                r#"[1, 1180591620717411303424]"#,
                "[1,1180591620717411303424]",
            ),
            (r#"["caf\\u00e9 \\" x", 1]"#, r#"["café \" x",1]"#),
            ("[true, null]", "[true,null]"),
        ] {
            assert_eq!(decode_key(line_key).unwrap(), key, "{line_key}");
        }
    }

    #[test]
    fn keys_round_trip_through_tastypy_encoding() {
        for key in [
            "yo",
            "café",
            r"C:\temp\new",
            "say \"hi\"",
            "tab\there",
            "\u{1F600}",
            "\\t",
        ] {
            assert_eq!(decode_key(&encode_key(key)).unwrap(), key, "{key}");
        }
        assert_eq!(encode_key("café"), r#""caf\\u00e9""#);
        assert_eq!(encode_key(r"C:\temp"), r#""C:\\\\temp""#);
    }

    #[test]
    fn values_are_written_as_python_writes_them() {
        let v: Value = serde_json::json!({"b": [1, 2.5, "été"], "a": {"q": "\"x\"\n"}});
        assert_eq!(
            dumps(&v),
            r#"{"a": {"q": "\"x\"\n"}, "b": [1, 2.5, "\u00e9t\u00e9"]}"#
        );
        assert_eq!(
            dumps(&Value::String("\u{1F600}".into())),
            r#""\ud83d\ude00""#
        );
    }

    #[test]
    fn non_finite_numbers_are_found_outside_strings() {
        let text = r#"{"a": NaN, "b": "NaN", "c": [-Infinity, Infinity]}"#;
        assert_eq!(finite_only(text, false), Err("NaN"));
        let (fixed, n) = finite_only(text, true).unwrap();
        assert_eq!(fixed, r#"{"a": null, "b": "NaN", "c": [null, null]}"#);
        assert_eq!(n, 3);
        assert_eq!(finite_only(r#"{"s": "Infinity"}"#, false).unwrap().1, 0);
    }
}

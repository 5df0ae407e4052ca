//! What counts as a value: exactly one JSON value that serde_json reads
//! back into a `serde_json::Value` unchanged in meaning, nested at most
//! [`MAX_DEPTH`] deep. The same rule is applied to every value text read
//! from a log (replay, catch-up, `verify`) and to every value written
//! ([`encode`]), so what a store hands out always parses, and what `verify`
//! passes always survives `tastypod dump | tastypod load`.
//!
//! Checking uses serde_json's own parser (a visitor that keeps nothing), so
//! it refuses exactly what serde_json refuses when reading a `Value`:
//! trailing bytes (`1,"evil":2`), numbers out of range (`1e400`), lone
//! surrogates (`"\ud800"`), invalid UTF-8, raw control characters. On top
//! of that it refuses numbers a `Value` would not keep exactly ([`exact`]):
//! an integer beyond 64 bits, `-0`, a decimal with more digits than an
//! `f64` holds; and an object that gives one member twice (serde_json
//! would keep the last silently, a reader that stops at the first would
//! disagree).

mod exact;
mod finite;
mod quick;

use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser;
use std::fmt;
use std::io;

/// How deeply arrays and objects may nest in a value. serde_json reads at
/// most 127 levels; a dump line (`{"key":..,"value":..}`) adds one.
pub const MAX_DEPTH: u32 = 126;

/// Checks that `text` is exactly one JSON value under the rules above.
///
/// Most values pass a quick scan ([`quick::certainly_valid`]) that accepts
/// only plain values serde_json certainly accepts; the rest go through
/// serde_json itself, which decides.
///
/// # Errors
///
/// The parser's message (with its line and column in `text`).
pub(crate) fn check(text: &[u8]) -> Result<(), serde_json::Error> {
    if quick::certainly_valid(text) {
        return Ok(());
    }
    check_with_serde(text)
}

/// Whether the quick scan agrees with serde_json on `text`: it does not
/// accept it, or serde_json does too (for the fuzzers).
#[cfg(feature = "sim")]
pub(crate) fn quick_is_sound(text: &[u8]) -> bool {
    !quick::certainly_valid(text) || check_with_serde(text).is_ok()
}

/// [`check`] by serde_json alone.
pub(crate) fn check_with_serde(text: &[u8]) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(text);
    Check { depth: 0 }.deserialize(&mut de)?;
    de.end()?;
    match exact::first_inexact(text) {
        None => Ok(()),
        Some((number, kept)) => Err(de::Error::custom(format_args!(
            "the number {number} cannot be kept exactly (it would become {kept})"
        ))),
    }
}

/// A visitor that accepts any JSON value, counting nesting depth.
#[derive(Clone, Copy)]
struct Check {
    depth: u32,
}

impl Check {
    fn nested<E: de::Error>(self) -> Result<Check, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!(
                "arrays and objects nest more than {MAX_DEPTH} deep"
            )));
        }
        Ok(Check {
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Check {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        // A member given twice: serde_json keeps the last, a reader that
        // stops at the first (the tracker's quick read) would disagree.
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format_args!(
                    "the member {key:?} is given twice in one object"
                )));
            }
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

/// Writes `value` as compact JSON into `out`, refusing what [`check`] would
/// refuse: nesting deeper than [`MAX_DEPTH`], and raw JSON fragments
/// (`serde_json::value::RawValue`) that are not valid values; and a NaN or
/// an infinity, which serde_json would write as `null`.
///
/// # Errors
///
/// serde_json's error for a value it cannot encode (a map with non-string
/// keys, say), or one naming the rule broken.
pub(crate) fn encode<V: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &V,
) -> Result<(), serde_json::Error> {
    let start = out.len();
    let nulls = std::cell::Cell::new(false);
    let objects = std::cell::Cell::new(false);
    let formatter = Limited {
        depth: 0,
        nulls: &nulls,
        objects: &objects,
    };
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, formatter);
    value.serialize(&mut ser)?;
    // serde_json writes a NaN or an infinity as `null`; look for one only
    // when a `null` was written.
    if nulls.get() {
        finite::first_non_finite(value).map_err(ser::Error::custom)?;
    }
    // A `Serialize` can write one member twice (`#[serde(flatten)]` over a
    // map holding a field's name): look only when an object was written.
    if objects.get() {
        check(out.get(start..).unwrap_or_default())?;
    }
    Ok(())
}

/// Checks that `json` is a value a store keeps, by the rules every stored
/// value follows (those of [`Pod::insert_json`](crate::Pod::insert_json),
/// `tastypod set` and `load`, and of every record read from a log): one
/// JSON value, nested at most [`MAX_DEPTH`] deep, no member given twice in
/// an object, and every number kept exactly (an integer beyond 64 bits,
/// `-0`, or a decimal with more digits than an `f64` holds is refused
/// rather than changed). Changes nothing: check a value before creating a
/// store for it.
///
/// # Errors
///
/// [`ErrorKind::InvalidValue`](crate::ErrorKind::InvalidValue) naming
/// `key` and the rule broken.
///
/// # Examples
///
/// ```
/// assert!(tastypod::check_json("k", r#"{"a":[1,2.5]}"#).is_ok());
/// assert!(tastypod::check_json("k", r#"{"a":1,"a":2}"#).is_err());
/// assert!(tastypod::check_json("k", "200000000000000000000").is_err());
/// ```
pub fn check_json(key: &str, json: &str) -> crate::Result<()> {
    check(json.as_bytes()).map_err(|e| {
        crate::ErrorKind::InvalidValue {
            key: key.to_string(),
            reason: format!("not one valid JSON value: {e}"),
        }
        .into()
    })
}

/// serde_json's compact formatter, counting depth and noting nulls and
/// objects.
struct Limited<'a> {
    depth: u32,
    nulls: &'a std::cell::Cell<bool>,
    objects: &'a std::cell::Cell<bool>,
}

impl Limited<'_> {
    fn enter(&mut self) -> io::Result<()> {
        if self.depth >= MAX_DEPTH {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("arrays and objects nest more than {MAX_DEPTH} deep"),
            ));
        }
        self.depth += 1;
        Ok(())
    }
}

impl serde_json::ser::Formatter for Limited<'_> {
    fn write_null<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.nulls.set(true);
        w.write_all(b"null")
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.enter()?;
        w.write_all(b"[")
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        w.write_all(b"]")
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.objects.set(true);
        self.enter()?;
        w.write_all(b"{")
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        w.write_all(b"}")
    }

    fn write_raw_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // A raw fragment nests inside what is already open.
        let mut de = serde_json::Deserializer::from_str(fragment);
        Check { depth: self.depth }
            .deserialize(&mut de)
            .and_then(|()| de.end())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if let Some((number, kept)) = exact::first_inexact(fragment.as_bytes()) {
            return Err(inexact(&number, &kept));
        }
        w.write_all(fragment.as_bytes())
    }

    fn write_u128<W: ?Sized + io::Write>(&mut self, w: &mut W, value: u128) -> io::Result<()> {
        match u64::try_from(value) {
            Ok(small) => self.write_u64(w, small),
            Err(_) => Err(inexact(&value.to_string(), "a 64-bit number")),
        }
    }

    fn write_i128<W: ?Sized + io::Write>(&mut self, w: &mut W, value: i128) -> io::Result<()> {
        match i64::try_from(value) {
            Ok(small) => self.write_i64(w, small),
            Err(_) => Err(inexact(&value.to_string(), "a 64-bit number")),
        }
    }
}

/// The error for a number that a `Value` would not keep exactly.
fn inexact(number: &str, kept: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the number {number} cannot be kept exactly (it would become {kept})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn check_refuses_what_a_value_parse_refuses() {
        for bad in [
            &b"1,\"evil\":2"[..],
            b"1e400",
            b"\"\\ud800\"",
            b"\"\xff\"",
            b"\"a\x01\"",
            b"",
            b" ",
            b"[1,]",
            b"{\"a\":1,}",
            b"nul",
            b"01",
        ] {
            assert!(check(bad).is_err(), "{}", String::from_utf8_lossy(bad));
            assert!(serde_json::from_slice::<Value>(bad).is_err());
        }
        // A Value would read these, but not as the same number.
        for changed in [
            &b"123456789012345678901234567890"[..],
            b"[0.1000000000000000055511151231257827]",
            b"1e-400",
        ] {
            let err = check(changed).unwrap_err().to_string();
            assert!(err.contains("cannot be kept exactly"), "{err}");
        }
        for good in [
            &b"1"[..],
            b" [1, 2] ",
            b"{\"a\":{\"b\":[null,true,-0.5e-3]}}",
            b"\"\\ud83d\\ude00\"",
            b"9223372036854775807",
            b"0.1",
        ] {
            assert!(check(good).is_ok(), "{}", String::from_utf8_lossy(good));
        }
    }

    #[test]
    fn nesting_is_limited_so_a_dump_line_still_parses() {
        let ok = nested(MAX_DEPTH as usize);
        assert!(check(ok.as_bytes()).is_ok());
        let line = format!("{{\"key\":\"k\",\"value\":{ok}}}");
        assert!(serde_json::from_str::<Value>(&line).is_ok());
        assert!(check(nested(MAX_DEPTH as usize + 1).as_bytes()).is_err());
        let deep: Value = serde_json::from_str(&nested(MAX_DEPTH as usize + 1)).unwrap();
        let mut out = Vec::new();
        assert!(encode(&mut out, &deep).is_err());
        let fine: Value = serde_json::from_str(&ok).unwrap();
        out.clear();
        encode(&mut out, &fine).unwrap();
        assert_eq!(out, ok.as_bytes());
    }

    #[test]
    fn encode_writes_what_serde_json_writes() {
        let v: Value = serde_json::json!({"b": [1, 2.5, "x\n"], "a": null});
        let mut out = Vec::new();
        encode(&mut out, &v).unwrap();
        assert_eq!(out, serde_json::to_vec(&v).unwrap());
    }

    #[test]
    fn numbers_beyond_64_bits_are_never_written() {
        let mut out = Vec::new();
        assert!(encode(&mut out, &(u128::from(u64::MAX) + 1)).is_err());
        assert!(encode(&mut out, &(i128::from(i64::MIN) - 1)).is_err());
        out.clear();
        encode(&mut out, &u128::from(u64::MAX)).unwrap();
        assert_eq!(out, b"18446744073709551615");
        let raw =
            serde_json::value::RawValue::from_string("[18446744073709551616]".into()).unwrap();
        assert!(encode(&mut out, &raw).is_err());
    }

    #[test]
    fn nan_and_infinity_are_refused_not_written_as_null() {
        let mut out = Vec::new();
        let err = encode(&mut out, &vec![Some(1.0), None, Some(f64::NAN)]).unwrap_err();
        assert!(err.to_string().contains("NaN has no JSON form"), "{err}");
        out.clear();
        assert!(encode(&mut out, &f32::INFINITY).is_err());
        out.clear();
        encode(&mut out, &vec![Some(1.0), None]).unwrap();
        assert_eq!(out, b"[1.0,null]");
    }

    #[test]
    fn raw_fragments_are_checked() {
        let raw = serde_json::value::RawValue::from_string("1e400".into()).unwrap();
        let mut out = Vec::new();
        assert!(encode(&mut out, &raw).is_err());
        let raw = serde_json::value::RawValue::from_string("[1, 2]".into()).unwrap();
        out.clear();
        encode(&mut out, &raw).unwrap();
        assert_eq!(out, b"[1, 2]");
    }
}

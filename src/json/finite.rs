//! Finding a NaN or an infinity in a value before it is stored: serde_json
//! writes them as `null`, which would change the number silently (and make
//! the record unreadable as the float it was). [`super::encode`] runs this
//! walk only when serde_json wrote a `null`, so plain values pay nothing.

use serde::ser::{self, Serialize};
use std::fmt;

/// The non-finite number found, as text (`NaN`, `inf`, `-inf`).
#[derive(Debug)]
pub(crate) struct NonFinite(pub(crate) String);

impl fmt::Display for NonFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the number {} has no JSON form (serde_json would write null)",
            self.0
        )
    }
}

impl std::error::Error for NonFinite {}

impl ser::Error for NonFinite {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        NonFinite(msg.to_string())
    }
}

/// `Err` with the first NaN or infinity in `value`. An error `value`'s own
/// `Serialize` raises is not this walk's to report (the encoding that ran
/// before it has already succeeded), so it counts as finite.
pub(crate) fn first_non_finite<V: Serialize + ?Sized>(value: &V) -> Result<(), NonFinite> {
    match value.serialize(Walk) {
        Err(NonFinite(found)) if found.starts_with(MARK) => {
            Err(NonFinite(found[MARK.len()..].to_string()))
        }
        _ => Ok(()),
    }
}

/// Marks the errors this walk raises, apart from any `custom` ones.
const MARK: &str = "\u{0}non-finite:";

fn check(float: f64) -> Result<(), NonFinite> {
    if float.is_finite() {
        Ok(())
    } else {
        Err(NonFinite(format!("{MARK}{float}")))
    }
}

/// A serializer that writes nothing and only looks at floats.
#[derive(Clone, Copy)]
struct Walk;

impl ser::Serializer for Walk {
    type Ok = ();
    type Error = NonFinite;
    type SerializeSeq = Walk;
    type SerializeTuple = Walk;
    type SerializeTupleStruct = Walk;
    type SerializeTupleVariant = Walk;
    type SerializeMap = Walk;
    type SerializeStruct = Walk;
    type SerializeStructVariant = Walk;

    fn serialize_f32(self, v: f32) -> Result<(), NonFinite> {
        check(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), NonFinite> {
        check(v)
    }
    fn serialize_bool(self, _: bool) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_i8(self, _: i8) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_i16(self, _: i16) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_i32(self, _: i32) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_i64(self, _: i64) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_i128(self, _: i128) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_u8(self, _: u8) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_u16(self, _: u16) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_u32(self, _: u32) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_u64(self, _: u64) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_u128(self, _: u128) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_char(self, _: char) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_str(self, _: &str) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_none(self) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), NonFinite> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), NonFinite> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), NonFinite> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        v: &T,
    ) -> Result<(), NonFinite> {
        v.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Walk, NonFinite> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Walk, NonFinite> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Walk, NonFinite> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Walk, NonFinite> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Walk, NonFinite> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Walk, NonFinite> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Walk, NonFinite> {
        Ok(self)
    }
}

/// Every compound form walks its elements the same way.
macro_rules! walk_elements {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Walk {
            type Ok = ();
            type Error = NonFinite;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), NonFinite> {
                v.serialize(*self)
            }
            fn end(self) -> Result<(), NonFinite> {
                Ok(())
            }
        }
    )*};
}

walk_elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Walk {
    type Ok = ();
    type Error = NonFinite;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), NonFinite> {
        k.serialize(*self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), NonFinite> {
        v.serialize(*self)
    }
    fn end(self) -> Result<(), NonFinite> {
        Ok(())
    }
}

impl ser::SerializeStruct for Walk {
    type Ok = ();
    type Error = NonFinite;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        v: &T,
    ) -> Result<(), NonFinite> {
        v.serialize(*self)
    }
    fn end(self) -> Result<(), NonFinite> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for Walk {
    type Ok = ();
    type Error = NonFinite;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        v: &T,
    ) -> Result<(), NonFinite> {
        v.serialize(*self)
    }
    fn end(self) -> Result<(), NonFinite> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    struct Reading {
        name: &'static str,
        values: Vec<Option<f32>>,
        by_hour: BTreeMap<u8, f64>,
    }

    #[test]
    fn a_nan_or_infinity_anywhere_is_found() {
        let mut by_hour = BTreeMap::new();
        by_hour.insert(3, 1.5);
        let fine = Reading {
            name: "a",
            values: vec![None, Some(2.0)],
            by_hour: by_hour.clone(),
        };
        assert!(first_non_finite(&fine).is_ok());
        let nested = Reading {
            values: vec![None, Some(f32::INFINITY)],
            ..fine
        };
        assert_eq!(first_non_finite(&nested).unwrap_err().0, "inf");
        by_hour.insert(4, f64::NAN);
        let in_map = Reading {
            name: "b",
            values: vec![],
            by_hour,
        };
        assert_eq!(first_non_finite(&in_map).unwrap_err().0, "NaN");
        assert_eq!(first_non_finite(&f64::NEG_INFINITY).unwrap_err().0, "-inf");
        assert!(first_non_finite(&serde_json::json!({"a": null})).is_ok());
    }
}

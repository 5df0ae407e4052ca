//! Finding a NaN or an infinity in a value before it is stored: serde_json
//! writes them as `null`, which would change the number silently (and make
//! the record unreadable as the float it was). [`super::encode`] runs this
//! walk only when serde_json wrote a `null`, so plain values pay nothing.

use serde::ser::{self, Serialize};
use std::fmt;

/// The non-finite number found.
#[derive(Debug)]
pub(crate) struct NonFinite(pub(crate) f64);

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

/// What stops the walk: a non-finite number, or an error `value`'s own
/// `Serialize` raised.
#[derive(Debug)]
enum Stop {
    NonFinite(f64),
    Custom,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop::Custom
    }
}

/// `Err` with the first NaN or infinity in `value`. An error `value`'s own
/// `Serialize` raises is not this walk's to report (the encoding that ran
/// before it has already succeeded), so it counts as finite.
pub(crate) fn first_non_finite<V: Serialize + ?Sized>(value: &V) -> Result<(), NonFinite> {
    match value.serialize(Walk) {
        Err(Stop::NonFinite(found)) => Err(NonFinite(found)),
        _ => Ok(()),
    }
}

fn check(float: f64) -> Result<(), Stop> {
    if float.is_finite() {
        Ok(())
    } else {
        Err(Stop::NonFinite(float))
    }
}

/// Methods that accept any value of their type (only floats matter).
macro_rules! ignore {
    ($($method:ident: $t:ty),*) => {$(
        fn $method(self, _: $t) -> Result<(), Stop> {
            Ok(())
        }
    )*};
}

/// A serializer that writes nothing and only looks at floats.
#[derive(Clone, Copy)]
struct Walk;

impl ser::Serializer for Walk {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Walk;
    type SerializeTuple = Walk;
    type SerializeTupleStruct = Walk;
    type SerializeTupleVariant = Walk;
    type SerializeMap = Walk;
    type SerializeStruct = Walk;
    type SerializeStructVariant = Walk;

    fn serialize_f32(self, v: f32) -> Result<(), Stop> {
        check(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Stop> {
        check(v)
    }
    ignore!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_char: char,
        serialize_str: &str, serialize_bytes: &[u8]
    );
    fn serialize_none(self) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Stop> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Stop> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        v: &T,
    ) -> Result<(), Stop> {
        v.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Walk, Stop> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Walk, Stop> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Walk, Stop> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Walk, Stop> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Walk, Stop> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Walk, Stop> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Walk, Stop> {
        Ok(self)
    }
}

/// Every compound form walks its elements the same way.
macro_rules! walk_elements {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Walk {
            type Ok = ();
            type Error = Stop;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Stop> {
                v.serialize(*self)
            }
            fn end(self) -> Result<(), Stop> {
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
    type Error = Stop;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Stop> {
        k.serialize(*self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Stop> {
        v.serialize(*self)
    }
    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

/// Struct forms walk their fields' values (the names are fixed strings).
macro_rules! walk_fields {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Walk {
            type Ok = ();
            type Error = Stop;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                _: &'static str,
                v: &T,
            ) -> Result<(), Stop> {
                v.serialize(*self)
            }
            fn end(self) -> Result<(), Stop> {
                Ok(())
            }
        }
    )*};
}

walk_fields!(SerializeStruct, SerializeStructVariant);

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
        assert_eq!(first_non_finite(&nested).unwrap_err().0, f64::INFINITY);
        by_hour.insert(4, f64::NAN);
        let in_map = Reading {
            name: "b",
            values: vec![],
            by_hour,
        };
        assert!(first_non_finite(&in_map).unwrap_err().0.is_nan());
        assert_eq!(
            first_non_finite(&f64::NEG_INFINITY).unwrap_err().0,
            f64::NEG_INFINITY
        );
        assert!(first_non_finite(&serde_json::json!({"a": null})).is_ok());
    }
}

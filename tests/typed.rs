//! Invariant: `Pod<V>` stores any serde type; a record that does not decode
//! into `V` is an error naming the key and line, never a panic or a silent
//! default.

mod common;
use common::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tastypod::{ErrorKind, Pod};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Task {
    url: String,
    retries: u32,
    tags: Vec<String>,
}

#[test]
fn typed_values_round_trip() {
    let s = scratch();
    let mut pod: Pod<Task> = Pod::open_typed(&s.path).unwrap();
    let t = Task {
        url: "https://x".into(),
        retries: 2,
        tags: vec!["a".into()],
    };
    pod.insert("t1", t.clone()).unwrap();
    pod.update("t1", |t| t.retries += 1).unwrap();
    pod.close().unwrap();
    let pod: Pod<Task> = Pod::open_typed(&s.path).unwrap();
    assert_eq!(pod.get("t1").unwrap(), Some(Task { retries: 3, ..t }));
}

#[test]
fn record_of_the_wrong_shape_names_key_and_line() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("good", json!({"url": "u", "retries": 0, "tags": []}))
        .unwrap();
    pod.insert("bad", json!({"url": 5})).unwrap();
    pod.close().unwrap();
    let mut pod: Pod<Task> = Pod::open_typed(&s.path).unwrap();
    assert!(pod.get("good").unwrap().is_some());
    let err = pod.get("bad").unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Decode { .. }));
    assert_eq!(err.key(), Some("bad"));
    assert_eq!(err.line(), Some(4), "header, batch line, good, bad");
    assert!(err.to_string().contains("\"bad\""));
    assert!(pod.get_mut("bad").is_err());
    assert_eq!(pod.iter().filter(|r| r.is_err()).count(), 1);
}

#[test]
fn scalar_and_string_types_work() {
    let s = scratch();
    let mut pod: Pod<u64> = Pod::open_typed(&s.path).unwrap();
    pod.insert("n", 41).unwrap();
    *pod.get_mut("n").unwrap().unwrap() += 1;
    pod.close().unwrap();
    let pod: Pod<u64> = Pod::open_typed(&s.path).unwrap();
    assert_eq!(pod.get("n").unwrap(), Some(42));
    assert_eq!(pod.get_json("n").unwrap().as_deref(), Some("42"));
}

/// A value whose encoding panics when `boom` is set: the caller's own code
/// running inside `insert` and `sync`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
struct Bomb {
    n: u32,
    #[serde(default)]
    boom: bool,
}

impl serde::Serialize for Bomb {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Bomb", 1)?;
        st.serialize_field("n", &self.n)?;
        assert!(!self.boom, "boom");
        st.end()
    }
}

fn bomb(n: u32) -> Bomb {
    Bomb { n, boom: false }
}

#[test]
fn a_value_whose_encoding_panics_leaves_nothing_half_written() {
    let s = scratch();
    let mut pod: Pod<Bomb> = Pod::open_typed(&s.path).unwrap();
    pod.insert("x", bomb(1)).unwrap();
    pod.insert("y", bomb(2)).unwrap();
    pod.sync().unwrap();
    pod.insert("a", bomb(3)).unwrap();
    pod.get_mut("x").unwrap().unwrap().n = 10;
    // Panics half way through encoding, inside `insert`.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pod.insert("b", Bomb { n: 4, boom: true })
    }));
    assert!(caught.is_err());
    // A value changed in place panics inside `sync`.
    pod.get_mut("y").unwrap().unwrap().boom = true;
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pod.sync()));
    assert!(caught.is_err());
    pod.get_mut("y").unwrap().unwrap().boom = false;
    pod.insert("c", bomb(5)).unwrap();
    pod.close().unwrap();
    let pod: Pod<Bomb> = Pod::open_typed(&s.path).unwrap();
    assert!(pod.recovery().is_clean(), "{:?}", pod.recovery());
    let got: Vec<(String, u32)> = pod
        .iter()
        .map(|e| e.map(|(k, v)| (k.to_string(), v.n)))
        .collect::<Result<_, _>>()
        .unwrap();
    let want = [("x", 10), ("y", 2), ("a", 3), ("c", 5)];
    let want: Vec<(String, u32)> = want.iter().map(|&(k, n)| (k.to_string(), n)).collect();
    assert_eq!(got, want);
}

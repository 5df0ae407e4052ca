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
    let mut pod: Pod<Task> = Pod::open(&s.path).unwrap();
    let t = Task {
        url: "https://x".into(),
        retries: 2,
        tags: vec!["a".into()],
    };
    pod.insert("t1", t.clone()).unwrap();
    pod.update("t1", |t| t.retries += 1).unwrap();
    pod.close().unwrap();
    let pod: Pod<Task> = Pod::open(&s.path).unwrap();
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
    let mut pod: Pod<Task> = Pod::open(&s.path).unwrap();
    assert!(pod.get("good").unwrap().is_some());
    let err = pod.get("bad").unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Decode { .. }));
    assert_eq!(err.key(), Some("bad"));
    assert_eq!(err.line(), Some(3));
    assert!(err.to_string().contains("\"bad\""));
    assert!(pod.get_mut("bad").is_err());
    assert_eq!(pod.iter().filter(|r| r.is_err()).count(), 1);
}

#[test]
fn scalar_and_string_types_work() {
    let s = scratch();
    let mut pod: Pod<u64> = Pod::open(&s.path).unwrap();
    pod.insert("n", 41).unwrap();
    *pod.get_mut("n").unwrap().unwrap() += 1;
    pod.close().unwrap();
    let pod: Pod<u64> = Pod::open(&s.path).unwrap();
    assert_eq!(pod.get("n").unwrap(), Some(42));
    assert_eq!(pod.get_json("n").unwrap().as_deref(), Some("42"));
}

//! Invariant: a read-only open never creates, modifies or locks a file, and
//! refuses every write with a ReadOnly error.

mod common;
use common::*;
use serde_json::json;
use tastypod::{ErrorKind, Pod, PodOptions};

#[test]
fn read_only_open_of_a_missing_store_fails_and_creates_nothing() {
    let s = scratch();
    let err = PodOptions::new()
        .read_only(true)
        .open::<serde_json::Value>(&s.path)
        .unwrap_err();
    assert!(err.is_io());
    assert!(!s.path.exists());
}

#[test]
fn read_only_handle_refuses_writes_and_leaves_files_alone() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("a", json!(1)).unwrap();
    pod.close().unwrap();
    let before = log_bytes(&s.path);
    let mut ro: Pod = open_ro(&s.path);
    assert!(ro.is_read_only());
    for err in [
        ro.insert("b", json!(2)).unwrap_err(),
        ro.remove("a").unwrap_err(),
        ro.sync().unwrap_err(),
        ro.compact().unwrap_err(),
        ro.get_mut("a").unwrap_err(),
    ] {
        assert!(matches!(err.kind(), ErrorKind::ReadOnly { .. }), "{err}");
    }
    assert_eq!(ro.get("a").unwrap(), Some(json!(1)));
    ro.revert().unwrap();
    drop(ro);
    assert_eq!(log_bytes(&s.path), before);
}

#[test]
fn many_readers_and_one_writer_coexist() {
    let s = scratch();
    let mut w = open(&s.path);
    w.insert("a", json!(1)).unwrap();
    w.sync().unwrap();
    let r1 = open_ro(&s.path);
    let mut r2 = open_ro(&s.path);
    w.insert("b", json!(2)).unwrap();
    w.sync().unwrap();
    assert_eq!(r1.len(), 1);
    r2.revert().unwrap();
    assert_eq!(r2.len(), 2);
}

#[test]
fn a_read_only_open_neither_completes_nor_cuts_the_last_line() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("a", json!(1)).unwrap();
    pod.close().unwrap();
    for tail in [&b""[..], b"\0\0\0"] {
        let mut bytes = log_bytes(&s.path);
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        bytes.truncate(bytes.iter().rposition(|&b| b == b'}').unwrap() + 1);
        bytes.extend_from_slice(tail);
        std::fs::write(log_of(&s.path), &bytes).unwrap();
        let pod = open_ro(&s.path);
        assert_eq!(pod.get("a").unwrap(), Some(json!(1)));
        drop(pod);
        assert_eq!(
            log_bytes(&s.path),
            bytes,
            "a read-only open changed the log"
        );
    }
}

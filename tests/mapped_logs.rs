//! Invariant: a writable open maps its log and reads value texts in place,
//! and what any handle reads is always the value of the record it
//! replayed, whatever other handles do to the file meanwhile: a writer
//! cutting a torn tail and writing over it, another process compacting
//! (renaming a new log over the mapped one), this handle compacting, a log
//! that grew between the map and the read. Nothing crashes and no value
//! changes (DESIGN.md, "Mapped logs").

mod common;
use common::*;
use serde_json::{Value, json};
use std::io::Write;
use tastypod::{Pod, PodOptions};

fn value(i: usize) -> Value {
    json!({"n": i, "text": format!("value number {i} {}", "x".repeat(i % 50))})
}

/// A handle on `path` in the multi-process mode (it maps the log too).
fn open_multi(path: &std::path::Path) -> Pod {
    PodOptions::new().multi_process(true).open(path).unwrap()
}

fn filled(path: &std::path::Path, n: usize) {
    let mut pod = open(path);
    for i in 0..n {
        pod.insert(&format!("k{i}"), value(i)).unwrap();
    }
    // A key with escapes, whose decoded bytes differ from the line's.
    pod.insert("tab\there \"quoted\" \u{e9}", json!("escaped"))
        .unwrap();
    pod.close().unwrap();
}

fn assert_values(pod: &Pod, n: usize) {
    for i in 0..n {
        assert_eq!(pod.get(&format!("k{i}")).unwrap(), Some(value(i)), "k{i}");
    }
    assert_eq!(
        pod.get("tab\there \"quoted\" \u{e9}").unwrap(),
        Some(json!("escaped"))
    );
    let keys: Vec<String> = pod.keys().map(String::from).collect();
    assert_eq!(keys.len(), n + 1);
    assert_eq!(keys[0], "k0");
}

#[test]
fn a_torn_tail_cut_and_written_over_by_a_writer_changes_no_value_a_reader_holds() {
    let s = scratch();
    filled(&s.path, 3000);
    // A torn tail: half a record, as a crash leaves it.
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(log_of(&s.path))
        .unwrap();
    log.write_all(br#"{"c":"00000000","k":"torn","v":{"half"#)
        .unwrap();
    drop(log);
    // A read-only handle maps the log, torn tail and all.
    let reader = open_ro(&s.path);
    assert_values(&reader, 3000);
    // A writer cuts the tail and writes new records where it was.
    let mut writer = open(&s.path);
    assert!(writer.recovery().torn_tail.is_some());
    for i in 0..200 {
        writer
            .insert(&format!("new{i}"), json!("written over the torn tail"))
            .unwrap();
    }
    writer.close().unwrap();
    // The reader still reads exactly what it replayed.
    assert_values(&reader, 3000);
    assert_eq!(reader.get("new0").unwrap(), None);
}

#[test]
fn a_torn_tail_cut_and_written_over_under_a_mapped_writer_changes_none_of_its_values() {
    let s = scratch();
    filled(&s.path, 3000);
    // A writer in the multi-process mode maps the log.
    let mut mapped = open_multi(&s.path);
    assert_values(&mapped, 3000);
    // Another process dies half-way through an append...
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(log_of(&s.path))
        .unwrap();
    log.write_all(br#"{"c":"00000000","k":"torn","v":{"half"#)
        .unwrap();
    drop(log);
    // ...and a third one opens, cuts the torn tail and writes over it.
    let mut third = open_multi(&s.path);
    assert!(third.recovery().torn_tail.is_some());
    for i in 0..200 {
        third
            .insert(&format!("new{i}"), json!("written over the torn tail"))
            .unwrap();
    }
    third.close().unwrap();
    assert_values(&mapped, 3000);
    mapped.refresh().unwrap();
    assert_eq!(
        mapped.get("new0").unwrap(),
        Some(json!("written over the torn tail"))
    );
    for i in 0..3000 {
        assert_eq!(mapped.get(&format!("k{i}")).unwrap(), Some(value(i)));
    }
}

#[test]
fn another_process_compacting_leaves_a_mapped_handle_its_values() {
    let s = scratch();
    filled(&s.path, 2000);
    let mut first = open_multi(&s.path);
    let mut second = open_multi(&s.path);
    // Dead records, then a compaction by the second handle: a new log is
    // renamed over the one the first handle mapped.
    for i in 0..1000 {
        second.insert(&format!("k{i}"), value(i)).unwrap();
    }
    second.compact().unwrap();
    assert_values(&first, 2000);
    // The first handle takes the new log in and still reads right.
    first.refresh().unwrap();
    assert_values(&first, 2000);
    first.insert("after", json!(1)).unwrap();
    first.sync().unwrap();
    second.refresh().unwrap();
    assert_eq!(second.get("after").unwrap(), Some(json!(1)));
}

#[test]
fn a_handle_compacting_and_changing_its_mapped_values_reads_them_right() {
    let s = scratch();
    filled(&s.path, 2000);
    let mut pod = open(&s.path);
    assert_values(&pod, 2000);
    for i in (0..2000).step_by(3) {
        pod.update(&format!("k{i}"), |v| v["n"] = json!(i + 1))
            .unwrap();
    }
    pod.compact().unwrap();
    for i in 0..2000 {
        let expected = if i % 3 == 0 { i + 1 } else { i };
        assert_eq!(
            pod.get(&format!("k{i}")).unwrap().unwrap()["n"],
            json!(expected)
        );
    }
    pod.close().unwrap();
    let pod = open_ro(&s.path);
    assert_eq!(pod.get("k3").unwrap().unwrap()["n"], json!(4));
    assert_eq!(pod.get("k4").unwrap().unwrap()["n"], json!(4));
}

#[test]
fn records_appended_by_another_process_after_the_map_are_read_right() {
    let s = scratch();
    filled(&s.path, 500);
    let mut reader = open_multi(&s.path);
    let mut writer = open_multi(&s.path);
    for i in 0..500 {
        writer.insert(&format!("late{i}"), value(i)).unwrap();
    }
    writer.sync().unwrap();
    // Caught up from past the end of the reader's map.
    reader.refresh().unwrap();
    for i in 0..500 {
        assert_eq!(reader.get(&format!("late{i}")).unwrap(), Some(value(i)));
        assert_eq!(reader.get(&format!("k{i}")).unwrap(), Some(value(i)));
    }
}

//! Invariant: a damaged record with valid records after it is never
//! silently skipped: opening fails naming the file, line, byte offset and
//! reason. Salvage keeps every valid record and keeps the damaged file.

mod common;
use common::*;
use serde_json::json;
use tastypod::{ErrorKind, Pod, PodOptions, Recovery};

/// A store of `n` keys, each synced on its own: one record a line (a
/// sync of one record needs no batch line), so line `i + 2` is `key-i`.
fn build(path: &std::path::Path, n: usize) {
    let mut pod = open(path);
    for i in 0..n {
        pod.insert(&format!("key-{i}"), json!({"i": i})).unwrap();
        pod.sync().unwrap();
    }
    pod.close().unwrap();
}

#[test]
fn bad_checksum_mid_file_names_line_and_offset() {
    let s = scratch();
    build(&s.path, 10);
    let starts = line_starts(&s.path);
    // Line 5 is key-3; damage a byte of its value.
    flip_byte(&s.path, starts[4] + 30, 0x01);
    let err = tastypod::Pod::<serde_json::Value>::open(&s.path).unwrap_err();
    assert_eq!(err.line(), Some(5));
    match err.kind() {
        ErrorKind::Corrupt {
            path,
            offset,
            reason,
            ..
        } => {
            assert_eq!(*path, log_of(&s.path));
            assert_eq!(*offset, starts[4] as u64);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("line 5") && msg.contains("pod.log"), "{msg}");
    // Read-only opens fail the same way, and nothing was changed.
    let before = log_bytes(&s.path);
    let err = PodOptions::new()
        .read_only(true)
        .open::<serde_json::Value>(&s.path)
        .unwrap_err();
    assert_eq!(err.line(), Some(5));
    assert_eq!(log_bytes(&s.path), before);
}

#[test]
fn garbage_line_mid_file_is_corruption() {
    let s = scratch();
    build(&s.path, 3);
    let mut bytes = log_bytes(&s.path);
    let starts = line_starts(&s.path);
    bytes.splice(starts[2]..starts[2], b"not json at all\n".iter().copied());
    std::fs::write(log_of(&s.path), bytes).unwrap();
    let err = tastypod::Pod::<serde_json::Value>::open(&s.path).unwrap_err();
    assert_eq!(err.line(), Some(3));
}

#[test]
fn salvage_keeps_valid_records_and_the_damaged_file() {
    let s = scratch();
    build(&s.path, 10);
    let starts = line_starts(&s.path);
    flip_byte(&s.path, starts[4] + 30, 0x01);
    flip_byte(&s.path, starts[7] + 30, 0x01);
    let damaged = log_bytes(&s.path);
    let pod: tastypod::Pod = PodOptions::new()
        .recovery(Recovery::Salvage)
        .open(&s.path)
        .unwrap();
    let report = pod.recovery().clone();
    assert_eq!(report.skipped_count, 2);
    assert_eq!(
        report.skipped.iter().map(|b| b.line).collect::<Vec<_>>(),
        [5, 8]
    );
    let copy = report.damaged_copy.clone().unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), damaged);
    let keys: Vec<String> = pod.keys().map(String::from).collect();
    let expect: Vec<String> = (0..10)
        .filter(|&i| i != 3 && i != 6)
        .map(|i| format!("key-{i}"))
        .collect();
    assert_eq!(keys, expect);
    drop(pod);
    // The rewritten log is clean and opens normally.
    let pod = open(&s.path);
    assert!(pod.recovery().is_clean());
    assert_eq!(pod.len(), 8);
}

#[test]
fn salvage_read_only_changes_no_file() {
    let s = scratch();
    build(&s.path, 5);
    let starts = line_starts(&s.path);
    flip_byte(&s.path, starts[2] + 30, 0x01);
    let before = log_bytes(&s.path);
    let pod: tastypod::Pod = PodOptions::new()
        .recovery(Recovery::Salvage)
        .read_only(true)
        .open(&s.path)
        .unwrap();
    assert_eq!(pod.len(), 4);
    assert_eq!(pod.recovery().skipped_count, 1);
    assert!(pod.recovery().damaged_copy.is_none());
    assert_eq!(log_bytes(&s.path), before);
    assert_eq!(std::fs::read_dir(&s.path).unwrap().count(), 2);
}

#[test]
fn a_checksummed_value_that_is_not_json_is_corruption_even_at_the_end() {
    for value in [&b"{nope}"[..], b"1,\"evil\":2", b"1e400", b"\"\\ud800\""] {
        let s = scratch();
        build(&s.path, 2);
        // A record with a valid checksum whose value is not one JSON value.
        let mut body = b"\"k\":\"bad\",\"v\":".to_vec();
        body.extend_from_slice(value);
        body.push(b'}');
        let mut line = format!("{{\"c\":\"{:08x}\",", crc32(&body)).into_bytes();
        line.extend_from_slice(&body);
        line.push(b'\n');
        append_garbage(&s.path, &line);
        let before = log_bytes(&s.path);
        let err = Pod::<serde_json::Value>::open(&s.path).unwrap_err();
        assert_eq!(err.line(), Some(4), "{err}");
        assert!(
            err.to_string().contains("not one valid JSON value"),
            "{err}"
        );
        assert_eq!(log_bytes(&s.path), before, "nothing is cut");
        // Salvage keeps the rest.
        let pod: Pod = PodOptions::new()
            .recovery(Recovery::Salvage)
            .read_only(true)
            .open(&s.path)
            .unwrap();
        assert_eq!(pod.len(), 2);
        assert_eq!(pod.get("key-1").unwrap(), Some(json!({"i": 1})));
    }
}

#[test]
fn newer_format_version_gets_its_own_error() {
    let s = scratch();
    std::fs::create_dir_all(&s.path).unwrap();
    let body = b"\"format\":\"tastypod\",\"version\":9}";
    let mut line = format!("{{\"c\":\"{:08x}\",", crc32(body)).into_bytes();
    line.extend_from_slice(body);
    line.push(b'\n');
    std::fs::write(log_of(&s.path), &line).unwrap();
    let err = tastypod::Pod::<serde_json::Value>::open(&s.path).unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::UnsupportedVersion {
            found: 9,
            supported: 3,
            ..
        }
    ));
    assert_eq!(log_bytes(&s.path), line);
}

#[test]
fn empty_log_file_opens_as_an_empty_store() {
    let s = scratch();
    std::fs::create_dir_all(&s.path).unwrap();
    std::fs::write(log_of(&s.path), b"").unwrap();
    assert!(open_ro(&s.path).is_empty());
    let mut pod = open(&s.path);
    pod.insert("a", json!(1)).unwrap();
    pod.close().unwrap();
    assert_eq!(open(&s.path).len(), 1);
}

#[test]
fn records_glued_by_damaged_newlines_are_corruption_and_salvage_keeps_them() {
    let s = scratch();
    build(&s.path, 6);
    let starts = line_starts(&s.path);
    let mut bytes = log_bytes(&s.path);
    // The newlines ending lines 3 and 5: one replaced, one removed.
    bytes[starts[3] - 1] = b'#';
    bytes.remove(starts[5] - 1);
    std::fs::write(log_of(&s.path), &bytes).unwrap();
    let err = Pod::<serde_json::Value>::open(&s.path).unwrap_err();
    assert_eq!(err.line(), Some(3), "{err}");
    let pod: Pod = PodOptions::new()
        .recovery(Recovery::Salvage)
        .open(&s.path)
        .unwrap();
    assert_eq!(pod.len(), 6, "every checksummed record is kept");
    assert_eq!(pod.recovery().skipped_count, 2);
    assert!(pod.recovery().damaged_copy.is_some());
}

#[test]
fn a_line_longer_than_the_maximum_record_size_is_damage() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("big", json!("x".repeat(500))).unwrap();
    pod.sync().unwrap();
    pod.insert("small", json!(1)).unwrap();
    pod.close().unwrap();
    let small = PodOptions::new().max_record_size(200);
    let err = small.open::<serde_json::Value>(&s.path).unwrap_err();
    assert_eq!(err.line(), Some(2), "{err}");
    assert!(
        err.to_string()
            .contains("longer than the maximum record size"),
        "{err}"
    );
    assert_eq!(open(&s.path).len(), 2);
}

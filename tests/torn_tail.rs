//! Invariant: a log cut at any byte offset (a crash mid-write) opens, keeps
//! every complete record before the cut (one that lacks only its newline
//! included), reports what it dropped, and a writable open truncates the
//! file back to the last good record (adding a missing newline).

mod common;
use common::*;
use serde_json::json;
use tastypod::PodOptions;

fn build(path: &std::path::Path) -> Vec<(String, serde_json::Value)> {
    let mut pod = PodOptions::new().sync_at(1).open(path).unwrap();
    pod.insert("alpha", json!({"n": 1})).unwrap();
    pod.insert("beta", json!("two\nlines")).unwrap();
    pod.insert("alpha", json!({"n": 3})).unwrap();
    pod.remove("beta").unwrap();
    pod.insert("gamma", json!([1, 2, 3])).unwrap();
    contents(&pod)
}

/// The model: the state after each complete line of the log.
fn states_by_line() -> Vec<Vec<(String, serde_json::Value)>> {
    vec![
        vec![],
        pairs(&[("alpha", json!({"n": 1}))]),
        pairs(&[("alpha", json!({"n": 1})), ("beta", json!("two\nlines"))]),
        pairs(&[("alpha", json!({"n": 3})), ("beta", json!("two\nlines"))]),
        pairs(&[("alpha", json!({"n": 3}))]),
        pairs(&[("alpha", json!({"n": 3})), ("gamma", json!([1, 2, 3]))]),
    ]
}

#[test]
fn every_truncation_opens_as_the_last_complete_state() {
    let s = scratch();
    let full = build(&s.path);
    assert_eq!(full, *states_by_line().last().unwrap());
    let bytes = log_bytes(&s.path);
    let starts = line_starts(&s.path);
    let header_end = starts[1];
    let states = states_by_line();
    // Line k ends (after its newline) where line k+1 starts.
    let mut ends: Vec<usize> = starts[1..].to_vec();
    ends.push(bytes.len());
    for cut in header_end..=bytes.len() {
        std::fs::write(log_of(&s.path), &bytes[..cut]).unwrap();
        // A record missing only its newline is complete.
        let lacks_newline = ends.contains(&(cut + 1));
        let complete_lines = ends
            .iter()
            .filter(|&&e| e <= cut + usize::from(lacks_newline))
            .count();
        let complete = complete_lines - 1;
        let on_boundary = ends.contains(&cut) || lacks_newline;
        // Read-only first: reports, changes nothing.
        let ro = open_ro(&s.path);
        assert_eq!(contents(&ro), states[complete.min(5)], "cut {cut}");
        assert_eq!(ro.recovery().torn_tail.is_some(), !on_boundary, "cut {cut}");
        drop(ro);
        assert_eq!(log_bytes(&s.path).len(), cut);
        // Writable: truncates to the last good record.
        let pod = open(&s.path);
        assert_eq!(contents(&pod), states[complete.min(5)], "cut {cut}");
        if let Some(torn) = &pod.recovery().torn_tail {
            assert_eq!(torn.first.offset as usize, starts[complete_lines]);
            assert_eq!(torn.first.line as usize, complete_lines + 1);
            assert_eq!(torn.bytes as usize, cut - torn.first.offset as usize);
            // A crash leaves at most one partial record: nothing is kept aside.
            assert!(torn.partial_record && torn.copy.is_none(), "cut {cut}");
        }
        assert_eq!(
            pod.recovery().completed_line,
            lacks_newline.then_some(complete_lines as u64),
            "cut {cut}"
        );
        drop(pod);
        let kept = log_bytes(&s.path).len();
        assert_eq!(kept, ends[complete_lines - 1], "cut {cut}");
        assert!(open(&s.path).recovery().is_clean());
    }
}

#[test]
fn a_cut_inside_the_header_is_a_store_whose_creation_was_interrupted() {
    let s = scratch();
    build(&s.path);
    let header_end = line_starts(&s.path)[1];
    let bytes = log_bytes(&s.path);
    for cut in 0..header_end {
        std::fs::write(log_of(&s.path), &bytes[..cut]).unwrap();
        let ro = open_ro(&s.path);
        assert!(ro.is_empty(), "cut {cut}");
        // An empty file reports nothing; a header without its newline is complete.
        let torn = cut > 0 && cut < header_end - 1;
        assert_eq!(ro.recovery().torn_tail.is_some(), torn, "cut {cut}");
        drop(ro);
        assert_eq!(
            log_bytes(&s.path),
            &bytes[..cut],
            "read-only changes nothing"
        );
        let mut pod = open(&s.path);
        assert_eq!(pod.recovery().torn_tail.is_some(), torn, "cut {cut}");
        pod.insert("a", json!(1)).unwrap();
        pod.close().unwrap();
        let pod = open(&s.path);
        assert!(pod.recovery().is_clean(), "cut {cut}");
        assert_eq!(pod.keys().collect::<Vec<_>>(), ["a"]);
    }
}

#[test]
fn a_cut_inside_a_version_2_header_is_a_store_whose_creation_was_interrupted() {
    let s = scratch();
    drop(
        tastypod::TrackerOptions::new()
            .max_tries(3)
            .open(&s.path)
            .unwrap(),
    );
    let bytes = log_bytes(&s.path);
    assert!(
        bytes.ends_with(b"}}}\n") && bytes.len() > 100,
        "one v2 header line"
    );
    for cut in 1..bytes.len() - 1 {
        std::fs::write(log_of(&s.path), &bytes[..cut]).unwrap();
        let mut t = tastypod::Tracker::open(&s.path).unwrap();
        assert!(t.is_empty(), "cut {cut}");
        assert!(t.recovery().torn_tail.is_some(), "cut {cut}");
        assert_eq!(t.max_tries(), 0, "cut {cut}: the settings were not written");
        t.add("a").unwrap();
        t.close().unwrap();
    }
}

#[test]
fn appends_after_recovery_are_clean() {
    let s = scratch();
    build(&s.path);
    let len = log_bytes(&s.path).len();
    truncate_to(&s.path, len - 5);
    let mut pod = open(&s.path);
    assert!(pod.recovery().torn_tail.is_some());
    pod.insert("delta", json!(4)).unwrap();
    pod.sync().unwrap();
    drop(pod);
    let pod = open(&s.path);
    assert!(pod.recovery().is_clean());
    assert_eq!(pod.keys().collect::<Vec<_>>(), ["alpha", "delta"]);
}

#[test]
fn zero_filled_tail_is_a_torn_write() {
    let s = scratch();
    build(&s.path);
    append_garbage(&s.path, &[0u8; 4096]);
    let pod = open(&s.path);
    assert_eq!(pod.len(), 2);
    let torn = pod.recovery().torn_tail.clone().unwrap();
    assert_eq!(torn.bytes, 4096);
    assert!(torn.partial_record && torn.copy.is_none());
}

#[test]
fn a_record_followed_by_zeros_is_kept_and_the_zeros_are_cut() {
    let s = scratch();
    build(&s.path);
    // ext4 after a crash: the last record's newline and what followed were
    // never written, and read as zeros.
    let mut bytes = log_bytes(&s.path);
    bytes.pop();
    bytes.extend_from_slice(&[0; 5000]);
    std::fs::write(log_of(&s.path), &bytes).unwrap();
    let pod = open(&s.path);
    assert_eq!(contents(&pod), *states_by_line().last().unwrap());
    let torn = pod.recovery().torn_tail.clone().unwrap();
    assert_eq!(torn.bytes, 5000);
    assert!(torn.partial_record && torn.copy.is_none());
    assert_eq!(pod.recovery().completed_line, Some(6));
    drop(pod);
    assert!(open(&s.path).recovery().is_clean());
}

#[test]
fn more_than_a_partial_record_is_kept_beside_the_log_when_cut() {
    for tail in [
        &b"not a record at all"[..],
        b"{\"c\":\"12345678\",\"k\":\"x\"\nsecond line",
        b"{\"c\":\"12\0\0\0trailing bytes after zeros",
    ] {
        let s = scratch();
        build(&s.path);
        let clean = log_bytes(&s.path);
        append_garbage(&s.path, tail);
        let ro = open_ro(&s.path);
        let torn = ro.recovery().torn_tail.clone().unwrap();
        assert!(!torn.partial_record, "{tail:?}");
        assert!(torn.copy.is_none(), "a read-only open copies nothing");
        drop(ro);
        let pod = open(&s.path);
        let torn = pod.recovery().torn_tail.clone().unwrap();
        let copy = torn.copy.unwrap();
        assert!(
            copy.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("pod.log.torn-")
        );
        assert_eq!(std::fs::read(&copy).unwrap(), tail);
        drop(pod);
        assert_eq!(log_bytes(&s.path), clean);
    }
}

#[test]
fn a_checksummed_record_over_the_maximum_size_is_refused_not_cut() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("a", serde_json::json!(1)).unwrap();
    pod.insert("big", serde_json::json!("x".repeat(200)))
        .unwrap();
    pod.close().unwrap();
    let before = log_bytes(&s.path);
    for read_only in [false, true] {
        let err = tastypod::PodOptions::new()
            .max_record_size(100)
            .read_only(read_only)
            .open::<serde_json::Value>(&s.path)
            .unwrap_err();
        assert_eq!(err.line(), Some(4), "{err}"); // header, batch line, a, big
        let text = err.to_string();
        assert!(
            text.contains("max_record_size") && text.contains("checksum holds"),
            "{text}"
        );
        assert_eq!(log_bytes(&s.path), before, "nothing cut");
    }
    // The same bytes, their checksum broken, are a torn write as before.
    let last = *line_starts(&s.path).last().unwrap();
    flip_byte(&s.path, last + 40, 0x01);
    let pod = tastypod::PodOptions::new()
        .max_record_size(100)
        .read_only(true)
        .open::<serde_json::Value>(&s.path)
        .unwrap();
    assert!(pod.recovery().torn_tail.is_some());
}

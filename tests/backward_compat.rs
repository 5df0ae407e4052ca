//! Invariant: every build reads the logs users already have. The fixtures
//! in `tests/fixtures/` are logs of format version 1 as tastypod writes
//! them (every record kind: header, puts, removals, tracker records with a
//! lease, blank lines, and a torn tail); each opens to the contents written
//! out below, byte for byte in its value texts, read-only and writable. A
//! writable open changes nothing but a torn tail; a sync of one record
//! appends it as before, and the first sync of several rewrites the log
//! as version 3 (whose syncs are framed as batches) with every record
//! kept, settings too.

mod common;
use common::*;
use serde_json::json;
use std::path::Path;
use tastypod::{PodOptions, TrackerOptions, Verdict};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(path).unwrap()
}

/// A store whose log is the fixture `name`.
fn store_of(name: &str) -> Scratch {
    let s = scratch();
    std::fs::create_dir_all(&s.path).unwrap();
    std::fs::write(log_of(&s.path), fixture(name)).unwrap();
    s
}

const POD_TEXTS: [(&str, &str); 4] = [
    ("alpha", r#"{"n":3}"#),
    ("gamma", "[1,2,3]"),
    ("beta", "5"),
    (
        "café \"q\"",
        r#"{"nested":{"deep":[true,false,null]},"f":0.1,"big":12345678901234567890}"#,
    ),
];

fn texts(pod: &tastypod::Pod) -> Vec<(String, String)> {
    pod.iter_json()
        .map(|e| e.map(|(k, v)| (k.to_string(), v.into_owned())))
        .collect::<Result<_, _>>()
        .unwrap()
}

fn expected_texts() -> Vec<(String, String)> {
    POD_TEXTS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_version_1_pod_fixture_opens_to_the_same_contents() {
    let s = store_of("v1-pod.log");
    let original = log_bytes(&s.path);
    let torn_at = original.iter().rposition(|&b| b == b'\n').unwrap() + 1;
    let ro = open_ro(&s.path);
    assert_eq!(texts(&ro), expected_texts());
    assert_eq!(ro.get("beta").unwrap(), Some(json!(5)));
    assert_eq!(
        ro.get("café \"q\"").unwrap().unwrap()["big"],
        json!(12345678901234567890u64)
    );
    let torn = ro.recovery().torn_tail.clone().unwrap();
    assert_eq!(
        (torn.first.line, torn.first.offset, torn.bytes),
        (12, torn_at as u64, (original.len() - torn_at) as u64)
    );
    drop(ro);
    assert_eq!(
        log_bytes(&s.path),
        original,
        "a read-only open changes nothing"
    );
    match tastypod::verify(&s.path).unwrap().verdict {
        Verdict::TornTail(t) => assert_eq!(t.first.line, 12),
        other => panic!("{other:?}"),
    }
    // A writable open cuts the torn tail, and the blank line before it
    // (the writer writes on at the end of the last record), and keeps the
    // rest as it was.
    let mut pod = open(&s.path);
    assert_eq!(texts(&pod), expected_texts());
    assert_eq!(pod.format_version(), 1);
    drop(pod.sync());
    drop(pod);
    assert_eq!(&original[torn_at - 2..torn_at], b"\n\n");
    let torn_at = torn_at - 1;
    assert_eq!(log_bytes(&s.path), &original[..torn_at]);
    // One record is appended as version 1 has it; two need a batch line,
    // so the log is rewritten as version 3 first, every text kept.
    let mut pod = open(&s.path);
    assert!(pod.recovery().is_clean());
    pod.insert("one", json!(1)).unwrap();
    pod.sync().unwrap();
    assert_eq!(pod.format_version(), 1);
    assert_eq!(
        log_bytes(&s.path).len(),
        torn_at + 33,
        "one record, no batch line"
    );
    pod.insert("two", json!(2)).unwrap();
    pod.insert("three", json!(3)).unwrap();
    pod.sync().unwrap();
    assert_eq!(pod.format_version(), 3);
    drop(pod);
    let log = String::from_utf8(log_bytes(&s.path)).unwrap();
    assert!(
        log.lines().next().unwrap().contains(r#""version":3}"#),
        "{log}"
    );
    let pod = open(&s.path);
    let mut expected = expected_texts();
    for (k, v) in [("one", "1"), ("two", "2"), ("three", "3")] {
        expected.push((k.to_string(), v.to_string()));
    }
    assert_eq!(texts(&pod), expected);
}

#[test]
fn the_version_1_tracker_fixture_opens_to_the_same_task_states() {
    let s = store_of("v1-tracker.log");
    let t = TrackerOptions::new().read_only(true).open(&s.path).unwrap();
    assert_eq!(
        t.keys().collect::<Vec<_>>(),
        ["https://a", "https://b", "https://c", "https://d"]
    );
    let state = |k: &str| (t.done(k), t.tries(k), t.aborted(k));
    assert_eq!(state("https://a"), (true, 2, false));
    assert_eq!(state("https://b"), (false, 2, false));
    assert_eq!(state("https://c"), (false, 3, true));
    assert_eq!(state("https://d"), (false, 0, false));
    assert_eq!((t.num_done(), t.num_tried(), t.num_aborted()), (1, 3, 1));
    let lease = t.lease("https://b").unwrap();
    assert_eq!(
        (lease.owner.as_str(), lease.until),
        (
            "worker-1",
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_764_000_000_000)
        )
    );
    assert_eq!(t.get("https://a").unwrap().unwrap()["status"], json!(301));
    assert_eq!(t.get("https://d").unwrap().unwrap()["depth"], json!(2));
    assert!(t.recovery().torn_tail.is_some());
    drop(t);
    let t = TrackerOptions::new().open(&s.path).unwrap();
    assert_eq!((t.num_done(), t.num_tried(), t.num_aborted()), (1, 3, 1));
    assert_eq!(t.tries("https://c"), 3);
    // The exclusive writable open freed b's claim (the try stays counted).
    assert!(t.lease("https://b").is_none());
    assert_eq!(t.tries("https://b"), 2);
    assert_eq!(t.pod().format_version(), 1, "nothing rewritten");
    drop(t);
    let pod = PodOptions::new()
        .read_only(true)
        .open::<serde_json::Value>(&s.path)
        .unwrap();
    assert!(pod.recovery().is_clean());
    assert_eq!(pod.len(), 4);
}

#[test]
fn a_version_1_tracker_given_settings_becomes_version_3_with_every_record() {
    let s = store_of("v1-tracker.log");
    let t = TrackerOptions::new().max_tries(4).open(&s.path).unwrap();
    assert_eq!(t.pod().format_version(), 3);
    drop(t);
    let log = String::from_utf8(log_bytes(&s.path)).unwrap();
    assert!(log.starts_with(r#"{"c":""#));
    assert!(
        log.lines()
            .next()
            .unwrap()
            .contains(r#""version":3,"settings":{"tracker":"#)
    );
    let t = TrackerOptions::new().read_only(true).open(&s.path).unwrap();
    assert_eq!(t.max_tries(), 4);
    let state = |k: &str| (t.done(k), t.tries(k), t.aborted(k));
    assert_eq!(state("https://a"), (true, 2, false));
    assert_eq!(state("https://b"), (false, 2, false));
    assert_eq!(state("https://c"), (false, 3, true));
    assert_eq!(state("https://d"), (false, 0, false));
    assert_eq!(t.get("https://a").unwrap().unwrap()["status"], json!(301));
    assert!(tastypod::verify(&s.path).unwrap().is_clean());
}

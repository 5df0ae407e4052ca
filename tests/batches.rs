//! Invariant: a sync of several records is one batch (format version 3):
//! after a crash the store holds all of its records or none of them, and a
//! batch cut short is a torn tail, kept aside, never silently dropped
//! (DESIGN.md, *Replay*, rule 8).

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::Path;
use tastypod::{ErrorKind, PodOptions};

/// One log line with its checksum.
fn line(body: &str) -> Vec<u8> {
    format!("{{\"c\":\"{:08x}\",{body}\n", crc32(body.as_bytes())).into_bytes()
}

fn header(version: u64) -> Vec<u8> {
    line(&format!("\"format\":\"tastypod\",\"version\":{version}}}"))
}

fn put(key: &str, value: &str) -> Vec<u8> {
    line(&format!("\"k\":\"{key}\",\"v\":{value}}}"))
}

fn batch(n: u64) -> Vec<u8> {
    line(&format!("\"batch\":{n}}}"))
}

fn write_log(store: &Path, parts: &[Vec<u8>]) {
    std::fs::create_dir_all(store).unwrap();
    std::fs::write(log_of(store), parts.concat()).unwrap();
}

fn keys(store: &Path, read_only: bool) -> Result<Vec<String>, tastypod::Error> {
    let pod: tastypod::Pod = PodOptions::new().read_only(read_only).open(store)?;
    Ok(contents(&pod).into_iter().map(|(k, _)| k).collect())
}

#[test]
fn a_sync_of_several_records_is_one_batch_line_then_its_records() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("a", json!(1)).unwrap();
    pod.sync().unwrap();
    pod.insert("b", json!(2)).unwrap();
    pod.insert("c", json!(3)).unwrap();
    pod.remove("a").unwrap();
    pod.sync().unwrap();
    drop(pod);
    let text = String::from_utf8(log_bytes(&s.path)).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // A sync of one record needs no frame; one of three gets one.
    assert_eq!(lines[0]["version"], json!(3));
    assert_eq!(lines[1]["k"], json!("a"));
    assert_eq!(lines[2]["batch"], json!(3));
    assert_eq!(
        (
            &lines[3]["k"],
            &lines[4]["k"],
            &lines[5]["k"],
            &lines[5]["del"]
        ),
        (&json!("b"), &json!("c"), &json!("a"), &json!(true))
    );
    assert_eq!(keys(&s.path, true).unwrap(), ["b", "c"]);
}

/// Records reach the log in the order of the calls: the links a page gave
/// come before the page's done mark when they were added first.
#[test]
fn records_reach_the_log_in_the_order_of_the_calls() {
    let s = scratch();
    let mut t = tastypod::Tracker::open(&s.path).unwrap();
    t.add_many_if_absent(["page"]).unwrap();
    t.sync().unwrap();
    t.add_many_if_absent(["link-1", "link-2"]).unwrap();
    t.mark_done("page").unwrap();
    t.sync().unwrap();
    drop(t);
    let text = String::from_utf8(log_bytes(&s.path)).unwrap();
    let order: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["k"].as_str().map(str::to_string))
        .collect();
    assert_eq!(order, ["page", "link-1", "link-2", "page"]);
}

#[test]
fn a_batch_cut_anywhere_applies_none_of_its_records_and_is_kept_aside() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("a", json!(1)).unwrap();
    pod.sync().unwrap();
    let before = log_bytes(&s.path);
    for (k, n) in [("b", 2), ("c", 3), ("d", 4)] {
        pod.insert(k, json!({ "n": n })).unwrap();
    }
    pod.sync().unwrap();
    drop(pod);
    let full = log_bytes(&s.path);
    // (A cut of only the final newline keeps a complete batch: rule 2.)
    for cut in before.len() + 1..full.len() - 1 {
        std::fs::write(log_of(&s.path), &full[..cut]).unwrap();
        assert_eq!(keys(&s.path, true).unwrap(), ["a"], "cut at {cut}");
        let pod = open(&s.path);
        let torn = pod.recovery().torn_tail.clone().expect("a torn tail");
        assert_eq!(torn.first.line, 3, "cut at {cut}: {:?}", torn.first);
        assert_eq!(torn.bytes, (cut - before.len()) as u64);
        // A cut inside the batch line leaves one partial line, all a crash
        // leaves of one write; anything more of the batch is kept beside
        // the log.
        let batch_line = full[before.len()..]
            .iter()
            .position(|&b| b == b'\n')
            .unwrap();
        let partial = cut - before.len() < batch_line;
        assert_eq!(torn.partial_record, partial, "cut at {cut}");
        if !partial {
            let copy = torn.copy.clone().expect("kept aside");
            assert_eq!(std::fs::read(&copy).unwrap(), &full[before.len()..cut]);
            std::fs::remove_file(copy).unwrap();
        }
        assert_eq!(contents(&pod), pairs(&[("a", json!(1))]));
        drop(pod);
        assert_eq!(log_bytes(&s.path), before, "cut at {cut}: cut back");
    }
    // The whole batch, then zeros (ext4 after a crash): kept.
    let mut zeros = full.clone();
    zeros.extend_from_slice(&[0; 100]);
    std::fs::write(log_of(&s.path), &zeros).unwrap();
    assert_eq!(keys(&s.path, false).unwrap(), ["a", "b", "c", "d"]);
    // Part of it, then zeros: none of it.
    let mut zeros = full[..full.len() - 10].to_vec();
    zeros.extend_from_slice(&[0; 100]);
    std::fs::write(log_of(&s.path), &zeros).unwrap();
    assert_eq!(keys(&s.path, true).unwrap(), ["a"]);
}

#[test]
fn damage_inside_a_batch_followed_by_valid_lines_is_corruption() {
    let s = scratch();
    let mut bad = put("c", "3");
    bad[30] ^= 1;
    write_log(
        &s.path,
        &[header(3), batch(3), put("a", "1"), bad, put("b", "2")],
    );
    for read_only in [true, false] {
        let err = keys(&s.path, read_only).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Corrupt { .. }), "{err}");
        assert_eq!(err.line(), Some(4), "{err}");
    }
}

#[test]
fn misplaced_batch_lines_are_corruption_naming_the_line() {
    let cases: [(&str, Vec<Vec<u8>>, u64, &str); 4] = [
        (
            "version 1",
            vec![
                header(1),
                put("a", "1"),
                batch(2),
                put("b", "2"),
                put("c", "3"),
            ],
            3,
            "version 1 or 2",
        ),
        (
            "version 2",
            vec![header(2), batch(2), put("b", "2"), put("c", "3")],
            2,
            "version 1 or 2",
        ),
        (
            "nested",
            vec![
                header(3),
                batch(3),
                put("a", "1"),
                batch(2),
                put("b", "2"),
                put("c", "3"),
            ],
            4,
            "inside a batch",
        ),
        (
            "before the header",
            vec![batch(2), header(3), put("a", "1"), put("b", "2")],
            1,
            "",
        ),
    ];
    for (what, parts, line, reason) in cases {
        let s = scratch();
        write_log(&s.path, &parts);
        let before = log_bytes(&s.path);
        for read_only in [true, false] {
            let err = keys(&s.path, read_only).unwrap_err();
            assert_eq!(err.line(), Some(line), "{what}: {err}");
            assert!(err.to_string().contains(reason), "{what}: {err}");
        }
        assert_eq!(log_bytes(&s.path), before, "{what}: nothing cut");
    }
}

#[test]
fn a_complete_batch_with_blank_lines_inside_is_applied() {
    let s = scratch();
    write_log(
        &s.path,
        &[
            header(3),
            batch(2),
            put("a", "1"),
            b"\n\n".to_vec(),
            put("b", "2"),
        ],
    );
    assert_eq!(keys(&s.path, false).unwrap(), ["a", "b"]);
}

/// A log of version 1 is appended to as it is until its first sync of
/// several records, which rewrites it as version 3 (atomically).
#[test]
fn a_version_1_log_is_upgraded_at_its_first_sync_of_several_records() {
    let s = scratch();
    write_log(&s.path, &[header(1), put("a", "1")]);
    let mut pod = open(&s.path);
    pod.insert("b", json!(2)).unwrap();
    pod.sync().unwrap();
    assert_eq!(pod.format_version(), 1, "one record: appended as before");
    pod.insert("c", json!(3)).unwrap();
    pod.insert("d", json!(4)).unwrap();
    pod.sync().unwrap();
    assert_eq!(pod.format_version(), 3);
    drop(pod);
    assert!(log_bytes(&s.path).starts_with(&header(3)));
    assert_eq!(keys(&s.path, true).unwrap(), ["a", "b", "c", "d"]);
}

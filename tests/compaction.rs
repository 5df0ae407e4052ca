//! Invariant: compaction keeps every key, value and the order, leaves no
//! dead bytes, replaces the log atomically (a stale temp file from an
//! interrupted compaction is removed on open), and runs automatically when
//! dead bytes dominate.

mod common;
use common::*;
use serde_json::json;
use tastypod::{Compaction, Pod, PodOptions, TMP_FILE};

#[test]
fn compaction_keeps_contents_and_drops_dead_records() {
    let s = scratch();
    let mut pod = PodOptions::new()
        .compaction(Compaction::Manual)
        .open(&s.path)
        .unwrap();
    for round in 0..5 {
        for i in 0..100 {
            pod.insert(&format!("k{i}"), json!(round * 1000 + i))
                .unwrap();
        }
        pod.sync().unwrap();
    }
    for i in 0..50 {
        pod.remove(&format!("k{i}")).unwrap();
    }
    let before = contents(&pod);
    let big = log_bytes(&s.path).len();
    pod.compact().unwrap();
    assert_eq!(contents(&pod), before);
    let small = log_bytes(&s.path).len();
    assert!(small < big / 5, "{small} vs {big}");
    assert_eq!(pod.stats().dead_bytes, 0);
    assert_eq!(pod.stats().log_bytes, small as u64);
    // Writing after compaction appends to the new log.
    pod.insert("after", json!(true)).unwrap();
    pod.close().unwrap();
    let pod = open(&s.path);
    let mut expect = before;
    expect.push(("after".into(), json!(true)));
    assert_eq!(contents(&pod), expect);
}

#[test]
fn compaction_includes_unsynced_changes() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("a", json!(1)).unwrap();
    pod.compact().unwrap();
    assert_eq!(pod.dirty_len(), 0);
    assert_eq!(contents(&open_ro(&s.path)), pairs(&[("a", json!(1))]));
}

#[test]
fn stale_temp_file_is_removed_on_writable_open_only() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("a", json!(1)).unwrap();
    pod.close().unwrap();
    let tmp = s.path.join(TMP_FILE);
    std::fs::write(&tmp, b"half a compaction").unwrap();
    let ro = open_ro(&s.path);
    assert!(tmp.exists());
    assert_eq!(ro.len(), 1);
    drop(ro);
    let pod = open(&s.path);
    assert!(pod.recovery().removed_temp);
    assert!(!tmp.exists());
    assert_eq!(pod.len(), 1);
}

#[test]
fn auto_compaction_bounds_the_log_under_updates() {
    let s = scratch();
    let mut pod: Pod = PodOptions::new()
        .sync_at(100)
        .compaction(Compaction::Auto {
            dead_fraction: 0.5,
            min_bytes: 64 * 1024,
        })
        .open(&s.path)
        .unwrap();
    for round in 0..200 {
        for i in 0..100 {
            pod.insert(
                &format!("key-{i}"),
                json!({"round": round, "pad": "x".repeat(40)}),
            )
            .unwrap();
        }
    }
    pod.sync().unwrap();
    let stats = pod.stats();
    assert!(
        stats.log_bytes < 2 * 64 * 1024 + stats.live_bytes * 3,
        "{stats:?}"
    );
    assert!(
        stats.dead_bytes * 2 <= stats.log_bytes + 100_000,
        "{stats:?}"
    );
    drop(pod);
    let pod = open(&s.path);
    assert_eq!(pod.get("key-7").unwrap().unwrap()["round"], json!(199));
}

#[test]
fn manual_policy_never_compacts_by_itself() {
    let s = scratch();
    let mut pod: Pod = PodOptions::new()
        .sync_at(1)
        .compaction(Compaction::Manual)
        .open(&s.path)
        .unwrap();
    for round in 0..3000 {
        pod.insert("k", json!(round)).unwrap();
    }
    assert!(pod.stats().dead_bytes > 50_000);
}

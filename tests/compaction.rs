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

/// The inode of the store's log: it changes when a compaction renames a
/// new log into place.
fn log_inode(store: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(log_of(store)).unwrap().ino()
}

fn auto(min_bytes: u64) -> PodOptions {
    PodOptions::new().compaction(Compaction::Auto {
        dead_fraction: 0.5,
        min_bytes,
    })
}

#[test]
fn background_compaction_keeps_what_changes_while_it_runs() {
    let s = scratch();
    let mut pod: Pod = auto(64 * 1024).sync_at(1000).open(&s.path).unwrap();
    let mut model = std::collections::BTreeMap::new();
    for i in 0..20_000 {
        pod.insert(&format!("k{i:05}"), json!({"i": i, "done": false}))
            .unwrap();
        model.insert(format!("k{i:05}"), json!({"i": i, "done": false}));
    }
    pod.sync().unwrap();
    let first = log_inode(&s.path);
    // Updating every key makes the dead half: a compaction starts.
    for i in 0..20_000 {
        let key = format!("k{i:05}");
        pod.get_mut(&key).unwrap().unwrap()["done"] = json!(true);
        model.insert(key, json!({"i": i, "done": true}));
    }
    pod.sync().unwrap();
    // Changes of every kind while it may still run, some synced, some not.
    for i in 0..300 {
        let key = format!("k{:05}", i * 7);
        match i % 3 {
            0 => {
                pod.insert(&key, json!(i)).unwrap();
                model.insert(key, json!(i));
            }
            1 => {
                pod.remove(&key).unwrap();
                model.remove(&key);
            }
            _ => {
                pod.get_mut(&key).unwrap().unwrap()["late"] = json!(i);
                model.get_mut(&key).unwrap()["late"] = json!(i);
            }
        }
        pod.insert(&format!("new{i}"), json!(i)).unwrap();
        model.insert(format!("new{i}"), json!(i));
        if i % 50 == 0 {
            pod.sync().unwrap();
        }
    }
    let want: Vec<_> = {
        let mut got = contents(&pod);
        got.sort_by(|a, b| a.0.cmp(&b.0));
        got
    };
    assert_eq!(want, model.clone().into_iter().collect::<Vec<_>>());
    pod.close().unwrap();
    assert_ne!(log_inode(&s.path), first, "the log was compacted");
    assert!(!s.path.join(TMP_FILE).exists());
    let pod = open(&s.path);
    let mut got = contents(&pod);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);
    // One record per key from the compaction, then what came after.
    assert!(
        pod.stats().log_bytes < 2 * pod.stats().live_bytes,
        "{:?}",
        pod.stats()
    );
}

#[test]
fn syncs_go_on_while_a_background_compaction_runs_and_the_switch_keeps_order() {
    let s = scratch();
    // Only the explicit syncs write, so the compaction starts at the second.
    let mut pod: Pod = auto(64 * 1024).sync_at(100_000).open(&s.path).unwrap();
    for i in 0..5000 {
        pod.insert(&format!("k{i}"), json!(i)).unwrap();
    }
    pod.sync().unwrap();
    let first = log_inode(&s.path);
    for round in 0..2 {
        for i in 0..5000 {
            pod.insert(&format!("k{i}"), json!(-i - round)).unwrap();
        }
        pod.sync().unwrap();
    }
    // Keep appending until the compaction is switched in.
    let mut n = 0;
    while log_inode(&s.path) == first && n < 20_000 {
        pod.insert(&format!("late{n}"), json!(n)).unwrap();
        pod.sync().unwrap();
        n += 1;
    }
    assert_ne!(log_inode(&s.path), first, "the compaction finished");
    pod.insert("last", json!(true)).unwrap();
    pod.sync().unwrap();
    let keys: Vec<String> = pod.keys().map(str::to_string).collect();
    drop(pod);
    let pod = open(&s.path);
    assert_eq!(pod.keys().map(str::to_string).collect::<Vec<_>>(), keys);
    assert_eq!(pod.get("k4999").unwrap(), Some(json!(-5000)));
    assert_eq!(pod.get("last").unwrap(), Some(json!(true)));
    // The compacted records, then everything appended since.
    let lines: Vec<String> = String::from_utf8(log_bytes(&s.path))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len() as u64, 1 + 5000 + n as u64 + 1);
}

/// A value type that refuses to decode the number 7, to make the handle
/// name a record's line in an error.
#[derive(Debug, Clone, serde::Serialize)]
struct NotSeven(i64);

impl<'de> serde::Deserialize<'de> for NotSeven {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        if n == 7 {
            return Err(serde::de::Error::custom("seven"));
        }
        Ok(NotSeven(n))
    }
}

#[test]
fn errors_name_the_line_in_the_log_a_background_compaction_wrote() {
    let s = scratch();
    let mut pod: Pod<NotSeven> = auto(16 * 1024).sync_at(100_000).open(&s.path).unwrap();
    for i in 0..2000 {
        pod.insert(&format!("k{i}"), NotSeven(100_000 + i)).unwrap();
    }
    pod.sync().unwrap();
    let first = log_inode(&s.path);
    // Shorter values: the dead records are the bigger half, so this sync
    // starts a compaction.
    for i in 0..2000 {
        pod.insert(&format!("k{i}"), NotSeven(i + 10)).unwrap();
    }
    pod.insert("seven", NotSeven(7)).unwrap();
    pod.sync().unwrap();
    // Written after the compaction's snapshot, so copied over after it.
    pod.insert("late seven", NotSeven(7)).unwrap();
    pod.sync().unwrap();
    let mut n = 0;
    while log_inode(&s.path) == first && n < 20_000 {
        pod.insert(&format!("late{n}"), NotSeven(n + 10)).unwrap();
        pod.sync().unwrap();
        n += 1;
    }
    assert_ne!(log_inode(&s.path), first, "the compaction finished");
    let text = String::from_utf8(log_bytes(&s.path)).unwrap();
    let line_of = |key: &str| {
        let key = format!(r#""k":"{key}""#);
        text.lines().position(|l| l.contains(&key)).unwrap() as u64 + 1
    };
    assert_eq!(line_of("seven"), 2002, "one line per key after compaction");
    for key in ["seven", "late seven"] {
        let err = pod.get(key).unwrap_err();
        assert_eq!(err.line(), Some(line_of(key)), "{key}: {err}");
    }
}

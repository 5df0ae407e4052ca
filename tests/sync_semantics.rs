//! Invariant: tastypy's sync semantics. Nothing is written before the
//! threshold of dirty keys, everything is written at it, a hold suppresses
//! automatic syncing, a manual sync works while held, and unhold syncs if the
//! threshold was passed while held.

mod common;
use common::*;
use serde_json::json;
use tastypod::{Pod, PodOptions};

fn pod_with_threshold(path: &std::path::Path, n: usize) -> Pod {
    PodOptions::new().sync_at(n).open(path).unwrap()
}

fn keys_on_disk(path: &std::path::Path) -> usize {
    open_ro(path).len()
}

#[test]
fn nothing_is_written_before_the_threshold() {
    let s = scratch();
    let mut pod = pod_with_threshold(&s.path, 5);
    let empty_len = log_bytes(&s.path).len();
    for i in 0..4 {
        pod.insert(&format!("k{i}"), json!(i)).unwrap();
    }
    assert_eq!(log_bytes(&s.path).len(), empty_len);
    assert_eq!(pod.dirty_len(), 4);
    pod.insert("k4", json!(4)).unwrap();
    assert_eq!(pod.dirty_len(), 0);
    assert_eq!(keys_on_disk(&s.path), 5);
}

#[test]
fn default_threshold_is_1000() {
    let s = scratch();
    let mut pod = open(&s.path);
    for i in 0..999 {
        pod.insert(&format!("k{i}"), json!(i)).unwrap();
    }
    assert_eq!(keys_on_disk(&s.path), 0);
    pod.insert("last", json!(0)).unwrap();
    assert_eq!(keys_on_disk(&s.path), 1000);
}

#[test]
fn hold_suppresses_auto_sync_and_unhold_syncs_past_threshold() {
    let s = scratch();
    let mut pod = pod_with_threshold(&s.path, 3);
    pod.hold();
    assert!(pod.is_held());
    for i in 0..10 {
        pod.insert(&format!("k{i}"), json!(i)).unwrap();
    }
    assert_eq!(keys_on_disk(&s.path), 0);
    pod.unhold().unwrap();
    assert!(!pod.is_held());
    assert_eq!(keys_on_disk(&s.path), 10);
    // Auto-sync is enabled again.
    for i in 10..13 {
        pod.insert(&format!("k{i}"), json!(i)).unwrap();
    }
    assert_eq!(keys_on_disk(&s.path), 13);
}

#[test]
fn unhold_below_threshold_leaves_changes_pending() {
    let s = scratch();
    let mut pod = pod_with_threshold(&s.path, 3);
    pod.hold();
    pod.insert("a", json!(1)).unwrap();
    pod.unhold().unwrap();
    assert_eq!(pod.dirty_len(), 1);
    assert_eq!(keys_on_disk(&s.path), 0);
}

#[test]
fn manual_sync_works_while_held() {
    let s = scratch();
    let mut pod = pod_with_threshold(&s.path, 100);
    pod.hold();
    pod.insert("a", json!(1)).unwrap();
    pod.sync().unwrap();
    assert!(pod.is_held());
    assert_eq!(keys_on_disk(&s.path), 1);
}

#[test]
fn holds_nest() {
    let s = scratch();
    let mut pod = pod_with_threshold(&s.path, 1);
    pod.hold();
    pod.hold();
    pod.insert("a", json!(1)).unwrap();
    pod.unhold().unwrap();
    assert_eq!(keys_on_disk(&s.path), 0);
    pod.unhold().unwrap();
    assert_eq!(keys_on_disk(&s.path), 1);
}

#[test]
fn held_guard_unholds_on_drop() {
    let s = scratch();
    let mut pod = pod_with_threshold(&s.path, 2);
    {
        let mut held = pod.held();
        held.insert("a", json!(1)).unwrap();
        held.insert("b", json!(2)).unwrap();
        held.insert("c", json!(3)).unwrap();
        assert_eq!(keys_on_disk(&s.path), 0);
    }
    assert!(!pod.is_held());
    assert_eq!(keys_on_disk(&s.path), 3);
}

#[test]
fn get_mut_counts_towards_the_threshold() {
    let s = scratch();
    let mut pod = pod_with_threshold(&s.path, 3);
    pod.hold();
    for i in 0..3 {
        pod.insert(&format!("k{i}"), json!(i)).unwrap();
    }
    pod.sync().unwrap();
    pod.unhold().unwrap();
    let before = log_bytes(&s.path).len();
    for i in 0..3 {
        *pod.get_mut(&format!("k{i}")).unwrap().unwrap() = json!(i + 100);
    }
    assert_eq!(log_bytes(&s.path).len(), before);
    // The next change finds three dirty keys and syncs them first.
    pod.update("k0", |v| *v = json!(0)).unwrap();
    assert!(log_bytes(&s.path).len() > before);
    assert_eq!(open_ro(&s.path).get("k2").unwrap(), Some(json!(102)));
}

#[test]
fn removals_count_as_dirty_keys() {
    let s = scratch();
    let mut pod = pod_with_threshold(&s.path, 2);
    pod.insert("a", json!(1)).unwrap();
    pod.insert("b", json!(2)).unwrap();
    assert_eq!(keys_on_disk(&s.path), 2);
    pod.remove("a").unwrap();
    assert_eq!(pod.dirty_keys().collect::<Vec<_>>(), ["a"]);
    pod.remove("b").unwrap();
    assert_eq!(keys_on_disk(&s.path), 0);
}

//! Invariant: the public API keeps the shape bindings and worker pools
//! rely on. Handles are `Send` (the shared ones `Sync` too) and
//! `TaskQueue` is object-safe: checked at compile time. Opening needs no
//! type annotation; every handle opens as `XOptions::open(path)`; an
//! owned cursor pages through the keys across calls and refuses to go on
//! after the keys were renumbered.

mod common;
use common::*;
use serde_json::json;
use tastypod::{
    ErrorKind, Pod, PodOptions, SharedPod, SharedTracker, TaskQueue, Tracker, TrackerOptions,
};

fn is_send<T: Send>() {}
fn is_send_sync<T: Send + Sync>() {}

#[test]
fn handles_can_move_between_threads_and_shared_ones_be_shared() {
    is_send::<Pod>();
    is_send::<Pod<u64>>();
    is_send::<Tracker>();
    is_send_sync::<SharedPod>();
    is_send_sync::<SharedTracker>();
    is_send_sync::<Box<dyn TaskQueue>>();
    is_send_sync::<tastypod::Error>();
}

#[test]
fn every_handle_opens_the_same_way_without_annotations() -> tastypod::Result<()> {
    let s = scratch();
    let pod = Pod::open(s.dir.path().join("a"))?;
    drop(pod);
    let pod = PodOptions::new().open::<serde_json::Value>(s.dir.path().join("a"))?;
    drop(pod);
    let shared = PodOptions::new().open_shared::<serde_json::Value>(s.dir.path().join("a"))?;
    drop(shared);
    let shared = SharedPod::open(s.dir.path().join("a"))?;
    drop(shared);
    let typed: Pod<u64> = Pod::open_typed(s.dir.path().join("b"))?;
    drop(typed);
    let tracker = TrackerOptions::new().open(s.dir.path().join("t"))?;
    drop(tracker);
    let shared = TrackerOptions::new().open_shared(s.dir.path().join("t"))?;
    drop(shared);
    let shared = SharedTracker::open(s.dir.path().join("t"))?;
    let queue: Box<dyn TaskQueue> = Box::new(shared);
    assert_eq!(queue.add_keys(&["x"])?, 1);
    Ok(())
}

#[test]
fn a_cursor_pages_through_the_keys_and_refuses_a_renumbered_store() {
    let s = scratch();
    let mut pod = Pod::open(&s.path).unwrap();
    for i in 0..10 {
        pod.insert(&format!("k{i}"), json!(i)).unwrap();
    }
    pod.remove("k3").unwrap();
    let mut cursor = pod.cursor();
    let mut seen = Vec::new();
    loop {
        let page = pod.next_keys(&mut cursor, 4).unwrap();
        if page.is_empty() {
            break;
        }
        seen.extend(page);
        // A key inserted while paging comes at the end.
        if seen.len() == 4 {
            pod.insert("late", json!(0)).unwrap();
        }
    }
    let expected: Vec<String> = (0..10)
        .filter(|&i| i != 3)
        .map(|i| format!("k{i}"))
        .chain(["late".to_string()])
        .collect();
    assert_eq!(seen, expected);
    let mut cursor = pod.cursor();
    let items = pod.next_items_json(&mut cursor, 2).unwrap();
    assert_eq!(
        items,
        [("k0".into(), "0".into()), ("k1".into(), "1".into())]
    );
    pod.compact().unwrap();
    let err = pod.next_keys(&mut cursor, 2).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::StaleCursor { .. }), "{err}");
}

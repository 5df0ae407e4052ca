//! Invariant: iteration follows first insertion; an update keeps a key's
//! place; a removed key inserted again goes to the end; and this order is the
//! same after sync, reopen and compaction.

mod common;
use common::*;
use serde_json::json;

fn scenario(pod: &mut tastypod::Pod) {
    pod.insert("a", json!(1)).unwrap();
    pod.insert("b", json!(2)).unwrap();
    pod.insert("c", json!(3)).unwrap();
    pod.insert("a", json!(10)).unwrap(); // update keeps place
    pod.remove("b").unwrap();
    pod.insert("d", json!(4)).unwrap();
    pod.insert("b", json!(20)).unwrap(); // re-insert goes to the end
}

fn expected() -> Vec<(String, serde_json::Value)> {
    pairs(&[
        ("a", json!(10)),
        ("c", json!(3)),
        ("d", json!(4)),
        ("b", json!(20)),
    ])
}

#[test]
fn order_in_memory() {
    let s = scratch();
    let mut pod = open(&s.path);
    scenario(&mut pod);
    assert_eq!(contents(&pod), expected());
}

#[test]
fn order_after_one_sync_and_reopen() {
    let s = scratch();
    let mut pod = open(&s.path);
    scenario(&mut pod);
    pod.sync().unwrap();
    drop(pod);
    assert_eq!(contents(&open(&s.path)), expected());
}

#[test]
fn order_with_a_sync_after_every_call() {
    let s = scratch();
    let mut pod = tastypod::PodOptions::new()
        .sync_at(1)
        .open(&s.path)
        .unwrap();
    scenario(&mut pod);
    drop(pod);
    assert_eq!(contents(&open(&s.path)), expected());
}

#[test]
fn reinsert_of_a_synced_key_moves_it_to_the_end_on_disk() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("a", json!(1)).unwrap();
    pod.insert("b", json!(2)).unwrap();
    pod.sync().unwrap();
    pod.remove("a").unwrap();
    pod.insert("a", json!(3)).unwrap();
    pod.sync().unwrap();
    drop(pod);
    assert_eq!(
        contents(&open(&s.path)),
        pairs(&[("b", json!(2)), ("a", json!(3))])
    );
}

#[test]
fn order_after_compaction() {
    let s = scratch();
    let mut pod = open(&s.path);
    scenario(&mut pod);
    pod.compact().unwrap();
    assert_eq!(contents(&pod), expected());
    drop(pod);
    let pod = open(&s.path);
    assert_eq!(contents(&pod), expected());
    assert_eq!(pod.stats().dead_bytes, 0);
    assert_eq!(line_starts(&s.path).len(), 5);
}

#[test]
fn many_removals_keep_order_and_lookups() {
    let s = scratch();
    let mut pod = open(&s.path);
    for i in 0..5000 {
        pod.insert(&format!("k{i}"), json!(i)).unwrap();
    }
    for i in (0..5000).filter(|i| i % 3 != 0) {
        pod.remove(&format!("k{i}")).unwrap();
    }
    pod.insert("k1", json!("back")).unwrap();
    let mut expect: Vec<String> = (0..5000)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("k{i}"))
        .collect();
    expect.push("k1".into());
    assert_eq!(pod.keys().collect::<Vec<_>>(), expect);
    assert_eq!(pod.get("k3").unwrap(), Some(json!(3)));
    assert_eq!(pod.get("k4").unwrap(), None);
    // Every lookup still works after the tombstones were dropped, in
    // insertion order (which tries the next slot first) and backwards.
    for i in (0..5000).chain((0..5000).rev()) {
        let key = format!("k{i}");
        assert_eq!(pod.contains_key(&key), i % 3 == 0 || i == 1, "{key}");
    }
    drop(pod);
    assert_eq!(open(&s.path).keys().collect::<Vec<_>>(), expect);
}

//! Invariant: a `Pod` behaves like an in-memory ordered map under any
//! sequence of insert, update, remove, sync, hold, unhold, compact, revert
//! and reopen: after every step its contents and order equal the model's,
//! and after a reopen or revert they equal what was last synced.

mod common;
use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use tastypod::{Compaction, Pod, PodOptions};

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, u16),
    Update(u8),
    Remove(u8),
    MarkDirty(u8),
    SyncKey(u8),
    Sync,
    Hold,
    Unhold,
    Compact,
    Revert,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..10, any::<u16>()).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => (0u8..10).prop_map(Op::Update),
        3 => (0u8..10).prop_map(Op::Remove),
        1 => (0u8..10).prop_map(Op::MarkDirty),
        1 => (0u8..10).prop_map(Op::SyncKey),
        2 => Just(Op::Sync),
        1 => Just(Op::Hold),
        1 => Just(Op::Unhold),
        1 => Just(Op::Compact),
        1 => Just(Op::Revert),
        1 => Just(Op::Reopen),
    ]
}

type Model = Vec<(String, Value)>;

/// Opens a handle that syncs every 4 changes and compacts small logs, in
/// the exclusive or the multi-process mode.
fn open_mode(path: &std::path::Path, multi_process: bool) -> Pod {
    PodOptions::new()
        .multi_process(multi_process)
        .sync_at(4)
        .compaction(Compaction::Auto {
            dead_fraction: 0.5,
            min_bytes: 256,
        })
        .open(path)
        .unwrap()
}

fn open_with(path: &std::path::Path) -> Pod {
    open_mode(path, false)
}

fn model_insert(model: &mut Model, key: String, value: Value) {
    match model.iter_mut().find(|(x, _)| *x == key) {
        Some((_, val)) => *val = value,
        None => model.push((key, value)),
    }
}

/// Does a change (insert, update, remove, mark_dirty) on `pod` and on
/// `model` alike, checking what `pod` answers; an insert stores `value`,
/// an update sets the member `u` to `mark`. `Ok(false)`: `op` is not a
/// change, left to the caller.
fn apply_change(
    pod: &mut Pod,
    model: &mut Model,
    op: &Op,
    value: impl Fn(u16) -> Value,
    mark: &Value,
) -> Result<bool, TestCaseError> {
    let key = |k: u8| format!("k{k}");
    match *op {
        Op::Insert(k, v) => {
            pod.insert(&key(k), value(v)).unwrap();
            model_insert(model, key(k), value(v));
        }
        Op::Update(k) => {
            let got = pod.update(&key(k), |v| v["u"] = mark.clone()).unwrap();
            let entry = model.iter_mut().find(|(x, _)| *x == key(k));
            prop_assert_eq!(got.is_some(), entry.is_some());
            if let Some((_, val)) = entry {
                val["u"] = mark.clone();
            }
        }
        Op::Remove(k) => {
            let was = pod.remove(&key(k)).unwrap();
            let before = model.len();
            model.retain(|(x, _)| *x != key(k));
            prop_assert_eq!(was, model.len() < before);
        }
        Op::MarkDirty(k) => {
            let was = pod.mark_dirty(&key(k)).unwrap();
            prop_assert_eq!(was, model.iter().any(|(x, _)| *x == key(k)));
        }
        _ => return Ok(false),
    }
    Ok(true)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn pod_matches_an_ordered_map(ops in proptest::collection::vec(op(), 1..50)) {
        let s = scratch();
        let mut pod = open_with(&s.path);
        let mut model: Model = Vec::new();
        let mut synced: Model = Vec::new();
        // Whether `synced` is known: after a `sync_key`, only part of the
        // changes are on disk.
        let mut synced_known = true;
        for op in ops {
            let key = |k: u8| format!("k{k}");
            if !apply_change(&mut pod, &mut model, &op, |v| json!({"v": v}), &json!(true))? {
                match op {
                    Op::SyncKey(k) => {
                        pod.sync_key(&key(k)).unwrap();
                        // That key's latest state is on disk now.
                        let on_disk = contents(&open_ro(&s.path));
                        let want = model.iter().find(|(x, _)| *x == key(k));
                        let got = on_disk.iter().find(|(x, _)| *x == key(k));
                        prop_assert_eq!(got, want);
                        synced_known = false;
                    }
                    Op::Sync => pod.sync().unwrap(),
                    Op::Hold => pod.hold(),
                    Op::Unhold => pod.unhold().unwrap(),
                    Op::Compact => pod.compact().unwrap(),
                    Op::Revert => {
                        pod.revert().unwrap();
                        model = if synced_known {
                            synced.clone()
                        } else {
                            contents(&open_ro(&s.path))
                        };
                    }
                    Op::Reopen => {
                        // Drop syncs, so a reopen sees everything.
                        drop(pod);
                        pod = open_with(&s.path);
                    }
                    Op::Insert(..) | Op::Update(_) | Op::Remove(_) | Op::MarkDirty(_) => {}
                }
            }
            if pod.dirty_len() == 0 {
                synced = model.clone();
                synced_known = true;
                // The handle's byte counts are those of the log on disk.
                let stats = pod.stats();
                let fresh = open_ro(&s.path).stats();
                prop_assert_eq!(stats.live_bytes, fresh.live_bytes);
                prop_assert_eq!(stats.log_bytes, records_len(&s.path));
            }
            prop_assert_eq!(contents(&pod), model.clone());
            prop_assert_eq!(pod.len(), model.len());
        }
        // What is on disk is exactly what was synced.
        if synced_known {
            let on_disk = contents(&open_ro(&s.path));
            prop_assert_eq!(on_disk, synced);
        }
    }
}

/// One step of the multi-process model: which handle does what. `Held`
/// runs its inserts under one hold (which keeps the store's lock in the
/// multi-process mode, so no other handle may act in between), `Atomic`
/// the same ending with `sync_atomic`.
#[derive(Debug, Clone)]
enum Step {
    Op(usize, Op),
    Held(usize, Vec<(u8, u16)>),
    Atomic(usize, Vec<(u8, u16)>),
}

fn step() -> impl Strategy<Value = Step> {
    let plain = prop_oneof![
        6 => (0u8..10, any::<u16>()).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => (0u8..10).prop_map(Op::Update),
        3 => (0u8..10).prop_map(Op::Remove),
        1 => (0u8..10).prop_map(Op::MarkDirty),
        1 => (0u8..10).prop_map(Op::SyncKey),
        2 => Just(Op::Sync),
        1 => Just(Op::Compact),
        1 => Just(Op::Revert),
        1 => Just(Op::Reopen),
    ];
    let batch = proptest::collection::vec((0u8..10, any::<u16>()), 1..5);
    prop_oneof![
        8 => (0usize..3, plain).prop_map(|(h, op)| Step::Op(h, op)),
        1 => (0usize..3, batch.clone()).prop_map(|(h, b)| Step::Held(h, b)),
        1 => (0usize..3, batch).prop_map(|(h, b)| Step::Atomic(h, b)),
    ]
}

fn open_multi(path: &std::path::Path) -> Pod {
    open_mode(path, true)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Three handles of the multi-process mode in one process, their
    /// operations interleaved, behave as one ordered map: after every step
    /// each handle (once it has caught up) holds the model, and so does
    /// the log.
    #[test]
    fn multi_process_handles_match_one_ordered_map(steps in proptest::collection::vec(step(), 1..40)) {
        let s = scratch();
        let mut pods: Vec<Pod> = (0..3).map(|_| open_multi(&s.path)).collect();
        let mut model: Model = Vec::new();
        let key = |k: u8| format!("k{k}");
        for step in steps {
            match step {
                Step::Op(h, op) => {
                    let pod = &mut pods[h];
                    let value = |v| json!({"v": v, "h": h});
                    if !apply_change(pod, &mut model, &op, value, &json!(h))? {
                        match op {
                            Op::SyncKey(k) => pod.sync_key(&key(k)).unwrap(),
                            Op::Sync => pod.sync().unwrap(),
                            Op::Compact => pod.compact().unwrap(),
                            // Every change was appended: nothing to drop.
                            Op::Revert => pod.revert().unwrap(),
                            Op::Reopen => {
                                let fresh = open_multi(&s.path);
                                std::mem::replace(pod, fresh).close().unwrap();
                            }
                            Op::Hold | Op::Unhold => {}
                            Op::Insert(..) | Op::Update(_) | Op::Remove(_) | Op::MarkDirty(_) => {}
                        }
                    }
                }
                Step::Held(h, batch) => {
                    let pod = &mut pods[h];
                    let mut held = pod.held();
                    for (k, v) in batch {
                        held.insert(&key(k), json!({"v": v, "h": h})).unwrap();
                        model_insert(&mut model, key(k), json!({"v": v, "h": h}));
                    }
                    // Nothing reached the log while held.
                    prop_assert!(held.dirty_len() > 0);
                    held.release().unwrap();
                    prop_assert_eq!(pods[h].dirty_len(), 0);
                }
                Step::Atomic(h, batch) => {
                    let pod = &mut pods[h];
                    pod.hold();
                    for (k, v) in batch {
                        pod.insert(&key(k), json!({"v": v, "h": h})).unwrap();
                        model_insert(&mut model, key(k), json!({"v": v, "h": h}));
                    }
                    let before = log_bytes(&s.path);
                    prop_assert!(pod.dirty_len() > 0);
                    // Both or neither: the log is replaced whole.
                    pod.sync_atomic().unwrap();
                    prop_assert_ne!(log_bytes(&s.path), before);
                    pod.unhold().unwrap();
                }
            }
            for (n, pod) in pods.iter_mut().enumerate() {
                pod.refresh().unwrap();
                prop_assert_eq!(contents(pod), model.clone(), "handle {}", n);
            }
        }
        drop(pods);
        prop_assert_eq!(contents(&open_ro(&s.path)), model);
    }
}

/// A `SharedPod` under `Durability::EveryChange` (the handle threads share,
/// whose calls stage their records for the fsync's leader to write) behaves
/// like the ordered map, and since every call returns with its records
/// fsynced, a read-only open after every step reads exactly the model.
fn open_shared(path: &std::path::Path) -> tastypod::SharedPod {
    PodOptions::new()
        .durability(tastypod::Durability::EveryChange)
        .compaction(Compaction::Auto {
            dead_fraction: 0.5,
            min_bytes: 256,
        })
        .open_shared(path)
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn shared_every_change_pod_matches_an_ordered_map_on_disk(ops in proptest::collection::vec(op(), 1..40)) {
        let s = scratch();
        let mut pod = open_shared(&s.path);
        let mut model: Model = Vec::new();
        for op in ops {
            let key = |k: u8| format!("k{k}");
            match op {
                Op::Insert(k, v) => {
                    pod.insert(&key(k), json!({"v": v})).unwrap();
                    model_insert(&mut model, key(k), json!({"v": v}));
                }
                Op::Update(k) => {
                    let got = pod.update(&key(k), |v| v["u"] = json!(true)).unwrap();
                    let entry = model.iter_mut().find(|(x, _)| *x == key(k));
                    prop_assert_eq!(got.is_some(), entry.is_some());
                    if let Some((_, val)) = entry {
                        val["u"] = json!(true);
                    }
                }
                Op::Remove(k) => {
                    let was = pod.remove(&key(k)).unwrap();
                    let before = model.len();
                    model.retain(|(x, _)| *x != key(k));
                    prop_assert_eq!(was, model.len() < before);
                }
                Op::MarkDirty(k) => {
                    pod.locked(|p| p.mark_dirty(&key(k))).unwrap();
                }
                Op::SyncKey(k) => pod.locked(|p| p.sync_key(&key(k))).unwrap(),
                Op::Sync | Op::Hold | Op::Unhold => pod.sync().unwrap(),
                Op::Compact => pod.compact().unwrap(),
                Op::Revert => pod.locked(|p| p.revert()).unwrap(),
                Op::Reopen => {
                    drop(pod);
                    pod = open_shared(&s.path);
                }
            }
            prop_assert_eq!(pod.locked(|p| Ok(contents(p))).unwrap(), model.clone());
            prop_assert_eq!(contents(&open_ro(&s.path)), model.clone());
        }
    }
}

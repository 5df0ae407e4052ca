//! Workloads on the simulated file system, the model of what they
//! acknowledged, and the check of a recovered store against it. Shared by
//! the crash and I/O-error tests and the fuzz targets.

use super::SimStorage;
use crate::{Compaction, Durability, Pod, PodOptions};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

pub const STORE: &str = "/sim/store.pod";

pub fn store() -> PathBuf {
    PathBuf::from(STORE)
}

pub fn log() -> PathBuf {
    store().join(crate::LOG_FILE)
}

#[derive(Debug, Clone)]
pub enum Op {
    Insert(u8, u32),
    Remove(u8),
    Mutate(u8),
    Sync,
    SyncKey(u8),
    Compact,
    Reopen,
}

/// A small deterministic generator (xorshift), so every run of a seed is the same.
pub fn script(seed: u64, len: usize) -> Vec<Op> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..len)
        .map(|n| {
            let k = (next() % 8) as u8;
            match next() % 20 {
                0..=8 => Op::Insert(k, n as u32),
                9..=11 => Op::Remove(k),
                12..=13 => Op::Mutate(k),
                14..=16 => Op::Sync,
                17 => Op::SyncKey(k),
                18 => Op::Compact,
                _ => Op::Reopen,
            }
        })
        .collect()
}

pub type State = Vec<(String, Value)>;

/// What a run acknowledged, and everything it tried to write after that.
#[derive(Debug, Default)]
pub struct Trace {
    /// The contents at the last moment a call returned `Ok` with nothing dirty.
    pub acked: State,
    /// Per key, every value (`None`: removal) a call tried to set after that.
    pub later: BTreeMap<String, BTreeSet<Option<String>>>,
    /// Whether any call failed.
    pub failed: bool,
    /// Every state the program passed through since the acknowledgement
    /// (the acknowledged one first): a crash leaves one of them, since a
    /// sync is atomic and records reach the log in the order of the calls.
    pub passed: Vec<State>,
}

/// The options of the simulated workloads: small sync and compaction
/// thresholds, so that a short script syncs and compacts often.
pub(super) fn opts(sim: &SimStorage) -> PodOptions {
    PodOptions::new()
        .sync_at(3)
        .compaction(Compaction::Auto {
            dead_fraction: 0.5,
            min_bytes: 600,
        })
        .simulated(sim.clone())
}

pub fn open_sim(sim: &SimStorage) -> crate::Result<Pod> {
    opts(sim).open(store())
}

/// The key an op's key number names.
pub(super) fn key(k: u8) -> String {
    format!("key-{k}")
}

/// Notes that `key` may hold `value` (`None`: be absent) after a crash.
fn note(trace: &mut Trace, key: &str, value: Option<&Value>) {
    trace
        .later
        .entry(key.to_string())
        .or_default()
        .insert(value.map(Value::to_string));
}

/// The model's side of an insert: `key` holds `value` (noted as possible).
pub(super) fn model_insert(trace: &mut Trace, model: &mut State, key: &str, value: Value) {
    note(trace, key, Some(&value));
    match model.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => model.push((key.to_string(), value)),
    }
}

/// The model's side of a remove.
pub(super) fn model_remove(trace: &mut Trace, model: &mut State, key: &str) {
    note(trace, key, None);
    model.retain(|(k, _)| k != key);
}

/// The model's side of an update setting the member `m` of `key`'s value
/// (if it is there) to `mark`.
pub(super) fn model_mutate(trace: &mut Trace, model: &mut State, key: &str, mark: &Value) {
    if let Some((_, v)) = model.iter_mut().find(|(k, _)| k == key) {
        v["m"] = mark.clone();
        let v = v.clone();
        note(trace, key, Some(&v));
    }
}

/// Runs `script` until its first failure; returns what was acknowledged.
pub fn run(sim: &SimStorage, script: &[Op]) -> Trace {
    run_with(sim, script, Durability::Full)
}

/// [`run`] with the store opened with `durability`. Under
/// [`Durability::EveryChange`] every call that returns `Ok` must have left
/// nothing unsynced in the log (checked: panics otherwise).
pub fn run_with(sim: &SimStorage, script: &[Op], durability: Durability) -> Trace {
    let open = || opts(sim).durability(durability).open(store());
    let mut trace = Trace {
        passed: vec![Vec::new()],
        ..Trace::default()
    };
    let mut model: State = Vec::new();
    let mut pod = match open() {
        Ok(p) => p,
        Err(_) => {
            trace.failed = true;
            return trace;
        }
    };
    for op in script {
        let result = match op {
            Op::Insert(k, n) => {
                let v = json!({"n": n, "pad": "x".repeat((*n as usize * 7) % 40)});
                model_insert(&mut trace, &mut model, &key(*k), v.clone());
                pod.insert(&key(*k), v)
            }
            Op::Remove(k) => {
                model_remove(&mut trace, &mut model, &key(*k));
                pod.remove(&key(*k)).map(|_| ())
            }
            Op::Mutate(k) => {
                model_mutate(&mut trace, &mut model, &key(*k), &json!(true));
                pod.update(&key(*k), |v| v["m"] = json!(true)).map(|_| ())
            }
            Op::Sync => pod.sync(),
            Op::SyncKey(k) => pod.sync_key(&key(*k)),
            Op::Compact => pod.compact(),
            Op::Reopen => reopen_placeholder().and_then(|placeholder| {
                std::mem::replace(&mut pod, placeholder).close()?;
                pod = open()?;
                Ok(())
            }),
        };
        trace.passed.push(model.clone());
        if result.is_err() {
            trace.failed = true;
            // Close rather than drop: the injected failure is expected, and a
            // drop would report it on stderr.
            let _ = pod.close();
            return trace;
        }
        if durability == Durability::EveryChange {
            assert_eq!(
                (pod.dirty_len(), sim.unsynced_len(&log())),
                (0, 0),
                "{op:?} returned before its change was durable"
            );
        }
        if pod.dirty_len() == 0 {
            trace.acked = model.clone();
            trace.later.clear();
            trace.passed = vec![model.clone()];
        }
    }
    // Close explicitly: a drop would sync too, but could only print an error.
    match pod.close() {
        Ok(()) => {
            trace.acked = model.clone();
            trace.later.clear();
            trace.passed = vec![model];
        }
        Err(_) => trace.failed = true,
    }
    trace
}

/// [`run_with`] under [`Durability::EveryChange`] through a
/// [`SharedPod`](crate::SharedPod), the handle threads share: each call
/// stages its records and the leader of the fsync it waits for writes
/// them (the module `group_commit`), so a crash can fall between the
/// staging, the write and the fsync. Every call that returns `Ok` must have
/// left nothing unsynced (checked: panics otherwise).
pub fn run_shared(sim: &SimStorage, script: &[Op]) -> Trace {
    let open = || {
        opts(sim)
            .durability(Durability::EveryChange)
            .open(store())
            .map(crate::SharedPod::from)
    };
    let mut trace = Trace {
        passed: vec![Vec::new()],
        ..Trace::default()
    };
    let mut model: State = Vec::new();
    let Ok(mut pod) = open() else {
        trace.failed = true;
        return trace;
    };
    for op in script {
        let result = match op {
            Op::Insert(k, n) => {
                let v = json!({"n": n, "pad": "x".repeat((*n as usize * 7) % 40)});
                model_insert(&mut trace, &mut model, &key(*k), v.clone());
                pod.insert(&key(*k), v)
            }
            Op::Remove(k) => {
                model_remove(&mut trace, &mut model, &key(*k));
                pod.remove(&key(*k)).map(|_| ())
            }
            Op::Mutate(k) => {
                model_mutate(&mut trace, &mut model, &key(*k), &json!(true));
                pod.update(&key(*k), |v| v["m"] = json!(true)).map(|_| ())
            }
            Op::Sync => pod.sync(),
            Op::SyncKey(k) => pod.locked(|p| p.sync_key(&key(*k))),
            Op::Compact => pod.compact(),
            // A drop after a sync: what a closing program does.
            Op::Reopen => match pod.sync() {
                Ok(()) => {
                    drop(pod);
                    match open() {
                        Ok(reopened) => {
                            pod = reopened;
                            Ok(())
                        }
                        Err(_) => {
                            trace.failed = true;
                            return trace;
                        }
                    }
                }
                Err(e) => Err(e),
            },
        };
        trace.passed.push(model.clone());
        if result.is_err() {
            trace.failed = true;
            // The failure poisoned the handle: its drop writes nothing.
            return trace;
        }
        // Nothing dirty, nothing appended (written or only staged) that an
        // fsync has not covered, and nothing in the file that is not durable.
        let unsynced = pod.locked(|p| Ok(p.has_unsynced())).unwrap_or(true);
        assert!(
            !unsynced && sim.unsynced_len(&log()) == 0,
            "{op:?} returned before its change was durable"
        );
        trace.acked = model.clone();
        trace.later.clear();
        trace.passed = vec![model.clone()];
    }
    drop(pod);
    trace
}

/// Checks that `got` is, keys, values and order, one of the states the
/// program passed through since its last acknowledgement: never a part of
/// a sync without the rest of it.
pub fn check_passed(got: &State, trace: &Trace, what: &str) {
    assert!(
        trace.passed.iter().any(|state| state == got),
        "{what}: the store holds {got:?}, a state the program never passed through \
         (it passed through {:?})",
        trace.passed
    );
}

/// An empty read-only pod on its own in-memory file system, to hold the
/// place of a pod being reopened.
fn reopen_placeholder() -> crate::Result<Pod> {
    let sim = SimStorage::new();
    drop(
        PodOptions::new()
            .simulated(sim.clone())
            .open::<Value>("/p")?,
    );
    PodOptions::new().read_only(true).simulated(sim).open("/p")
}

/// The contents of a pod, as (key, value) pairs; panics if a value does not
/// decode (the workloads only write valid JSON).
pub fn contents(pod: &Pod) -> State {
    let mut out = Vec::new();
    for entry in pod.iter() {
        match entry {
            Ok((k, v)) => out.push((k.to_string(), v)),
            Err(e) => unreachable!("a value the workload wrote does not decode: {e}"),
        }
    }
    out
}

/// Checks that `got` holds everything acknowledged and nothing never written.
pub fn check(got: &State, trace: &Trace, what: &str) {
    let acked: BTreeMap<&str, &Value> = trace.acked.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let have: BTreeMap<&str, &Value> = got.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let keys: BTreeSet<&str> = acked.keys().chain(have.keys()).copied().collect();
    for key in keys {
        let now = have.get(key).map(|v| v.to_string());
        let then = acked.get(key).map(|v| v.to_string());
        if now == then {
            continue;
        }
        let allowed = trace.later.get(key).is_some_and(|vals| vals.contains(&now));
        assert!(
            allowed,
            "{what}: key {key} is {now:?}; acknowledged {then:?}; written since {:?}",
            trace.later.get(key)
        );
    }
    // Keys untouched since the acknowledgement keep their relative order.
    let untouched = |s: &State| -> Vec<String> {
        s.iter()
            .filter(|(k, _)| !trace.later.contains_key(k))
            .map(|(k, _)| k.clone())
            .collect()
    };
    assert_eq!(untouched(got), untouched(&trace.acked), "{what}: order");
}

//! A deterministic workload on a simulated file system, with the model of
//! what it acknowledged, shared by the crash and I/O-error tests.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use tastypod::sim::SimStorage;
use tastypod::{Compaction, Pod, PodOptions};

pub const STORE: &str = "/sim/store.pod";

pub fn store() -> PathBuf {
    PathBuf::from(STORE)
}

#[allow(dead_code)]
pub fn log() -> PathBuf {
    store().join(tastypod::LOG_FILE)
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
}

fn opts(sim: &SimStorage) -> PodOptions {
    PodOptions::new()
        .sync_at(3)
        .compaction(Compaction::Auto {
            dead_fraction: 0.5,
            min_bytes: 600,
        })
        .simulated(sim.clone())
}

pub fn open_sim(sim: &SimStorage) -> tastypod::Result<Pod> {
    opts(sim).open(store())
}

fn set(model: &mut State, key: &str, value: Value) {
    match model.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => model.push((key.to_string(), value)),
    }
}

/// Runs `script` until its first failure; returns what was acknowledged.
pub fn run(sim: &SimStorage, script: &[Op]) -> Trace {
    let mut trace = Trace::default();
    let mut model: State = Vec::new();
    let mut pod = match open_sim(sim) {
        Ok(p) => p,
        Err(_) => {
            trace.failed = true;
            return trace;
        }
    };
    for op in script {
        let key = |k: &u8| format!("key-{k}");
        let note = |trace: &mut Trace, k: &str, v: Option<&Value>| {
            trace
                .later
                .entry(k.to_string())
                .or_default()
                .insert(v.map(Value::to_string));
        };
        let result = match op {
            Op::Insert(k, n) => {
                let v = json!({"n": n, "pad": "x".repeat((*n as usize * 7) % 40)});
                note(&mut trace, &key(k), Some(&v));
                set(&mut model, &key(k), v.clone());
                pod.insert(&key(k), v)
            }
            Op::Remove(k) => {
                note(&mut trace, &key(k), None);
                model.retain(|(x, _)| *x != key(k));
                pod.remove(&key(k)).map(|_| ())
            }
            Op::Mutate(k) => {
                if let Some((_, v)) = model.iter_mut().find(|(x, _)| *x == key(k)) {
                    v["m"] = json!(true);
                    let v = v.clone();
                    note(&mut trace, &key(k), Some(&v));
                }
                pod.update(&key(k), |v| v["m"] = json!(true)).map(|_| ())
            }
            Op::Sync => pod.sync(),
            Op::SyncKey(k) => pod.sync_key(&key(k)),
            Op::Compact => pod.compact(),
            Op::Reopen => {
                let closed = std::mem::replace(
                    &mut pod,
                    match open_placeholder() {
                        Some(p) => p,
                        None => return trace,
                    },
                );
                match closed.close().and_then(|()| open_sim(sim)) {
                    Ok(p) => {
                        pod = p;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        if result.is_err() {
            trace.failed = true;
            return trace;
        }
        if pod.dirty_len() == 0 {
            trace.acked = model.clone();
            trace.later.clear();
        }
    }
    trace
}

/// A throwaway read-only pod on an empty in-memory image, to stand in while
/// the real one is closed and reopened.
fn open_placeholder() -> Option<Pod> {
    let sim = SimStorage::new();
    let pod: Pod = PodOptions::new()
        .simulated(sim.clone())
        .open("/placeholder")
        .ok()?;
    pod.close().ok()?;
    PodOptions::new()
        .read_only(true)
        .simulated(sim)
        .open("/placeholder")
        .ok()
}

/// The contents of a pod, as (key, JSON text) pairs.
pub fn contents(pod: &Pod) -> State {
    pod.iter()
        .map(|r| r.map(|(k, v)| (k.to_string(), v)))
        .collect::<Result<_, _>>()
        .unwrap()
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

//! Two writers of the multi-process mode on one simulated file system,
//! interleaving their operations: the workload behind the two-writer crash
//! test and the `ops` fuzz target's multi-process half.

use super::SimStorage;
use super::workload::{Op, State, Trace, key, model_insert, model_mutate, model_remove, store};
use crate::Pod;
use serde_json::json;

/// One step: which writer (0 or 1) does what.
pub type Step = (usize, Op);

/// Opens a writer of the multi-process mode, with the single-writer
/// workload's options.
pub fn open_writer(sim: &SimStorage) -> crate::Result<Pod> {
    super::workload::opts(sim).multi_process(true).open(store())
}

/// A deterministic script of `len` steps (xorshift, as [`super::workload::script`]).
pub fn script_two(seed: u64, len: usize) -> Vec<Step> {
    let ops = super::workload::script(seed, len);
    let mut x = seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1;
    ops.into_iter()
        .map(|op| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x % 2) as usize, op)
        })
        .collect()
}

/// Runs `script` on two writers until the first failure; returns what was
/// acknowledged: the contents at the last moment both writers had synced
/// what they wrote (a `sync` promises what its own handle wrote; a
/// compaction rewrites the whole log durably).
pub fn run_two(sim: &SimStorage, script: &[Step]) -> Trace {
    let mut trace = Trace {
        passed: vec![Vec::new()],
        ..Trace::default()
    };
    let mut model: State = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..2 {
        match open_writer(sim) {
            Ok(w) => writers.push(w),
            Err(_) => {
                trace.failed = true;
                return trace;
            }
        }
    }
    // Which writer wrote since its last sync.
    let mut unsynced = [false; 2];
    for (n, op) in script {
        let Some(pod) = writers.get_mut(*n) else {
            continue;
        };
        let mut synced = false;
        let result = match op {
            Op::Insert(k, v) => {
                let v = json!({"n": v, "by": n, "pad": "x".repeat((*v as usize * 7) % 40)});
                model_insert(&mut trace, &mut model, &key(*k), v.clone());
                pod.insert(&key(*k), v)
            }
            Op::Remove(k) => {
                model_remove(&mut trace, &mut model, &key(*k));
                pod.remove(&key(*k)).map(|_| ())
            }
            Op::Mutate(k) => {
                model_mutate(&mut trace, &mut model, &key(*k), &json!(n));
                pod.update(&key(*k), |v| v["m"] = json!(n)).map(|_| ())
            }
            Op::Sync | Op::SyncKey(_) => {
                synced = true;
                pod.sync()
            }
            Op::Compact => {
                unsynced = [false; 2];
                pod.compact()
            }
            Op::Reopen => {
                synced = true;
                // The new handle opens beside the old one, then it closes.
                open_writer(sim).and_then(|new| std::mem::replace(pod, new).close())
            }
        };
        trace.passed.push(model.clone());
        if result.is_err() {
            trace.failed = true;
            for w in writers {
                let _ = w.close();
            }
            return trace;
        }
        match op {
            Op::Insert(..) | Op::Remove(_) | Op::Mutate(_) => unsynced[*n % 2] = true,
            _ if synced => unsynced[*n % 2] = false,
            _ => {}
        }
        if unsynced == [false; 2] {
            trace.acked = model.clone();
            trace.later.clear();
            trace.passed = vec![model.clone()];
        }
    }
    let mut closed = Ok(());
    for w in writers {
        closed = closed.and(w.close());
    }
    match closed {
        Ok(()) => {
            trace.acked = model.clone();
            trace.later.clear();
            trace.passed = vec![model];
        }
        Err(_) => trace.failed = true,
    }
    trace
}

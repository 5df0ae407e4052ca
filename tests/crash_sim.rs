//! Invariant: a crash after any single storage operation leaves a store
//! that opens and holds everything acknowledged by the last successful sync
//! and nothing that was never written, whether the unsynced tail of the log
//! is lost, partly kept or zero-filled. Compaction is crash-safe at each of
//! its steps.

mod common;
#[path = "common/sim_workload.rs"]
mod sim_workload;

use serde_json::json;
use sim_workload::*;
use tastypod::sim::{FailMode, SimStorage, Tail};

fn tails(sim: &SimStorage) -> Vec<Tail> {
    let unsynced = sim.unsynced_len(&log());
    let mut t = vec![Tail::Dropped];
    if unsynced > 0 {
        t.extend([
            Tail::Kept(unsynced),
            Tail::Kept(unsynced / 2),
            Tail::Zeroed(unsynced),
        ]);
    }
    t
}

/// Runs `run` once to count its storage operations, then again with a
/// crash after each one, and checks every crash image (each way the
/// unsynced tail may end) against what that run acknowledged. Returns how
/// many images were checked.
fn check_every_crash_point(what: &str, run: impl Fn(&SimStorage) -> Trace) -> usize {
    let total = {
        let sim = SimStorage::new();
        let trace = run(&sim);
        assert!(!trace.failed, "{what} failed without injected faults");
        sim.ops()
    };
    let mut images = 0;
    for crash_at in 1..=total {
        let sim = SimStorage::new();
        sim.fail_at(Some((crash_at, FailMode::FromThenOn)));
        let trace = run(&sim);
        for tail in tails(&sim) {
            let image = sim.crash_image(Some(&log()), tail);
            let what = format!("{what}, crash after op {}, tail {tail:?}", crash_at - 1);
            let pod = match open_sim(&image) {
                Ok(p) => p,
                Err(e) => panic!("{what}: open failed: {e}"),
            };
            check(&contents(&pod), &trace, &what);
            check_passed(&contents(&pod), &trace, &what);
            images += 1;
        }
    }
    images
}

#[test]
fn every_crash_point_recovers_what_was_acknowledged() {
    let mut images = 0;
    for seed in 1..=80u64 {
        let script = script(seed, 60);
        images += check_every_crash_point(&format!("seed {seed}"), |sim| run(sim, &script));
    }
    eprintln!("checked {images} crash images");
    assert!(images >= 10_000, "only {images} crash images");
}

/// The same with every change durable before its call returns
/// (`Durability::EveryChange`): each call's records are one atomic batch,
/// fsynced before it returns (the workload checks that), so a crash keeps
/// every call that returned and, of the one under way, all or nothing.
#[test]
fn every_change_durable_recovers_every_call_that_returned() {
    let mut images = 0;
    for seed in 1..=40u64 {
        let script = script(seed, 60);
        images += check_every_crash_point(&format!("every change, seed {seed}"), |sim| {
            run_with(sim, &script, tastypod::Durability::EveryChange)
        });
    }
    eprintln!("checked {images} crash images");
    assert!(images >= 5_000, "only {images} crash images");
}

/// The same through a `SharedPod`, the handle threads share: each call
/// stages its records, and the leader of the fsync it waits for writes
/// them with the other waiting calls' ones before fsyncing.
#[test]
fn shared_handle_every_change_recovers_every_call_that_returned() {
    let mut images = 0;
    for seed in 1..=40u64 {
        let script = script(seed, 60);
        images += check_every_crash_point(&format!("shared handle, seed {seed}"), |sim| {
            run_shared(sim, &script)
        });
    }
    eprintln!("checked {images} crash images");
    assert!(images >= 5_000, "only {images} crash images");
}

#[test]
fn compaction_is_safe_at_every_step() {
    // Count the operations of setup and of a compaction.
    let setup = |sim: &SimStorage| {
        let mut pod = open_sim(sim).unwrap();
        pod.hold();
        for i in 0..20 {
            pod.insert(&format!("k{i}"), json!({"i": i})).unwrap();
            pod.insert(&format!("k{i}"), json!({"i": i, "again": true}))
                .unwrap();
        }
        pod.sync().unwrap();
        pod
    };
    let sim = SimStorage::new();
    let mut pod = setup(&sim);
    let expected = contents(&pod);
    let before = sim.ops();
    pod.compact().unwrap();
    let steps = sim.ops() - before;
    drop(pod);
    // The steps: create temp, write it, fsync it, rename, fsync the directory, reopen.
    assert!(steps >= 5, "{steps}");
    for step in 1..=steps {
        let sim = SimStorage::new();
        let mut pod = setup(&sim);
        sim.fail_at(Some((before + step, FailMode::FromThenOn)));
        let result = pod.compact();
        assert!(result.is_err(), "step {step}");
        for tail in [Tail::Dropped, Tail::Kept(usize::MAX)] {
            let image = sim.crash_image(Some(&log()), tail);
            let pod = open_sim(&image).unwrap_or_else(|e| panic!("step {step}: {e}"));
            assert_eq!(contents(&pod), expected, "crash at compaction step {step}");
        }
        drop(pod);
    }
}

/// The same for two writers of the multi-process mode interleaving their
/// operations on one store: a crash after every storage operation of
/// either leaves a store holding everything either acknowledged.
#[test]
fn two_writers_crashing_after_every_operation_of_either_keep_what_was_acknowledged() {
    use tastypod::sim::two_writers::{run_two, script_two};
    let mut images = 0;
    for seed in 1..=40u64 {
        let script = script_two(seed, 50);
        images += check_every_crash_point(&format!("two writers, seed {seed}"), |sim| {
            run_two(sim, &script)
        });
    }
    eprintln!("checked {images} two-writer crash images");
    assert!(images >= 5_000, "only {images} crash images");
}

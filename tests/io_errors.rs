//! Invariant: when the Nth storage operation fails (once, or from then on),
//! every call returns an error or succeeds and never panics; a failed write
//! or fsync poisons the handle (writes refused, reads still work); and
//! reopening shows everything that was acknowledged.

mod common;
#[path = "common/sim_workload.rs"]
mod sim_workload;

use serde_json::json;
use sim_workload::*;
use tastypod::ErrorKind;
use tastypod::sim::{FailMode, SimStorage};

#[test]
fn every_failing_operation_is_an_error_and_loses_nothing_acknowledged() {
    let mut runs = 0;
    for seed in 100..=115u64 {
        let script = script(seed, 40);
        let total = {
            let sim = SimStorage::new();
            run(&sim, &script);
            sim.ops()
        };
        for at in 1..=total {
            for mode in [FailMode::Once, FailMode::FromThenOn] {
                let sim = SimStorage::new();
                sim.fail_at(Some((at, mode)));
                let trace = run(&sim, &script);
                sim.fail_at(None);
                // No crash: reopening sees what was written, which must hold
                // everything acknowledged.
                let what = format!("seed {seed}, op {at} fails {mode:?}");
                match open_sim(&sim) {
                    Ok(pod) => check(&contents(&pod), &trace, &what),
                    Err(e) => panic!("{what}: reopen failed: {e}"),
                }
                runs += 1;
            }
        }
    }
    assert!(runs > 1000, "{runs}");
}

#[test]
fn failed_fsync_poisons_the_handle() {
    let sim = SimStorage::new();
    let mut pod = open_sim(&sim).unwrap();
    pod.insert("a", json!(1)).unwrap();
    pod.sync().unwrap();
    pod.insert("b", json!(2)).unwrap();
    // The sync appends, then fsyncs: fail the fsync once.
    sim.fail_next("fsync");
    let err = pod.sync().unwrap_err();
    assert!(err.is_io(), "{err}");
    assert!(err.to_string().contains("fsync"), "{err}");
    assert!(pod.is_poisoned());
    // The storage works again, but the handle never pretends the fsync happened.
    for e in [
        pod.insert("c", json!(3)).unwrap_err(),
        pod.sync().unwrap_err(),
        pod.compact().unwrap_err(),
    ] {
        assert!(matches!(e.kind(), ErrorKind::Poisoned { .. }), "{e}");
    }
    assert_eq!(pod.get("a").unwrap(), Some(json!(1)));
    assert_eq!(pod.get("b").unwrap(), Some(json!(2)));
    drop(pod);
    let pod = open_sim(&sim).unwrap();
    assert_eq!(pod.get("a").unwrap(), Some(json!(1)));
}

#[test]
fn failed_write_poisons_and_close_reports_it() {
    let sim = SimStorage::new();
    let mut pod = open_sim(&sim).unwrap();
    pod.insert("a", json!(1)).unwrap();
    sim.fail_at(Some((sim.ops() + 1, FailMode::Once)));
    let err = pod.close().unwrap_err();
    assert!(err.to_string().contains("append"), "{err}");
}

#[test]
fn close_in_shared_mode_fsyncs_what_each_call_appended() {
    use tastypod::PodOptions;
    use tastypod::sim::Tail;
    let sim = SimStorage::new();
    let mut pod: tastypod::Pod = PodOptions::new()
        .multi_process(true)
        .simulated(sim.clone())
        .open(store())
        .unwrap();
    for i in 0..10 {
        pod.insert(&format!("k{i}"), json!(i)).unwrap();
    }
    pod.close().unwrap();
    let image = sim.crash_image(Some(&log()), Tail::Dropped);
    let pod = open_sim(&image).unwrap();
    assert_eq!(
        pod.len(),
        10,
        "a power loss after close() lost appended records"
    );
}

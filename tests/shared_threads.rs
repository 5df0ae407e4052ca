//! Invariant: shared handles make every call atomic across threads;
//! `locked` makes read-modify-write atomic; `claim_next` never gives one
//! task to two workers at once, and an expired lease makes a task claimable
//! again with its tries still counted.

mod common;
use common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};
use tastypod::{Claim, SharedPod, SharedTracker, Tracker, TrackerOptions};

fn assert_send_sync<T: Send + Sync + Clone>() {}

#[test]
fn shared_handles_are_send_sync_clone() {
    assert_send_sync::<SharedPod>();
    assert_send_sync::<SharedTracker>();
}

#[test]
fn threads_increment_counters_exactly() {
    let s = scratch();
    let pod: SharedPod = SharedPod::open(&s.path).unwrap();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let pod = pod.clone();
            scope.spawn(move || {
                for n in 0..1250 {
                    let key = format!("c{}", (t + n) % 5);
                    pod.locked(|p| {
                        let v = p.get(&key).unwrap().and_then(|v| v.as_u64()).unwrap_or(0);
                        p.insert(&key, json!(v + 1))
                    })
                    .unwrap();
                }
            });
        }
    });
    pod.sync().unwrap();
    drop(pod);
    let pod = open(&s.path);
    let total: u64 = (0..5)
        .map(|i| {
            pod.get(&format!("c{i}"))
                .unwrap()
                .unwrap()
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(total, 10_000);
}

#[test]
fn workers_drain_a_tracker_claiming_each_task_once() {
    let s = scratch();
    let tracker = TrackerOptions::new()
        .max_tries(2)
        .open_shared(&s.path)
        .unwrap();
    tracker
        .locked(|t| t.add_many((0..2000).map(|i| format!("t{i}"))))
        .unwrap();
    let claims = Mutex::new(BTreeMap::<String, usize>::new());
    std::thread::scope(|scope| {
        for w in 0..4 {
            let tracker = tracker.with_owner(&format!("worker-{w}"));
            let claims = &claims;
            scope.spawn(move || {
                loop {
                    let key = match tracker.claim_next_wait(Duration::from_secs(30)).unwrap() {
                        Claim::Task(task) => task.key,
                        Claim::Wait(_) => continue,
                        Claim::Finished => break,
                    };
                    *claims.lock().unwrap().entry(key.clone()).or_default() += 1;
                    assert!(tracker.locked(|t| Ok(t.lease(&key).is_some())).unwrap());
                    tracker.mark_done(&key).unwrap();
                }
            });
        }
    });
    let claims = claims.into_inner().unwrap();
    assert_eq!(claims.len(), 2000);
    assert!(claims.values().all(|&n| n == 1));
    tracker
        .locked(|t| {
            assert_eq!(t.num_done(), 2000);
            assert_eq!(t.num_tried(), 2000);
            assert!(t.keys().all(|k| t.tries(k) == 1 && t.lease(k).is_none()));
            Ok(())
        })
        .unwrap();
}

#[test]
fn expired_lease_makes_a_task_claimable_again() {
    let s = scratch();
    let clock = std::sync::Arc::new(tastypod::ManualClock::starting_now());
    let tracker = TrackerOptions::new()
        .lease(Duration::from_millis(200))
        .clock(clock.clone())
        .open_shared(&s.path)
        .unwrap();
    tracker.locked(|t| t.add("only")).unwrap();
    let a = tracker.with_owner("a");
    let b = tracker.with_owner("b");
    assert_eq!(a.claim_next().unwrap().key(), Some("only"));
    // The lease is in the record, for everyone (and jq) to see.
    let record = tracker.locked(|t| t.get("only")).unwrap().unwrap();
    assert_eq!(record["_lease"]["owner"], json!("a"));
    let Claim::Wait(until) = b.claim_next().unwrap() else {
        panic!("the only task is claimed: wait")
    };
    let lease_end = record["_lease"]["until"].as_u64().unwrap();
    assert_eq!(until, UNIX_EPOCH + Duration::from_millis(lease_end));
    clock.advance(Duration::from_millis(250));
    assert_eq!(b.claim_next().unwrap().key(), Some("only"));
    assert_eq!(tracker.locked(|t| Ok(t.tries("only"))).unwrap(), 2);
    b.release("only").unwrap();
    assert_eq!(a.claim_next().unwrap().key(), Some("only"));
    a.abort("only").unwrap();
    assert_eq!(b.claim_next().unwrap(), Claim::Finished);
    tracker.sync().unwrap();
    drop((a, b, tracker));
    let t = Tracker::open(&s.path).unwrap();
    assert_eq!(t.tries("only"), 3);
    assert!(t.aborted("only") && t.lease("only").is_none());
}

#[test]
fn leases_survive_a_multi_process_reopen_until_they_expire() {
    let s = scratch();
    let opts = TrackerOptions::new()
        .multi_process(true)
        .lease(Duration::from_secs(3600));
    let mut t = opts.open(&s.path).unwrap();
    t.add_many(["x", "y"]).unwrap();
    assert_eq!(t.claim_next("me").unwrap().key(), Some("x"));
    t.close().unwrap();
    // Another process may still hold x: its lease stands.
    let mut t = opts.open(&s.path).unwrap();
    assert_eq!(t.lease("x").map(|l| l.owner.as_str()), Some("me"));
    assert_eq!(t.claim_next("other").unwrap().key(), Some("y"));
    assert!(matches!(t.claim_next("other").unwrap(), Claim::Wait(_)));
}

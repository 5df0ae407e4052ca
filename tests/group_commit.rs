//! `Durability::EveryChange`: every completing call returns only once its
//! records are durable, and threads sharing a tracker share the fsyncs
//! (group commit), in both modes. On the simulated file system with a slow
//! fsync, so that the durable bytes and the number of fsyncs can be read.
#![cfg(feature = "sim")]

use std::path::{Path, PathBuf};
use std::time::Duration;
use tastypod::sim::SimStorage;
use tastypod::{Claim, Durability, SharedTracker, TrackerOptions};

const WORKERS: usize = 8;
const TASKS: usize = 160;

fn store() -> PathBuf {
    PathBuf::from("/sim/jobs")
}

fn open(sim: &SimStorage, multi: bool) -> SharedTracker {
    TrackerOptions::new()
        .durability(Durability::EveryChange)
        .multi_process(multi)
        .simulated(sim.clone())
        .open_shared(store())
        .expect("open")
}

/// Whether the durable bytes of the log hold a record of `key` done.
fn durably_done(sim: &SimStorage, log: &Path, key: &str) -> bool {
    let durable = sim.read_durable(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&durable);
    let needle = format!("\"k\":\"{key}\"");
    text.lines()
        .any(|line| line.contains(&needle) && line.contains("\"_done\":true"))
}

fn run_workers(multi: bool) {
    let sim = SimStorage::new();
    let tracker = open(&sim, multi);
    let keys: Vec<String> = (0..TASKS).map(|n| format!("task-{n}")).collect();
    tracker.add_many_if_absent(&keys).expect("add");
    let log = store().join(tastypod::LOG_FILE);
    assert_eq!(
        sim.unsynced_len(&log),
        0,
        "add_many_if_absent returned before its records were durable"
    );
    sim.set_fsync_delay(Duration::from_millis(4));
    let before = sim.fsyncs();
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            let tracker = tracker.clone();
            let (sim, log) = (sim.clone(), log.clone());
            s.spawn(move || {
                loop {
                    match tracker
                        .claim_next_wait(Duration::from_secs(10))
                        .expect("claim")
                    {
                        Claim::Task(task) => {
                            tracker.mark_done(&task.key).expect("done");
                            assert!(
                                durably_done(&sim, &log, &task.key),
                                "mark_done({}) returned before its record was durable",
                                task.key
                            );
                        }
                        Claim::Wait(_) => {}
                        Claim::Finished => return,
                    }
                }
            });
        }
    });
    let fsyncs = sim.fsyncs() - before;
    assert_eq!(tracker.counts().done, TASKS);
    // One fsync per completion without group commit; the workers share them.
    assert!(
        fsyncs <= (TASKS / 2) as u64,
        "{fsyncs} fsyncs for {TASKS} completions by {WORKERS} workers"
    );
    eprintln!("{fsyncs} fsyncs for {TASKS} durable completions by {WORKERS} workers");
}

#[test]
fn concurrent_completions_are_each_durable_and_share_fsyncs() {
    run_workers(false);
}

#[test]
fn the_same_in_the_multi_process_mode() {
    run_workers(true);
}

/// The leader of an fsync writes the records of every call waiting for it
/// with one write, so threads completing together cost one write and one
/// fsync, not a write each made in turn under the tracker's lock.
#[test]
fn the_fsync_leader_writes_the_waiting_calls_records_at_once() {
    let sim = SimStorage::new();
    let tracker = open(&sim, false);
    let keys: Vec<String> = (0..TASKS).map(|n| format!("task-{n}")).collect();
    tracker.add_many_if_absent(&keys).expect("add");
    sim.set_fsync_delay(Duration::from_millis(2));
    let (appends, fsyncs) = (sim.appends(), sim.fsyncs());
    std::thread::scope(|s| {
        for n in 0..WORKERS {
            let (tracker, keys) = (tracker.clone(), &keys);
            s.spawn(move || {
                for key in keys.iter().skip(n).step_by(WORKERS) {
                    tracker.mark_done(key).expect("done");
                }
            });
        }
    });
    let (appends, fsyncs) = (sim.appends() - appends, sim.fsyncs() - fsyncs);
    assert_eq!(tracker.counts().done, TASKS);
    let log = store().join(tastypod::LOG_FILE);
    for key in &keys {
        assert!(durably_done(&sim, &log, key), "{key} not durably done");
    }
    // A write a completion if each call wrote its own record. Here one
    // write an fsync, plus one each time the padding grows (every few
    // records: the simulation's is 256 bytes), which writes what is staged
    // first.
    assert!(
        appends < (TASKS * 3 / 4) as u64,
        "{appends} writes and {fsyncs} fsyncs for {TASKS} completions by {WORKERS} threads"
    );
    eprintln!("{appends} writes and {fsyncs} fsyncs for {TASKS} completions");
}

/// A compaction by one thread while another thread's change is staged and
/// waiting for an fsync: the change is written to the old log before the
/// rename, so the fsync that acknowledges it covers it there even if the
/// rename does not survive (here the directory's fsync fails, and a power
/// loss keeps the old log).
#[test]
fn a_change_staged_during_a_compaction_is_in_the_log_a_power_loss_keeps() {
    let sim = SimStorage::new();
    let path = PathBuf::from("/sim/pod");
    let pod: tastypod::SharedPod = tastypod::PodOptions::new()
        .durability(Durability::EveryChange)
        .simulated(sim.clone())
        .open_shared(&path)
        .expect("open");
    for n in 0..20 {
        pod.insert("k", serde_json::json!(n)).expect("insert");
    }
    sim.set_fsync_delay(Duration::from_millis(300));
    let acknowledged = std::thread::scope(|s| {
        // Leads a slow fsync.
        let first = s.spawn(|| pod.insert("c", serde_json::json!(1)));
        std::thread::sleep(Duration::from_millis(60));
        // Staged while that fsync runs; waits for the next one. (Larger
        // than the simulation's padding, so that no growth of the padding
        // writes it at once.)
        let staged = s.spawn(|| pod.insert("a", serde_json::json!("a".repeat(400))));
        std::thread::sleep(Duration::from_millis(60));
        // The first fsync goes on sleeping; the compaction's are quick, so
        // it installs its log while the insert of "a" waits.
        sim.set_fsync_delay(Duration::ZERO);
        sim.fail_next("fsync directory");
        let compacted = pod.compact();
        assert!(
            compacted.is_err(),
            "the directory's fsync should have failed"
        );
        first.join().expect("join").expect("first insert");
        staged.join().expect("join").is_ok()
    });
    // The insert's own call had ended well before the compaction failed:
    // it is acknowledged by the fsync of the old log it waited for.
    assert!(acknowledged, "the staged insert failed");
    drop(pod);
    let image = sim.crash_image(None, tastypod::sim::Tail::Dropped);
    let reopened = tastypod::PodOptions::new()
        .simulated(image)
        .open::<serde_json::Value>(&path)
        .expect("reopen");
    assert_eq!(
        reopened.get("a").expect("get"),
        Some(serde_json::json!("a".repeat(400))),
        "an acknowledged insert was lost"
    );
}

/// A claim is written at once but not waited for: it costs no fsync of its own.
#[test]
fn claims_do_not_wait_for_an_fsync() {
    let sim = SimStorage::new();
    let tracker = open(&sim, false);
    tracker.add_many_if_absent(["a", "b"]).expect("add");
    let before = sim.fsyncs();
    let Claim::Task(task) = tracker.claim_next().expect("claim") else {
        panic!("no task");
    };
    assert_eq!(sim.fsyncs(), before, "the claim fsynced");
    let log = store().join(tastypod::LOG_FILE);
    assert!(sim.unsynced_len(&log) > 0, "the claim was not written");
    tracker.mark_done(&task.key).expect("done");
    assert_eq!(sim.unsynced_len(&log), 0);
    assert_eq!(
        sim.fsyncs(),
        before + 1,
        "claim and completion share one fsync"
    );
}

/// The lines of the log that name `key`, in the file's written bytes.
fn lines_of(sim: &SimStorage, log: &Path, key: &str) -> usize {
    let written = sim.read(log).unwrap_or_default();
    let needle = format!("\"k\":\"{key}\"");
    String::from_utf8_lossy(&written)
        .lines()
        .filter(|line| line.contains(&needle))
        .count()
}

/// A claim through `claim_next_wait` is written (not fsynced) before it
/// returns, also when it first sleeps until another thread adds a task:
/// its try must be in the file if the process is killed while the task
/// runs. (Few appends since the open, so no growth of the padding writes
/// what is staged on the way.)
#[test]
fn a_waiting_claim_is_written_before_it_returns() {
    let sim = SimStorage::new();
    let tracker = open(&sim, false);
    let log = store().join(tastypod::LOG_FILE);
    tracker.add_many_if_absent(["a"]).expect("add");
    let lines = lines_of(&sim, &log, "a");
    let before = sim.fsyncs();
    let Claim::Task(task) = tracker
        .claim_next_wait(Duration::from_secs(1))
        .expect("claim")
    else {
        panic!("no task");
    };
    assert_eq!(task.key, "a");
    assert_eq!(
        lines_of(&sim, &log, "a"),
        lines + 1,
        "the claim was not written"
    );
    assert_eq!(sim.fsyncs(), before, "the claim fsynced");
    // Nothing to claim until another thread adds "b".
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            tracker.add_many_if_absent(["b"]).expect("add");
        });
        let Claim::Task(task) = tracker
            .claim_next_wait(Duration::from_secs(5))
            .expect("claim")
        else {
            panic!("no task");
        };
        assert_eq!(task.key, "b");
        assert_eq!(lines_of(&sim, &log, "b"), 2, "the claim was not written");
    });
}

/// `sync` waits for its fsync with the tracker unlocked: another thread
/// claims meanwhile.
#[test]
fn sync_does_not_hold_the_tracker_through_the_fsync() {
    let sim = SimStorage::new();
    let tracker = TrackerOptions::new()
        .simulated(sim.clone())
        .open_shared(store())
        .expect("open");
    tracker.add_many_if_absent(["a", "b", "c"]).expect("add");
    tracker.mark_done("a").expect("done");
    sim.set_fsync_delay(Duration::from_millis(300));
    let fsyncs = sim.fsyncs();
    std::thread::scope(|s| {
        let syncing = tracker.clone();
        let sync = s.spawn(move || syncing.sync());
        // Until the fsync has begun.
        while sim.fsyncs() == fsyncs {
            std::thread::yield_now();
        }
        let claim = tracker.claim_next().expect("claim");
        assert!(matches!(claim, Claim::Task(_)));
        assert!(
            !sync.is_finished(),
            "the claim waited for another thread's fsync to end"
        );
        sync.join().expect("join").expect("sync");
    });
}

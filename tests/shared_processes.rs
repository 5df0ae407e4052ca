//! Invariant: in shared mode several processes (each with several threads)
//! write one store without a server: read-modify-write under `locked` is
//! exact, `claim_next` gives each task to one worker at a time, a killed
//! worker's claims come back after their lease, a compaction by one process
//! loses nothing written by the others, mixing shared and exclusive opens is
//! refused, and read-only handles `refresh` to see new records.

mod common;
use common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tastypod::{
    Claim, ErrorKind, Pod, PodOptions, SharedPod, SharedTracker, Tracker, TrackerOptions,
};

const ENV_ROLE: &str = "TASTYPOD_SHARED_ROLE";
const ENV_PATH: &str = "TASTYPOD_SHARED_PATH";
const TASKS: usize = 20_000;

fn shared_pod(path: &str) -> SharedPod {
    PodOptions::new()
        .multi_process(true)
        .open::<serde_json::Value>(path)
        .unwrap()
        .into()
}

/// The time a child's tracker sees, this many milliseconds ahead of the
/// system's (a test moves a child's clock on instead of sleeping).
const ENV_CLOCK_AHEAD: &str = "TASTYPOD_SHARED_CLOCK_AHEAD_MS";

fn shared_tracker(path: &str, lease_ms: u64) -> SharedTracker {
    let mut opts = TrackerOptions::new()
        .multi_process(true)
        .max_tries(3)
        .lease(Duration::from_millis(lease_ms));
    if let Ok(ahead) = std::env::var(ENV_CLOCK_AHEAD) {
        let ahead = Duration::from_millis(ahead.parse().unwrap());
        let now = std::time::SystemTime::now() + ahead;
        opts = opts.clock(std::sync::Arc::new(tastypod::ManualClock::new(now)));
    }
    opts.open_shared(path).unwrap()
}

/// What a child process entry point says when run as a test.
const NOT_A_TEST: &str = "a child process of the tests in this file, which start it with its environment; run those tests instead";

/// The child processes' roles.
#[test]
#[ignore = "a child process that this file's tests start (with --ignored); not a test by itself"]
fn shared_child() {
    let (Ok(role), Ok(path)) = (std::env::var(ENV_ROLE), std::env::var(ENV_PATH)) else {
        panic!("{}", NOT_A_TEST);
    };
    match role.as_str() {
        "counter" => {
            let pod = shared_pod(&path);
            std::thread::scope(|s| {
                for t in 0..2 {
                    let pod = pod.clone();
                    s.spawn(move || {
                        for n in 0..1250 {
                            let key = format!("c{}", (t + n) % 3);
                            pod.locked(|p| {
                                let v = p.get(&key)?.and_then(|v| v.as_u64()).unwrap_or(0);
                                p.insert(&key, json!(v + 1))
                            })
                            .unwrap();
                        }
                    });
                }
            });
            pod.sync().unwrap();
        }
        "worker" => {
            let tracker = shared_tracker(&path, 60_000);
            loop {
                match tracker.claim_next_wait(Duration::from_secs(30)).unwrap() {
                    Claim::Task(task) => {
                        println!("claim {}", task.key);
                        tracker.mark_done(&task.key).unwrap();
                    }
                    Claim::Wait(_) => continue,
                    Claim::Finished => break,
                }
            }
            tracker.sync().unwrap();
        }
        "hoarder" => {
            let tracker = shared_tracker(&path, 1_000);
            for _ in 0..5 {
                let key = tracker.claim_next().unwrap().task().unwrap().key;
                println!("claim {key}");
            }
            tracker.sync().unwrap();
            println!("holding");
            std::thread::sleep(Duration::from_secs(60));
        }
        "compactor" => {
            let pod = shared_pod(&path);
            for _ in 0..30 {
                pod.compact().unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        "writer" => {
            let pod = shared_pod(&path);
            let me = std::process::id();
            for n in 0..300 {
                pod.insert(&format!("w{me}-{n}"), json!(n)).unwrap();
                pod.insert("hot", json!(n)).unwrap();
            }
            pod.sync().unwrap();
            println!("wrote {me}");
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn(role: &str, path: &std::path::Path) -> Child {
    spawn_ahead(role, path, Duration::ZERO)
}

/// [`spawn`] with the child's clock `ahead` of the system's.
fn spawn_ahead(role: &str, path: &std::path::Path, ahead: Duration) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "shared_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_ROLE, role)
        .env(ENV_PATH, path)
        .env(ENV_CLOCK_AHEAD, ahead.as_millis().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Waits for every child, reading their outputs at the same time (a child
/// whose pipe is full would block while it holds claims).
fn finish_all(children: Vec<Child>) -> Vec<Vec<String>> {
    let readers: Vec<_> = children
        .into_iter()
        .map(|child| std::thread::spawn(move || finish(child)))
        .collect();
    readers.into_iter().map(|r| r.join().unwrap()).collect()
}

fn finish(child: Child) -> Vec<String> {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "child failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn claims(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.split("claim ").nth(1))
        .map(String::from)
        .collect()
}

#[test]
fn processes_and_threads_increment_counters_exactly() {
    let s = scratch();
    drop(
        PodOptions::new()
            .multi_process(true)
            .open::<serde_json::Value>(&s.path)
            .unwrap(),
    );
    let children: Vec<Child> = (0..4).map(|_| spawn("counter", &s.path)).collect();
    for child in children {
        finish(child);
    }
    let pod = open(&s.path);
    let total: u64 = (0..3)
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
fn worker_processes_drain_a_tracker_claiming_each_task_once() {
    let s = scratch();
    let mut t = TrackerOptions::new().open(&s.path).unwrap();
    t.add_many((0..TASKS).map(|i| format!("task-{i:05}")))
        .unwrap();
    t.close().unwrap();
    let children: Vec<Child> = (0..4).map(|_| spawn("worker", &s.path)).collect();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_worker = Vec::new();
    for lines in finish_all(children) {
        let got = claims(&lines);
        per_worker.push(got.len());
        for key in got {
            *count.entry(key).or_default() += 1;
        }
    }
    assert_eq!(count.len(), TASKS);
    let twice: Vec<_> = count.iter().filter(|&(_, &n)| n != 1).collect();
    assert!(twice.is_empty(), "tasks claimed twice: {twice:?}");
    assert!(
        per_worker.iter().filter(|&&n| n > 0).count() >= 2,
        "one worker did everything: {per_worker:?}"
    );
    let t = Tracker::open(&s.path).unwrap();
    assert_eq!(t.num_done(), TASKS);
    assert_eq!(t.num_tried(), TASKS);
    assert!(t.keys().all(|k| t.tries(k) == 1 && t.lease(k).is_none()));
}

#[test]
fn a_killed_workers_claims_return_after_the_lease() {
    let s = scratch();
    let mut t = TrackerOptions::new().open(&s.path).unwrap();
    t.add_many((0..50).map(|i| format!("t{i:02}"))).unwrap();
    t.close().unwrap();
    let mut hoarder = spawn("hoarder", &s.path);
    let mut out = BufReader::new(hoarder.stdout.take().unwrap());
    let mut held = Vec::new();
    let mut line = String::new();
    while !line.contains("holding") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0);
        if let Some(k) = line.trim_end().split("claim ").nth(1) {
            held.push(k.to_string());
        }
    }
    hoarder.kill().unwrap();
    hoarder.wait().unwrap();
    assert_eq!(held.len(), 5);
    // A worker whose clock is past the hoarder's leases (1 s) drains the
    // rest and the hoarded tasks, with no wait.
    let worker = spawn_ahead("worker", &s.path, Duration::from_millis(1100));
    let got = claims(&finish(worker));
    assert_eq!(got.len(), 50);
    let t = Tracker::open(&s.path).unwrap();
    assert_eq!(t.num_done(), 50);
    for k in &held {
        assert_eq!(t.tries(k), 2, "{k}: the killed worker's try stays counted");
    }
}

#[test]
fn compaction_by_one_process_while_others_write_loses_nothing() {
    let s = scratch();
    drop(
        PodOptions::new()
            .multi_process(true)
            .open::<serde_json::Value>(&s.path)
            .unwrap(),
    );
    let compactor = spawn("compactor", &s.path);
    let writers: Vec<Child> = (0..3).map(|_| spawn("writer", &s.path)).collect();
    let mut pids = Vec::new();
    for w in writers {
        let lines = finish(w);
        pids.extend(
            lines
                .iter()
                .filter_map(|l| l.split("wrote ").nth(1))
                .map(String::from),
        );
    }
    finish(compactor);
    assert_eq!(pids.len(), 3);
    let pod = open(&s.path);
    for pid in pids {
        for n in 0..300 {
            assert_eq!(
                pod.get(&format!("w{pid}-{n}")).unwrap(),
                Some(json!(n)),
                "w{pid}-{n}"
            );
        }
    }
    assert_eq!(pod.get("hot").unwrap(), Some(json!(299)));
    assert!(tastypod::verify(&s.path).unwrap().is_clean());
}

#[test]
fn mixing_shared_and_exclusive_opens_is_refused() {
    let s = scratch();
    let shared = PodOptions::new()
        .multi_process(true)
        .open::<serde_json::Value>(&s.path)
        .unwrap();
    let err = Pod::<serde_json::Value>::open(&s.path).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Locked { .. }), "{err}");
    // A second shared handle is fine.
    let second = PodOptions::new()
        .multi_process(true)
        .open::<serde_json::Value>(&s.path)
        .unwrap();
    drop((shared, second));
    let exclusive = open(&s.path);
    let err = PodOptions::new()
        .multi_process(true)
        .open::<serde_json::Value>(&s.path)
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Locked { .. }), "{err}");
    drop(exclusive);
}

#[test]
fn read_only_handles_refresh_without_reopening() {
    let s = scratch();
    let mut writer = open(&s.path);
    writer.insert("a", json!(1)).unwrap();
    writer.sync().unwrap();
    let mut reader = open_ro(&s.path);
    writer.insert("b", json!(2)).unwrap();
    writer.insert("a", json!(3)).unwrap();
    writer.sync().unwrap();
    assert_eq!(reader.len(), 1);
    reader.refresh().unwrap();
    assert_eq!(
        contents(&reader),
        pairs(&[("a", json!(3)), ("b", json!(2))])
    );
    writer.compact().unwrap();
    writer.insert("c", json!(4)).unwrap();
    writer.sync().unwrap();
    reader.refresh().unwrap();
    assert_eq!(reader.len(), 3);
    // A reader tracker follows the counters too.
    drop((writer, reader));
    let mut t = TrackerOptions::new().open(s.dir.path().join("t")).unwrap();
    t.add_many(["x", "y"]).unwrap();
    t.sync().unwrap();
    let mut r = TrackerOptions::new()
        .read_only(true)
        .open(s.dir.path().join("t"))
        .unwrap();
    t.mark_done("x").unwrap();
    t.sync().unwrap();
    assert_eq!(r.num_done(), 0);
    r.refresh().unwrap();
    assert_eq!(r.num_done(), 1);
}

fn shared_handle(path: &std::path::Path) -> Pod {
    PodOptions::new().multi_process(true).open(path).unwrap()
}

#[test]
fn a_pending_get_mut_change_survives_others_appends_and_compactions() {
    let s = scratch();
    let mut a = shared_handle(&s.path);
    let mut b = shared_handle(&s.path);
    a.insert("k", json!({"n": 0})).unwrap();
    // A leaves a change pending; B appends, then compacts.
    a.get_mut("k").unwrap().unwrap()["n"] = json!(1);
    b.insert("other", json!("b")).unwrap();
    a.sync().unwrap();
    a.get_mut("k").unwrap().unwrap()["n"] = json!(2);
    b.compact().unwrap();
    b.insert("more", json!("b2")).unwrap();
    a.sync().unwrap();
    drop((a, b));
    assert!(tastypod::verify(&s.path).unwrap().is_clean());
    let pod = open(&s.path);
    assert_eq!(
        contents(&pod),
        pairs(&[
            ("k", json!({"n": 2})),
            ("other", json!("b")),
            ("more", json!("b2"))
        ])
    );
}

#[test]
fn a_torn_tail_left_by_a_dead_writer_is_cut_under_the_lock() {
    let s = scratch();
    let mut a = shared_handle(&s.path);
    a.insert("a", json!(1)).unwrap();
    a.sync().unwrap();
    // A writer died mid-append.
    append_garbage(&s.path, b"{\"c\":\"1234");
    a.insert("b", json!(2)).unwrap();
    // The cut is reported, like one at open.
    let torn = a.recovery().torn_tail.clone().unwrap();
    assert_eq!((torn.first.line, torn.bytes), (3, 10));
    assert!(torn.partial_record && torn.copy.is_none());
    // More than a partial record is cut too, but kept beside the log.
    append_garbage(&s.path, b"garbage\nand more garbage");
    a.insert("b2", json!(2)).unwrap();
    let torn = a.recovery().torn_tail.clone().unwrap();
    assert_eq!(
        std::fs::read(torn.copy.unwrap()).unwrap(),
        b"garbage\nand more garbage"
    );
    a.remove("b2").unwrap();
    // And again after a compaction (the reload path).
    let mut c = shared_handle(&s.path);
    c.compact().unwrap();
    append_garbage(&s.path, b"{\"c\":\"ab");
    a.insert("c", json!(3)).unwrap();
    a.sync().unwrap();
    drop((a, c));
    assert!(tastypod::verify(&s.path).unwrap().is_clean());
    assert_eq!(open(&s.path).keys().collect::<Vec<_>>(), ["a", "b", "c"]);
}

#[test]
fn a_catch_up_never_cuts_a_record_whose_newline_is_damaged() {
    let s = scratch();
    let mut a = shared_handle(&s.path);
    let mut b = shared_handle(&s.path);
    a.insert("a", json!(1)).unwrap();
    b.insert("b", json!(2)).unwrap();
    b.sync().unwrap();
    let mut bytes = log_bytes(&s.path);
    let last = bytes.len() - 1;
    bytes[last] = b'X';
    std::fs::write(log_of(&s.path), &bytes).unwrap();
    let err = a.insert("c", json!(3)).unwrap_err();
    assert_eq!(err.line(), Some(3), "{err}");
    assert_eq!(log_bytes(&s.path), bytes);
    // Only the newline missing: the record is kept and the newline added.
    drop((a, b));
    bytes.pop();
    std::fs::write(log_of(&s.path), &bytes).unwrap();
    let mut a = shared_handle(&s.path);
    assert_eq!(a.recovery().completed_line, Some(3));
    a.insert("c", json!(3)).unwrap();
    a.sync().unwrap();
    drop(a);
    assert!(tastypod::verify(&s.path).unwrap().is_clean());
    assert_eq!(open(&s.path).keys().collect::<Vec<_>>(), ["a", "b", "c"]);
}

#[test]
fn a_panic_inside_an_operation_releases_the_store_lock() {
    let s = scratch();
    let a: SharedPod = shared_handle(&s.path).into();
    a.insert("k", json!(1)).unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = a.update("k", |_| panic!("boom"));
    }));
    assert!(panicked.is_err());
    // Another handle (as another process would) still gets the lock.
    let path = s.path.clone();
    let other = std::thread::spawn(move || {
        let mut b = shared_handle(&path);
        b.insert("after", json!(2)).unwrap();
        b.sync().unwrap();
    });
    let start = std::time::Instant::now();
    while !other.is_finished() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the store lock was never released"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    other.join().unwrap();
    assert!(a.contains_key("after").unwrap());
}

#[test]
fn revert_in_shared_mode_drops_pending_changes_and_sees_others() {
    let s = scratch();
    let mut a = shared_handle(&s.path);
    let mut b = shared_handle(&s.path);
    a.insert("k", json!(1)).unwrap();
    a.get_mut("k").unwrap().unwrap().clone_from(&json!(99));
    b.insert("b", json!(2)).unwrap();
    a.revert().unwrap();
    assert_eq!(contents(&a), pairs(&[("k", json!(1)), ("b", json!(2))]));
    drop((a, b));
    assert_eq!(open(&s.path).get("k").unwrap(), Some(json!(1)));
}

#[test]
fn counters_stay_exact_when_another_handle_removes_and_re_adds_a_task() {
    let s = scratch();
    let mut a = TrackerOptions::new()
        .multi_process(true)
        .open(&s.path)
        .unwrap();
    a.add_many(["x", "y"]).unwrap();
    a.mark_done("x").unwrap();
    a.sync().unwrap();
    let mut b = shared_handle(&s.path);
    b.atomically(|p| {
        p.remove("x")?;
        p.insert("x", json!({"_done": false, "_tries": 0, "_aborted": false}))
    })
    .unwrap();
    a.refresh().unwrap();
    assert_eq!(a.num_done(), 0);
    assert!(!a.done("x"));
    assert_eq!(a.keys().collect::<Vec<_>>(), ["y", "x"]);
}

#[test]
fn a_hold_in_the_multi_process_mode_keeps_the_others_out_until_unhold() {
    let s = scratch();
    let mut a = shared_handle(&s.path);
    let mut b = shared_handle(&s.path);
    a.insert("first", json!(0)).unwrap();
    a.hold();
    a.insert("held-1", json!(1)).unwrap();
    let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = started.clone();
    let other = std::thread::spawn(move || {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        // Waits for the hold to end: the store's lock is held meanwhile.
        b.insert("other", json!(2)).unwrap();
        b
    });
    while !started.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::yield_now();
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    a.insert("held-2", json!(3)).unwrap();
    assert_eq!(a.dirty_len(), 2, "nothing is appended while held");
    a.unhold().unwrap();
    let b = other.join().unwrap();
    drop((a, b));
    // The held changes reached the log together, before the other's.
    assert_eq!(
        open(&s.path).keys().collect::<Vec<_>>(),
        ["first", "held-1", "held-2", "other"]
    );
}

#[test]
fn sync_atomic_in_the_multi_process_mode_writes_both_or_neither() {
    let s = scratch();
    let mut a = shared_handle(&s.path);
    let mut b = shared_handle(&s.path);
    b.insert("theirs", json!(0)).unwrap();
    a.hold();
    a.insert("from", json!(100)).unwrap();
    a.insert("to", json!(0)).unwrap();
    let before = log_bytes(&s.path);
    assert!(!String::from_utf8_lossy(&before).contains("\"from\""));
    a.sync_atomic().unwrap();
    a.unhold().unwrap();
    // Both records went out as one batch, after the other handle's record.
    let after = open_ro(&s.path);
    assert_eq!(after.keys().collect::<Vec<_>>(), ["theirs", "from", "to"]);
    let log = String::from_utf8(log_bytes(&s.path)).unwrap();
    let last: Vec<&str> = log.lines().rev().take(3).collect();
    assert!(last[2].ends_with(r#""batch":2}"#), "{log}");
    assert!(last[1].contains(r#""k":"from""#) && last[0].contains(r#""k":"to""#));
    b.refresh().unwrap();
    assert_eq!(b.get("to").unwrap(), Some(json!(0)));
}

/// A `SharedTracker`'s reads (counters, a task's state) take in what other
/// processes wrote first, in the multi-process mode.
#[test]
fn shared_tracker_reads_see_other_processes_changes() {
    let s = scratch();
    let options = tastypod::TrackerOptions::new().multi_process(true);
    let a = options.clone().open_shared(&s.path).unwrap();
    let b = options.open_shared(&s.path).unwrap();
    a.add_many_if_absent(["x", "y"]).unwrap();
    a.mark_done("x").unwrap();
    a.sync().unwrap();
    assert_eq!(b.counts().total, 2);
    assert_eq!(b.counts().done, 1);
    assert!(b.done("x") && !b.done("y"));
    assert!(b.summary().starts_with("done 1/2"));
}

//! Invariants of worker-pool claims: `claim_next` tells a task, a wait and
//! the end apart; an exclusive open frees every claim of an earlier run (the
//! tries stay counted, a claim on the last try aborts its task), also after
//! `kill -9`; `release` aborts after the last try and otherwise holds the
//! task back for the retry delay; `claim_next_wait` wakes when another
//! worker finishes; the tracker's settings are stored with it; `num_todo`
//! and `num_claimed` agree with a count of the records after every step.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};
use tastypod::{Aborted, Claim, ErrorKind, Pod, RetryDelay, Tracker, TrackerOptions};

fn long_lease(max_tries: u32) -> TrackerOptions {
    TrackerOptions::new()
        .max_tries(max_tries)
        .lease(Duration::from_secs(3600))
}

/// What a child process entry point says when run as a test.
const NOT_A_TEST: &str = "a child process of the tests in this file, which start it with its environment; run those tests instead";

#[test]
fn the_answer_tells_a_task_a_wait_and_the_end_apart() {
    let s = scratch();
    let mut t = long_lease(0).open(&s.path).unwrap();
    assert_eq!(t.claim_next("me").unwrap(), Claim::Finished, "empty");
    t.add("a").unwrap();
    assert_eq!(t.claim_next("me").unwrap().key(), Some("a"));
    let until = t.lease("a").unwrap().until;
    assert_eq!(
        t.claim_next("me").unwrap(),
        Claim::Wait(until),
        "the only task is claimed: wait until its lease ends"
    );
    assert_eq!((t.num_todo(), t.num_claimed()), (1, 1));
    t.mark_done("a").unwrap();
    assert_eq!(t.claim_next("me").unwrap(), Claim::Finished);
    assert_eq!((t.num_todo(), t.num_claimed()), (0, 0));
    let record = t.get("a").unwrap().unwrap();
    assert!(record.get("_lease").is_none(), "mark_done ends the claim");
}

#[test]
fn an_exclusive_reopen_frees_every_claim_at_once() {
    let s = scratch();
    let mut t = long_lease(2).open(&s.path).unwrap();
    t.add_many(["a", "b", "c"]).unwrap();
    assert_eq!(t.claim_next("run-1").unwrap().key(), Some("a"));
    assert_eq!(t.claim_next("run-1").unwrap().key(), Some("b"));
    t.release("b").unwrap();
    assert_eq!(
        t.claim_next("run-1").unwrap().key(),
        Some("b"),
        "its last try"
    );
    drop(t); // a clean exit with both claims still held
    let start = Instant::now();
    let mut t = Tracker::open(&s.path).unwrap();
    assert_eq!(t.max_tries(), 2, "stored");
    assert!(t.lease("a").is_none() && t.lease("b").is_none());
    assert_eq!(t.tries("a"), 1, "the try a claim counted stays counted");
    assert!(
        t.exhausted("b") && !t.aborted("b"),
        "a claim on the last try that ended unfinished: out of tries, not aborted"
    );
    assert_eq!((t.num_exhausted(), t.num_aborted()), (1, 0));
    assert_eq!(t.claim_next("run-2").unwrap().key(), Some("a"));
    assert!(start.elapsed() < Duration::from_secs(5));
    let b = t.get("b").unwrap().unwrap();
    assert!(b.get("_lease").is_none(), "no lease lingers: {b}");
}

const ENV_PATH: &str = "TASTYPOD_CLAIMS_PATH";

/// Child: claims three tasks, syncs, says "ready" and waits to be killed.
#[test]
#[ignore = "a child process that this file's tests start (with --ignored); not a test by itself"]
fn claims_child() {
    let Ok(path) = std::env::var(ENV_PATH) else {
        panic!("{}", NOT_A_TEST);
    };
    let tracker = TrackerOptions::new()
        .max_tries(3)
        .open_shared(&path)
        .unwrap();
    for _ in 0..3 {
        tracker.claim_next().unwrap().task().unwrap();
    }
    tracker.sync().unwrap();
    println!("ready");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_restart_after_kill_9_claims_at_once() {
    let s = scratch();
    let mut t = Tracker::open(&s.path).unwrap();
    t.add_many(["a", "b", "c", "d"]).unwrap();
    t.close().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "claims_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_PATH, &s.path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child died");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The killed run's leases (60 s) are on disk.
    let ro = TrackerOptions::new().read_only(true).open(&s.path).unwrap();
    assert_eq!(ro.num_claimed(), 3);
    drop(ro);
    let start = Instant::now();
    let mut t = Tracker::open(&s.path).unwrap();
    assert_eq!(t.claim_next("restart").unwrap().key(), Some("a"));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "no wait for leases"
    );
    assert_eq!(t.tries("a"), 2);
    assert_eq!((t.tries("b"), t.tries("d")), (1, 0));
    assert_eq!(t.num_claimed(), 1);
}

#[test]
fn an_expired_claim_on_the_last_try_is_exhausted_not_left_behind() {
    let s = scratch();
    let clock = std::sync::Arc::new(tastypod::ManualClock::starting_now());
    let opts = TrackerOptions::new()
        .multi_process(true)
        .max_tries(1)
        .lease(Duration::from_millis(100))
        .clock(clock.clone());
    let mut t = opts.open(&s.path).unwrap();
    t.add_many(["a", "b"]).unwrap();
    assert_eq!(t.claim_next("dies").unwrap().key(), Some("a"));
    clock.advance(Duration::from_millis(150));
    assert_eq!(t.claim_next("other").unwrap().key(), Some("b"));
    t.mark_done("b").unwrap();
    assert_eq!(t.claim_next("other").unwrap(), Claim::Finished);
    assert!(t.exhausted("a") && !t.aborted("a") && t.lease("a").is_none());
    assert_eq!(
        (t.num_claimed(), t.num_exhausted(), t.num_aborted()),
        (0, 1, 0)
    );
}

#[test]
fn release_after_the_last_try_leaves_the_task_exhausted() {
    let s = scratch();
    let mut t = long_lease(2).open(&s.path).unwrap();
    t.add("page").unwrap();
    assert_eq!(t.claim_next("w").unwrap().key(), Some("page"));
    t.release("page").unwrap();
    assert!(!t.exhausted("page"));
    assert_eq!(t.claim_next("w").unwrap().key(), Some("page"));
    t.release("page").unwrap();
    assert!(
        t.exhausted("page") && !t.aborted("page"),
        "released after its last try"
    );
    assert_eq!(t.claim_next("w").unwrap(), Claim::Finished);
    assert_eq!(t.tries("page"), 2);
    assert!(t.get("page").unwrap().unwrap()["_aborted"] == false);
    // Releasing a task that is not claimed changes nothing.
    t.release("page").unwrap();
    assert_eq!(t.tries("page"), 2);
    assert!(matches!(
        t.release("nope").unwrap_err().kind(),
        ErrorKind::MissingKey { key } if key == "nope"
    ));
}

#[test]
fn a_retry_delay_holds_a_released_task_back_across_a_reopen() {
    let s = scratch();
    let delay = Duration::from_millis(400);
    let mut t = long_lease(5)
        .retry_delay(RetryDelay::Fixed(delay))
        .open(&s.path)
        .unwrap();
    t.add_many(["flaky", "other"]).unwrap();
    assert_eq!(t.claim_next("w").unwrap().key(), Some("flaky"));
    let released = SystemTime::now();
    t.release("flaky").unwrap();
    let not_before = t.not_before("flaky").unwrap();
    assert!(not_before >= released + delay - Duration::from_millis(5));
    let record = t.get("flaky").unwrap().unwrap();
    assert!(record["_not_before"].is_u64(), "{record}");
    assert_eq!(t.claim_next("w").unwrap().key(), Some("other"));
    t.mark_done("other").unwrap();
    t.close().unwrap();
    let mut t = Tracker::open(&s.path).unwrap();
    assert_eq!(
        t.claim_next("w").unwrap(),
        Claim::Wait(not_before),
        "the delay is in the record: a reopen honours it"
    );
    let claim = t.claim_next_wait("w", Duration::from_secs(10)).unwrap();
    assert_eq!(claim.key(), Some("flaky"));
    assert!(SystemTime::now() >= not_before);
    assert!(t.not_before("flaky").is_none(), "a claim clears it");
    // release_after picks the delay.
    t.release_after("flaky", Duration::from_secs(3600)).unwrap();
    assert!(matches!(t.claim_next("w").unwrap(), Claim::Wait(w)
        if w > SystemTime::now() + Duration::from_secs(3000)));
}

#[test]
fn an_exponential_delay_grows_with_the_tries() {
    let s = scratch();
    let mut t = long_lease(0)
        .retry_delay(RetryDelay::Exponential {
            first: Duration::from_secs(10),
            max: Duration::from_secs(25),
        })
        .open(&s.path)
        .unwrap();
    t.add("x").unwrap();
    let mut waits = Vec::new();
    for _ in 0..3 {
        // Make it claimable now, then claim and release it.
        t.update_task("x", |r| {
            r.as_object_mut().unwrap().remove("_not_before");
        })
        .unwrap();
        assert_eq!(t.claim_next("w").unwrap().key(), Some("x"));
        let before = SystemTime::now();
        t.release("x").unwrap();
        let wait = t.not_before("x").unwrap().duration_since(before).unwrap();
        waits.push(wait.as_secs_f64().round() as u64);
    }
    assert_eq!(waits, [10, 20, 25]);
}

#[test]
fn workers_on_a_frontier_that_grows_from_one_task_all_work() {
    const PAGES: usize = 300;
    let s = scratch();
    let tracker = TrackerOptions::new().open_shared(&s.path).unwrap();
    tracker.add_many_if_absent(["0"]).unwrap();
    let claims = Mutex::new(BTreeMap::<String, usize>::new());
    let per_worker: Vec<usize> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let tracker = tracker.with_owner(&format!("w{w}"));
                let claims = &claims;
                scope.spawn(move || {
                    let mut mine = 0;
                    loop {
                        let key = match tracker.claim_next_wait(Duration::from_secs(30)).unwrap() {
                            Claim::Task(task) => task.key,
                            Claim::Wait(_) => continue,
                            Claim::Finished => return mine,
                        };
                        *claims.lock().unwrap().entry(key.clone()).or_default() += 1;
                        std::thread::sleep(Duration::from_millis(2));
                        let n: usize = key.parse().unwrap();
                        let links = [2 * n + 1, 2 * n + 2].into_iter().filter(|&m| m < PAGES);
                        tracker
                            .add_many_if_absent(links.map(|m| m.to_string()))
                            .unwrap();
                        tracker.mark_done(&key).unwrap();
                        mine += 1;
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let claims = claims.into_inner().unwrap();
    assert_eq!(claims.len(), PAGES);
    assert!(claims.values().all(|&n| n == 1));
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "a worker quit while others still worked: {per_worker:?}"
    );
    assert_eq!(tracker.locked(|t| Ok(t.num_done())).unwrap(), PAGES);
}

#[test]
fn a_waiting_worker_wakes_when_another_finishes() {
    let s = scratch();
    let tracker = long_lease(0).open_shared(&s.path).unwrap();
    tracker.locked(|t| t.add("only")).unwrap();
    let a = tracker.with_owner("a");
    let b = tracker.with_owner("b");
    assert_eq!(a.claim_next().unwrap().key(), Some("only"));
    // With a timeout shorter than the lease, the answer is still a wait.
    let start = Instant::now();
    assert!(matches!(
        b.claim_next_wait(Duration::from_millis(100)).unwrap(),
        Claim::Wait(_)
    ));
    assert!(start.elapsed() >= Duration::from_millis(100));
    let start = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            a.mark_done("only").unwrap();
        });
        assert_eq!(
            b.claim_next_wait(Duration::from_secs(30)).unwrap(),
            Claim::Finished
        );
    });
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "woken by the change, not by the hour-long lease"
    );
}

#[test]
fn settings_are_stored_with_the_tracker() {
    let s = scratch();
    let retry = RetryDelay::Fixed(Duration::from_secs(2));
    let t = TrackerOptions::new()
        .max_tries(3)
        .lease(Duration::from_secs(90))
        .retry_delay(retry)
        .open(&s.path)
        .unwrap();
    assert_eq!(t.pod().format_version(), 3);
    t.close().unwrap();
    let header: Value = serde_json::from_str(log_text(&s.path).lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 3);
    assert_eq!(header["settings"]["tracker"]["max_tries"], 3);
    assert_eq!(header["settings"]["tracker"]["lease_ms"], 90_000);
    let t = Tracker::open(&s.path).unwrap();
    assert_eq!(t.max_tries(), 3);
    assert_eq!(t.lease_length(), Duration::from_secs(90));
    assert_eq!(t.retry_delay(), retry);
    drop(t);
    // A setting given to a writable open wins and is stored.
    drop(TrackerOptions::new().max_tries(5).open(&s.path).unwrap());
    let t = Tracker::open(&s.path).unwrap();
    assert_eq!(
        (t.max_tries(), t.lease_length()),
        (5, Duration::from_secs(90))
    );
    drop(t);
    // A read-only open uses it for itself and stores nothing.
    let ro = TrackerOptions::new()
        .max_tries(7)
        .read_only(true)
        .open(&s.path)
        .unwrap();
    assert_eq!(ro.max_tries(), 7);
    drop(ro);
    assert_eq!(Tracker::open(&s.path).unwrap().max_tries(), 5);
    // A compaction keeps them.
    let mut t = Tracker::open(&s.path).unwrap();
    t.add("x").unwrap();
    t.compact().unwrap();
    drop(t);
    assert_eq!(Tracker::open(&s.path).unwrap().max_tries(), 5);
}

#[test]
fn stores_without_settings_are_version_3_with_no_settings() {
    let s = scratch();
    let mut pod: Pod = Pod::open(&s.path).unwrap();
    pod.insert("k", 1.into()).unwrap();
    pod.compact().unwrap();
    assert_eq!(pod.format_version(), 3);
    drop(pod);
    let header = log_text(&s.path).lines().next().unwrap().to_string();
    assert!(
        header.ends_with(r#","format":"tastypod","version":3}"#),
        "{header}"
    );
    let s = scratch();
    drop(Tracker::open(&s.path).unwrap());
    assert_eq!(Tracker::open(&s.path).unwrap().pod().format_version(), 3);
}

#[test]
fn unreadable_stored_settings_are_named() {
    let s = scratch();
    drop(TrackerOptions::new().max_tries(3).open(&s.path).unwrap());
    let text = log_text(&s.path);
    let first = text.lines().next().unwrap();
    let body = first[16..].replace(r#""max_tries":3"#, r#""max_tries":"three""#);
    let line = format!(
        "{{\"c\":\"{:08x}\",{body}\n",
        crc32fast::hash(body.as_bytes())
    );
    let rest: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(log_of(&s.path), line + &rest).unwrap();
    let err = Tracker::open(&s.path).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::BadSettings { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("pod.log") && msg.contains("max_tries"),
        "{msg}"
    );
}

/// Claim, release, finish, abort and the gates in a fixed pseudo-random
/// order, over several handles in turn: the O(1) counters agree with a
/// count of the records, and a claim is answered as the records say.
#[test]
fn counters_and_answers_agree_with_the_records() {
    agree_with_the_records(false);
}

/// [`counters_and_answers_agree_with_the_records`] in the multi-process mode,
/// where a reopen keeps the claims (their leases have not expired).
#[test]
fn counters_and_answers_agree_with_the_records_in_the_multi_process_mode() {
    agree_with_the_records(true);
}

fn agree_with_the_records(multi: bool) {
    let s = scratch();
    let opts = TrackerOptions::new()
        .max_tries(3)
        .lease(Duration::from_secs(3600))
        .multi_process(multi)
        .sync_at(7);
    let mut t = opts.open(&s.path).unwrap();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut claimed: Vec<String> = Vec::new();
    for step in 0..3000 {
        let key = format!("k{}", next(40));
        match next(12) {
            0 | 1 => drop(t.add_if_absent(&key).unwrap()),
            2..=4 => match t.claim_next("me").unwrap() {
                Claim::Task(task) => claimed.push(task.key),
                Claim::Wait(_) => assert!(t.num_todo() > 0 && t.num_claimed() > 0),
                Claim::Finished => assert_eq!(t.num_todo(), 0, "step {step}"),
            },
            5 | 6 if !claimed.is_empty() => {
                let k = claimed.swap_remove(next(claimed.len() as u64) as usize);
                t.release(&k).unwrap();
            }
            7 if !claimed.is_empty() => {
                let k = claimed.swap_remove(0);
                t.mark_done(&k).unwrap();
            }
            8 if t.contains_key(&key) => {
                t.abort(&key).unwrap();
                claimed.retain(|k| *k != key);
            }
            9 if t.contains_key(&key) => {
                t.unabort(&key).unwrap();
                t.mark_not_done(&key).unwrap();
                t.reset_tries(&key).unwrap();
            }
            10 if t.contains_key(&key) => drop(t.should_try(&key, Aborted::Skip).unwrap()),
            11 if step % 5 == 0 => {
                // Another run: in the exclusive mode every claim is freed.
                drop(t);
                t = opts.open(&s.path).unwrap();
                if !multi {
                    claimed.clear();
                }
                let leased = t.keys().filter(|k| t.lease(k).is_some()).count();
                assert_eq!(leased, claimed.len(), "step {step}");
            }
            _ => {}
        }
        let todo = t.todo_keys(Aborted::Skip).count();
        let with_lease = t.keys().filter(|k| t.lease(k).is_some()).count();
        assert_eq!(t.num_todo(), todo, "step {step}");
        assert_eq!(t.num_claimed(), with_lease, "step {step}");
        let recount = t
            .iter()
            .filter(|e| e.as_ref().unwrap().1.get("_lease").is_some())
            .count();
        assert_eq!(recount, with_lease, "step {step}: records and state agree");
    }
}

fn log_text(store: &std::path::Path) -> String {
    String::from_utf8(log_bytes(store)).unwrap()
}

/// An open lists the claims it freed, and the tasks given up because the
/// freed claim was their last try.
#[test]
fn the_open_reports_the_claims_it_freed_and_the_tasks_it_gave_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    {
        let mut t = TrackerOptions::new().max_tries(2).open(&path).unwrap();
        t.add_many(["a", "b", "c"]).unwrap();
        assert_eq!(t.claim_next("w").unwrap().key(), Some("a"));
        assert_eq!(t.claim_next("w").unwrap().key(), Some("b"));
        t.release("b").unwrap();
        assert_eq!(t.claim_next("w").unwrap().key(), Some("b")); // its last try
        assert_eq!(t.claim_next("w").unwrap().key(), Some("c"));
        t.mark_done("c").unwrap();
        assert!(t.freed_at_open().is_empty());
        // Dropped with two claims open, as a killed run leaves them.
    }
    let t = TrackerOptions::new().open_shared(&path).unwrap();
    let freed = t.freed_at_open();
    assert_eq!(freed.freed, ["a"]);
    assert_eq!(freed.exhausted, ["b"]);
    assert_eq!(
        freed.to_string(),
        "freed 2 claims left unfinished by an earlier run (each try stays counted); \
         to do again: \"a\"; given up, that was their last try: \"b\""
    );
    assert!(t.exhausted("b") && !t.aborted("b"));
    assert_eq!(t.tries("a"), 1);
    let counts = t.counts();
    assert_eq!(
        (counts.done, counts.todo, counts.exhausted, counts.claimed),
        (1, 1, 1, 0)
    );
    drop(t);
    // Nothing is left to free at the next open.
    let t = Tracker::open(&path).unwrap();
    assert!(t.freed_at_open().is_empty());
}

//! Invariant: after `sync_on_signals()`, SIGINT, SIGTERM and SIGHUP sync
//! every open writable store (a plain one at its next call, a shared one by
//! the handler even while idle) and exit with 128 + the signal; a second
//! signal exits at once without corrupting anything. After
//! `stop_on_signals()`, the first signal syncs the same way and sets the
//! stop flag instead: the program's loop ends, it finishes by itself (its
//! summary printed, exit 0), and a second signal exits at once with 130.

mod common;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tastypod::{Pod, PodOptions, SharedPod};

const ENV_PATH: &str = "TASTYPOD_SIGNAL_PATH";
const ENV_MODE: &str = "TASTYPOD_SIGNAL_MODE";
const KEYS: usize = 500;

/// What a child process entry point says when run as a test.
const NOT_A_TEST: &str = "a child process of the tests in this file, which start it with its environment; run those tests instead";

/// Child: opens a store with a high sync threshold, installs the handlers,
/// makes unsynced changes, says "ready", then keeps working or idles.
#[test]
#[ignore = "a child process that this file's tests start (with --ignored); not a test by itself"]
fn signal_child() {
    let (Ok(path), Ok(mode)) = (std::env::var(ENV_PATH), std::env::var(ENV_MODE)) else {
        panic!("{}", NOT_A_TEST);
    };
    if mode.starts_with("stop") {
        tastypod::stop_on_signals().unwrap();
    } else {
        tastypod::sync_on_signals().unwrap();
    }
    let opts = PodOptions::new().sync_at(1_000_000);
    match mode.as_str() {
        "stop" | "stop-linger" => {
            let mut pod: Pod = opts.open(&path).unwrap();
            for i in 0..KEYS {
                pod.insert(&format!("k{i}"), json!(i)).unwrap();
            }
            println!("ready");
            let mut ticks = 0u64;
            while !tastypod::stop_requested() {
                ticks += 1;
                pod.insert("tick", json!(ticks)).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
            // The store still takes writes after the stop.
            pod.insert("after-stop", json!(ticks)).unwrap();
            println!("summary: {ticks} ticks");
            if mode == "stop-linger" {
                std::thread::sleep(Duration::from_secs(30));
            }
            pod.close().unwrap();
        }
        "busy" | "busy-beside-idle" => {
            // Beside an idle store whose owner never calls again, the
            // handler waits its grace period: the busy thread has all the
            // time to report what its call returned.
            let _idle: Option<Pod> = (mode == "busy-beside-idle").then(|| {
                let mut idle: Pod = opts.open(format!("{path}-idle")).unwrap();
                idle.insert("k", json!(0)).unwrap();
                idle
            });
            let mut pod: Pod = opts.open(&path).unwrap();
            for i in 0..KEYS {
                pod.insert(&format!("k{i}"), json!(i)).unwrap();
            }
            println!("ready");
            for n in 0.. {
                if let Err(e) = pod.insert("tick", json!(n)) {
                    // The call returned (the thread is not parked): say so
                    // and wait for the handler's exit.
                    let signal = e.shutdown_signal().expect("only a shutdown stops the loop");
                    println!("returned: shutting down on signal {signal}");
                    std::io::Write::flush(&mut std::io::stdout()).unwrap();
                    std::thread::sleep(Duration::from_secs(60));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        "idle-shared" => {
            let pod: SharedPod = opts.open::<serde_json::Value>(&path).unwrap().into();
            for i in 0..KEYS {
                pod.insert(&format!("k{i}"), json!(i)).unwrap();
            }
            println!("ready");
            std::thread::sleep(Duration::from_secs(60));
        }
        _ => {
            // idle-plain: the owning thread never calls again.
            let mut pod: Pod = opts.open(&path).unwrap();
            pod.insert("k0", json!(0)).unwrap();
            println!("ready");
            std::thread::sleep(Duration::from_secs(60));
        }
    }
}

/// Starts the child in `mode` and waits until it is ready; returns it
/// and a thread reading the rest of its output.
fn spawn_reading(path: &std::path::Path, mode: &str) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "signal_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_PATH, path)
        .env(ENV_MODE, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.trim_end().ends_with("ready") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "child exited before it was ready"
        );
    }
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        rest
    });
    (child, rest)
}

#[test]
fn after_stop_on_signals_a_signal_syncs_and_lets_the_program_finish() {
    let s = scratch();
    let (mut child, rest) = spawn_reading(&s.path, "stop");
    std::thread::sleep(Duration::from_millis(50));
    send(&child, "-INT");
    assert_eq!(
        child.wait().unwrap().code(),
        Some(0),
        "it finished by itself"
    );
    let rest = rest.join().unwrap();
    assert!(
        rest.contains("summary: "),
        "the summary was printed: {rest:?}"
    );
    all_keys_synced(&s.path);
    let pod = open_ro(&s.path);
    assert!(pod.get("after-stop").unwrap().is_some());
}

#[test]
fn after_stop_on_signals_a_second_signal_exits_at_once() {
    let s = scratch();
    let (mut child, rest) = spawn_reading(&s.path, "stop-linger");
    send(&child, "-INT");
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    send(&child, "-INT");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(rest.join().unwrap().contains("summary: "));
    // What the first signal synced is there; nothing is damaged.
    all_keys_synced(&s.path);
    let pod = open(&s.path);
    assert!(pod.recovery().torn_tail.is_none());
}

/// Starts the child in `mode` and waits until it is ready; its further
/// output is drained (and dropped) so that it never blocks on a full pipe.
fn spawn(path: &std::path::Path, mode: &str) -> Child {
    spawn_reading(path, mode).0
}

fn send(child: &Child, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn all_keys_synced(path: &std::path::Path) {
    let pod = open_ro(path);
    for i in 0..KEYS {
        assert_eq!(pod.get(&format!("k{i}")).unwrap(), Some(json!(i)), "k{i}");
    }
}

#[test]
fn sigint_syncs_a_busy_plain_store_and_exits_130() {
    let s = scratch();
    let mut child = spawn(&s.path, "busy");
    send(&child, "-INT");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    all_keys_synced(&s.path);
}

#[test]
fn after_a_signal_a_writing_call_returns_shutting_down_instead_of_parking() {
    let s = scratch();
    let (mut child, rest) = spawn_reading(&s.path, "busy-beside-idle");
    send(&child, "-INT");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    all_keys_synced(&s.path);
    let rest = rest.join().unwrap();
    assert!(
        rest.contains("returned: shutting down on signal 2"),
        "the busy thread's call did not return: {rest:?}"
    );
}

#[test]
fn sigterm_syncs_and_exits_143() {
    let s = scratch();
    let mut child = spawn(&s.path, "busy");
    send(&child, "-TERM");
    assert_eq!(child.wait().unwrap().code(), Some(143));
    all_keys_synced(&s.path);
}

#[test]
fn sighup_syncs_an_idle_shared_store_and_exits_129() {
    let s = scratch();
    let mut child = spawn(&s.path, "idle-shared");
    let start = Instant::now();
    send(&child, "-HUP");
    assert_eq!(child.wait().unwrap().code(), Some(129));
    assert!(start.elapsed() < Duration::from_secs(3));
    all_keys_synced(&s.path);
}

#[test]
fn a_second_signal_exits_at_once_and_corrupts_nothing() {
    let s = scratch();
    let mut child = spawn(&s.path, "idle-plain");
    let start = Instant::now();
    send(&child, "-INT");
    // The handler now waits (up to GRACE) for the idle owner thread.
    std::thread::sleep(Duration::from_millis(300));
    send(&child, "-INT");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(
        start.elapsed() < tastypod::GRACE,
        "the second signal did not exit at once"
    );
    let pod = open(&s.path);
    assert!(pod.recovery().torn_tail.is_none());
}

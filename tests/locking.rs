//! Invariant: one writer per store. A second writable open, in this process
//! or another, fails at once with a Locked error naming the path; read-only
//! opens take no lock and never modify a file; the lock is free again when
//! the writer goes away, even if it was killed.

mod common;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use tastypod::{ErrorKind, Pod, PodOptions};

const CHILD_ENV: &str = "TASTYPOD_LOCK_CHILD";

/// What a child process entry point says when run as a test.
const NOT_A_TEST: &str = "a child process of the tests in this file, which start it with its environment; run those tests instead";

/// Run as a child process: hold the store open until stdin closes.
#[test]
#[ignore = "a child process that this file's tests start (with --ignored); not a test by itself"]
fn lock_holder_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        panic!("{}", NOT_A_TEST);
    };
    let mut pod = open(std::path::Path::new(&path));
    pod.insert("child", json!(1)).unwrap();
    pod.sync().unwrap();
    println!("locked");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

fn spawn_holder(path: &std::path::Path) -> std::process::Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "lock_holder_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child exited early");
        if line.trim_end().ends_with("locked") {
            break;
        }
    }
    // Keep draining so the child never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    child
}

#[test]
fn second_writer_in_this_process_is_refused() {
    let s = scratch();
    let _first = open(&s.path);
    let err = Pod::<serde_json::Value>::open(&s.path).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Locked { .. }));
    assert_eq!(err.path(), Some(s.path.as_path()));
    assert!(err.to_string().contains("locked"));
}

#[test]
fn lock_is_released_on_drop() {
    let s = scratch();
    drop(open(&s.path));
    drop(open(&s.path));
}

#[test]
fn writer_in_another_process_blocks_us_until_it_exits() {
    let s = scratch();
    let mut child = spawn_holder(&s.path);
    let err = Pod::<serde_json::Value>::open(&s.path).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Locked { .. }), "{err}");
    // A reader is fine while the writer lives.
    let ro = open_ro(&s.path);
    assert_eq!(ro.get("child").unwrap(), Some(json!(1)));
    drop(child.stdin.take());
    child.wait().unwrap();
    open(&s.path);
}

#[test]
fn killed_writer_frees_the_lock_at_once() {
    let s = scratch();
    let mut child = spawn_holder(&s.path);
    child.kill().unwrap();
    child.wait().unwrap();
    let pod = open(&s.path);
    assert_eq!(pod.get("child").unwrap(), Some(json!(1)));
}

#[test]
fn wait_for_lock_waits_for_the_holder() {
    use std::time::{Duration, Instant};
    let s = scratch();
    let mut child = spawn_holder(&s.path);
    // Without the option the open gives up (after its short retry).
    let err = Pod::open(&s.path).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Locked { .. }), "{err}");
    // The holder lets go well after any retry an open makes by itself.
    let hold = Duration::from_millis(1500);
    let stdin = child.stdin.take();
    let start = Instant::now();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(hold);
        drop(stdin);
    });
    let pod: Pod = PodOptions::new().wait_for_lock(true).open(&s.path).unwrap();
    assert!(
        start.elapsed() >= hold,
        "the open did not wait for the holder"
    );
    assert_eq!(pod.len(), 1);
    releaser.join().unwrap();
    child.wait().unwrap();
}

//! Invariant: the demo job resumes after being interrupted. Killed with
//! SIGKILL or stopped with SIGINT part-way and run again, every task ends
//! done, aborted or exhausted exactly as the job's rules say, and no task
//! that was durably done before the interruption is attempted again.

mod common;
use common::job::{broken, first_success, job_binary};
use common::*;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tastypod::{Tracker, TrackerOptions};

const TASKS: usize = 20_000;
const MAX_TRIES: u32 = 3;

fn job(bin: &Path, store: &Path, trace: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["--path", store.to_str().unwrap()])
        .args([
            "--tasks",
            &TASKS.to_string(),
            "--max-tries",
            &MAX_TRIES.to_string(),
        ])
        .args(["--work-us", "30", "--trace", trace.to_str().unwrap()])
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Starts the job and interrupts it with `signal` once it has done some work.
fn interrupt(bin: &Path, store: &Path, trace: &Path, signal: &str) -> std::process::ExitStatus {
    let mut child = job(bin, store, trace)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap(); // the job has set up its tasks
    std::thread::sleep(Duration::from_millis(300));
    let ok = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    child.wait().unwrap()
}

fn attempts(trace: &Path) -> Vec<String> {
    std::fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// `extra`: how many done tasks may have used one try more than the rules
/// say (a task interrupted after its work but before its completion was
/// recorded is tried again).
fn check_final_state(t: &Tracker, extra: Option<usize>) {
    let mut retried = 0;
    assert_eq!(t.len(), TASKS);
    for i in 0..TASKS {
        let key = format!("task-{i:08}");
        let (done, tries, aborted) = (t.done(&key), t.tries(&key), t.aborted(&key));
        if broken(i) {
            assert!(aborted && !done && tries >= 1, "{key}");
        } else if first_success(i) <= MAX_TRIES {
            assert!(done && !aborted, "{key} should be done");
            assert!(
                tries >= first_success(i) && tries <= MAX_TRIES,
                "{key} tries {tries}"
            );
            if tries > first_success(i) {
                assert_eq!(tries, first_success(i) + 1, "{key}");
                retried += 1;
            }
            assert_eq!(
                t.get(&key).unwrap().unwrap()["result"],
                serde_json::json!(i * 2)
            );
        } else {
            assert!(
                !done && !aborted && tries == MAX_TRIES,
                "{key} should be exhausted"
            );
        }
    }
    if let Some(extra) = extra {
        assert!(retried <= extra, "{retried} tasks were tried again");
    }
}

fn resume_after(signal: &str) {
    let Some(bin) = job_binary() else {
        // Plain `cargo test` builds the examples; `cargo test --test demo` does not.
        assert!(
            std::env::var_os("CI").is_none(),
            "examples/job was not built"
        );
        eprintln!("skipped: examples/job is not built (run `cargo test`, which builds it)");
        return;
    };
    let s = scratch();
    let trace1 = s.dir.path().join("trace1");
    let trace2 = s.dir.path().join("trace2");
    let status = interrupt(&bin, &s.path, &trace1, signal);
    let first = attempts(&trace1);
    assert!(!first.is_empty(), "the job did no work before the {signal}");
    let done_before: HashSet<String> = {
        let t = TrackerOptions::new().read_only(true).open(&s.path).unwrap();
        assert!(
            t.num_done() < TASKS,
            "the job finished before the {signal}; make it slower"
        );
        t.keys().filter(|k| t.done(k)).map(String::from).collect()
    };
    assert!(!done_before.is_empty());
    let rerun = job(&bin, &s.path, &trace2)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(rerun.success());
    let second = attempts(&trace2);
    for key in &second {
        assert!(
            !done_before.contains(key),
            "{key} was done before the {signal} and was redone"
        );
    }
    let t = TrackerOptions::new().read_only(true).open(&s.path).unwrap();
    if signal == "-INT" {
        // Ctrl-C syncs: the job exits with 130 and loses no try; at most the
        // one task in progress is tried again.
        assert_eq!(status.code(), Some(130));
        let tries: u64 = (0..TASKS)
            .map(|i| u64::from(t.tries(&format!("task-{i:08}"))))
            .sum();
        assert_eq!((first.len() + second.len()) as u64, tries);
        check_final_state(&t, Some(1));
    } else {
        check_final_state(&t, None);
    }
    assert!(open(&s.path).recovery().is_clean());
}

#[test]
fn job_resumes_after_sigkill() {
    resume_after("-KILL");
}

#[test]
fn job_resumes_after_ctrl_c() {
    resume_after("-INT");
}

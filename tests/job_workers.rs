//! Invariant: the demo job's worker pool (`--workers`) shares one tracker
//! between processes, on a directory (the multi-process mode) and on
//! PostgreSQL alike: a process killed with SIGKILL mid-run leaves its
//! claims, which come back after the lease with their try counted; the
//! other processes finish every task; no task is completed twice, and every
//! completion a process acknowledged is on record.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tastypod::{TaskQueue, TrackerOptions};

mod common;
#[cfg(feature = "postgres")]
mod pg_server;

use common::job::{broken, first_success, job_binary};

const TASKS: usize = 600;
const MAX_TRIES: u32 = 10;

fn job(bin: &Path, place: &str, completions: &Path) -> Child {
    Command::new(bin)
        .args(["--path", place, "--workers", "4", "--lease-ms", "1500"])
        .args(["--tasks", &TASKS.to_string()])
        // 20 ms of work a try: a process killed at any moment holds claims.
        .args(["--max-tries", &MAX_TRIES.to_string(), "--work-us", "20000"])
        .args(["--completions", completions.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// Runs the scenario on `place`; `queue` opens it for the checks.
fn share_and_survive_a_kill(place: &str, queue: &dyn Fn() -> Box<dyn TaskQueue>) {
    let Some(bin) = job_binary() else {
        assert!(std::env::var("CI").is_err(), "examples/job was not built");
        eprintln!("skipped: examples/job is not built");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("c{i}"))).collect();
    // Process 0 works alone for a while, then is killed mid-task (its four
    // workers spend nearly all their time in a try, holding a claim).
    let mut first = job(&bin, place, &files[0]);
    let started = Instant::now();
    while lines(&files[0]).len() < 60 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        assert!(first.try_wait().unwrap().is_none(), "it finished too soon");
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let killed_at = lines(&files[0]).len();
    // Two more share the rest.
    let rest: Vec<Child> = files[1..].iter().map(|f| job(&bin, place, f)).collect();
    // Leases the later processes lost (a try that outlived its lease on a
    // loaded machine, taken over by another worker): each counts a try too.
    let mut lost = 0u64;
    for child in rest {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let summary = text.lines().last().unwrap_or_default();
        let n = summary
            .split(" leases lost")
            .next()
            .and_then(|head| head.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok());
        lost += n.unwrap_or_else(|| panic!("no lease count in {summary:?}"));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, file) in files.iter().enumerate() {
        for key in lines(file) {
            if let Some(other) = seen.insert(key.clone(), i) {
                panic!("{key} completed by process {other} and by process {i}");
            }
        }
    }
    assert!(
        files[1..].iter().all(|f| !lines(f).is_empty()),
        "both later processes did some of the work"
    );
    let q = queue();
    let mut expected_tries = 0u64;
    let mut should_be_done = HashSet::new();
    for i in 0..TASKS {
        let key = format!("task-{i:08}");
        let state = q.state(&key).unwrap().unwrap();
        if broken(i) {
            assert!(state.aborted, "{key}");
            expected_tries += 1;
        } else {
            assert!(state.done, "{key} is not done");
            should_be_done.insert(key.clone());
            expected_tries += u64::from(first_success(i));
        }
    }
    // Every acknowledged completion is on record (a completion whose line
    // the kill cut off is done, just not listed).
    assert!(seen.keys().all(|k| should_be_done.contains(k)));
    assert!(seen.len() >= should_be_done.len() - 4 && killed_at >= 60);
    // The killed process's claims came back after their lease, each with
    // its try counted.
    let c = q.counts().unwrap();
    assert!(
        c.tries > expected_tries && c.tries <= expected_tries + 4 + lost,
        "{} tries, {expected_tries} without the kill, {lost} leases lost",
        c.tries
    );
    assert_eq!((c.todo, c.claimed), (0, 0));
}

#[test]
fn worker_processes_share_a_tracker_directory_and_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let place = dir.path().join("jobs");
    let place_text = place.to_str().unwrap().to_string();
    share_and_survive_a_kill(&place_text, &|| {
        Box::new(
            TrackerOptions::new()
                .multi_process(true)
                .open_shared(&place)
                .unwrap(),
        )
    });
}

#[cfg(feature = "postgres")]
#[test]
fn worker_processes_share_a_postgres_tracker_and_survive_a_kill() {
    let Some(server) = pg_server::shared() else {
        return;
    };
    let url = server.url("job");
    share_and_survive_a_kill(&url, &|| Box::new(tastypod::PgTracker::open(&url).unwrap()));
}

//! Invariants: the worker-pool crawler of `examples/workers.rs`, written as
//! the README teaches (`Durability::EveryChange`, links and done mark in one
//! step), killed with SIGKILL at random moments and run again, never
//! fetches a page again once its completion returned, and loses no link:
//! in the end every page of the site is done, or aborted for its 404.
//! Stopped with Ctrl-C, its progress display ends on the real counts.

mod common;
use common::*;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use tastypod::TrackerOptions;

const PAGES: u64 = 1_500;
const KILLS: usize = 8;

/// The example binary, which `cargo test` builds next to the test binaries.
fn workers_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("examples").join("workers");
    bin.exists().then_some(bin)
}

fn crawl(bin: &Path, store: &Path, journal: &Path, pages: u64) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["--path", store.to_str().unwrap()])
        .args(["--pages", &pages.to_string(), "--workers", "4"])
        .args(["--journal", journal.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// The site's rules, as in examples/workers.rs: page n links to 3n+1..=3n+3
/// (those below `PAGES`), and page n is missing when n % 97 == 96.
fn site() -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut found, mut missing) = (BTreeSet::new(), BTreeSet::new());
    let mut frontier = vec![0u64];
    while let Some(n) = frontier.pop() {
        if n % 97 == 96 {
            missing.insert(format!("page-{n}"));
            continue;
        }
        found.insert(format!("page-{n}"));
        frontier.extend((3 * n + 1..=3 * n + 3).filter(|&m| m < PAGES));
    }
    (found, missing)
}

#[test]
fn killed_at_random_moments_the_crawler_redoes_nothing_and_loses_no_link() {
    let Some(bin) = workers_binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "examples/workers was not built"
        );
        eprintln!("skipped: examples/workers is not built (run `cargo test`, which builds it)");
        return;
    };
    let s = scratch();
    let journal = s.dir.path().join("journal");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("seed {seed}");
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..KILLS {
        let mut child = crawl(&bin, &s.path, &journal, PAGES).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(150 + next() % 500));
        // Killed at once if still running (it may have finished already).
        let _ = child.kill();
        child.wait().unwrap();
    }
    let last = crawl(&bin, &s.path, &journal, PAGES).status().unwrap();
    assert!(last.success(), "the last run failed: {last:?}");

    // No page fetched again once its completion returned.
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut done: HashSet<&str> = HashSet::new();
    let mut fetches = 0;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("fetch", url)) => {
                fetches += 1;
                assert!(
                    !done.contains(url),
                    "{url} was fetched again after it was done"
                );
            }
            Some(("done", url)) => {
                assert!(done.insert(url), "{url} was done twice");
            }
            // A line a kill cut short.
            _ => {}
        }
    }
    assert!(fetches > 0);

    // No link lost: every page is done, every missing one aborted.
    let (found, missing) = site();
    let t = TrackerOptions::new().read_only(true).open(&s.path).unwrap();
    let counts = t.counts();
    assert_eq!(counts.total, found.len() + missing.len(), "{counts:?}");
    for url in &found {
        assert!(t.done(url), "{url} is not done: {:?}", t.get(url));
    }
    for url in &missing {
        assert!(t.aborted(url), "{url} is not aborted: {:?}", t.get(url));
        assert_eq!(t.get(url).unwrap().unwrap()["error"], "404");
    }
    assert_eq!((counts.exhausted, counts.todo), (0, 0), "{counts:?}");
}

/// Off a terminal, `Progress::watch` prints done of total, a rate and a
/// time left; stopped by SIGINT part-way, its last line shows the real
/// counts, not a full bar.
#[test]
fn after_ctrl_c_the_progress_shows_the_real_counts() {
    let Some(bin) = workers_binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "examples/workers was not built"
        );
        return;
    };
    let s = scratch();
    let journal = s.dir.path().join("journal");
    let child = crawl(&bin, &s.path, &journal, 100_000)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let Some(last) = stderr.lines().rev().find(|l| l.contains(" done (")) else {
        // Built without the `progress` feature: no display to check.
        assert!(
            std::env::var_os("CI").is_none(),
            "no progress line: {stderr}"
        );
        return;
    };
    let t = TrackerOptions::new().read_only(true).open(&s.path).unwrap();
    let counts = t.counts();
    assert!(counts.done < counts.total, "{counts:?}");
    let shown = format!("{}/{} done (", counts.done, counts.total);
    assert!(
        last.starts_with(&shown),
        "{last:?}, the store holds {counts:?}"
    );
    assert!(last.contains("/s, ETA "), "{last:?}");
}

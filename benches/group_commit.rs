//! Durable completions per second under `Durability::EveryChange`, with 1,
//! 4 and 16 threads sharing one `SharedTracker`, beside the raw limit
//! measured in the same run: one thread appending a record and
//! `fdatasync`ing it, in a loop. Two kinds: the threads only complete tasks
//! (`mark_done`, which returns once its record is fsynced), or they run the
//! worker loop (claim a task, complete it). Group commit lets the threads
//! share fsyncs, so more threads complete more tasks per second.
//!
//! Rounds are interleaved (raw, 1, 4, 16, raw, 1, ...) and medians are
//! printed, with each figure's ratio to the raw loop and to one thread.
//!
//! Run: `cargo bench --bench group_commit` (`GROUP_COMMIT_ROUNDS`,
//! `GROUP_COMMIT_TASKS` and `GROUP_COMMIT_THREADS` change the rounds, 5,
//! the tasks a round, 2000, and the thread counts, `"1 4 16"`).

#[path = "common.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use tastypod::{Claim, Durability, TrackerOptions};

/// The thread counts measured (`GROUP_COMMIT_THREADS="1 4 16"`).
fn thread_counts() -> Vec<usize> {
    common::env_list("GROUP_COMMIT_THREADS", &[1, 4, 16])
}

/// The raw limit: `tasks` times a record appended (one write call) and
/// `fdatasync`ed.
fn raw(dir: &Path, tasks: usize) -> Duration {
    let mut file = std::fs::File::create(dir.join("raw.jsonl")).unwrap();
    let mut line = Vec::new();
    let started = Instant::now();
    for i in 0..tasks {
        line.clear();
        writeln!(
            line,
            "{{\"c\":\"00000000\",\"k\":\"{}\",\"v\":{{\"_done\":true,\"_tries\":1}}}}",
            common::key(i)
        )
        .unwrap();
        file.write_all(&line).unwrap();
        file.sync_data().unwrap();
    }
    started.elapsed()
}

/// `threads` workers claiming and durably completing `tasks` tasks.
fn workers(dir: &Path, tasks: usize, threads: usize, claims: bool) -> Duration {
    let tracker = TrackerOptions::new()
        .durability(Durability::EveryChange)
        .open_shared(dir.join(format!("t{threads}-{claims}")))
        .unwrap();
    tracker
        .add_many_if_absent((0..tasks).map(common::key))
        .unwrap();
    let started = Instant::now();
    std::thread::scope(|s| {
        for n in 0..threads {
            let tracker = tracker.clone();
            s.spawn(move || {
                if !claims {
                    // Each thread completes its share of the tasks.
                    for i in (n..tasks).step_by(threads) {
                        tracker.mark_done(&common::key(i)).unwrap();
                    }
                    return;
                }
                loop {
                    match tracker.claim_next_wait(Duration::from_secs(5)).unwrap() {
                        Claim::Task(task) => tracker.mark_done(&task.key).unwrap(),
                        Claim::Wait(_) => {}
                        Claim::Finished => return,
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed();
    assert_eq!(tracker.counts().done, tasks);
    elapsed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// What the threads do: complete tasks (each thread its share, by key),
/// or run the worker loop (claim, then complete).
const KINDS: [(&str, bool); 2] = [
    ("completions (mark_done)", false),
    ("worker loop (claim + mark_done)", true),
];

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once, small.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick {
        1
    } else {
        common::env_or("GROUP_COMMIT_ROUNDS", 5)
    };
    let tasks = if quick {
        50
    } else {
        common::env_or("GROUP_COMMIT_TASKS", 2000)
    };
    // On the disk the target directory is on (a tmpfs would fsync for free).
    let base = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let threads_list = thread_counts();
    let mut raw_rates = Vec::new();
    // rates[kind][thread count] = one figure a round.
    let mut rates: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); threads_list.len()]; KINDS.len()];
    for round in 0..rounds {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let t = raw(dir.path(), tasks);
        raw_rates.push(tasks as f64 / t.as_secs_f64());
        let mut line = format!("round {}: raw {:.0}/s", round + 1, raw_rates[round]);
        for (k, &(_, claims)) in KINDS.iter().enumerate() {
            for (n, &threads) in threads_list.iter().enumerate() {
                let t = workers(dir.path(), tasks, threads, claims);
                let rate = tasks as f64 / t.as_secs_f64();
                rates[k][n].push(rate);
                line.push_str(&format!(
                    ", {}{threads} {rate:.0}/s",
                    if claims { "loop " } else { "" }
                ));
            }
        }
        eprintln!("{line}");
    }
    let raw = median(raw_rates);
    println!("durable completions per second, medians of {rounds} rounds of {tasks} tasks:");
    println!("  raw write+fdatasync loop: {raw:.0}/s");
    for (k, (what, _)) in KINDS.iter().enumerate() {
        println!("  {what}:");
        let medians: Vec<f64> = rates[k].iter().cloned().map(median).collect();
        for (threads, rate) in threads_list.iter().zip(&medians) {
            println!(
                "    {threads:>2} threads: {rate:.0}/s ({:.2}x raw, {:.2}x one thread)",
                rate / raw,
                rate / medians[0]
            );
        }
    }
}

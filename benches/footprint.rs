//! Peak memory of W3 (open a 1,000,000-key log and visit every key and value
//! text), for tastypod and for the raw baseline, each measured in a child
//! process of its own so one does not inflate the other; and the p50/p99
//! latency of W4's durable single operations; and a size sweep (1M, 4M and
//! 8M keys by default, `FOOTPRINT_SWEEP="1000000 4000000"` to choose): the
//! time to open, the resident anonymous memory after open and the peak
//! resident memory, in all and per key, so the cost of a big store can be
//! read off.
//!
//! Run: `cargo bench --bench footprint` (`FOOTPRINT_ONLY=sweep` runs the
//! sweep alone, `FOOTPRINT_SWEEP_ROUNDS` sets its rounds, 5).

#[path = "common.rs"]
mod common;

use common::*;
use std::process::Command;
use std::time::Instant;
use tastypod::{Pod, PodOptions};

const KEYS: usize = 1_000_000;

/// One W2-style update pass over keys `from..to`, a sync every 1,000
/// updates; `batched` runs each 1,000 as one `atomically` step.
fn w2_pass(pod: &mut Pod, from: usize, to: usize, batched: bool) {
    let mark = |v: &mut serde_json::Value| {
        v["_done"] = true.into();
        v["_tries"] = 1.into();
    };
    for chunk_start in (from..to).step_by(1000) {
        let chunk = chunk_start..(chunk_start + 1000).min(to);
        if batched {
            pod.atomically(|p| {
                for i in chunk.clone() {
                    p.update(&key(i), mark)?;
                }
                Ok(())
            })
            .unwrap();
        } else {
            for i in chunk {
                pod.update(&key(i), mark).unwrap();
            }
        }
        pod.sync().unwrap();
    }
}

fn child(mode: &str, path: &str) {
    let start = Instant::now();
    let mut n = 0usize;
    match mode {
        "tracker" => {
            let t = tastypod::TrackerOptions::new()
                .read_only(true)
                .open(path)
                .unwrap();
            n = t.num_done() + t.len();
        }
        "raw" => {
            for (k, v) in raw_replay(path.as_ref()) {
                n += k.len() + v.get().len();
            }
        }
        _ => {
            let pod: Pod = PodOptions::new().read_only(true).open(path).unwrap();
            for entry in pod.iter_json() {
                let (k, v) = entry.unwrap();
                n += k.len() + v.len();
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{mode} {secs:.3} {} {n}", peak_rss().unwrap_or(0));
}

fn measure(mode: &str, path: &std::path::Path) -> (f64, u64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--child", mode, path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default().to_string();
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert!(
        parts.len() == 4,
        "child said {text:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (parts[1].parse().unwrap(), parts[2].parse().unwrap())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn w4_latency() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = RawLog::create(&dir.path().join("raw.jsonl"));
    let mut pod: Pod = Pod::open(dir.path().join("w4.pod")).unwrap();
    let (mut raw_t, mut pod_t) = (Vec::new(), Vec::new());
    // Interleaved so both see the same machine load.
    for i in 0..2000 {
        let t = Instant::now();
        raw.append(&key(i), &value(i));
        raw.sync();
        raw_t.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        pod.insert(&key(i), value(i)).unwrap();
        pod.sync().unwrap();
        pod_t.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let (r50, p50) = (median(&mut raw_t), median(&mut pod_t));
    let r99 = raw_t[raw_t.len() * 99 / 100];
    let p99 = pod_t[pod_t.len() * 99 / 100];
    println!(
        "W4 per op: raw p50 {r50:.0} us p99 {r99:.0} us; tastypod p50 {p50:.0} us p99 {p99:.0} us; p50 ratio {:.2}",
        p50 / r50
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child(&args[2], &args[3]);
        return;
    }
    if args.get(1).map(String::as_str) == Some("--open-child") {
        let start = Instant::now();
        // A writable open (it maps the log; a read-only one copies values).
        let pod: Pod = PodOptions::new().open(&args[2]).unwrap();
        let secs = start.elapsed().as_secs_f64();
        let anon = rss_anon().unwrap_or(0);
        println!("{secs:.4} {anon} {} {}", peak_rss().unwrap_or(0), pod.len());
        return;
    }
    if args.get(1).map(String::as_str) == Some("--w2-child") {
        let (from, to) = (args[3].parse().unwrap(), args[4].parse().unwrap());
        let mut pod: Pod = PodOptions::new()
            .multi_process(true)
            .open(&args[2])
            .unwrap();
        w2_pass(&mut pod, from, to, args[5] == "batched");
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo test --benches` style probing
    }
    // FOOTPRINT_DIR keeps the generated files for profiling between runs.
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("FOOTPRINT_DIR").map_or(tmp.path().to_path_buf(), Into::into);
    let only = std::env::var("FOOTPRINT_ONLY").unwrap_or_default();
    if only == "sweep" {
        size_sweep(&dir);
        return;
    }
    let raw = dir.join("raw.jsonl");
    let store = dir.join("w3.pod");
    if !raw.exists() {
        write_raw(&raw, KEYS);
    }
    if !store.exists() {
        write_store(&store, KEYS);
    }
    let size = std::fs::metadata(store.join(tastypod::LOG_FILE))
        .unwrap()
        .len();
    println!("W3: {KEYS} keys, log {:.1} MB", size as f64 / 1e6);
    let (mut rt, mut pt, mut rm, mut pm) = (Vec::new(), Vec::new(), 0, 0);
    for _ in 0..5 {
        let (t, m) = measure("raw", &raw);
        rt.push(t);
        rm = rm.max(m);
        let (t, m) = measure("tastypod", &store);
        pt.push(t);
        pm = pm.max(m);
    }
    let (r, p) = (median(&mut rt), median(&mut pt));
    println!(
        "W3 open+visit median of 5: raw {r:.3} s, tastypod {p:.3} s, ratio {:.2}",
        p / r
    );
    println!(
        "W3 peak RSS: raw {:.0} MB, tastypod {:.0} MB",
        rm as f64 / 1e6,
        pm as f64 / 1e6
    );
    w4_latency();
    tracker_figures(&dir);
    shared_figures(&dir);
    size_sweep(&dir);
}

/// What an open in a child process reports: seconds, RssAnon and peak RSS.
type ChildOpen = (f64, u64, u64);

/// Open time, RssAnon after open and peak RSS of a store of each size of
/// the sweep (a writable open in a child process), in all and per key; and
/// how far the per-key figures spread over the sweep. The opens are made in
/// rounds (each round opens every size once, without and then with the
/// hint file), so that a change in the machine's load falls on every size
/// alike; medians of `FOOTPRINT_SWEEP_ROUNDS` rounds (5).
fn size_sweep(dir: &std::path::Path) {
    let sizes = env_list("FOOTPRINT_SWEEP", &[1_000_000, 4_000_000, 8_000_000]);
    let rounds = env_or("FOOTPRINT_SWEEP_ROUNDS", 5).max(1);
    let paths: Vec<std::path::PathBuf> = sizes
        .iter()
        .map(|n| dir.join(format!("sweep-{n}.pod")))
        .collect();
    for (&n, path) in sizes.iter().zip(&paths) {
        if !path.exists() {
            write_store(path, n);
        }
    }
    let open_child = |path: &std::path::Path, n: usize| -> ChildOpen {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--open-child", path.to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = text.split_whitespace().collect();
        assert!(f.len() == 4 && f[3] == n.to_string(), "child said {text:?}");
        (
            f[0].parse().unwrap(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
        )
    };
    // runs[size] = (whole-log open times, hinted opens).
    let mut runs: Vec<(Vec<f64>, Vec<ChildOpen>)> = vec![Default::default(); sizes.len()];
    for _ in 0..rounds {
        for (i, (&n, path)) in sizes.iter().zip(&paths).enumerate() {
            // Without the hint, the open reads the whole log (and writes a
            // hint, which the next open reads).
            let _ = std::fs::remove_file(path.join(tastypod::HINT_FILE));
            runs[i].0.push(open_child(path, n).0);
            runs[i].1.push(open_child(path, n));
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "size sweep (a writable open through the hint file, in a child process, medians of {rounds} rounds):"
    );
    println!(
        "| keys | log MB | hint MB | open s | ns/key | RssAnon MB | B/key | peak RSS MB | B/key |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut per_key: Vec<(f64, f64, f64)> = Vec::new();
    let mut whole_logs = Vec::new();
    for ((&n, path), (whole, hinted)) in sizes.iter().zip(&paths).zip(runs) {
        let log = std::fs::metadata(path.join(tastypod::LOG_FILE))
            .unwrap()
            .len();
        let hint = std::fs::metadata(path.join(tastypod::HINT_FILE)).map_or(0, |m| m.len());
        let secs = median(hinted.iter().map(|r| r.0).collect());
        let anon = median(hinted.iter().map(|r| r.1 as f64).collect());
        let peak = median(hinted.iter().map(|r| r.2 as f64).collect());
        let k = n as f64;
        per_key.push((secs * 1e9 / k, anon / k, peak / k));
        whole_logs.push((n, median(whole)));
        println!(
            "| {n} | {:.0} | {:.0} | {secs:.3} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            log as f64 / 1e6,
            hint as f64 / 1e6,
            secs * 1e9 / k,
            anon / 1e6,
            anon / k,
            peak / 1e6,
            peak / k
        );
        if std::env::var_os("FOOTPRINT_DIR").is_none() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
    println!("without the hint file (the open reads the whole log, then writes one), medians:");
    let mut whole_per_key = Vec::new();
    for (n, secs) in whole_logs {
        whole_per_key.push(secs * 1e9 / n as f64);
        println!(
            "  {n} keys: open {secs:.3} s, {:.0} ns/key",
            secs * 1e9 / n as f64
        );
    }
    let spread_of = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, 0f64), |(l, h), x| (l.min(*x), h.max(*x)));
        hi / lo
    };
    let spread = |f: fn(&(f64, f64, f64)) -> f64| {
        let v: Vec<f64> = per_key.iter().map(f).collect();
        spread_of(&v)
    };
    println!(
        "per-key spread over the sweep (max/min): open {:.2}, RssAnon {:.2}, peak RSS {:.2}; whole-log open {:.2}",
        spread(|p| p.0),
        spread(|p| p.1),
        spread(|p| p.2),
        spread_of(&whole_per_key)
    );
}

/// W2 (200,000 updates, a sync every 1,000) in exclusive mode, in shared
/// mode in one process (each update its own locked step, or 1,000 per
/// step), and in shared mode split over 4 processes; each timed up to the
/// store being closed.
fn shared_figures(dir: &std::path::Path) {
    const N: usize = 200_000;
    let template = dir.join("w2-template.pod");
    if !template.exists() {
        write_store(&template, N);
    }
    let fresh = |name: &str| {
        let path = dir.join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        std::fs::copy(
            template.join(tastypod::LOG_FILE),
            path.join(tastypod::LOG_FILE),
        )
        .unwrap();
        path
    };
    let mut runs: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for _ in 0..3 {
        for (label, shared, batched) in [
            ("exclusive", false, false),
            ("shared", true, false),
            ("shared-batched", true, true),
        ] {
            let path = fresh("w2-run.pod");
            let mut pod: Pod = PodOptions::new().multi_process(shared).open(&path).unwrap();
            let t0 = Instant::now();
            w2_pass(&mut pod, 0, N, batched);
            // Closing waits for a background compaction (exclusive mode), as
            // the 4-process runs wait for their processes to exit.
            pod.close().unwrap();
            runs.entry(label)
                .or_default()
                .push(t0.elapsed().as_secs_f64());
        }
        for (label, mode) in [("4-processes", "each"), ("4-processes-batched", "batched")] {
            let path = fresh("w2-run.pod");
            let t0 = Instant::now();
            let children: Vec<_> = (0..4)
                .map(|p| {
                    Command::new(std::env::current_exe().unwrap())
                        .args([
                            "--w2-child",
                            path.to_str().unwrap(),
                            &(p * N / 4).to_string(),
                            &((p + 1) * N / 4).to_string(),
                            mode,
                        ])
                        .spawn()
                        .unwrap()
                })
                .collect();
            for mut c in children {
                assert!(c.wait().unwrap().success());
            }
            runs.entry(label)
                .or_default()
                .push(t0.elapsed().as_secs_f64());
            let pod: Pod = PodOptions::new().read_only(true).open(&path).unwrap();
            assert_eq!(
                pod.get(&key(N - 1)).unwrap().unwrap()["_done"],
                serde_json::json!(true)
            );
        }
    }
    let base = median(runs.get_mut("exclusive").unwrap());
    print!("W2 200k updates, median of 3: exclusive {base:.3} s");
    for label in [
        "shared",
        "shared-batched",
        "4-processes",
        "4-processes-batched",
    ] {
        let m = median(runs.get_mut(label).unwrap());
        print!("; {label} {m:.3} s ({:.2}x)", m / base);
    }
    println!();
}

/// Tracker: `add_many` of 1,000,000 keys; a full `try_keys` pass marking
/// each task done with a sync every 1,000; the same pass as a worker makes
/// it, `claim_next` then `mark_done`; reopening the 1,000,000-task tracker
/// (time and peak memory, in a child process).
fn tracker_figures(dir: &std::path::Path) {
    let (mut add, mut pass, mut reopen, mut rss) = (Vec::new(), Vec::new(), Vec::new(), 0);
    let mut claims = Vec::new();
    for round in 0..3 {
        let path = dir.join(format!("tracker-{round}"));
        let _ = std::fs::remove_dir_all(&path);
        let t0 = Instant::now();
        let mut t = tastypod::Tracker::open(&path).unwrap();
        t.hold();
        t.add_many((0..KEYS).map(key)).unwrap();
        t.sync().unwrap();
        t.unhold().unwrap();
        add.push(t0.elapsed().as_secs_f64());
        drop(t);
        let copy = dir.join(format!("tracker-{round}-claims"));
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::copy(path.join(tastypod::LOG_FILE), copy.join(tastypod::LOG_FILE)).unwrap();
        claims.push(claim_pass(&copy));
        let _ = std::fs::remove_dir_all(&copy);
        let mut t = tastypod::Tracker::open(&path).unwrap();
        let t0 = Instant::now();
        t.hold();
        let mut n = 0usize;
        let mut tasks = t.try_keys(tastypod::Aborted::Skip);
        while let Some(k) = tasks.next() {
            tasks.mark_done(&k.unwrap()).unwrap();
            n += 1;
            if n.is_multiple_of(1000) {
                tasks.sync().unwrap();
            }
        }
        drop(tasks);
        t.sync().unwrap();
        pass.push(t0.elapsed().as_secs_f64());
        assert_eq!(t.num_done(), KEYS);
        drop(t);
        let (secs, peak) = measure("tracker", &path);
        reopen.push(secs);
        rss = rss.max(peak);
        let _ = std::fs::remove_dir_all(&path);
    }
    println!(
        "Tracker 1M median of 3: add_many {:.3} s; try_keys pass marking done (sync every 1000) {:.3} s; claim_next + mark_done pass {:.3} s; reopen {:.3} s, peak RSS {:.0} MB",
        median(&mut add),
        median(&mut pass),
        median(&mut claims),
        median(&mut reopen),
        rss as f64 / 1e6
    );
}

/// Claims every task of the tracker at `path` and marks it done, syncing
/// every 1,000; returns the seconds it took.
fn claim_pass(path: &std::path::Path) -> f64 {
    let mut t = tastypod::Tracker::open(path).unwrap();
    let t0 = Instant::now();
    t.hold();
    let mut n = 0usize;
    while let tastypod::Claim::Task(task) = t.claim_next("bench").unwrap() {
        t.mark_done(&task.key).unwrap();
        n += 1;
        if n.is_multiple_of(1000) {
            t.sync().unwrap();
        }
    }
    t.sync().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!((n, t.num_done()), (KEYS, KEYS));
    secs
}

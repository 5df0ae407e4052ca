//! Completed tasks per second on the PostgreSQL tracker, with 1, 4, 8 and
//! 16 worker threads, claiming one task at a time (`claim` then
//! `complete`) and in batches of 100 (`claim_many(100)` then
//! `complete_many`), on a server the bench starts (loopback,
//! `synchronous_commit = on`, `fsync = on`); beside it the same loops on
//! the file store's multi-process mode under `Durability::EveryChange`
//! (every completion on disk when it returns), in the same run.
//!
//! Each figure is the median of the rounds; rounds interleave the
//! backends. Workers are threads of this process, each with a connection
//! of its own (the file store: a handle each on one `SharedTracker`).
//!
//! Run: `cargo bench --features postgres --bench postgres`
//! (`PG_BENCH_ROUNDS`, 3; `PG_BENCH_SECONDS`, about how long one figure
//! takes, 2; `PG_BENCH_WORKERS`, `"1 4 8 16"`). Set `PG_BENCH_URL` to a
//! server's `postgres://...` URL (without `tracker`) to use that one.

#[path = "common.rs"]
mod common;
#[path = "../tests/pg_server/mod.rs"]
mod pg_server;

use common::{env_list, env_or};
use serde_json::Map;
use std::time::{Duration, Instant};
use tastypod::{Claim, Durability, PgTracker, TaskQueue, TrackerOptions};

fn worker_counts() -> Vec<usize> {
    env_list("PG_BENCH_WORKERS", &[1, 4, 8, 16])
}

/// One worker: claims and completes until nothing is left.
fn work(q: &dyn TaskQueue, batch: usize) -> usize {
    let mut done = 0;
    loop {
        if batch == 1 {
            match q.claim_wait(Duration::from_secs(10)).unwrap() {
                Claim::Task(lease) => {
                    q.complete(&lease, Map::new()).unwrap();
                    done += 1;
                }
                Claim::Wait(_) => {}
                Claim::Finished => return done,
            }
        } else {
            let leases = q.claim_many(batch).unwrap();
            if leases.is_empty() {
                match q.claim_wait(Duration::from_secs(10)).unwrap() {
                    Claim::Task(lease) => {
                        q.complete(&lease, Map::new()).unwrap();
                        done += 1;
                    }
                    Claim::Wait(_) => {}
                    Claim::Finished => return done,
                }
                continue;
            }
            let items: Vec<_> = leases.into_iter().map(|l| (l, Map::new())).collect();
            done += q.complete_many(&items).unwrap().len();
        }
    }
}

/// Tasks per second of `queues` (one per worker) working off `tasks` tasks.
fn measure(queues: &[Box<dyn TaskQueue>], tasks: usize, batch: usize) -> f64 {
    let keys: Vec<String> = (0..tasks).map(|i| format!("task-{i:08}")).collect();
    for chunk in keys.chunks(5000) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        queues[0].add_keys(&refs).unwrap();
    }
    let started = Instant::now();
    let done: usize = std::thread::scope(|s| {
        let handles: Vec<_> = queues
            .iter()
            .map(|q| s.spawn(move || work(&**q, batch)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let elapsed = started.elapsed();
    assert_eq!(done, tasks, "every task completed once");
    tasks as f64 / elapsed.as_secs_f64()
}

/// The rates of each (backend, workers, batch), one per round.
type Figures = Vec<((&'static str, usize, usize), Vec<f64>)>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too:
    // then one tiny round only checks that it works.
    let quick = !std::env::args().any(|a| a == "--bench");
    let server;
    let base = match std::env::var("PG_BENCH_URL") {
        Ok(url) => url,
        Err(_) => {
            server = match pg_server::Server::start() {
                Ok(s) => s,
                Err(why) => {
                    assert!(
                        std::env::var("CI").map_or(true, |v| v != "true"),
                        "CI=true and no PostgreSQL server: {why}"
                    );
                    eprintln!("skipped: no PostgreSQL server could be started: {why}");
                    return;
                }
            };
            format!("postgres://postgres@127.0.0.1:{}/postgres", server.port)
        }
    };
    let rounds = if quick {
        1
    } else {
        env_or("PG_BENCH_ROUNDS", 3)
    };
    let seconds = if quick {
        0.05
    } else {
        env_or("PG_BENCH_SECONDS", 2) as f64
    };
    let workers = if quick { vec![2] } else { worker_counts() };
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    let mut figures: Figures = Vec::new();
    // Rough rates, to size each round to about `seconds`.
    let rate = |backend: &str, batch: usize| match (backend, batch) {
        ("postgres", 1) => 1500.0,
        ("postgres", _) => 20_000.0,
        (_, 1) => 4000.0,
        _ => 50_000.0,
    };
    for _ in 0..rounds {
        for &w in &workers {
            for batch in [1, 100] {
                for backend in ["postgres", "file"] {
                    n += 1;
                    let tasks = ((rate(backend, batch) * seconds) as usize).max(200);
                    let queues: Vec<Box<dyn TaskQueue>> = if backend == "postgres" {
                        let url = format!("{base}?tracker=bench-{}-{n}", std::process::id());
                        let t = PgTracker::open(&url).unwrap();
                        (0..w)
                            .map(|i| Box::new(t.with_owner(&format!("w{i}"))) as Box<dyn TaskQueue>)
                            .collect()
                    } else {
                        let t = TrackerOptions::new()
                            .multi_process(true)
                            .durability(Durability::EveryChange)
                            .open_shared(dir.path().join(format!("t{n}")))
                            .unwrap();
                        (0..w)
                            .map(|i| Box::new(t.with_owner(&format!("w{i}"))) as Box<dyn TaskQueue>)
                            .collect()
                    };
                    let per_second = measure(&queues, tasks, batch);
                    let key = (backend, w, batch);
                    match figures.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, v)) => v.push(per_second),
                        None => figures.push((key, vec![per_second])),
                    }
                }
            }
        }
    }
    println!("completed tasks per second (median of {rounds} rounds; durable on return)");
    println!("| workers | claim | PostgreSQL | file store, multi-process | PostgreSQL / file |");
    println!("|---|---|---|---|---|");
    for &w in &workers {
        for batch in [1, 100] {
            let get = |backend| {
                figures
                    .iter()
                    .find(|(k, _)| *k == (backend, w, batch))
                    .map(|(_, v)| median(v.clone()))
                    .unwrap_or(0.0)
            };
            let (pg, file) = (get("postgres"), get("file"));
            println!(
                "| {w} | {} | {pg:.0} | {file:.0} | {:.2} |",
                if batch == 1 {
                    "one at a time"
                } else {
                    "batches of 100"
                },
                pg / file
            );
        }
    }
}

//! A worker-pool crawler of a synthetic site, with a `SharedTracker`.
//!
//! The frontier grows from one page: each page links to the next few, so the
//! workers add tasks as they go. Some pages are missing (they fail every
//! try and are aborted after the third), some fail once (they are retried
//! after a delay). Press Ctrl-C: the tracker is synced, the workers stop,
//! and the run's summary is printed; run it again and it claims at once
//! where it stopped (the claims of the interrupted run are freed).
//!
//! ```text
//! cargo run --release --example workers                # crawl (or resume)
//! cargo run --release --example workers -- --reset     # start over
//! ```

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tastypod::{Claim, RetryDelay, TrackerOptions};

const USAGE: &str = "usage: workers [--path DIR] [--pages N] [--workers N] [--reset]";

struct Args {
    path: String,
    pages: u64,
    workers: usize,
    reset: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        path: "tastypod-crawl.tracker".into(),
        pages: 3_000,
        workers: 4,
        reset: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--path" => args.path = value()?,
            "--pages" => args.pages = value()?.parse().map_err(|e| format!("--pages: {e}"))?,
            "--workers" => {
                args.workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?;
            }
            "--reset" => args.reset = true,
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// Fetches page `url` of the synthetic site: its links, or an error.
fn fetch(url: &str, pages: u64, tries: u32) -> Result<Vec<String>, String> {
    let n: u64 = url
        .strip_prefix("page-")
        .and_then(|n| n.parse().ok())
        .ok_or("not a page")?;
    std::thread::sleep(Duration::from_millis(2)); // the network
    if n % 97 == 96 {
        return Err("404".into());
    }
    if n % 13 == 5 && tries < 2 {
        return Err("timeout".into());
    }
    Ok((3 * n + 1..=3 * n + 3)
        .filter(|&m| m < pages)
        .map(|m| format!("page-{m}"))
        .collect())
}

fn run(args: &Args) -> Result<(), tastypod::Error> {
    if args.reset {
        let _ = std::fs::remove_dir_all(&args.path);
    }
    // Ctrl-C syncs the tracker and sets the stop flag the workers poll.
    tastypod::stop_on_signals()?;
    let options = TrackerOptions::new()
        .max_tries(3)
        .retry_delay(RetryDelay::Exponential {
            first: Duration::from_millis(50),
            max: Duration::from_secs(5),
        });
    let tracker = options.open_shared(&args.path)?;
    tracker.add_many_if_absent(["page-0"])?;
    let start = Instant::now();
    let fetched = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..args.workers)
            .map(|w| {
                let tracker = tracker.with_owner(&format!("worker-{w}"));
                let fetched = &fetched;
                s.spawn(move || -> Result<(), tastypod::Error> {
                    while !tastypod::stop_requested() {
                        let url = match tracker.claim_next_wait(Duration::from_secs(60))? {
                            Claim::Task(task) => task.key,
                            Claim::Wait(_) => continue,
                            Claim::Finished => break,
                        };
                        let tries = tracker.tries(&url);
                        match fetch(&url, args.pages, tries) {
                            Ok(links) => {
                                // Links first: a worker that sees no task
                                // left then knows the crawl is finished.
                                tracker.add_many_if_absent(links)?;
                                tracker.mark_done(&url)?;
                                fetched.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => tracker.release(&url)?,
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().unwrap_or(Ok(())))
    })?;
    tracker.sync()?;
    let secs = start.elapsed().as_secs_f64();
    let n = fetched.load(Ordering::Relaxed);
    let stopped = if tastypod::stop_requested() {
        "stopped by a signal; run again to resume. "
    } else {
        ""
    };
    println!(
        "{stopped}this run: {n} pages in {secs:.2} s ({:.0} pages/s)",
        n as f64 / secs.max(1e-9)
    );
    println!("{}", tracker.summary());
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workers: {}", tastypod::error_chain(&e));
            ExitCode::from(2)
        }
    }
}

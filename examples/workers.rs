//! A worker-pool crawler of a synthetic site, with a `SharedTracker`.
//!
//! The frontier grows from one page: each page links to the next few, so the
//! workers add tasks as they go. Some pages are missing (a 404: the task is
//! aborted, with the reason in its record), some time out once (released
//! with the error, and retried after a delay). Every finished page is on
//! disk before the next one is claimed (`Durability::EveryChange`, the
//! workers sharing the fsyncs), and a page's links are added in the same
//! step as its done mark: kill it with `kill -9` at any moment, run it
//! again, and no finished page is fetched again and no link is lost.
//! Ctrl-C stops the workers after their current page; the claims of a
//! killed run are freed when it is run again.
//!
//! ```text
//! cargo run --release --example workers                # crawl (or resume)
//! cargo run --release --example workers -- --reset     # start over
//! ```

use std::io::Write;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tastypod::{Claim, Durability, RetryDelay, TrackerOptions};

const USAGE: &str =
    "usage: workers [--path DIR] [--pages N] [--workers N] [--journal FILE] [--reset]";

struct Args {
    path: String,
    pages: u64,
    workers: usize,
    /// A file to append `fetch URL` before each fetch and `done URL` once
    /// a page is finished (the crash test reads it).
    journal: Option<String>,
    reset: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        path: "tastypod-crawl.tracker".into(),
        pages: 3_000,
        workers: 4,
        journal: None,
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
            "--journal" => args.journal = Some(value()?),
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

/// The journal of the crash test: one line per event, each one write.
struct Journal(Option<Mutex<std::fs::File>>);

impl Journal {
    fn open(path: Option<&str>) -> std::io::Result<Self> {
        let file = path
            .map(|p| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
            })
            .transpose()?;
        Ok(Journal(file.map(Mutex::new)))
    }

    fn note(&self, what: &str, url: &str) {
        if let Some(file) = &self.0 {
            let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
            // The journal is the test's, not the crawl's: a failure to write it
            // shows up there.
            let _ = file.write_all(format!("{what} {url}\n").as_bytes());
        }
    }
}

fn run(args: &Args, journal: &Journal) -> Result<(), tastypod::Error> {
    if args.reset {
        let _ = std::fs::remove_dir_all(&args.path);
    }
    // Ctrl-C sets the stop flag the workers poll (and syncs the tracker).
    tastypod::stop_on_signals()?;
    let options = TrackerOptions::new()
        // Each finished page is durable when `complete` returns; the
        // workers share the fsyncs.
        .durability(Durability::EveryChange)
        // A page may time out once, and a kill may interrupt a try: room
        // for both before a page is given up.
        .max_tries(5)
        .retry_delay(RetryDelay::Exponential {
            first: Duration::from_millis(50),
            max: Duration::from_secs(5),
        });
    let tracker = options.open_shared(&args.path)?;
    let freed = tracker.freed_at_open();
    if !freed.is_empty() {
        eprintln!("{freed}");
    }
    tracker.add_many_if_absent(["page-0"])?;
    #[cfg(feature = "progress")]
    let progress = tastypod::Progress::watch(&tracker);
    let start = Instant::now();
    let fetched = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..args.workers)
            .map(|w| {
                let tracker = tracker.with_owner(&format!("worker-{w}"));
                let fetched = &fetched;
                s.spawn(move || -> Result<(), tastypod::Error> {
                    while !tastypod::stop_requested() {
                        let task = match tracker.claim_next_wait(Duration::from_secs(60))? {
                            Claim::Task(task) => task,
                            Claim::Wait(_) => continue,
                            Claim::Finished => break,
                        };
                        journal.note("fetch", &task.key);
                        match fetch(&task.key, args.pages, task.try_number) {
                            Ok(links) => {
                                // The links and the done mark in one step:
                                // one record batch, one fsync, all or nothing.
                                tracker.locked(|t| {
                                    t.add_many_if_absent(&links)?;
                                    t.complete(&task, serde_json::Map::new())
                                })?;
                                journal.note("done", &task.key);
                                fetched.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) if e == "404" => {
                                tracker.abort_claim(&task, why(&e))?;
                            }
                            Err(e) => tracker.release_claim(&task, None, why(&e))?,
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
    #[cfg(feature = "progress")]
    progress.finish();
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

/// The fields that record why a try failed.
fn why(error: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut fields = serde_json::Map::new();
    fields.insert("error".into(), error.into());
    fields
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let journal = match Journal::open(args.journal.as_deref()) {
        Ok(journal) => journal,
        Err(e) => {
            eprintln!("workers: --journal: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args, &journal) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workers: {}", tastypod::error_chain(&e));
            ExitCode::from(2)
        }
    }
}

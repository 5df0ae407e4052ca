//! A resumable batch job: processes synthetic tasks with a `Tracker`.
//!
//! Some tasks fail and are retried up to `--max-tries`, some are broken and
//! get aborted. Interrupt it (Ctrl-C, or kill it) and run it again: it picks
//! up where it stopped. `tastypod::sync_on_signals()` makes Ctrl-C (and
//! SIGTERM, SIGHUP) sync the tracker before the process exits, so nothing
//! done is redone; after a `kill -9`, at most the last unsynced batch is.
//!
//! With `--workers N` it runs a pool of N claiming workers in threads
//! instead (the worker API, `TaskQueue`, with leases: a worker killed
//! mid-task leaves its task claimed until the lease ends, then another
//! takes it up, its try counted). `--path` may then be a PostgreSQL URL
//! (built with the feature `postgres`): several job processes, on any
//! machines, share the work of one tracker.
//!
//! ```text
//! cargo run --release --example job                 # run (or resume) the job
//! cargo run --release --example job -- --reset      # start over
//! cargo run --release --example job -- --workers 4  # a pool of 4 claiming workers
//! cargo run --release --features postgres --example job -- \
//!     --path 'postgres://me@localhost/crawl?tracker=demo' --workers 8
//! cargo run --release --example job -- --help
//! ```

use serde_json::{Map, Value, json};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tastypod::{Aborted, Claim, Durability, ErrorKind, TaskQueue, Tracker, TrackerOptions};

const USAGE: &str =
    "usage: job [--path DIR|URL] [--tasks N] [--max-tries N] [--work-us N] [--trace FILE] [--reset]
           [--workers N] [--lease-ms N] [--completions FILE]

  --path DIR|URL      where the tracker lives (default: tastypod-demo.tracker); with
                      --workers also postgres://USER@HOST:PORT/DB?tracker=NAME
  --tasks N           how many synthetic tasks (default: 300000)
  --max-tries N       tries before a failing task is given up (default: 3)
  --work-us N         microseconds of pretend work per try (default: 20)
  --trace FILE        append every attempted key to FILE (used by the tests)
  --reset             delete the tracker first and start over (a directory only)
  --workers N         run N claiming workers in threads instead of the try loop
                      (a URL implies --workers 1); several processes may share
                      the tracker
  --lease-ms N        how long a claim lasts, in milliseconds (default: 30000)
  --completions FILE  append the key of each task whose completion succeeded";

struct Args {
    path: String,
    tasks: usize,
    max_tries: u32,
    work: Duration,
    trace: Option<String>,
    reset: bool,
    workers: usize,
    lease: Duration,
    completions: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        path: "tastypod-demo.tracker".into(),
        tasks: 300_000,
        max_tries: 3,
        work: Duration::from_micros(20),
        trace: None,
        reset: false,
        workers: 0,
        lease: Duration::from_secs(30),
        completions: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--path" => args.path = value()?,
            "--tasks" => args.tasks = value()?.parse().map_err(|e| format!("--tasks: {e}"))?,
            "--max-tries" => {
                args.max_tries = value()?.parse().map_err(|e| format!("--max-tries: {e}"))?
            }
            "--work-us" => {
                let us: u64 = value()?.parse().map_err(|e| format!("--work-us: {e}"))?;
                args.work = Duration::from_micros(us);
            }
            "--trace" => args.trace = Some(value()?),
            "--workers" => {
                args.workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?
            }
            "--lease-ms" => {
                let ms: u64 = value()?.parse().map_err(|e| format!("--lease-ms: {e}"))?;
                args.lease = Duration::from_millis(ms);
            }
            "--completions" => args.completions = Some(value()?),
            "--reset" => args.reset = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// The rules of the synthetic tasks, shared with the test that checks them:
/// task `i` is broken (aborted on its first try) if `i % 997 == 13`;
/// otherwise it succeeds from try number `first_success(i)` on.
fn first_success(i: usize) -> u32 {
    match (i.wrapping_mul(2_654_435_761)) % 10 {
        0..=6 => 1,
        7 => 2,
        8 => 3,
        _ => 5,
    }
}

/// Whether task `i` is broken beyond repair.
fn broken(i: usize) -> bool {
    i % 997 == 13
}

fn task_number(key: &str) -> usize {
    key.trim_start_matches("task-").parse().unwrap_or(0)
}

fn busy_wait(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn is_url(path: &str) -> bool {
    path.starts_with("postgres://") || path.starts_with("postgresql://")
}

/// The tracker at `args.path` as a pool's queues, one per worker (each
/// claiming under a name of its own).
fn queues(args: &Args) -> Result<Vec<Box<dyn TaskQueue>>, Box<dyn std::error::Error>> {
    let options = TrackerOptions::new()
        .max_tries(args.max_tries)
        .lease(args.lease);
    let pid = std::process::id();
    let names = (0..args.workers.max(1)).map(|w| format!("pid-{pid}-w{w}"));
    if is_url(&args.path) {
        #[cfg(feature = "postgres")]
        {
            let tracker = options.open_postgres(&args.path)?;
            return Ok(names
                .map(|n| Box::new(tracker.with_owner(&n)) as Box<dyn TaskQueue>)
                .collect());
        }
        #[cfg(not(feature = "postgres"))]
        return Err("a PostgreSQL URL needs the example built with --features postgres".into());
    }
    // Several processes may share the directory; every completion is on
    // disk when it returns (group commit shares the fsyncs).
    let tracker = options
        .multi_process(true)
        .durability(Durability::EveryChange)
        .open_shared(&args.path)?;
    Ok(names
        .map(|n| Box::new(tracker.with_owner(&n)) as Box<dyn TaskQueue>)
        .collect())
}

fn fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// What one worker did.
#[derive(Default)]
struct Tally {
    tries: u64,
    completed: u64,
    /// Finishing calls refused because the lease had been taken over.
    lost: u64,
}

/// One claiming worker: claims a task, works, completes, aborts or releases
/// it, until nothing is left (or a stop is requested).
fn worker(
    queue: &dyn TaskQueue,
    args: &Args,
    completions: Option<&Mutex<std::fs::File>>,
) -> Result<Tally, tastypod::Error> {
    let mut tally = Tally::default();
    while !tastypod::stop_requested() {
        let lease = match queue.claim_wait(Duration::from_secs(1))? {
            Claim::Task(lease) => lease,
            Claim::Wait(_) => continue,
            Claim::Finished => break,
        };
        tally.tries += 1;
        let i = task_number(&lease.key);
        busy_wait(args.work);
        let outcome = if broken(i) {
            queue.abort_claim(&lease, fields(&[("error", json!("broken"))]))
        } else if lease.try_number >= first_success(i) {
            let done = queue.complete(&lease, fields(&[("result", json!(i * 2))]));
            if done.is_ok() {
                tally.completed += 1;
                if let Some(file) = completions {
                    let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                    // One write of a whole line: lines of several processes
                    // never interleave in a file opened for appending.
                    let line = format!("{}\n", lease.key);
                    file.write_all(line.as_bytes())
                        .and_then(|()| file.flush())
                        .map_err(|e| {
                            tastypod::Error::from(ErrorKind::Io {
                                op: "append to",
                                path: args.completions.clone().unwrap_or_default().into(),
                                source: e,
                            })
                        })?;
                }
            }
            done
        } else {
            queue.release_claim(&lease, None, fields(&[("error", json!("flaky"))]))
        };
        match outcome {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::LeaseLost { .. }) => tally.lost += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(tally)
}

/// The worker-pool mode: `--workers N` (or a URL).
fn run_pool(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    // Ctrl-C, SIGTERM and SIGHUP stop the workers after their current task.
    tastypod::stop_on_signals()?;
    let queues = queues(args)?;
    let first = &queues[0];
    let keys: Vec<String> = (0..args.tasks).map(|i| format!("task-{i:08}")).collect();
    let mut added = 0;
    for chunk in keys.chunks(10_000) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        added += first.add_keys(&refs)?;
    }
    println!(
        "{}: {} tasks ({added} new), {}",
        args.path,
        first.counts()?.total,
        first.summary()?
    );
    let completions = match &args.completions {
        Some(path) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        )),
        None => None,
    };
    let started = Instant::now();
    let tallies = std::thread::scope(|s| {
        let handles: Vec<_> = queues
            .iter()
            .map(|q| {
                let completions = completions.as_ref();
                s.spawn(move || worker(&**q, args, completions))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Ok(Tally::default())))
            .collect::<Result<Vec<Tally>, tastypod::Error>>()
    })?;
    let (tries, completed, lost) = tallies.iter().fold((0, 0, 0), |(t, c, l), x| {
        (t + x.tries, c + x.completed, l + x.lost)
    });
    let elapsed = started.elapsed();
    println!(
        "{} workers: {tries} tries, {completed} completed ({:.0}/s), {lost} leases lost, in {elapsed:.2?}; {}",
        queues.len(),
        completed as f64 / elapsed.as_secs_f64().max(1e-9),
        first.summary()?
    );
    if tastypod::stop_requested() {
        return Err("stopped by a signal before the end; run it again to resume".into());
    }
    Ok(())
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.reset && is_url(&args.path) {
        return Err("--reset deletes a directory; it does not apply to a URL".into());
    }
    if args.reset && std::path::Path::new(&args.path).exists() {
        std::fs::remove_dir_all(&args.path)?;
    }
    if args.workers > 0 || is_url(&args.path) {
        return run_pool(args);
    }
    // Ctrl-C, SIGTERM and SIGHUP sync the tracker, then exit (130, 143, 129).
    tastypod::sync_on_signals()?;

    let mut tracker: Tracker = TrackerOptions::new()
        .max_tries(args.max_tries)
        .open(&args.path)?;
    if !tracker.recovery().is_clean() {
        eprintln!("recovered after a crash: {:?}", tracker.recovery());
    }
    let added = tracker.add_many_if_absent((0..args.tasks).map(|i| format!("task-{i:08}")))?;
    tracker.sync()?;
    println!(
        "{}: {} tasks ({} new), {}",
        args.path,
        tracker.len(),
        added,
        tracker.summary()
    );
    let mut trace = match &args.trace {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
        None => None,
    };

    #[cfg(feature = "progress")]
    let mut progress = tastypod::Progress::new(&tracker);
    let started = Instant::now();
    let mut attempts = 0u64;
    // Each pass tries every task still to do; failed tasks come round again
    // in the next pass until they succeed or run out of tries.
    loop {
        let before = attempts;
        let mut tasks = tracker.try_keys(Aborted::Skip);
        while let Some(key) = tasks.next() {
            let key = key?;
            attempts += 1;
            if let Some(trace) = trace.as_mut() {
                writeln!(trace, "{key}")?;
            }
            let i = task_number(&key);
            busy_wait(args.work);
            if broken(i) {
                tasks.abort(&key)?;
            } else if tasks.tries(&key) >= first_success(i) {
                tasks.update_task(&key, |t| t["result"] = (i * 2).into())?;
                tasks.mark_done(&key)?;
            }
            #[cfg(feature = "progress")]
            progress.update(&tasks);
            if attempts.is_multiple_of(50_000) {
                println!("progress: {}", tasks.summary());
            }
        }
        if attempts == before {
            break;
        }
    }
    #[cfg(feature = "progress")]
    progress.finish(&tracker);
    let left = tracker.todo_keys(Aborted::Skip).count();
    let given_up = tracker
        .keys()
        .filter(|k| !tracker.done(k) && !tracker.aborted(k) && tracker.tries(k) >= args.max_tries)
        .count();
    println!(
        "{attempts} tries in {:.2?}; {}; {given_up} given up after {} tries; {left} left to do",
        started.elapsed(),
        tracker.summary(),
        args.max_tries
    );
    tracker.close()?;
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A signal ended the run: its stores are synced; exit as the
            // signal would (130 for Ctrl-C).
            if let Some(signal) = e
                .downcast_ref::<tastypod::Error>()
                .and_then(tastypod::Error::shutdown_signal)
            {
                return ExitCode::from(128u8.saturating_add(signal as u8));
            }
            eprintln!("job: {}", tastypod::error_chain(&*e));
            ExitCode::FAILURE
        }
    }
}

//! A resumable batch job: processes synthetic tasks with a `Tracker`.
//!
//! Some tasks fail and are retried up to `--max-tries`, some are broken and
//! get aborted. Interrupt it (Ctrl-C, or kill it) and run it again: it picks
//! up where it stopped. `tastypod::sync_on_signals()` makes Ctrl-C (and
//! SIGTERM, SIGHUP) sync the tracker before the process exits, so nothing
//! done is redone; after a `kill -9`, at most the last unsynced batch is.
//!
//! ```text
//! cargo run --release --example job                 # run (or resume) the job
//! cargo run --release --example job -- --reset      # start over
//! cargo run --release --example job -- --help
//! ```

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tastypod::{Aborted, Tracker, TrackerOptions};

const USAGE: &str =
    "usage: job [--path DIR] [--tasks N] [--max-tries N] [--work-us N] [--trace FILE] [--reset]

  --path DIR      where the tracker lives (default: tastypod-demo.tracker)
  --tasks N       how many synthetic tasks (default: 300000)
  --max-tries N   tries before a failing task is given up (default: 3)
  --work-us N     microseconds of pretend work per try (default: 20)
  --trace FILE    append every attempted key to FILE (used by the tests)
  --reset         delete the tracker first and start over";

struct Args {
    path: String,
    tasks: usize,
    max_tries: u32,
    work: Duration,
    trace: Option<String>,
    reset: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        path: "tastypod-demo.tracker".into(),
        tasks: 300_000,
        max_tries: 3,
        work: Duration::from_micros(20),
        trace: None,
        reset: false,
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

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.reset && std::path::Path::new(&args.path).exists() {
        std::fs::remove_dir_all(&args.path)?;
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

//! The `tracker` subcommands on a PostgreSQL tracker (a
//! `postgres://...?tracker=NAME` URL where a path goes): the counts with a
//! bar, the keys to do, and resetting tasks. What they print is what they
//! print for a tracker directory.

use crate::errors::{CliResult, fail};
use crate::output::{bar, print_json, printable_key};
use serde_json::{Value, json};
use std::io::{BufWriter, Write};
use std::process::ExitCode;
use tastypod::{PgTracker, TaskCounts, TaskQueue, TrackerOptions};

/// Whether `path` names a PostgreSQL tracker rather than a directory.
pub fn is_url(path: &std::path::Path) -> bool {
    path.to_str().is_some_and(tastypod::is_postgres_url)
}

/// Opens the existing tracker at `url` (creating nothing).
pub fn open(url: &str) -> CliResult<PgTracker> {
    if !PgTracker::exists(url)? {
        return fail(format!(
            "no tracker at {}",
            tastypod::url_without_password(url)
        ));
    }
    Ok(TrackerOptions::new().open_postgres(url)?)
}

fn no_override(max_tries: Option<u32>) -> CliResult<()> {
    if max_tries.is_some() {
        return fail(
            "--max-tries applies to a tracker directory; a PostgreSQL tracker counts with its stored limit",
        );
    }
    Ok(())
}

/// The counts as `tracker --json` prints them.
fn counts_json(c: &TaskCounts, max_tries: u32) -> serde_json::Map<String, Value> {
    [
        ("total", json!(c.total)),
        ("done", json!(c.done)),
        ("tried", json!(c.tried)),
        ("tries", json!(c.tries)),
        ("aborted", json!(c.aborted)),
        ("exhausted", json!(c.exhausted)),
        ("todo", json!(c.todo)),
        ("claimed", json!(c.claimed)),
        ("max_tries", json!(max_tries)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

pub fn summary(url: &str, max_tries: Option<u32>, as_json: bool) -> CliResult<ExitCode> {
    no_override(max_tries)?;
    let t = open(url)?;
    let c = TaskQueue::counts(&t)?;
    let fraction = if c.total == 0 {
        0.0
    } else {
        c.done as f64 / c.total as f64
    };
    if as_json {
        let mut counts = counts_json(&c, t.max_tries());
        counts.insert("fraction_done".into(), json!(fraction));
        print_json(&Value::Object(counts))?;
    } else {
        outln!("{} {:.2} %", bar(fraction, 40), 100.0 * fraction);
        outln!(
            "done {} / {}, tried {}, aborted {}, exhausted {}, todo {} ({} claimed)",
            c.done,
            c.total,
            c.tried,
            c.aborted,
            c.exhausted,
            c.todo,
            c.claimed,
        );
        match t.max_tries() {
            0 => outln!("no try limit"),
            n => outln!("try limit {n}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn todo(
    url: &str,
    max_tries: Option<u32>,
    aborted: bool,
    as_json: bool,
) -> CliResult<ExitCode> {
    no_override(max_tries)?;
    let t = open(url)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut first = true;
    // Streamed, a page of keys at a time, as for a directory.
    let mut written: std::io::Result<()> = Ok(());
    t.for_each_todo_key(aborted, |key| {
        let line = if as_json {
            let sep = if first { "[\n  " } else { ",\n  " };
            first = false;
            serde_json::to_string(key).map(|k| format!("{sep}{k}"))
        } else {
            Ok(format!("{}\n", printable_key(key)))
        };
        written = line
            .map_err(std::io::Error::other)
            .and_then(|l| out.write_all(l.as_bytes()));
        // A closed pipe stops the listing; its error is reported below.
        match &written {
            Ok(()) => Ok(()),
            Err(_) => Err(tastypod::ErrorKind::InvalidOption {
                name: "output",
                why: "standard output was closed".into(),
            }
            .into()),
        }
    })
    .or_else(|e| if written.is_err() { Ok(()) } else { Err(e) })?;
    written?;
    if as_json {
        out.write_all(if first { b"[]\n" } else { b"\n]\n" })?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn reset(
    url: &str,
    keys: &[String],
    aborted: bool,
    exhausted: bool,
    max_tries: Option<u32>,
    as_json: bool,
) -> CliResult<ExitCode> {
    if keys.is_empty() && !aborted && !exhausted {
        return fail("tracker reset needs KEYs, --aborted or --exhausted");
    }
    let t = open(url)?;
    let limit = crate::tracker_cmd::exhausted_limit(exhausted, max_tries, t.max_tries())?;
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let reset = match t.reset(&refs, aborted, limit) {
        Ok(reset) => reset,
        Err(e) => match e.kind() {
            tastypod::ErrorKind::MissingKey { key } => {
                return fail(format!("key {key:?} is not in {}", t.url()));
            }
            _ => return Err(e.into()),
        },
    };
    if as_json {
        print_json(&json!({"reset": reset}))?;
    } else {
        outln!("reset {reset} tasks in {}", t.url());
    }
    Ok(ExitCode::SUCCESS)
}

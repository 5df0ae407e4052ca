//! `tastypod tracker`: a tracker's counts with a bar, the keys still to do,
//! and resetting tasks so a job tries them again.

use crate::args::TrackerAction;
use crate::errors::{CliResult, fail};
use crate::open::Stores;
use crate::output::print_json;
use crate::output::{bar, printable_key};
use serde_json::{Value, json};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tastypod::{Aborted, Tracker};

pub fn run(
    stores: &Stores,
    action: Option<TrackerAction>,
    path: Option<PathBuf>,
    max_tries: Option<u32>,
    json: bool,
) -> CliResult<ExitCode> {
    #[cfg(feature = "postgres")]
    if let Some(code) = on_postgres(action.as_ref(), path.as_deref(), max_tries, json)? {
        return Ok(code);
    }
    match (action, path) {
        (
            Some(TrackerAction::Todo {
                path,
                max_tries,
                aborted,
                json,
            }),
            _,
        ) => todo(stores, &path, max_tries, aborted, json),
        (
            Some(TrackerAction::Reset {
                path,
                keys,
                aborted,
                exhausted,
                max_tries,
                json,
            }),
            _,
        ) => {
            let which = Which {
                keys: &keys,
                aborted,
                exhausted,
            };
            reset(stores, &path, &which, max_tries, json)
        }
        (None, Some(path)) => summary(stores, &path, max_tries, json),
        (None, None) => fail("tracker needs a PATH or a subcommand (see tastypod tracker --help)"),
    }
}

/// The subcommand on a PostgreSQL tracker, if its path is a URL.
#[cfg(feature = "postgres")]
fn on_postgres(
    action: Option<&TrackerAction>,
    path: Option<&Path>,
    max_tries: Option<u32>,
    json: bool,
) -> CliResult<Option<ExitCode>> {
    use crate::pg_cmd::{is_url, reset, summary, todo};
    let url = |p: &Path| p.to_str().unwrap_or_default().to_string();
    Ok(match (action, path) {
        (
            Some(TrackerAction::Todo {
                path,
                max_tries,
                aborted,
                json,
            }),
            _,
        ) if is_url(path) => Some(todo(&url(path), *max_tries, *aborted, *json)?),
        (
            Some(TrackerAction::Reset {
                path,
                keys,
                aborted,
                exhausted,
                max_tries,
                json,
            }),
            _,
        ) if is_url(path) => Some(reset(
            &url(path),
            keys,
            *aborted,
            *exhausted,
            *max_tries,
            *json,
        )?),
        (None, Some(path)) if is_url(path) => Some(summary(&url(path), max_tries, json)?),
        _ => None,
    })
}

/// A tracker's counts and try limit, as `stat` and `tracker` print them.
pub fn counts(t: &Tracker) -> serde_json::Map<String, Value> {
    [
        ("total", json!(t.len())),
        ("done", json!(t.num_done())),
        ("tried", json!(t.num_tried())),
        ("aborted", json!(t.num_aborted())),
        ("exhausted", json!(t.num_exhausted())),
        ("todo", json!(t.num_todo())),
        ("claimed", json!(t.num_claimed())),
        ("max_tries", json!(t.max_tries())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The counts on one line.
pub fn counts_line(t: &Tracker) -> String {
    format!(
        "{} total, {} done, {} tried, {} aborted, {} exhausted, {} todo ({} done)",
        t.len(),
        t.num_done(),
        t.num_tried(),
        t.num_aborted(),
        t.num_exhausted(),
        t.num_todo(),
        t.percent_done(2)
    )
}

fn summary(
    stores: &Stores,
    path: &Path,
    max_tries: Option<u32>,
    json: bool,
) -> CliResult<ExitCode> {
    let t = stores.tracker(path, max_tries, true)?;
    if json {
        let mut counts = counts(&t);
        counts.insert("fraction_done".into(), json!(t.fraction_done()));
        print_json(&Value::Object(counts))?;
    } else {
        outln!("{} {}", bar(t.fraction_done(), 40), t.percent_done(2));
        outln!(
            "done {} / {}, tried {}, aborted {}, exhausted {}, todo {} ({} claimed)",
            t.num_done(),
            t.len(),
            t.num_tried(),
            t.num_aborted(),
            t.num_exhausted(),
            t.num_todo(),
            t.num_claimed(),
        );
        match t.max_tries() {
            0 => outln!("no try limit"),
            n => outln!("try limit {n}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn todo(
    stores: &Stores,
    path: &Path,
    max_tries: Option<u32>,
    aborted: bool,
    json: bool,
) -> CliResult<ExitCode> {
    let t = stores.tracker(path, max_tries, true)?;
    let which = if aborted {
        Aborted::Allow
    } else {
        Aborted::Skip
    };
    if json {
        print_json(&Value::from(t.todo_keys(which).collect::<Vec<_>>()))?;
    } else {
        let mut out = BufWriter::new(std::io::stdout().lock());
        for key in t.todo_keys(which) {
            writeln!(out, "{}", printable_key(key))?;
        }
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The try limit `tracker reset --exhausted` counts with (`None` without
/// `--exhausted`): the one given, else the stored one; either must be one.
pub fn exhausted_limit(exhausted: bool, given: Option<u32>, stored: u32) -> CliResult<Option<u32>> {
    match (exhausted, given, stored) {
        (false, ..) => Ok(None),
        (true, Some(0), _) => {
            fail("--max-tries for --exhausted must be at least 1 (0 means no limit)")
        }
        (true, None, 0) => fail(
            "--exhausted needs a try limit: the tracker stores none, so give --max-tries N (at least 1)",
        ),
        (true, given, stored) => Ok(Some(given.unwrap_or(stored))),
    }
}

/// The tasks `tracker reset` resets.
struct Which<'a> {
    keys: &'a [String],
    /// Every task the program aborted.
    aborted: bool,
    /// Every task out of tries (not those the program aborted).
    exhausted: bool,
}

fn reset(
    stores: &Stores,
    path: &Path,
    which: &Which<'_>,
    max_tries: Option<u32>,
    json: bool,
) -> CliResult<ExitCode> {
    if which.keys.is_empty() && !which.aborted && !which.exhausted {
        return fail("tracker reset needs KEYs, --aborted or --exhausted");
    }
    // Opened with the stored settings: an override is not stored.
    let mut t = stores.tracker(path, None, false)?;
    let limit = exhausted_limit(which.exhausted, max_tries, t.max_tries())?;
    let mut chosen: Vec<String> = Vec::new();
    for key in which.keys {
        if !t.contains_key(key) {
            return fail(format!("key {key:?} is not in {}", path.display()));
        }
        chosen.push(key.clone());
    }
    if which.aborted {
        chosen.extend(t.aborted_keys().map(String::from));
    }
    if let Some(max) = limit {
        // Out of tries at that limit, and not aborted by the program: its
        // verdict stands unless --aborted says otherwise.
        let worn = t
            .keys()
            .filter(|k| t.state(k).is_some_and(|s| s.is_exhausted(max)));
        chosen.extend(worn.map(String::from).collect::<Vec<_>>());
    }
    chosen.sort_unstable();
    chosen.dedup();
    t.hold();
    for key in &chosen {
        t.reset_tries(key)?;
        t.unabort(key)?;
    }
    t.sync()?;
    t.close()?;
    if json {
        print_json(&json!({"reset": chosen.len()}))?;
    } else {
        outln!("reset {} tasks in {}", chosen.len(), path.display());
    }
    Ok(ExitCode::SUCCESS)
}

//! `import-tastypy`: migrate a tastypy POD or Tracker directory.
//!
//! tastypy keeps a store as files `0.json`, `1.json`, ... (or `N.json.gz`),
//! each holding lines `key<TAB>json-value` in its own encoding
//! ([`crate::tastypy`]). Records are taken in file order, then line order.
//! A key that is not a string becomes its compact JSON text (`7` -> `"7"`,
//! `(1, 1)` -> `"[1,1]"`); two records whose keys become the same key are
//! refused, naming both lines. A directory whose every record is a task
//! record (a boolean `_done`, an integer `_tries`) becomes a tracker: each
//! record gets the `_aborted: false` tastypod's tracker also needs when it
//! lacks one, and a negative `_tries` is stored as 0 (counted).

use crate::bounded::Lines;
use crate::errors::{CliResult, Message, fail};
use crate::open::{Stores, opened};
use crate::staging::Staged;
use crate::tastypy;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tastypod::{ABORTED, DONE, TRIES, TaskState};

/// The numbered files of a tastypy directory, in order.
fn numbered_files(dir: &Path) -> CliResult<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Message(format!("cannot read {}: {e}", dir.display())))?;
    let mut files: BTreeMap<u64, PathBuf> = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| Message(format!("cannot read {}: {e}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stem = name
            .strip_suffix(".json.gz")
            .or_else(|| name.strip_suffix(".json"));
        // tastypy names its parts by their number in decimal; anything else
        // is not a part (a name like `01.json` would be ambiguous: refused).
        let Some(stem) = stem.filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let n = match stem.parse::<u64>() {
            Ok(n) if n.to_string() == stem => n,
            _ => {
                return fail(format!(
                    "{} is not a tastypy part name (0.json, 1.json, ...)",
                    entry.path().display()
                ));
            }
        };
        if let Some(other) = files.insert(n, entry.path()) {
            return fail(format!(
                "{} and {} hold the same part {n}",
                other.display(),
                entry.path().display()
            ));
        }
    }
    if files.is_empty() {
        return fail(format!(
            "{} holds no tastypy files (0.json, 1.json, ...)",
            dir.display()
        ));
    }
    for (expected, n) in files.keys().enumerate() {
        if *n != expected as u64 {
            return fail(format!(
                "{}: part {expected} is missing (found part {n})",
                dir.display()
            ));
        }
    }
    Ok(files.into_values().collect())
}

fn open_part(path: &Path) -> CliResult<Box<dyn BufRead>> {
    let file = std::fs::File::open(path)
        .map_err(|e| Message(format!("cannot open {}: {e}", path.display())))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::new(reader)))
}

/// A tastypy record as tastypod's tracker keeps it: tastypy writes no
/// `_aborted` before its first abort (it becomes `false`), and its
/// `decrement_tries` can make `_tries` negative (it becomes 0). Returns
/// whether `_tries` was negative.
fn as_tastypod_task(value: &mut Value) -> bool {
    let Value::Object(obj) = value else {
        return false;
    };
    obj.entry(ABORTED).or_insert(Value::Bool(false));
    let negative = obj
        .get(TRIES)
        .and_then(Value::as_i64)
        .is_some_and(|t| t < 0);
    if negative {
        obj.insert(TRIES.into(), 0.into());
    }
    negative
}

/// Why a tastypy value is not a task record, if it is not one, by the
/// tracker's own codec ([`TaskState::from_record`]) once tastypy's
/// quirks are taken in ([`as_tastypod_task`]).
fn not_a_task(key: &str, value: &Value) -> Option<String> {
    let mut value = value.clone();
    as_tastypod_task(&mut value);
    TaskState::from_record(key, &value).err()
}

/// Where a record is: its file and line.
#[derive(Clone)]
struct At<'a> {
    file: &'a Path,
    line: usize,
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Calls `f` on every record of the tastypy `files`, in order: its
/// location, its tastypod key, and its value text (with `NaN` and
/// `Infinity` made `null` when `nan_to_null`, counted in `replaced`).
fn for_each_record<'a>(
    files: &'a [PathBuf],
    nan_to_null: bool,
    replaced: &mut usize,
    mut f: impl FnMut(At<'a>, String, &str) -> CliResult<()>,
) -> CliResult<()> {
    for file in files {
        let mut lines = Lines::new(open_part(file)?);
        let mut n = 0;
        while let Some(line) = lines.next_line() {
            n += 1;
            let at = At { file, line: n };
            let line = line.map_err(|e| Message(format!("{at}: {e}")))?;
            let line =
                std::str::from_utf8(line).map_err(|_| Message(format!("{at}: not UTF-8")))?;
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('\t') else {
                return fail(format!("{at}: expected key<TAB>json-value"));
            };
            let key = tastypy::decode_key(key).map_err(|e| Message(format!("{at}: {e}")))?;
            let (value, n) = tastypy::finite_only(value, nan_to_null).map_err(|word| {
                Message(format!(
                    "{at}: the value holds {word}, which JSON cannot hold \
                     (--nan-to-null stores null instead)"
                ))
            })?;
            *replaced += n;
            f(at.clone(), key, &value).map_err(|e| Message(format!("{at}: {e}")))?;
        }
    }
    Ok(())
}

/// The location of the first record of `files` whose tastypod key is `key`.
fn first_with_key(files: &[PathBuf], key: &str) -> Option<String> {
    let mut found = None;
    let mut ignored = 0;
    let _ = for_each_record(files, true, &mut ignored, |at, k, _| {
        if found.is_none() && k == key {
            found = Some(at.to_string());
        }
        Ok(())
    });
    found
}

/// What an import did.
#[derive(Default)]
struct Report {
    records: u64,
    tracker: bool,
    nan_replaced: usize,
    negative_tries: u64,
}

pub fn import(
    stores: &Stores,
    dir: &Path,
    dest: &Path,
    nan_to_null: bool,
    json_out: bool,
) -> CliResult<ExitCode> {
    // The destination is checked before the input is read (and again, under
    // its lock, when the store is moved in).
    let staged = Staged::store(dest)?;
    let files = numbered_files(dir)?;
    // Two passes over the files: the first checks every line and decides
    // whether the store is a tracker, the second inserts, so no record is
    // held in memory.
    let mut report = Report {
        tracker: true,
        ..Report::default()
    };
    let mut ignored = 0;
    // The first record that looks like a task but is not one, and why.
    let mut not_task: Option<String> = None;
    for_each_record(&files, nan_to_null, &mut ignored, |at, key, text| {
        report.records += 1;
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Message(format!("the value is not valid JSON: {e}")))?;
        if let Some(why) = not_a_task(&key, &value) {
            report.tracker = false;
            if not_task.is_none() && value.get(DONE).is_some() {
                not_task = Some(format!("{at}: {why}"));
            }
        }
        Ok(())
    })?;
    report.tracker &= report.records > 0;
    // Built beside `dest` and moved there whole: a refused or killed import
    // leaves nothing at `dest`, so it can simply be run again.
    let mut pod = opened(stores.options().open(staged.path())?)?;
    let tracker = report.tracker;
    let (mut nan_replaced, mut negative_tries) = (0, 0);
    let loaded = crate::staging::load_all(&mut pod, |pod| {
        for_each_record(&files, nan_to_null, &mut nan_replaced, |_, key, text| {
            if pod.contains_key(&key) {
                let first =
                    first_with_key(&files, &key).unwrap_or_else(|| "an earlier line".into());
                return fail(format!(
                    "this record and the one at {first} both have the key {key:?} \
                     (tastypy keys that are not strings become their JSON text)"
                ));
            }
            pod.insert_json(&key, text)?;
            if tracker && pod.update(&key, as_tastypod_task)? == Some(true) {
                negative_tries += 1;
            }
            Ok(())
        })
    });
    loaded?;
    report.nan_replaced = nan_replaced;
    report.negative_tries = negative_tries;
    let keys = pod.len();
    pod.close()?;
    staged.commit_store()?;
    let Report {
        records, tracker, ..
    } = report;
    if json_out {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "files": files.len(), "records": records, "keys": keys, "tracker": tracker,
                "nan_replaced": report.nan_replaced, "negative_tries_reset": report.negative_tries,
                "not_a_tracker_because": not_task,
            }))?
        );
    } else {
        if let (false, Some(why)) = (tracker, &not_task) {
            outln!("not imported as a tracker: {why}");
        }
        let kind = if tracker { "tracker" } else { "pod" };
        outln!(
            "imported {records} records ({keys} keys) from {} files into {} as a {kind}",
            files.len(),
            dest.display()
        );
        if report.nan_replaced > 0 {
            outln!(
                "replaced {} NaN/Infinity numbers with null",
                report.nan_replaced
            );
        }
        if report.negative_tries > 0 {
            outln!("stored {} negative _tries as 0", report.negative_tries);
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `import-tastypy`: migrate a tastypy POD or Tracker directory.
//!
//! tastypy keeps a store as files `0.json`, `1.json`, ... (or `N.json.gz`),
//! each holding lines `key<TAB>json-value`. Keys are taken in file order,
//! then line order; a key seen again keeps its first place and takes the
//! later value. Tracker records (objects with `_done` and `_tries`) get the
//! `_aborted: false` field tastypod's tracker also needs.

use crate::commands::{CliResult, Message, fail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tastypod::{ABORTED, DONE, Pod, TRIES};

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
        let Some(n) = stem.and_then(|s| s.parse::<u64>().ok()) else {
            continue;
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

fn is_tastypy_task(value: &Value) -> bool {
    value.get(DONE).is_some_and(Value::is_boolean) && value.get(TRIES).is_some_and(Value::is_u64)
}

/// Calls `f` on every record of the tastypy `files`, in order.
fn for_each_record(
    files: &[PathBuf],
    mut f: impl FnMut(String, Value) -> CliResult<()>,
) -> CliResult<()> {
    for file in files {
        let reader = open_part(file)?;
        for (n, line) in reader.split(b'\n').enumerate() {
            let line = line.map_err(|e| Message(format!("cannot read {}: {e}", file.display())))?;
            let at = || format!("{}:{}", file.display(), n + 1);
            let line =
                std::str::from_utf8(&line).map_err(|_| Message(format!("{}: not UTF-8", at())))?;
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('\t') else {
                return fail(format!("{}: expected key<TAB>json-value", at()));
            };
            let value: Value = serde_json::from_str(value)
                .map_err(|e| Message(format!("{}: the value is not valid JSON: {e}", at())))?;
            f(key.to_string(), value).map_err(|e| Message(format!("{}: {e}", at())))?;
        }
    }
    Ok(())
}

pub fn import(dir: &Path, dest: &Path, json_out: bool) -> CliResult<ExitCode> {
    if dest.join(tastypod::LOG_FILE).exists() {
        return fail(format!(
            "{} already holds a store; import into a new path",
            dest.display()
        ));
    }
    let files = numbered_files(dir)?;
    // Two passes over the files: the first decides whether the store is a
    // tracker, the second inserts, so no record is held in memory.
    let mut count = 0u64;
    let mut tracker = true;
    for_each_record(&files, |_, value| {
        count += 1;
        tracker &= is_tastypy_task(&value);
        Ok(())
    })?;
    let tracker = tracker && count > 0;
    let created = !dest.exists();
    let mut pod = crate::commands::opened(Pod::open(dest)?)?;
    let loaded = crate::commands::load_all(&mut pod, |pod| {
        for_each_record(&files, |key, mut value| {
            if tracker && let Value::Object(obj) = &mut value {
                obj.entry(ABORTED).or_insert(Value::Bool(false));
            }
            Ok(pod.insert(&key, value)?)
        })
    });
    if let Err(e) = loaded {
        drop(pod);
        if created {
            // Leave nothing behind, so the import can be run again.
            let _ = std::fs::remove_dir_all(dest);
        }
        return Err(e);
    }
    let keys = pod.len();
    pod.close()?;
    if json_out {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "files": files.len(), "records": count, "keys": keys, "tracker": tracker
            }))?
        );
    } else {
        let kind = if tracker { "tracker" } else { "pod" };
        outln!(
            "imported {count} records ({keys} keys) from {} files into {} as a {kind}",
            files.len(),
            dest.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

//! The subcommands: each opens the store through the library, does one
//! thing, and prints the result.

use crate::output::{bad, bar, good, note_recovery};
use crate::{Command, TrackerAction};
use serde_json::{Value, json};
use std::error::Error as StdError;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use tastypod::{Aborted, ErrorKind, Pod, PodOptions, Recovery, Tracker, TrackerOptions};

pub type CliResult<T> = Result<T, Box<dyn StdError>>;

/// An error message of the CLI's own.
#[derive(Debug)]
pub struct Message(pub String);

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Message {}

pub fn fail<T>(msg: impl Into<String>) -> CliResult<T> {
    Err(Box::new(Message(msg.into())))
}

/// Fails unless `path` holds a store.
fn existing(path: &Path) -> CliResult<()> {
    if !path.exists() {
        return fail(format!(
            "no store at {}: the path does not exist",
            path.display()
        ));
    }
    // A log that is there but not a regular file is the library's to name.
    if !path.join(tastypod::LOG_FILE).exists() {
        return fail(format!(
            "no store at {}: it has no {} file",
            path.display(),
            tastypod::LOG_FILE
        ));
    }
    Ok(())
}

fn read_only(path: &Path) -> CliResult<Pod> {
    existing(path)?;
    let pod = PodOptions::new().read_only(true).open(path)?;
    note_recovery(pod.log_path(), pod.recovery(), false);
    Ok(pod)
}

fn writable(path: &Path) -> CliResult<Pod> {
    existing(path)?;
    opened(Pod::open(path)?)
}

/// Reports on stderr what opening `pod` for writing found and repaired.
pub fn opened(pod: Pod) -> CliResult<Pod> {
    note_recovery(pod.log_path(), pod.recovery(), true);
    Ok(pod)
}

fn print_json(value: &Value) -> CliResult<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Inserts the records `insert` gives, one at a time, and writes them all
/// in one atomic rewrite (the log is replaced by a complete new one, so a
/// crash at any point leaves either none of them or all); on any failure,
/// drops them again, so the store is as it was. Returns what `insert`
/// returned.
pub fn load_all<R>(pod: &mut Pod, insert: impl FnOnce(&mut Pod) -> CliResult<R>) -> CliResult<R> {
    pod.hold();
    let written = insert(pod).and_then(|out| {
        pod.sync_atomic()?;
        Ok(out)
    });
    if written.is_err() {
        // Nothing of the load reached the log; forget it before the drop could sync it.
        pod.revert()?;
    }
    written
}

pub fn run(command: Command) -> CliResult<ExitCode> {
    match command {
        Command::Stat { path, json } => stat(&path, json),
        Command::Get { path, key } => {
            let pod = read_only(&path)?;
            match pod.get_json(&key)? {
                Some(v) => {
                    outln!("{v}");
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("tastypod: key {key:?} is not in {}", path.display());
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Set { path, key, json } => set(&path, &key, &json),
        Command::Rm { path, key } => {
            let mut pod = writable(&path)?;
            let present = pod.remove(&key)?;
            pod.close()?;
            if present {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("tastypod: key {key:?} is not in {}", path.display());
                Ok(ExitCode::from(1))
            }
        }
        Command::Keys { path, json } => {
            let pod = read_only(&path)?;
            if json {
                print_json(&Value::from(pod.keys().collect::<Vec<_>>()))?;
            } else {
                let mut out = BufWriter::new(std::io::stdout().lock());
                for key in pod.keys() {
                    writeln!(out, "{}", crate::output::printable_key(key))?;
                }
                out.flush()?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dump { path, object } => dump(&path, object),
        Command::Load { path, file, json } => load(&path, &file, json),
        Command::Verify { path, json } => verify(&path, json),
        Command::Repair { path, json } => repair(&path, json),
        Command::Compact { path, json } => {
            let mut pod = writable(&path)?;
            let before = pod.stats().log_bytes;
            pod.compact()?;
            let after = pod.stats().log_bytes;
            pod.close()?;
            if json {
                print_json(&json!({"before": before, "after": after}))?;
            } else {
                outln!("{}: {before} bytes -> {after} bytes", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tracker {
            action,
            path,
            max_tries,
            json,
        } => match (action, path) {
            (
                Some(TrackerAction::Todo {
                    path,
                    max_tries,
                    aborted,
                    json,
                }),
                _,
            ) => todo(&path, max_tries, aborted, json),
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
            ) => reset(&path, &keys, aborted, exhausted, max_tries, json),
            (None, Some(path)) => tracker_summary(&path, max_tries, json),
            (None, None) => {
                fail("tracker needs a PATH or a subcommand (see tastypod tracker --help)")
            }
        },
        Command::ImportTastypy {
            dir,
            dest,
            nan_to_null,
            json,
        } => crate::import::import(&dir, &dest, nan_to_null, json),
        Command::ExportTastypy { store, dir, json } => {
            crate::export::export(&read_only(&store)?, &dir, json)
        }
    }
}

/// Opens the tracker at `path`; `max_tries` overrides the stored try limit
/// for this handle (a read-only open stores nothing).
fn open_tracker(path: &Path, max_tries: Option<u32>, read_only: bool) -> CliResult<Tracker> {
    existing(path)?;
    let mut options = TrackerOptions::new().read_only(read_only);
    if let Some(max) = max_tries {
        options = options.max_tries(max);
    }
    let tracker = options.open(path)?;
    note_recovery(tracker.pod().log_path(), tracker.recovery(), !read_only);
    Ok(tracker)
}

fn stat(path: &Path, json: bool) -> CliResult<ExitCode> {
    let pod = read_only(path)?;
    let st = pod.stats();
    let version = pod.format_version();
    let torn = pod.recovery().torn_tail.clone();
    let writers = tastypod::writers(path)?;
    let locked = writers != tastypod::Writers::None;
    let (writer_kind, writer_pids) = match &writers {
        tastypod::Writers::Exclusive => ("exclusive", None),
        tastypod::Writers::MultiProcess { pids } => ("multi-process", pids.clone()),
        _ => ("none", None),
    };
    let tracker = match TrackerOptions::new().read_only(true).open(path) {
        Ok(t) => Some(t),
        Err(e) if matches!(e.kind(), ErrorKind::NotATask { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let tracker_json = tracker.as_ref().map(|t| {
        let mut counts = tracker_counts(t);
        counts.insert("percent_done".into(), json!(t.percent_done(2)));
        counts
    });
    if json {
        print_json(&json!({
            "path": path,
            "format_version": version,
            "keys": st.keys,
            "log_bytes": st.log_bytes,
            "live_bytes": st.live_bytes,
            "dead_bytes": st.dead_bytes,
            "torn_tail": torn.as_ref().map(|t| json!({"line": t.first.line, "offset": t.first.offset, "bytes": t.bytes})),
            "writer_holds_lock": locked,
            "writer": writer_kind,
            "writer_pids": writer_pids,
            "tracker": tracker_json,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("store:          {}", path.display());
    outln!("format version: {version}");
    outln!("keys:           {}", st.keys);
    outln!(
        "log bytes:      {} ({} live, {} dead)",
        st.log_bytes,
        st.live_bytes,
        st.dead_bytes
    );
    match &torn {
        Some(t) => outln!(
            "torn tail:      {} ({} bytes from line {})",
            bad("yes"),
            t.bytes,
            t.first.line
        ),
        None => outln!("torn tail:      {}", good("no")),
    }
    let writer = match &writers {
        tastypod::Writers::Exclusive => "an exclusive writer holds the lock".to_string(),
        tastypod::Writers::MultiProcess { pids: Some(pids) } => {
            let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
            format!(
                "{} handles of the multi-process mode (pids {})",
                pids.len(),
                pids.join(", ")
            )
        }
        tastypod::Writers::MultiProcess { pids: None } => {
            "handles of the multi-process mode".to_string()
        }
        _ => "none".to_string(),
    };
    outln!("writer:         {writer}");
    if let Some(t) = &tracker {
        outln!(
            "tracker:        {} total, {} done, {} tried, {} aborted, {} todo ({} done)",
            t.len(),
            t.num_done(),
            t.num_tried(),
            t.num_aborted(),
            t.todo_keys(Aborted::Skip).count(),
            t.percent_done(2)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn dump(path: &Path, object: bool) -> CliResult<ExitCode> {
    let pod = read_only(path)?;
    let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    if object {
        write!(out, "{{")?;
        for (n, entry) in pod.iter_json().enumerate() {
            let (key, value) = entry?;
            let sep = if n == 0 { "" } else { "," };
            write!(out, "{sep}\n  {}: {value}", serde_json::to_string(key)?)?;
        }
        writeln!(out, "\n}}")?;
    } else {
        for entry in pod.iter_json() {
            let (key, value) = entry?;
            writeln!(
                out,
                "{{\"key\":{},\"value\":{value}}}",
                serde_json::to_string(key)?
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `set`: creates the store if `path` does not exist (or is an empty
/// directory); a value that is refused leaves nothing behind.
fn set(path: &Path, key: &str, json: &str) -> CliResult<ExitCode> {
    let empty_dir =
        path.is_dir() && std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none());
    let create = !path.exists() || empty_dir;
    let mut pod = if create {
        opened(Pod::open(path)?)?
    } else {
        writable(path)?
    };
    if let Err(e) = pod.insert_json(key, json) {
        drop(pod);
        // Leave what was there: no directory, or an empty one.
        if empty_dir {
            for file in [tastypod::LOG_FILE, tastypod::LOCK_FILE] {
                let _ = std::fs::remove_file(path.join(file));
            }
        } else if create {
            let _ = std::fs::remove_dir_all(path);
        }
        return Err(e.into());
    }
    pod.close()?;
    Ok(ExitCode::SUCCESS)
}

/// One line of a dump (the value kept as its text, checked on insert).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DumpLine {
    key: String,
    value: Box<serde_json::value::RawValue>,
}

fn load(path: &Path, file: &Path, json: bool) -> CliResult<ExitCode> {
    let name = file.display().to_string();
    let reader: Box<dyn BufRead> = if name == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f =
            std::fs::File::open(file).map_err(|e| Message(format!("cannot open {name}: {e}")))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut pod = opened(Pod::open(path)?)?;
    // Each record is parsed and inserted as it is read, and nothing reaches
    // the log until the last one is in: bad input changes nothing.
    let count = load_all(&mut pod, |pod| {
        let mut count = 0u64;
        let mut lines = crate::bounded::Lines::new(reader);
        let mut n = 0;
        while let Some(line) = lines.next_line() {
            n += 1;
            let line = line.map_err(|e| Message(format!("{name}:{n}: {e}")))?;
            if line.trim_ascii().is_empty() {
                continue;
            }
            let rec: DumpLine = serde_json::from_slice(line).map_err(|e| {
                Message(format!(
                    "{name}:{n}: not a dump line {{\"key\":..,\"value\":..}}: {e}"
                ))
            })?;
            pod.insert_json(&rec.key, rec.value.get())
                .map_err(|e| Message(format!("{name}:{n}: {}", tastypod::error_chain(&e))))?;
            count += 1;
        }
        Ok(count)
    })?;
    let keys = pod.len();
    pod.close()?;
    if json {
        print_json(&json!({"loaded": count, "keys": keys}))?;
    } else {
        outln!(
            "loaded {count} records into {} ({keys} keys)",
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(path: &Path, json: bool) -> CliResult<ExitCode> {
    if !path.exists() {
        return fail(format!(
            "no store at {}: the path does not exist",
            path.display()
        ));
    }
    let report = tastypod::verify(path)?;
    let log = report.log.display().to_string();
    if json {
        print_json(&json!({
            "log": log,
            "bytes": report.bytes,
            "lines": report.lines,
            "records": report.records,
            "format_version": report.version,
            "clean": report.is_clean(),
            "problem_count": report.problem_count,
            "torn_tail": report.torn_tail,
            "problems": report.problems.iter().map(|p| json!({"line": p.line, "offset": p.offset, "reason": p.reason})).collect::<Vec<_>>(),
        }))?;
    } else {
        for p in &report.problems {
            outln!("{log}:{}: {}", p.line, p.reason);
        }
        if report.problem_count as usize > report.problems.len() {
            outln!(
                "... and {} more problems",
                report.problem_count as usize - report.problems.len()
            );
        }
        if report.is_clean() {
            outln!(
                "{log}: {} ({} records, {} bytes)",
                good("ok"),
                report.records,
                report.bytes
            );
        } else {
            let kind = if report.torn_tail {
                " (the last ones are a torn tail)"
            } else {
                ""
            };
            eprintln!("{log}: {} problems{kind}", report.problem_count);
        }
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn repair(path: &Path, json: bool) -> CliResult<ExitCode> {
    existing(path)?;
    let report = tastypod::verify(path)?;
    if report.is_clean() {
        if json {
            print_json(&json!({"repaired": false, "problem_count": 0}))?;
        } else {
            outln!("{}: nothing to repair", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let pod: Pod = PodOptions::new().recovery(Recovery::Salvage).open(path)?;
    note_recovery(pod.log_path(), pod.recovery(), true);
    let rec = pod.recovery().clone();
    let keys = pod.len();
    pod.close()?;
    let copy = rec.damaged_copy.as_ref().map(|p| p.display().to_string());
    let dropped = rec.skipped_count + rec.torn_tail.as_ref().map_or(0, |t| t.lines);
    if json {
        print_json(&json!({
            "repaired": true,
            "keys": keys,
            "dropped_lines": dropped,
            "damaged_copy": copy,
        }))?;
    } else {
        outln!(
            "{}: kept {keys} keys, dropped {dropped} damaged lines",
            path.display()
        );
        if let Some(copy) = copy {
            outln!("the damaged log is kept at {copy}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How many tasks are out of tries: not done, not aborted, not claimed.
fn exhausted(t: &Tracker) -> usize {
    // Every task not to do is done, aborted or exhausted.
    let done_or_aborted = t.keys().filter(|k| t.done(k) || t.aborted(k)).count();
    (t.len() - t.num_todo()).saturating_sub(done_or_aborted)
}

/// A tracker's counts and try limit, as `stat` and `tracker` print them.
fn tracker_counts(t: &Tracker) -> serde_json::Map<String, Value> {
    [
        ("total", json!(t.len())),
        ("done", json!(t.num_done())),
        ("tried", json!(t.num_tried())),
        ("aborted", json!(t.num_aborted())),
        ("todo", json!(t.num_todo())),
        ("claimed", json!(t.num_claimed())),
        ("max_tries", json!(t.max_tries())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn tracker_summary(path: &Path, max_tries: Option<u32>, json: bool) -> CliResult<ExitCode> {
    let t = open_tracker(path, max_tries, true)?;
    let exhausted = exhausted(&t);
    if json {
        let mut counts = tracker_counts(&t);
        counts.insert("exhausted".into(), json!(exhausted));
        counts.insert("fraction_done".into(), json!(t.fraction_done()));
        print_json(&Value::Object(counts))?;
    } else {
        outln!("{} {}", bar(t.fraction_done(), 40), t.percent_done(2));
        outln!(
            "done {} / {}, tried {}, aborted {}, todo {} ({} claimed), exhausted {}",
            t.num_done(),
            t.len(),
            t.num_tried(),
            t.num_aborted(),
            t.num_todo(),
            t.num_claimed(),
            exhausted
        );
        match t.max_tries() {
            0 => outln!("no try limit"),
            n => outln!("try limit {n}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn todo(path: &Path, max_tries: Option<u32>, aborted: bool, json: bool) -> CliResult<ExitCode> {
    let t = open_tracker(path, max_tries, true)?;
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
            writeln!(out, "{key}")?;
        }
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

fn reset(
    path: &Path,
    keys: &[String],
    aborted: bool,
    exhausted: bool,
    max_tries: Option<u32>,
    json: bool,
) -> CliResult<ExitCode> {
    if keys.is_empty() && !aborted && !exhausted {
        return fail("tracker reset needs KEYs, --aborted or --exhausted");
    }
    // Opened with the stored settings: an override is not stored.
    let mut t = open_tracker(path, None, false)?;
    let exhausted = match (exhausted, max_tries, t.max_tries()) {
        (false, ..) => None,
        (true, Some(0), _) => {
            return fail("--max-tries for --exhausted must be at least 1 (0 means no limit)");
        }
        (true, None, 0) => {
            return fail(
                "--exhausted needs a try limit: the tracker stores none, so give --max-tries N (at least 1)",
            );
        }
        (true, given, stored) => Some(given.unwrap_or(stored)),
    };
    let mut chosen: Vec<String> = Vec::new();
    for key in keys {
        if !t.contains_key(key) {
            return fail(format!("key {key:?} is not in {}", path.display()));
        }
        chosen.push(key.clone());
    }
    if aborted {
        chosen.extend(t.aborted_keys().map(String::from));
    }
    if let Some(max) = exhausted {
        let worn: Vec<String> = t
            .keys()
            .filter(|k| !t.done(k) && t.tries(k) >= max && t.lease(k).is_none())
            .map(String::from)
            .collect();
        chosen.extend(worn);
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

//! The subcommands on plain stores: each opens the store through
//! [`Stores`], does one thing, and prints the result. The tracker's
//! subcommands are in [`crate::tracker_cmd`].

use crate::args::Command;
use crate::errors::{CliResult, Message, fail};
use crate::open::{Place, Stores, opened, place};
use crate::output::{bad, good, json_path, note_recovery, print_json, printable_key};
use crate::staging::{Staged, load_all};
use serde_json::json;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use tastypod::{ErrorKind, Pod, Recovery, Tracker};

pub fn run(command: Command, stores: &Stores) -> CliResult<ExitCode> {
    match command {
        Command::Stat { path, json } => stat(stores, &path, json),
        Command::Get { path, key } => {
            let pod = stores.read_only(&path)?;
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
        Command::Set { path, key, json } => set(stores, &path, &key, &json),
        Command::Rm { path, key } => {
            let mut pod = stores.writable(&path)?;
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
            let pod = stores.read_only(&path)?;
            if json {
                // Streamed, as `print_json` would print the array (pretty),
                // so the keys are never copied into one value.
                let mut out = BufWriter::new(std::io::stdout().lock());
                let mut first = true;
                for key in pod.keys() {
                    out.write_all(if first { b"[\n  " } else { b",\n  " })?;
                    serde_json::to_writer(&mut out, key)?;
                    first = false;
                }
                out.write_all(if first { b"[]\n" } else { b"\n]\n" })?;
                out.flush()?;
            } else {
                let mut out = BufWriter::new(std::io::stdout().lock());
                for key in pod.keys() {
                    writeln!(out, "{}", printable_key(key))?;
                }
                out.flush()?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dump { path, object } => dump(stores, &path, object),
        Command::Load { path, file, json } => load(stores, &path, &file, json),
        Command::Verify { path, json } => verify(stores, &path, json),
        Command::Repair { path, json } => repair(stores, &path, json),
        Command::Compact { path, json } => {
            let mut pod = stores.writable(&path)?;
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
        } => crate::tracker_cmd::run(stores, action, path, max_tries, json),
        Command::ImportTastypy {
            dir,
            dest,
            nan_to_null,
            json,
        } => crate::import::import(stores, &dir, &dest, nan_to_null, json),
        #[cfg(feature = "postgres")]
        Command::Copy { src, dest, json } => crate::copy::copy(stores, &src, &dest, json),
        #[cfg(not(feature = "postgres"))]
        Command::Copy { .. } => fail("copy needs tastypod built with the feature postgres"),
        Command::ExportTastypy { store, dir, json } => {
            crate::export::export(&stores.read_only(&store)?, &dir, json)
        }
    }
}

fn stat(stores: &Stores, path: &Path, json: bool) -> CliResult<ExitCode> {
    // One open: the store as a tracker if it is one, else as a pod.
    let opened = match Tracker::from_opened(stores.read_only(path)?) {
        Ok(t) => Ok(t),
        Err((e, pod)) if matches!(e.kind(), ErrorKind::NotATask { .. }) => Err(pod),
        Err((e, _)) => return Err(e.into()),
    };
    let pod: &Pod = match &opened {
        Ok(t) => t.pod(),
        Err(pod) => pod,
    };
    let tracker = opened.as_ref().ok();
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
    let tracker_json = tracker.map(|t| {
        let mut counts = crate::tracker_cmd::counts(t);
        counts.insert("percent_done".into(), json!(t.percent_done(2)));
        counts
    });
    if json {
        print_json(&json!({
            "path": json_path(path),
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
        outln!("tracker:        {}", crate::tracker_cmd::counts_line(t));
    }
    Ok(ExitCode::SUCCESS)
}

fn dump(stores: &Stores, path: &Path, object: bool) -> CliResult<ExitCode> {
    let pod = stores.read_only(path)?;
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

/// `set`: the value is checked before anything is opened or created, so a
/// refused value changes nothing; then the store is opened, or created if
/// the place is free (see [`crate::open`]).
fn set(stores: &Stores, path: &Path, key: &str, json: &str) -> CliResult<ExitCode> {
    tastypod::check_json(key, json)?;
    let mut pod = stores.open_or_create(path)?;
    pod.insert_json(key, json)?;
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

/// The UTF-8 byte order mark some editors put before the first line.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// Reads one dump line, saying what it is when it is not one.
fn dump_line(line: &[u8]) -> Result<DumpLine, String> {
    let shape = "a dump line is one JSON object {\"key\":..,\"value\":..} per line, as `tastypod dump` writes";
    match line.trim_ascii_start().first() {
        Some(b'{') => {}
        Some(b'[') => {
            return Err(format!(
                "this line is a JSON array; {shape} (`jq -c '.[]'` turns an array into lines)"
            ));
        }
        _ => return Err(format!("this line is not a JSON object; {shape}")),
    }
    serde_json::from_slice(line).map_err(|e| format!("not a dump line ({shape}): {e}"))
}

fn load(stores: &Stores, path: &Path, file: &Path, json: bool) -> CliResult<ExitCode> {
    let name = file.display().to_string();
    let reader: Box<dyn BufRead> = if name == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f =
            std::fs::File::open(file).map_err(|e| Message(format!("cannot open {name}: {e}")))?;
        Box::new(std::io::BufReader::new(f))
    };
    // A new store is built beside `path` and moved there whole: bad input
    // leaves nothing behind. An existing one gets all records or none.
    let staged = match place(path)? {
        Place::Free => Some(Staged::store(path)?),
        Place::Store => None,
    };
    let mut pod = match &staged {
        Some(staged) => opened(stores.options().open(staged.path())?)?,
        None => stores.writable(path)?,
    };
    // Each record is parsed and inserted as it is read, and nothing reaches
    // the log until the last one is in.
    let count = load_all(&mut pod, |pod| {
        let mut count = 0u64;
        let mut lines = crate::bounded::Lines::new(reader);
        let mut n = 0;
        while let Some(line) = lines.next_line() {
            n += 1;
            let mut line = line.map_err(|e| Message(format!("{name}:{n}: {e}")))?;
            if n == 1 {
                line = line.strip_prefix(BOM).unwrap_or(line);
            }
            if line.trim_ascii().is_empty() {
                continue;
            }
            let rec = dump_line(line).map_err(|e| Message(format!("{name}:{n}: {e}")))?;
            pod.insert_json(&rec.key, rec.value.get())
                .map_err(|e| Message(format!("{name}:{n}: {}", tastypod::error_chain(&e))))?;
            count += 1;
        }
        Ok(count)
    })?;
    let keys = pod.len();
    pod.close()?;
    if let Some(staged) = staged {
        staged.commit_store()?;
    }
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

fn verify(stores: &Stores, path: &Path, json: bool) -> CliResult<ExitCode> {
    if !path.exists() {
        return fail(format!(
            "no store at {}: the path does not exist",
            path.display()
        ));
    }
    let report = tastypod::verify_with(path, stores.max_record_size())?;
    let log = report.log.display().to_string();
    if json {
        print_json(&json!({
            "log": json_path(&report.log),
            "bytes": report.bytes,
            "lines": report.lines,
            "records": report.records,
            "format_version": report.version,
            "clean": report.is_clean(),
            "problem_count": report.problem_count,
            "torn_tail": report.torn_tail,
            "being_written": report.being_written,
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
            if let Some(bytes) = report.being_written {
                outln!("{log}: a writer was appending a record ({bytes} bytes of it so far)");
            }
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

fn repair(stores: &Stores, path: &Path, json: bool) -> CliResult<ExitCode> {
    crate::open::existing(path)?;
    let report = tastypod::verify_with(path, stores.max_record_size())?;
    if report.is_clean() {
        if json {
            print_json(&json!({"repaired": false, "problem_count": 0}))?;
        } else {
            outln!("{}: nothing to repair", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let pod: Pod = stores.options().recovery(Recovery::Salvage).open(path)?;
    note_recovery(pod.log_path(), pod.recovery(), true);
    let rec = pod.recovery().clone();
    let keys = pod.len();
    pod.close()?;
    let copy = rec.damaged_copy.as_ref().map(|p| json_path(p));
    let dropped = rec.skipped_count + rec.torn_tail.as_ref().map_or(0, |t| t.lines);
    if json {
        print_json(&json!({
            "repaired": true,
            "keys": keys,
            "dropped_lines": dropped,
            "damaged_copy": copy,
        }))?;
    } else {
        let lines = if dropped == 1 { "line" } else { "lines" };
        outln!(
            "{}: kept {keys} keys, dropped {dropped} damaged {lines}",
            path.display()
        );
        if let Some(copy) = &rec.damaged_copy {
            outln!("the damaged log is kept at {}", copy.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

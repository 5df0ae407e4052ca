//! `export-tastypy`: write a store as a directory tastypy reads.
//!
//! Records go in order, [`PART_SIZE`] to a file `0.json`, `1.json`, ...,
//! each line `serialize_key(key) TAB json.dumps(value) LF` as tastypy
//! writes it ([`crate::tastypy`]). Every key is written as a string. A
//! tastypod tracker's records keep their fields, so tastypy reads it as a
//! Tracker. The parts are written and fsynced in a hidden sibling directory,
//! which is then renamed onto `DIR` ([`crate::staging`]).

use crate::errors::{CliResult, Message};
use crate::staging::Staged;
use crate::tastypy::{PART_SIZE, dumps, encode_key};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use tastypod::Pod;

fn io_error(what: &str, path: &Path) -> impl Fn(std::io::Error) -> Message {
    let (what, path) = (what.to_string(), path.display().to_string());
    move |e| Message(format!("cannot {what} {path}: {e}"))
}

pub fn export(pod: &Pod, dir: &Path, json_out: bool) -> CliResult<ExitCode> {
    // Built beside `dir` and moved there whole: tastypy never sees a
    // directory with only some of the parts.
    let staged = Staged::new(dir, "export")?;
    let parts = write_parts(pod, staged.path())?;
    staged.commit()?;
    if json_out {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"records": pod.len(), "files": parts}))?
        );
    } else {
        outln!(
            "exported {} records into {} files in {}",
            pod.len(),
            parts,
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the parts; returns how many.
fn write_parts(pod: &Pod, dir: &Path) -> CliResult<usize> {
    let mut parts = 0;
    let mut entries = pod.iter().peekable();
    while entries.peek().is_some() {
        let path = dir.join(format!("{parts}.json"));
        let file = std::fs::File::create_new(&path).map_err(io_error("create", &path))?;
        let mut out = std::io::BufWriter::new(file);
        for entry in entries.by_ref().take(PART_SIZE) {
            let (key, value): (&str, Value) = entry?;
            writeln!(out, "{}\t{}", encode_key(key), dumps(&value))
                .map_err(io_error("write", &path))?;
        }
        let file = out
            .into_inner()
            .map_err(|e| io_error("write", &path)(e.into_error()))?;
        file.sync_all().map_err(io_error("fsync", &path))?;
        parts += 1;
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("fsync", dir))?;
    Ok(parts)
}

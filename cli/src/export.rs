//! `export-tastypy`: write a store as a directory tastypy reads.
//!
//! Records go in order, [`PART_SIZE`] to a file `0.json`, `1.json`, ...,
//! each line `serialize_key(key) TAB json.dumps(value) LF` as tastypy
//! writes it ([`crate::tastypy`]). Every key is written as a string. A
//! tastypod tracker's records keep their fields, so tastypy reads it as a
//! Tracker. Each file is written to a temporary name, fsynced and renamed,
//! and the directory is fsynced last.

use crate::commands::{CliResult, Message, fail};
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
    let created = !dir.exists();
    if !created
        && std::fs::read_dir(dir)
            .map_err(io_error("read", dir))?
            .next()
            .is_some()
    {
        return fail(format!(
            "{} is not empty; export into a new directory",
            dir.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(io_error("create", dir))?;
    let written = write_parts(pod, dir);
    let parts = match written {
        Ok(parts) => parts,
        Err(e) => {
            if created {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(e);
        }
    };
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
        let tmp = dir.join(format!(".{parts}.json.tmp"));
        let file = std::fs::File::create(&tmp).map_err(io_error("create", &tmp))?;
        let mut out = std::io::BufWriter::new(file);
        for entry in entries.by_ref().take(PART_SIZE) {
            let (key, value): (&str, Value) = entry?;
            writeln!(out, "{}\t{}", encode_key(key), dumps(&value))
                .map_err(io_error("write", &tmp))?;
        }
        let file = out
            .into_inner()
            .map_err(|e| io_error("write", &tmp)(e.into_error()))?;
        file.sync_all().map_err(io_error("fsync", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_error("rename", &tmp))?;
        parts += 1;
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("fsync", dir))?;
    Ok(parts)
}

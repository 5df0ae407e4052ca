//! Data shared by the benchmarks: the keys and values the issue specifies,
//! and the raw baselines every tastypod figure is compared with.
#![allow(
    dead_code,
    reason = "included by several test binaries, each using some helpers: an expectation would go unfulfilled in those that use them all"
)]

use serde_json::{Value, json};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

/// The number in the environment variable `name`, or `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The numbers, separated by spaces, in the environment variable `name`,
/// or `default` if it holds none.
pub fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

pub fn key(i: usize) -> String {
    format!("task-{i:08}")
}

pub fn value(i: usize) -> Value {
    json!({"url": format!("https://example.com/page/{i}"), "_tries": 0, "_done": false, "_aborted": false})
}

pub fn done_value(i: usize) -> Value {
    json!({"url": format!("https://example.com/page/{i}"), "_tries": 1, "_done": true, "_aborted": false})
}

#[derive(serde::Serialize)]
struct RawRecord<'a> {
    k: &'a str,
    v: &'a Value,
}

/// Raw baseline writer: plain JSON lines through a 1 MiB buffer, `sync_data`
/// on every `sync`.
pub struct RawLog {
    out: BufWriter<File>,
}

impl RawLog {
    pub fn create(path: &Path) -> Self {
        RawLog {
            out: BufWriter::with_capacity(1 << 20, File::create(path).unwrap()),
        }
    }

    pub fn append(&mut self, k: &str, v: &Value) {
        serde_json::to_writer(&mut self.out, &RawRecord { k, v }).unwrap();
        self.out.write_all(b"\n").unwrap();
    }

    pub fn sync(&mut self) {
        self.out.flush().unwrap();
        self.out.get_ref().sync_data().unwrap();
    }
}

/// Raw baseline reader: read the file, parse every line into key and raw JSON text.
pub fn raw_replay(path: &Path) -> Vec<(String, Box<serde_json::value::RawValue>)> {
    #[derive(serde::Deserialize)]
    struct Line {
        k: String,
        v: Box<serde_json::value::RawValue>,
    }
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let rec: Line = serde_json::from_slice(line).unwrap();
        out.push((rec.k, rec.v));
    }
    out
}

/// Writes a raw baseline file of `n` keys.
pub fn write_raw(path: &Path, n: usize) {
    let mut log = RawLog::create(path);
    for i in 0..n {
        log.append(&key(i), &value(i));
    }
    log.sync();
}

/// Writes a tastypod store of `n` keys (compacted, one record per key).
pub fn write_store(path: &Path, n: usize) {
    let mut pod: tastypod::Pod = tastypod::PodOptions::new().open(path).unwrap();
    pod.hold();
    for i in 0..n {
        pod.insert(&key(i), value(i)).unwrap();
    }
    pod.compact().unwrap();
    pod.close().unwrap();
}

/// Peak resident memory of this process, from /proc (Linux), in bytes.
pub fn peak_rss() -> Option<u64> {
    proc_status("VmHWM:")
}

/// Resident anonymous memory of this process now (heap, not file pages),
/// from /proc (Linux), in bytes.
pub fn rss_anon() -> Option<u64> {
    proc_status("RssAnon:")
}

/// A `kB` figure of /proc/self/status, in bytes.
fn proc_status(field: &str) -> Option<u64> {
    let f = File::open("/proc/self/status").ok()?;
    for line in BufReader::new(f).lines() {
        let line = line.ok()?;
        if let Some(rest) = line.strip_prefix(field) {
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            return Some(kb * 1024);
        }
    }
    None
}

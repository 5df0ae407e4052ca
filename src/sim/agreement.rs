//! The differential check behind the `replay` fuzz target: every reader of
//! a log applies the same line rules, so on any input a whole replay (in
//! big jobs and in tiny ones), `verify`, and a catch-up from every valid
//! line boundary find the same valid prefix and the same torn tail, or the
//! same corruption.

use crate::error::{Error, ErrorKind};
use crate::index::ValueRef;
use crate::inspect::{self, Verdict};
use crate::replay::{self, Replayed, reader::CHUNK};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What a reader made of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    Open {
        valid_len: u64,
        /// The torn tail's first line, offset and length.
        torn: Option<(u64, u64, u64)>,
    },
    Corrupt {
        line: u64,
    },
    NotAStore,
    Unsupported,
}

fn of_error(e: &Error) -> Found {
    match e.kind() {
        ErrorKind::Corrupt { line, .. } => Found::Corrupt { line: *line },
        ErrorKind::NotAStore { .. } => Found::NotAStore,
        ErrorKind::UnsupportedVersion { .. } => Found::Unsupported,
        other => unreachable!("reading bytes failed unexpectedly: {other}"),
    }
}

fn of_replay(r: &crate::Result<Replayed<Value>>) -> Found {
    match r {
        Ok(r) => Found::Open {
            valid_len: r.valid_len,
            torn: r
                .torn
                .as_ref()
                .map(|t| (t.first.line, t.first.offset, t.bytes)),
        },
        Err(e) => of_error(e),
    }
}

/// Keys and value texts, in order.
fn contents(r: &Replayed<Value>) -> Vec<(String, Vec<u8>)> {
    r.index
        .slots()
        .map(|i| {
            let text = match r.index.value(i) {
                ValueRef::Text(t) => t.to_vec(),
                ValueRef::Live(_) => Vec::new(),
            };
            (r.index.key(i).to_string(), text)
        })
        .collect()
}

fn path() -> PathBuf {
    PathBuf::from(super::workload::STORE).join(crate::LOG_FILE)
}

/// Panics unless every reader agrees on `data` (see the module docs).
pub fn check(data: &[u8]) {
    for max_record in [crate::DEFAULT_MAX_RECORD_SIZE, 64] {
        check_with(data, max_record);
    }
}

fn replay_of(
    data: &[u8],
    max_record: usize,
    chunk: usize,
    salvage: bool,
) -> crate::Result<Replayed<Value>> {
    replay::replay_in_chunks(
        || Ok((data, data.len() as u64)),
        &path(),
        salvage,
        max_record,
        chunk,
    )
}

fn check_with(data: &[u8], max_record: usize) {
    let whole = replay_of(data, max_record, CHUNK, false);
    let found = of_replay(&whole);
    let tiny = replay_of(data, max_record, 7, false);
    assert_eq!(of_replay(&tiny), found, "replay in tiny jobs");
    if let (Ok(a), Ok(b)) = (&whole, &tiny) {
        assert_eq!(contents(a), contents(b), "replay in tiny jobs: contents");
        assert_eq!(a.needs_newline, b.needs_newline);
    }
    let salvaged = replay_of(data, max_record, CHUNK, true).map(|r| contents(&r));
    let salvaged_tiny = replay_of(data, max_record, 5, true).map(|r| contents(&r));
    assert_eq!(
        salvaged.as_ref().ok(),
        salvaged_tiny.as_ref().ok(),
        "salvage in tiny jobs"
    );
    let verified = inspect::verify_read(data, data.len() as u64, path(), max_record, 3);
    let report = match verified {
        Ok(r) => r,
        Err(e) => unreachable!("verify failed on bytes: {e}"),
    };
    let by_verify = match &report.verdict {
        Verdict::Clean => Found::Open {
            valid_len: report.valid_len,
            torn: None,
        },
        Verdict::TornTail(t) => Found::Open {
            valid_len: report.valid_len,
            torn: Some((t.first.line, t.first.offset, t.bytes)),
        },
        Verdict::Corrupt(p) => Found::Corrupt { line: p.line },
        Verdict::NotAStore(_) => Found::NotAStore,
        Verdict::UnsupportedVersion(_) => Found::Unsupported,
    };
    assert_eq!(by_verify, found, "verify");
    check_catch_up(data, max_record, &whole, report.valid_len);
}

/// A catch-up from each of (up to) 12 valid line boundaries inside the
/// valid prefix finds what the whole replay found.
fn check_catch_up(
    data: &[u8],
    max_record: usize,
    whole: &crate::Result<Replayed<Value>>,
    valid_end: u64,
) {
    let ends: Vec<usize> = memchr::memchr_iter(b'\n', data)
        .map(|p| p + 1)
        .filter(|&end| end as u64 <= valid_end)
        .collect();
    let step = ends.len().div_ceil(12).max(1);
    for &start in ends.iter().step_by(step) {
        let Ok(mut prefix) = replay_of(&data[..start], max_record, CHUNK, false) else {
            continue;
        };
        if !prefix.has_header || prefix.torn.is_some() || prefix.valid_len != start as u64 {
            continue;
        }
        let tail = replay::apply_tail_in_chunks(
            &mut prefix.index,
            &data[start..],
            start as u64,
            prefix.valid_lines,
            replay::TailOf {
                path: Path::new("/sim/store.pod/pod.log"),
                version: prefix.version,
            },
            max_record,
            4,
        );
        let by_tail = match &tail {
            Ok(t) => Found::Open {
                valid_len: t.valid_len,
                torn: t
                    .torn
                    .as_ref()
                    .map(|t| (t.first.line, t.first.offset, t.bytes)),
            },
            Err(e) => of_error(e),
        };
        assert_eq!(by_tail, of_replay(whole), "catch-up from byte {start}");
        if let (Ok(t), Ok(w)) = (&tail, whole) {
            assert_eq!(
                contents(&prefix),
                contents(w),
                "catch-up from byte {start}: contents"
            );
            assert_eq!(t.needs_newline, w.needs_newline);
            // A reader that follows the log from the content end (a
            // read-only handle) finds the same content end.
            if start as u64 <= w.content_len {
                assert_eq!(
                    (t.content_len, t.content_lines),
                    (w.content_len, w.content_lines),
                    "catch-up from byte {start}: content end"
                );
            }
            assert_eq!(
                prefix.index.disk_bytes(),
                w.index.disk_bytes(),
                "catch-up from byte {start}: live bytes"
            );
        }
    }
}

//! Read-only inspection of a store on disk: a full check of every line
//! (`verify`) and whether a writer holds the lock.

use crate::error::{Error, Result};
use crate::pod::{LOCK_FILE, LOG_FILE};
use crate::record::{self, FORMAT_VERSION, LineError, Record};
use std::fs::File;
use std::path::{Path, PathBuf};

/// At most this many problems are listed (all are counted).
const MAX_LISTED: usize = 1000;

/// One problem found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the start of the line.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The log file checked.
    pub log: PathBuf,
    /// Bytes read.
    pub bytes: u64,
    /// Lines read.
    pub lines: u64,
    /// Valid put and removal records.
    pub records: u64,
    /// The format version in the header, if the header is valid.
    pub version: Option<u64>,
    /// The problems, in order (the first 1000).
    pub problems: Vec<Problem>,
    /// How many problems there are.
    pub problem_count: u64,
    /// Whether the last problems are a torn tail (no valid record after them).
    pub torn_tail: bool,
    /// Whether a problem is damage no crash can cause (a record glued to the next).
    pub hard_damage: bool,
}

impl VerifyReport {
    /// Whether the log has no problem at all.
    pub fn is_clean(&self) -> bool {
        self.problem_count == 0
    }
}

/// The log file of `path`: the path itself if it is a file, else `path/pod.log`.
pub fn log_path(path: &Path) -> PathBuf {
    if path.is_file() {
        path.to_path_buf()
    } else {
        path.join(LOG_FILE)
    }
}

/// Checks every line of a store's log (given the store directory or the log
/// file): the checksum, the record grammar and the JSON of every value.
/// Reads the file once, front to back, checking chunks on two threads;
/// changes nothing.
///
/// # Errors
///
/// [`ErrorKind::Io`](crate::ErrorKind::Io) if the file cannot be read.
/// Problems in the log are not errors: they are in the report.
pub fn verify(path: impl AsRef<Path>) -> Result<VerifyReport> {
    let log = log_path(path.as_ref());
    let file = File::open(&log).map_err(|e| Error::io("open", &log, e))?;
    let parts = check_parts(file, &log)?;
    let mut report = VerifyReport {
        log,
        bytes: 0,
        lines: 0,
        records: 0,
        version: None,
        problems: Vec::new(),
        problem_count: 0,
        torn_tail: false,
        hard_damage: false,
    };
    let (mut last_problem, mut last_valid) = (0u64, 0u64);
    for part in parts {
        let base_line = report.lines;
        for p in part.problems {
            if report.problems.len() < MAX_LISTED {
                report.problems.push(Problem {
                    line: base_line + p.line,
                    offset: report.bytes + p.offset,
                    reason: p.reason,
                });
            }
        }
        if let Some(l) = part.last_problem {
            last_problem = base_line + l;
        }
        if let Some(l) = part.last_valid {
            last_valid = base_line + l;
        }
        report.problem_count += part.problem_count;
        report.records += part.records;
        report.version = report.version.or(part.version);
        report.hard_damage |= part.hard_damage;
        report.lines += part.lines;
        report.bytes += part.bytes;
    }
    // An empty log is an empty store (a writable open writes its header).
    report.torn_tail = report.problem_count > 0 && last_valid < last_problem && !report.hard_damage;
    Ok(report)
}

/// What one chunk of the log holds; lines and offsets count from its start.
#[derive(Debug, Default)]
struct Part {
    bytes: u64,
    lines: u64,
    records: u64,
    version: Option<u64>,
    problems: Vec<Problem>,
    problem_count: u64,
    last_problem: Option<u64>,
    last_valid: Option<u64>,
    hard_damage: bool,
}

/// Bytes read per chunk.
const CHUNK: usize = 4 << 20;

/// Reads `file` in chunks cut at line ends and checks them on two threads;
/// returns the parts in file order.
fn check_parts(mut file: File, log: &Path) -> Result<Vec<Part>> {
    use std::io::Read;
    use std::sync::mpsc;
    let (done_tx, done_rx) = mpsc::channel::<(usize, Part)>();
    std::thread::scope(|scope| {
        let mut workers = Vec::new();
        for _ in 0..2 {
            let (tx, rx) = mpsc::sync_channel::<(usize, Vec<u8>)>(2);
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                for (n, chunk) in rx {
                    // The receiver lives until every part is in.
                    let _ = done_tx.send((n, check_chunk(&chunk, n == 0)));
                }
            });
            workers.push(tx);
        }
        drop(done_tx);
        let mut carry: Vec<u8> = Vec::new();
        // The last newline in `carry`, if one was seen but not cut at.
        let mut last_newline: Option<usize> = None;
        let mut buf = vec![0u8; CHUNK];
        let mut sent = 0usize;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", log, e)),
            };
            let scan_from = carry.len();
            carry.extend_from_slice(buf.get(..n).unwrap_or_default());
            // Only the new bytes need scanning: each byte is looked at once.
            let new = carry.get(scan_from..).unwrap_or_default();
            if let Some(p) = memchr::memrchr(b'\n', new) {
                last_newline = Some(scan_from + p);
            }
            if carry.len() < CHUNK {
                continue;
            }
            let Some(cut) = last_newline.take() else {
                continue; // one long line: keep reading
            };
            let rest = carry.split_off(cut + 1);
            let chunk = std::mem::replace(&mut carry, rest);
            if let Some(w) = workers.get(sent % 2) {
                let _ = w.send((sent, chunk));
            }
            sent += 1;
        }
        if !carry.is_empty() {
            if let Some(w) = workers.get(sent % 2) {
                let _ = w.send((sent, carry));
            }
            sent += 1;
        }
        drop(workers);
        let mut parts: Vec<Option<Part>> = (0..sent).map(|_| None).collect();
        for (n, part) in done_rx {
            if let Some(slot) = parts.get_mut(n) {
                *slot = Some(part);
            }
        }
        Ok(parts.into_iter().flatten().collect())
    })
}

/// Checks every line of one chunk (`first`: the chunk that starts the file).
fn check_chunk(chunk: &[u8], first: bool) -> Part {
    let mut part = Part {
        bytes: chunk.len() as u64,
        ..Part::default()
    };
    let mut start = 0usize;
    while start < chunk.len() {
        let rest = chunk.get(start..).unwrap_or_default();
        let (body, terminated, len) = match memchr::memchr(b'\n', rest) {
            Some(nl) => (rest.get(..nl).unwrap_or_default(), true, nl + 1),
            None => (rest, false, rest.len()),
        };
        part.lines += 1;
        let line_no = part.lines;
        match check_line(body, terminated, first && line_no == 1, &mut part) {
            Some(reason) => {
                part.problem_count += 1;
                part.last_problem = Some(line_no);
                if part.problems.len() < MAX_LISTED {
                    part.problems.push(Problem {
                        line: line_no,
                        offset: start as u64,
                        reason,
                    });
                }
            }
            None if !body.is_empty() => part.last_valid = Some(line_no),
            None => {}
        }
        start += len;
    }
    part
}

/// The problem with one line, if any.
fn check_line(body: &[u8], terminated: bool, first_line: bool, part: &mut Part) -> Option<String> {
    if !terminated {
        return Some(LineError::Unterminated.to_string());
    }
    if body.is_empty() {
        return first_line.then(|| "first line is not a header".into());
    }
    match record::decode(body) {
        Err(_) if record::embeds_record(body) => {
            part.hard_damage = true;
            Some(LineError::LostNewline.to_string())
        }
        Err(e) => Some(e.to_string()),
        Ok(Record::Header { version }) if first_line => {
            part.version = Some(version);
            (version != FORMAT_VERSION).then(|| {
                format!("format version {version}; this build reads version {FORMAT_VERSION}")
            })
        }
        Ok(Record::Header { .. }) => Some("header record after line 1".into()),
        Ok(_) if first_line => Some("first line is not a header".into()),
        Ok(Record::Put { value, .. }) => {
            part.records += 1;
            serde_json::from_slice::<serde::de::IgnoredAny>(value)
                .err()
                .map(|e| format!("value is not valid JSON: {e}"))
        }
        Ok(Record::Del { .. }) => {
            part.records += 1;
            None
        }
    }
}

/// Whether a writer holds the store's lock right now.
///
/// # Errors
///
/// [`ErrorKind::Io`](crate::ErrorKind::Io) if the lock file exists but
/// cannot be opened or tested.
pub fn is_locked(path: impl AsRef<Path>) -> Result<bool> {
    let lock = path.as_ref().join(LOCK_FILE);
    let file = match File::open(&lock) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("open", &lock, e)),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("test the lock on", &lock, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log of `n` records, larger than several chunks.
    fn big_log(n: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        record::encode_header(&mut buf);
        let pad = "p".repeat(100);
        for i in 0..n {
            record::encode_put(
                &mut buf,
                &format!("k{i}"),
                format!("\"{pad}{i}\"").as_bytes(),
            );
        }
        buf
    }

    #[test]
    fn problems_in_later_chunks_get_file_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pod.log");
        let mut bytes = big_log(120_000);
        assert!(bytes.len() > 3 * CHUNK);
        let clean_len = bytes.len();
        std::fs::write(&path, &bytes).unwrap();
        let report = verify(&path).unwrap();
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!(report.records, 120_000);
        assert_eq!(report.lines, 120_001);
        assert_eq!(report.bytes, clean_len as u64);
        // Damage a byte deep in the file, and cut the last line short.
        let at = bytes.len() * 3 / 4;
        bytes[at] ^= 0x01;
        bytes.truncate(bytes.len() - 5);
        std::fs::write(&path, &bytes).unwrap();
        let report = verify(&path).unwrap();
        let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64;
        let start = bytes[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1) as u64;
        assert_eq!(report.problem_count, 2);
        assert_eq!(report.problems[0].line, line);
        assert_eq!(report.problems[0].offset, start);
        assert_eq!(report.problems[1].line, 120_001);
        assert!(report.torn_tail);
    }
}

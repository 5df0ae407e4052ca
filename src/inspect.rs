//! Read-only inspection of a store on disk: a full check of every line
//! (`verify`) and whether a writer holds the lock.

use crate::error::{Error, Result};
use crate::pod::{LOCK_FILE, LOG_FILE};
use crate::record::{self, FORMAT_VERSION, LineError, Record};
use std::fs::File;
use std::io::{BufRead, BufReader};
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
/// Reads the file once, front to back; changes nothing.
///
/// # Errors
///
/// [`ErrorKind::Io`](crate::ErrorKind::Io) if the file cannot be read.
/// Problems in the log are not errors: they are in the report.
pub fn verify(path: impl AsRef<Path>) -> Result<VerifyReport> {
    let log = log_path(path.as_ref());
    let file = File::open(&log).map_err(|e| Error::io("open", &log, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut report = VerifyReport {
        log: log.clone(),
        bytes: 0,
        lines: 0,
        records: 0,
        version: None,
        problems: Vec::new(),
        problem_count: 0,
        torn_tail: false,
        hard_damage: false,
    };
    let mut line = Vec::new();
    // Whether a valid record came after the latest problem.
    let mut valid_since_problem = true;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io("read", &log, e))?;
        if n == 0 {
            break;
        }
        let offset = report.bytes;
        report.bytes += n as u64;
        report.lines += 1;
        let terminated = line.last() == Some(&b'\n');
        let body = if terminated {
            &line[..n - 1]
        } else {
            &line[..]
        };
        let problem = check_line(body, terminated, report.lines, &mut report);
        match problem {
            Some(reason) => {
                valid_since_problem = false;
                report.problem_count += 1;
                if report.problems.len() < MAX_LISTED {
                    report.problems.push(Problem {
                        line: report.lines,
                        offset,
                        reason,
                    });
                }
            }
            None if !body.is_empty() => valid_since_problem = true,
            None => {}
        }
    }
    if report.lines == 0 {
        report.problem_count += 1;
        report.problems.push(Problem {
            line: 1,
            offset: 0,
            reason: "empty log (no header)".into(),
        });
    }
    report.torn_tail = report.problem_count > 0 && !valid_since_problem && !report.hard_damage;
    Ok(report)
}

/// The problem with one line, if any.
fn check_line(
    body: &[u8],
    terminated: bool,
    line_no: u64,
    report: &mut VerifyReport,
) -> Option<String> {
    if !terminated {
        return Some(LineError::Unterminated.to_string());
    }
    if body.is_empty() {
        return (line_no == 1).then(|| "first line is not a header".into());
    }
    match record::decode(body) {
        Err(_) if record::embeds_record(body) => {
            report.hard_damage = true;
            Some(LineError::LostNewline.to_string())
        }
        Err(e) => Some(e.to_string()),
        Ok(Record::Header { version }) if line_no == 1 => {
            report.version = Some(version);
            (version != FORMAT_VERSION).then(|| {
                format!("format version {version}; this build reads version {FORMAT_VERSION}")
            })
        }
        Ok(Record::Header { .. }) => Some("header record after line 1".into()),
        Ok(_) if line_no == 1 => Some("first line is not a header".into()),
        Ok(Record::Put { value, .. }) => {
            report.records += 1;
            serde_json::from_slice::<serde::de::IgnoredAny>(value)
                .err()
                .map(|e| format!("value is not valid JSON: {e}"))
        }
        Ok(Record::Del { .. }) => {
            report.records += 1;
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

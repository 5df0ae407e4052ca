//! Read-only inspection of a store on disk: a full check of every line
//! (`verify`) and whether a writer holds the lock.

use crate::error::{Error, Result};
use crate::fsio;
use crate::options::DEFAULT_MAX_RECORD_SIZE;
use crate::pod::{LOCK_FILE, LOG_FILE};
use crate::record::Record;
use crate::replay::TornTail;
use crate::replay::classify::{self, Damage, Fold, Folded, Item, Seen, Span};
use crate::replay::pipeline;
use crate::replay::reader::{CHUNK, Job, LineReader};
use crate::replay::rules::{BadLine, Fatal, Findings, Rules};
use std::io::Read;
use std::path::{Path, PathBuf};

/// What opening the log as it is would do, by the same rules as an open.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Every line is valid.
    Clean,
    /// The log ends in a torn write that an open drops (and a writable
    /// open cuts); the rest is valid.
    TornTail(TornTail),
    /// A damaged line an open refuses (valid lines follow it, or it was
    /// written whole).
    Corrupt(BadLine),
    /// Not a tastypod log.
    NotAStore(String),
    /// A log of another format version.
    UnsupportedVersion(u64),
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// The problems, in order (the first 100).
    pub problems: Vec<BadLine>,
    /// How many problems there are.
    pub problem_count: u64,
    /// Whether the problems are a torn tail (no valid record after them).
    pub torn_tail: bool,
    /// Whether a problem is damage no crash can cause.
    pub hard_damage: bool,
    /// What an open of the log would do.
    pub verdict: Verdict,
    /// The end of the valid prefix: what a writable open keeps.
    pub valid_len: u64,
    /// The bytes of an incomplete last line that a writer holding the lock
    /// was writing while the log was read: not damage, and not counted as
    /// a problem (a crash leaves such a line; a live writer is still
    /// writing it).
    pub being_written: Option<u64>,
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
/// file) by exactly the rules an open applies: the checksum, the record
/// grammar, and that every value is one valid JSON value (the rule
/// `tastypod set` and `load` apply, so a clean log survives
/// `dump | load`). Reads the file once, front to back, with memory bounded
/// by the longest line (at most the default maximum record size) plus a
/// fixed buffer, checking lines on two threads; changes nothing.
///
/// # Errors
///
/// [`ErrorKind::Io`](crate::ErrorKind::Io) if the file cannot be read,
/// [`ErrorKind::NotAStore`](crate::ErrorKind::NotAStore) if it is not a
/// regular file. Problems in the log are not errors: they are in the report.
pub fn verify(path: impl AsRef<Path>) -> Result<VerifyReport> {
    verify_with(path.as_ref(), DEFAULT_MAX_RECORD_SIZE)
}

/// [`verify`] with another maximum record size (see
/// [`PodOptions::max_record_size`](crate::PodOptions::max_record_size)).
///
/// # Errors
///
/// As [`verify`].
pub fn verify_with(path: &Path, max_record_size: usize) -> Result<VerifyReport> {
    let log = log_path(path);
    let (file, size) = fsio::open_regular(&log)?;
    let mut report = verify_read(file, size, log, max_record_size, CHUNK)?;
    // A torn tail of one incomplete line, while a writer holds the lock, is
    // the record it is appending right now.
    let writing = match &report.verdict {
        Verdict::TornTail(t) if t.lines == 1 && t.partial_record => Some(t.bytes),
        _ => None,
    };
    if let Some(bytes) = writing {
        let dir = report.log.parent().unwrap_or(Path::new("."));
        if writers(dir).is_ok_and(|w| w != Writers::None) {
            report.problems.pop();
            report.problem_count = report.problem_count.saturating_sub(1);
            report.torn_tail = false;
            report.verdict = Verdict::Clean;
            report.being_written = Some(bytes);
        }
    }
    Ok(report)
}

/// [`verify`] of the log read from `reader` (`size` bytes, named `log`),
/// reading jobs of `chunk` bytes.
pub(crate) fn verify_read(
    reader: impl Read + Send,
    size: u64,
    log: PathBuf,
    max_record_size: usize,
    chunk: usize,
) -> Result<VerifyReport> {
    let Checked {
        findings,
        total_len,
        lines,
        version,
    } = check_lines(reader, size, &log, max_record_size, chunk)?;
    let verdict = match (&findings.fatal, &findings.outcome.torn) {
        (Some(Fatal::Corrupt(bad)), _) => Verdict::Corrupt(bad.clone()),
        (Some(Fatal::NotAStore(why)), _) => Verdict::NotAStore(why.clone()),
        (Some(Fatal::Unsupported(v)), _) => Verdict::UnsupportedVersion(*v),
        (None, Some(torn)) => Verdict::TornTail(torn.clone()),
        (None, None) => Verdict::Clean,
    };
    Ok(VerifyReport {
        log,
        bytes: total_len,
        lines,
        records: findings.outcome.records,
        version,
        problems: findings.problems.clone(),
        problem_count: findings.problem_count,
        torn_tail: matches!(verdict, Verdict::TornTail(_)),
        hard_damage: matches!(verdict, Verdict::Corrupt(_)),
        valid_len: findings.outcome.valid_len,
        verdict,
        being_written: None,
    })
}

/// What a worker found on one line.
#[derive(Debug)]
enum Found {
    Blank,
    Header(u64),
    Batch(u64),
    Record,
    Damaged(Box<Damage>),
    MoreDamaged(u64),
}

/// What [`check_lines`] found.
struct Checked {
    findings: Findings,
    total_len: u64,
    lines: u64,
    version: Option<u64>,
}

/// Feeds the workers' results to the rules in file order.
struct InOrder {
    rules: Rules,
    lines: u64,
    version: Option<u64>,
}

impl InOrder {
    fn take(&mut self, results: Vec<(Span, Found)>) {
        for (span, found) in results {
            self.lines = self.lines.max(span.no);
            let seen = match &found {
                Found::Blank => Seen::Blank,
                Found::Header(v) => {
                    self.version = self.version.or(Some(*v));
                    Seen::Header(*v)
                }
                Found::Record => Seen::Record,
                Found::Batch(n) => Seen::Batch(*n),
                Found::Damaged(d) => Seen::Damaged(d),
                Found::MoreDamaged(n) => Seen::MoreDamaged(*n),
            };
            // Keep-going rules never stop.
            let _ = self.rules.take(span, seen);
        }
    }
}

/// Reads the log in jobs of lines, classifies the lines of each job on
/// one of two worker threads, and runs the rules over them in order.
fn check_lines(
    file: impl Read + Send,
    size: u64,
    log: &Path,
    max_record: usize,
    chunk: usize,
) -> Result<Checked> {
    let mut order = InOrder {
        rules: Rules::new(false).keep_going(),
        lines: 0,
        version: None,
    };
    let reader = LineReader::new(file, log, max_record, 0, 0).chunk(chunk);
    let total_len = pipeline::run(
        reader,
        size,
        |job| check_job(job, max_record),
        |results| {
            order.take(results);
            Ok(())
        },
    )?;
    Ok(Checked {
        findings: order.rules.finish_all(total_len),
        total_len,
        lines: order.lines,
        version: order.version,
    })
}

/// Classifies every line of a job.
fn check_job(job: &Job, max_record: usize) -> Vec<(Span, Found)> {
    let mut out = Vec::new();
    let mut fold = Fold::default();
    let mut push = |at: Span, folded: Folded<'_>| {
        let found = match folded {
            Folded::One(Item::Blank) => Found::Blank,
            Folded::One(Item::Record(Record::Header { version, .. })) => Found::Header(version),
            Folded::One(Item::Record(Record::Batch { count })) => Found::Batch(count),
            Folded::One(Item::Record(_)) => Found::Record,
            Folded::One(Item::Damaged(damage)) => Found::Damaged(Box::new(damage)),
            Folded::More(count) => Found::MoreDamaged(count),
        };
        out.push((at, found));
    };
    for line in job.lines() {
        classify::items(&line, max_record, false, |at, item| {
            fold.item(at, item, &mut push);
        });
    }
    fold.finish(&mut push);
    out
}

/// Who writes a store right now, as its lock file tells.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Writers {
    /// No handle holds the store for writing.
    None,
    /// One exclusive writer (the default mode).
    Exclusive,
    /// Handles of the multi-process mode, with their process ids when the
    /// system lists them (`/proc/locks`; one id per handle).
    MultiProcess {
        /// The process id of each handle, if known.
        pids: Option<Vec<u32>>,
    },
}

/// Who holds the store's writer lock right now: nobody, one exclusive
/// writer, or handles of the multi-process mode.
///
/// # Errors
///
/// [`ErrorKind::Io`](crate::ErrorKind::Io) if the lock file exists but
/// cannot be opened or tested.
pub fn writers(path: impl AsRef<Path>) -> Result<Writers> {
    let lock = path.as_ref().join(LOCK_FILE);
    let probed = fsio::probe_lock(&lock).map_err(|e| Error::io("test the lock on", &lock, e))?;
    Ok(match probed {
        fsio::LockHolders::None => Writers::None,
        fsio::LockHolders::Exclusive => Writers::Exclusive,
        fsio::LockHolders::Shared(pids) => Writers::MultiProcess { pids },
    })
}

/// Whether a writer holds the store's lock right now, in either mode.
///
/// # Errors
///
/// As [`writers`].
pub fn is_locked(path: impl AsRef<Path>) -> Result<bool> {
    Ok(writers(path)? != Writers::None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record;

    /// A log of `n` records, larger than several chunks.
    fn big_log(n: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        record::encode_header(&mut buf, None);
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
        // Damage with valid lines after it: an open refuses it.
        assert!(!report.torn_tail);
        assert_eq!(report.verdict, Verdict::Corrupt(report.problems[0].clone()));
    }
}

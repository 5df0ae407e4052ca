//! The line rules, in one place: what each line of a log is
//! ([`classify`](super::classify::classify), in [`super::classify`]), and
//! what a sequence of lines means ([`Rules`], here): where the
//! valid prefix ends, and whether what follows it is a torn write (dropped)
//! or corruption (refused). Open, the multi-process catch-up, `verify` and
//! salvage all use these two, so they cannot disagree.
//!
//! 1. A blank line is skipped.
//! 2. A line is valid if its checksum matches, its body follows the grammar
//!    and its value is one valid JSON value. The last line may lack its
//!    newline and still be valid (the newline is added by a writable open).
//! 3. The first non-blank line must be a header of a known version.
//! 4. A damaged line followed by a valid one is corruption.
//! 5. Damaged lines at the end are a torn write, unless one of them was
//!    written whole: its checksum holds (bad grammar or JSON), or it holds
//!    a valid record followed by more bytes (a damaged newline). Those are
//!    corruption too: a crash leaves a prefix of what was written, possibly
//!    followed by NUL bytes, never a checksummed line with more after it.
//! 6. One exception: a valid record followed only by NUL bytes to the end
//!    (a crash after which the file system zero-filled the rest) is kept;
//!    the NUL bytes are the torn write.
//! 7. A log whose only non-blank content is a prefix of the header line
//!    (a crash while the store was being created), or that holds only
//!    blank lines, is an empty store.

use super::classify::{Damage, Item, MAX_LISTED, Seen, Span};
use crate::error::{Error, ErrorKind};
use crate::record::{BATCH_VERSION, FORMAT_VERSION, LineError};
use std::path::{Path, PathBuf};

/// One line that is not a valid record: what an open reports of a torn
/// tail or a salvage, and what [`verify`](crate::verify) lists.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BadLine {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the start of the line (or of the damaged part of it).
    pub offset: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// A torn final write that replay dropped: the damaged lines at the end of
/// the log with no valid record after them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTail {
    /// The first dropped line.
    pub first: BadLine,
    /// How many lines were dropped.
    pub lines: u64,
    /// How many bytes were dropped (from `first.offset` to the end of the file).
    pub bytes: u64,
    /// Whether the dropped bytes are at most one partial record followed by
    /// NUL bytes, or by its newline and blank lines (a write over the
    /// newline padding), which is what a crash leaves. Anything more is kept in a
    /// copy beside the log by the writable open that cuts it.
    pub partial_record: bool,
    /// Where the cut bytes were kept, if they were more than one partial
    /// record (set by the writable open that cut them).
    pub copy: Option<PathBuf>,
}

/// Why a log cannot be opened as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fatal {
    /// Damage that is not a torn write (rules 4 and 5).
    Corrupt(BadLine),
    /// No header and no valid record: not a log.
    NotAStore(String),
    /// A header of another version.
    Unsupported(u64),
}

impl Fatal {
    pub(crate) fn into_error(self, path: &Path) -> Error {
        let path = path.to_path_buf();
        match self {
            Fatal::Corrupt(bad) => ErrorKind::Corrupt {
                path,
                line: bad.line,
                offset: bad.offset,
                reason: bad.reason,
            },
            Fatal::NotAStore(reason) => ErrorKind::NotAStore { path, reason },
            Fatal::Unsupported(found) => ErrorKind::UnsupportedVersion {
                path,
                found,
                supported: FORMAT_VERSION,
            },
        }
        .into()
    }
}

/// Damaged lines not yet followed by a valid one.
#[derive(Debug)]
struct Pending {
    first: BadLine,
    lines: u64,
    /// The first line written whole.
    hard: Option<BadLine>,
    /// The only line is a partial record.
    partial: bool,
    /// That line ends with a newline: it is a partial record only if
    /// blank lines follow it (a record cut short while it was written over
    /// the newline padding is followed by the padding's newlines; a clean
    /// log ends with its last record's newline, so a damaged last line
    /// with nothing after it is not a crash remnant).
    terminated: bool,
    /// Blank lines came after it.
    blank_after: bool,
    /// The first line is a prefix of the header (and no header or record came before).
    header_prefix: bool,
}

impl Pending {
    /// Whether the damage is one partial record, what a crash leaves (rule 9).
    fn partial_record(&self) -> bool {
        self.partial && (!self.terminated || self.blank_after)
    }
}

/// What a whole log (or tail) is, by the rules.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The end of the last valid line (blank lines included).
    pub valid_len: u64,
    /// The number of lines up to `valid_len`.
    pub valid_lines: u64,
    /// The end of the last valid line that is not blank: where the one
    /// writer of the exclusive mode writes next, over the blank lines
    /// after it (its newline padding), and where a reader that follows
    /// the log reads on from.
    pub content_len: u64,
    /// The number of lines up to `content_len`.
    pub content_lines: u64,
    /// Whether a header was read (false for an empty store, or in salvage
    /// for a log whose header is damaged or missing).
    pub has_header: bool,
    /// The last valid record has no newline.
    pub needs_newline: bool,
    /// Damaged lines at the end, dropped.
    pub torn: Option<TornTail>,
    /// Damaged lines skipped in salvage mode (the first [`MAX_LISTED`]).
    pub skipped: Vec<BadLine>,
    /// How many damaged lines were skipped in salvage mode.
    pub skipped_count: u64,
    /// Valid records read.
    pub records: u64,
    /// With [`Rules::optimistic`]: the records of the batch cut short at
    /// the end were applied as they came; the state is that of the log's
    /// first this many bytes, to be read again.
    pub reread_to: Option<u64>,
}

/// What [`Rules::finish_all`] found.
#[derive(Debug)]
pub(crate) struct Findings {
    pub outcome: Outcome,
    /// The first finding that makes an open fail.
    pub fatal: Option<Fatal>,
    /// Every problem (the first [`MAX_LISTED`]), and how many.
    pub problems: Vec<BadLine>,
    pub problem_count: u64,
}

/// What to do with a line the rules took in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Nothing to apply (a batch line, a blank or damaged line, a late header).
    Skip,
    /// The log's header.
    Header,
    /// A record to apply now.
    Apply,
    /// A record of a batch not complete yet: hold it.
    Hold,
    /// The record that completes its batch: apply every record held, then
    /// this one.
    Release,
}

/// A batch line read, and how many of its records followed so far.
#[derive(Debug, Clone, Copy)]
struct OpenBatch {
    start: Span,
    count: u64,
    seen: u64,
}

/// The rules over a sequence of lines (rules 3, 4, 5 and 7, and the batch
/// rule). Feed every line in order, then [`finish`](Rules::finish).
#[derive(Debug)]
pub(crate) struct Rules {
    salvage: bool,
    /// The header's format version (0 before the header).
    version: u64,
    /// The batch being read, if its records have not all come.
    batch: Option<OpenBatch>,
    /// A batch's records are applied as they come (not held), and a batch
    /// cut short at the end asks for the log to be read again up to it
    /// ([`Outcome::reread_to`]): only the last batch can be cut short, and
    /// only by a crash, so a whole log is read once, without holding a
    /// large sync's records in memory.
    optimistic: bool,
    /// Keep going after the first fatal finding (verify), remembering it.
    keep_going: bool,
    fatal: Option<Fatal>,
    header: bool,
    /// Whether a valid record was read.
    records: bool,
    pending: Option<Pending>,
    /// The first non-blank line.
    first_line: Option<Span>,
    /// The first non-blank line is damaged and a prefix of the header line.
    torn_header: bool,
    out: Outcome,
    /// With `keep_going`: every problem found, in order (the first
    /// [`MAX_LISTED`]), and how many.
    problems: Vec<BadLine>,
    problem_count: u64,
}

impl Rules {
    /// Rules for a whole log.
    pub(crate) fn new(salvage: bool) -> Self {
        Rules {
            salvage,
            version: 0,
            batch: None,
            optimistic: false,
            keep_going: false,
            fatal: None,
            header: false,
            records: false,
            pending: None,
            first_line: None,
            torn_header: false,
            out: Outcome::default(),
            problems: Vec::new(),
            problem_count: 0,
        }
    }

    /// Applies a batch's records as they come; see [`Outcome::reread_to`].
    pub(crate) fn optimistic(mut self) -> Self {
        self.optimistic = true;
        self
    }

    /// Rules for the part of a log of format `version` after its first
    /// `lines` lines, which end at byte `offset` at a valid line's end (never
    /// inside a batch).
    pub(crate) fn after(offset: u64, lines: u64, version: u64) -> Self {
        let mut rules = Rules::new(false);
        rules.version = version;
        rules.header = true;
        rules.out.has_header = true;
        rules.out.valid_len = offset;
        rules.out.valid_lines = lines;
        rules.out.content_len = offset;
        rules.out.content_lines = lines;
        rules
    }

    /// Rules that read on after the first fatal finding (see [`fatal`](Self::fatal)).
    pub(crate) fn keep_going(mut self) -> Self {
        self.keep_going = true;
        self
    }

    /// Notes a problem (with `keep_going`).
    fn problem(&mut self, bad: &BadLine) {
        if self.keep_going {
            if self.problems.len() < MAX_LISTED {
                self.problems.push(bad.clone());
            }
            self.problem_count += 1;
        }
    }

    fn stop(&mut self, fatal: Fatal) -> Result<(), Fatal> {
        if !self.keep_going {
            return Err(fatal);
        }
        self.fatal.get_or_insert(fatal);
        Ok(())
    }

    /// Takes in one item; returns what to do with it.
    pub(crate) fn feed(&mut self, at: Span, item: &Item<'_>) -> Result<Take, Fatal> {
        self.take(at, item.seen())
    }

    /// [`feed`](Self::feed) for what was seen on a line, without its bytes.
    pub(crate) fn take(&mut self, at: Span, seen: Seen<'_>) -> Result<Take, Fatal> {
        match seen {
            Seen::Blank => {
                self.blank(at);
                Ok(Take::Skip)
            }
            Seen::Damaged(damage) => self.damaged(at, damage).map(|()| Take::Skip),
            Seen::MoreDamaged(count) => {
                self.more_damaged(count);
                Ok(Take::Skip)
            }
            Seen::Header(version) => self.valid(at, Some(version)).map(|_| Take::Skip),
            Seen::Batch(count) => self.batch(at, count).map(|()| Take::Skip),
            Seen::Record => self.valid(at, None),
        }
    }

    /// A blank line.
    pub(crate) fn blank(&mut self, at: Span) {
        if let Some(p) = self.pending.as_mut() {
            p.blank_after = true;
        }
        if self.pending.is_none() && self.batch.is_none() {
            self.out.valid_len = at.end;
            self.out.valid_lines = at.no;
        }
    }

    /// A batch line announcing that the next `count` records are one sync:
    /// they are held until the last one comes (rule 8). A batch line
    /// before the header, in a log older than version 3, or inside a batch
    /// was written whole and is damage. Salvage keeps every valid record
    /// and reads past batch lines.
    pub(crate) fn batch(&mut self, at: Span, count: u64) -> Result<(), Fatal> {
        if self.salvage {
            return Ok(());
        }
        let misplaced = if !self.header {
            Some("a batch line before the header")
        } else if self.version < BATCH_VERSION {
            Some("a batch line in a log of version 1 or 2")
        } else if self.batch.is_some() {
            Some("a batch line inside a batch")
        } else {
            None
        };
        if let Some(why) = misplaced {
            let damage = Damage {
                reason: LineError::Malformed(why),
                hard: true,
                partial: false,
                header_prefix: false,
                embedded: Vec::new(),
            };
            return self.damaged(at, &damage);
        }
        self.clear_pending()?;
        self.batch = Some(OpenBatch {
            start: at,
            count,
            seen: 0,
        });
        Ok(())
    }

    /// A valid line: a header (`Some(version)`) or a record. Returns what
    /// to do with it: a record is to be applied (or held, inside a batch),
    /// a header is the log's header (a later one is damage).
    pub(crate) fn valid(&mut self, at: Span, header: Option<u64>) -> Result<Take, Fatal> {
        if let Some(version) = header {
            if self.header || self.records || self.batch.is_some() {
                let late = Damage {
                    reason: LineError::LateHeader,
                    hard: true,
                    partial: false,
                    header_prefix: false,
                    embedded: Vec::new(),
                };
                self.damaged(at, &late)?;
                return Ok(Take::Skip);
            }
            if !(1..=FORMAT_VERSION).contains(&version) {
                self.problem(&BadLine {
                    line: at.no,
                    offset: at.offset,
                    reason: format!(
                        "format version {version}; this build reads versions 1 to {FORMAT_VERSION}"
                    ),
                });
                self.stop(Fatal::Unsupported(version))?;
            }
            self.first_line.get_or_insert(at);
        }
        self.clear_pending()?;
        let mut take = Take::Apply;
        if let Some(version) = header {
            self.header = true;
            self.version = version;
            self.out.has_header = true;
            take = Take::Header;
        } else if let Some(batch) = self.batch.as_mut() {
            batch.seen += 1;
            if batch.seen < batch.count {
                return Ok(if self.optimistic {
                    Take::Apply
                } else {
                    Take::Hold
                });
            }
            let count = batch.count;
            self.batch = None;
            self.records = true;
            self.out.records += count;
            take = Take::Release;
        } else {
            // A first line that was damaged is reported already (a damaged
            // header, say): a record after it is not a second problem.
            if !self.header && !self.records && self.first_line.is_none() {
                self.first_line = Some(at);
                let bad = BadLine {
                    line: at.no,
                    offset: at.offset,
                    reason: "the log does not start with a header".into(),
                };
                self.problem(&bad);
                if self.salvage {
                    self.skip(bad);
                } else {
                    self.stop(Fatal::Corrupt(bad))?;
                }
            }
            self.records = true;
            self.out.records += 1;
        }
        self.out.valid_len = at.end;
        self.out.valid_lines = at.no;
        self.out.content_len = at.end;
        self.out.content_lines = at.no;
        self.out.needs_newline = !at.terminated;
        Ok(take)
    }

    /// A damaged line. A long run of them (a damaged tail of short lines)
    /// costs no allocation each: a line's [`BadLine`] is made only where it
    /// is kept.
    pub(crate) fn damaged(&mut self, at: Span, damage: &Damage) -> Result<(), Fatal> {
        let bad = || BadLine {
            line: at.no,
            offset: at.offset,
            reason: damage.reason.to_string(),
        };
        if self.keep_going {
            self.problem_count += 1;
            if self.problems.len() < MAX_LISTED {
                self.problems.push(bad());
            }
        }
        if self.first_line.is_none() {
            self.first_line = Some(at);
            self.torn_header = damage.header_prefix;
        }
        if self.salvage {
            self.out.skipped_count += 1;
            if self.out.skipped.len() < MAX_LISTED {
                self.out.skipped.push(bad());
            }
            return Ok(());
        }
        match self.pending.as_mut() {
            Some(p) => {
                p.lines += 1;
                p.partial = false;
                if damage.hard && p.hard.is_none() {
                    p.hard = Some(bad());
                }
            }
            None => {
                self.pending = Some(Pending {
                    hard: damage.hard.then(bad),
                    first: bad(),
                    lines: 1,
                    partial: damage.partial,
                    terminated: at.terminated,
                    blank_after: false,
                    header_prefix: self.torn_header && !self.header && !self.records,
                });
            }
        }
        Ok(())
    }

    /// `count` more damaged lines of a run that [`Fold`] folded: soft
    /// damage, holding no record, after a damaged line of the same run.
    pub(crate) fn more_damaged(&mut self, count: u64) {
        if self.keep_going {
            self.problem_count += count;
        }
        if self.salvage {
            self.out.skipped_count += count;
        } else if let Some(p) = self.pending.as_mut() {
            p.lines += count;
            p.partial = false;
        }
    }

    fn skip(&mut self, bad: BadLine) {
        if self.out.skipped.len() < MAX_LISTED {
            self.out.skipped.push(bad);
        }
        self.out.skipped_count += 1;
    }

    /// A valid line follows the pending damaged lines: they are corruption.
    fn clear_pending(&mut self) -> Result<(), Fatal> {
        match self.pending.take() {
            Some(p) => self.stop(Fatal::Corrupt(p.first)),
            None => Ok(()),
        }
    }

    /// The verdict on the whole input, which ended at byte `total_len`.
    pub(crate) fn finish(mut self, total_len: u64) -> Result<Outcome, Fatal> {
        self.conclude(total_len)?;
        match self.fatal {
            Some(fatal) => Err(fatal),
            None => Ok(self.out),
        }
    }

    /// With `keep_going`: everything found.
    pub(crate) fn finish_all(mut self, total_len: u64) -> Findings {
        let concluded = self.conclude(total_len);
        Findings {
            fatal: self.fatal.or(concluded.err()),
            outcome: self.out,
            problems: self.problems,
            problem_count: self.problem_count,
        }
    }

    fn conclude(&mut self, total_len: u64) -> Result<(), Fatal> {
        if let Some(batch) = self.batch.take() {
            // A sync a crash cut short: the batch line, its records so far
            // and any damage after them are a torn tail (a writable open
            // keeps them aside: their checksums hold), unless damage after
            // them was written whole.
            let pending = self.pending.take();
            if let Some(hard) = pending.as_ref().and_then(|p| p.hard.clone()) {
                self.stop(Fatal::Corrupt(hard))?;
            } else {
                let first = BadLine {
                    line: batch.start.no,
                    offset: batch.start.offset,
                    reason: format!(
                        "a sync of {} records cut short after {} of them (a crash while it was written)",
                        batch.count, batch.seen
                    ),
                };
                self.problem(&first);
                if self.optimistic && batch.seen > 0 {
                    self.out.reread_to = Some(batch.start.offset);
                }
                self.out.torn = Some(TornTail {
                    lines: batch.seen + 1 + pending.map_or(0, |p| p.lines),
                    bytes: total_len - batch.start.offset,
                    partial_record: false,
                    first,
                    copy: None,
                });
            }
        }
        if let Some(p) = self.pending.take() {
            if !self.header && !self.records && !p.header_prefix {
                self.stop(Fatal::NotAStore(format!(
                    "line {}: {}",
                    p.first.line, p.first.reason
                )))?;
            } else if let Some(hard) = p.hard {
                self.stop(Fatal::Corrupt(hard))?;
            } else {
                self.out.torn = Some(TornTail {
                    bytes: total_len - p.first.offset,
                    lines: p.lines,
                    partial_record: p.partial_record(),
                    first: p.first,
                    copy: None,
                });
            }
        }
        if self.salvage && !self.header && !self.records && self.out.skipped_count > 0 {
            let torn_header = self.out.skipped_count == 1 && self.torn_header;
            if !torn_header {
                let first = self.out.skipped.first();
                let reason =
                    first.map_or(String::new(), |b| format!("line {}: {}", b.line, b.reason));
                self.stop(Fatal::NotAStore(reason))?;
            }
        }
        let nothing = !self.header && !self.records && self.first_line.is_none();
        if nothing && self.out.torn.is_none() && total_len > 0 {
            // Only blank lines (rule 7): dropped when the store is created.
            let first = BadLine {
                line: 1,
                offset: 0,
                reason: "the log holds only blank lines".into(),
            };
            self.problem(&first);
            self.out.torn = Some(TornTail {
                first,
                lines: self.out.valid_lines,
                bytes: total_len,
                partial_record: true,
                copy: None,
            });
        }
        Ok(())
    }
}

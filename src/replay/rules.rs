//! The line rules, in one place: what each line of a log is
//! ([`classify`]), and what a sequence of lines means ([`Rules`]): where the
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

use super::reader::{Held, Line};
use crate::error::{Error, ErrorKind};
use crate::record::{self, FORMAT_VERSION, LineError, Record};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// At most this many damaged lines are listed in a report (all are counted).
pub(crate) const MAX_LISTED: usize = 100;

/// One line that is not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
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
pub struct TornTail {
    /// The first dropped line.
    pub first: BadLine,
    /// How many lines were dropped.
    pub lines: u64,
    /// How many bytes were dropped (from `first.offset` to the end of the file).
    pub bytes: u64,
    /// Whether the dropped bytes are at most one partial record followed by
    /// NUL bytes, which is what a crash leaves. Anything more is kept in a
    /// copy beside the log by the writable open that cuts it.
    pub partial_record: bool,
    /// Where the cut bytes were kept, if they were more than one partial
    /// record (set by the writable open that cut them).
    pub copy: Option<PathBuf>,
}

/// Where a line (or the part of it a rule is about) sits in the log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub no: u64,
    pub offset: u64,
    pub end: u64,
    pub terminated: bool,
}

impl Span {
    pub(crate) fn of(line: &Line<'_>) -> Self {
        Span {
            no: line.no,
            offset: line.offset,
            end: line.end,
            terminated: line.terminated,
        }
    }
}

/// What one line is.
#[derive(Debug)]
pub(crate) enum Class<'a> {
    Blank,
    Valid(Record<'a>),
    /// A valid record of this many bytes, missing its newline, followed by
    /// nothing but NUL bytes to the end of the input (rule 6).
    ValidThenZeros(Record<'a>, u64),
    Damaged(Damage),
}

/// What is wrong with a damaged line.
#[derive(Debug, Clone)]
pub(crate) struct Damage {
    pub reason: LineError,
    /// The line was written whole, so it is never a torn write (rule 5).
    pub hard: bool,
    /// The line is what a crash can leave of one record: the start of a
    /// record (no longer than the maximum record size) followed by nothing
    /// but NUL bytes, with no newline.
    pub partial: bool,
    /// `partial`, and its bytes are a non-empty prefix of the header line.
    pub header_prefix: bool,
    /// The valid records inside the line (salvage keeps them), as ranges
    /// of [`held_bytes`].
    pub embedded: Vec<Range<usize>>,
}

/// The bytes of a line that are in memory.
pub(crate) fn held_bytes<'a>(line: &Line<'a>) -> &'a [u8] {
    match line.held {
        Held::Whole(bytes) => bytes,
        Held::Streamed { head, .. } => head.unwrap_or_default(),
    }
}

/// Classifies one line by rules 1, 2, 5 and 6 (rules 3, 4 and 7 depend on
/// the lines around it: [`Rules`]). The result depends on the line's bytes
/// only, never on how much of it was held in memory.
pub(crate) fn classify<'a>(line: &Line<'a>, max_record: usize) -> Class<'a> {
    let terminated = line.terminated;
    let bytes = match line.held {
        Held::Whole(bytes) => bytes,
        Held::Streamed {
            head,
            first_nul,
            nonzero_after,
            checksum_holds,
        } => {
            let len = line.end - line.offset - u64::from(terminated);
            let unheld_line = Unheld {
                head,
                first_nul,
                nonzero_after,
                len,
                checksum_holds,
            };
            return unheld(unheld_line, terminated, max_record);
        }
    };
    if bytes.is_empty() {
        return Class::Blank;
    }
    let error = if bytes.len() > max_record {
        None
    } else {
        match record::decode(bytes) {
            Ok(rec) => return Class::Valid(rec),
            Err(e) => Some(e),
        }
    };
    let first_nul = memchr::memchr(0, bytes);
    match error {
        Some(error) if first_nul.is_none() => {
            let checksum_holds = error.checksum_holds();
            let reason = match error {
                e if checksum_holds => e,
                _ if !terminated => LineError::Unterminated,
                e => e,
            };
            Class::Damaged(damage(reason, bytes, !terminated, checksum_holds))
        }
        // A NUL byte, or too long: classified as if streamed past.
        _ => {
            let head_len = first_nul.unwrap_or(bytes.len());
            let head = (head_len <= max_record).then(|| &bytes[..head_len]);
            let after = if head.is_some() { head_len } else { 0 };
            let line = Unheld {
                head,
                first_nul: first_nul.map(|p| p as u64),
                nonzero_after: super::reader::nonzero(&bytes[after..]),
                len: bytes.len() as u64,
                checksum_holds: first_nul.is_none() && record::checksum_holds(bytes),
            };
            unheld(line, terminated, max_record)
        }
    }
}

/// What [`unheld`] knows of a line that holds a NUL byte or is longer than
/// the maximum record size.
struct Unheld<'a> {
    /// Its bytes before the first NUL, if no longer than the maximum record size.
    head: Option<&'a [u8]>,
    first_nul: Option<u64>,
    nonzero_after: u64,
    len: u64,
    /// It starts with a checksum field that the rest matches.
    checksum_holds: bool,
}

/// A line that holds a NUL byte or is longer than `max_record`. One
/// whose checksum holds was written whole: it is never a torn write,
/// whatever its length.
fn unheld(line: Unheld<'_>, terminated: bool, max_record: usize) -> Class<'_> {
    let Unheld {
        head,
        first_nul,
        nonzero_after,
        len,
        checksum_holds,
    } = line;
    let max = max_record as u64;
    let reason = match first_nul {
        Some(at) => LineError::Nul { at },
        None if checksum_holds => LineError::OverMax { len, max },
        None => LineError::TooLong { len, max },
    };
    let Some(head) = head else {
        return Class::Damaged(damage(reason, &[], false, checksum_holds));
    };
    let zeros_only = nonzero_after == 0;
    if zeros_only
        && !terminated
        && let Ok(rec) = record::decode(head)
    {
        return Class::ValidThenZeros(rec, head.len() as u64);
    }
    // A record followed by NULs and then a newline or more bytes was
    // written whole, so `damage` takes it as hard.
    let partial = zeros_only && !terminated;
    Class::Damaged(damage(reason, head, partial, false))
}

/// The damage of a line whose bytes in memory are `bytes`.
fn damage(reason: LineError, bytes: &[u8], partial: bool, checksum_holds: bool) -> Damage {
    let (embedded, gave_up) = record::embedded(bytes);
    // A line too hostile to search is taken as holding records.
    let holds_records = !embedded.is_empty() || gave_up;
    let reason = if holds_records && !checksum_holds {
        LineError::LostNewline
    } else {
        reason
    };
    let hard = checksum_holds || holds_records;
    let head = &bytes[..memchr::memchr(0, bytes).unwrap_or(bytes.len())];
    let partial = partial && !hard && record::could_start_a_record(head);
    let header_prefix = partial && record::could_start_a_header(head);
    Damage {
        reason,
        hard,
        partial,
        header_prefix,
        embedded,
    }
}

/// One thing a line holds, as the rules see it.
#[derive(Debug)]
pub(crate) enum Item<'a> {
    Blank,
    Record(Record<'a>),
    Damaged(Damage),
}

impl Item<'_> {
    /// What the rules need of the item.
    pub(crate) fn seen(&self) -> Seen<'_> {
        match self {
            Item::Blank => Seen::Blank,
            Item::Record(Record::Header { version, .. }) => Seen::Header(*version),
            Item::Record(_) => Seen::Record,
            Item::Damaged(damage) => Seen::Damaged(damage),
        }
    }
}

/// An [`Item`] without its record's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seen<'a> {
    Blank,
    Header(u64),
    Record,
    Damaged(&'a Damage),
    /// This many more damaged lines of a long run, folded ([`Fold`]).
    MoreDamaged(u64),
}

/// What [`Fold`] passes on.
#[derive(Debug)]
pub(crate) enum Folded<'a> {
    /// An item as it is.
    One(Item<'a>),
    /// This many damaged lines, the last at the span given with it.
    More(u64),
}

/// Folds long runs of damaged lines (a damaged tail of short lines, say),
/// so that they cost no work or memory each: in a run of damaged lines,
/// the first [`MAX_LISTED`] are passed on one by one (every listing keeps
/// at most that many), and after them every line that is soft damage
/// holding no record is only counted. What the rules conclude is the same
/// either way. A fold lives for one job of lines; [`finish`](Fold::finish)
/// passes on what it holds.
#[derive(Debug, Default)]
pub(crate) struct Fold {
    /// Damaged lines in a row so far.
    run: u64,
    /// Lines counted and not yet passed on, and the last one's span.
    held: Option<(Span, u64)>,
}

impl Fold {
    /// Takes one item; calls `f` with what to pass on.
    pub(crate) fn item<'a>(
        &mut self,
        at: Span,
        item: Item<'a>,
        mut f: impl FnMut(Span, Folded<'a>),
    ) {
        if let Item::Damaged(damage) = &item {
            let plain = !damage.hard && damage.embedded.is_empty();
            self.run += 1;
            if plain && self.run > MAX_LISTED as u64 {
                let count = self.held.map_or(0, |(_, n)| n);
                self.held = Some((at, count + 1));
                return;
            }
        } else {
            self.run = 0;
        }
        self.finish(&mut f);
        f(at, Folded::One(item));
    }

    /// A line that is not damaged: ends the run, passing on the lines
    /// counted.
    pub(crate) fn end_run<'a>(&mut self, f: impl FnMut(Span, Folded<'a>)) {
        self.run = 0;
        self.finish(f);
    }

    /// Passes on the lines counted.
    pub(crate) fn finish<'a>(&mut self, mut f: impl FnMut(Span, Folded<'a>)) {
        if let Some((at, count)) = self.held.take() {
            f(at, Folded::More(count));
        }
    }
}

/// Calls `f` on what `line` holds, in order: one item, or for a valid
/// record followed by NUL bytes the record and then the damage; in
/// salvage, a damaged line and then each valid record inside it.
pub(crate) fn items<'a>(
    line: &Line<'a>,
    max_record: usize,
    salvage: bool,
    mut f: impl FnMut(Span, Item<'a>),
) {
    let span = Span::of(line);
    match classify(line, max_record) {
        Class::Blank => f(span, Item::Blank),
        Class::Valid(rec) => f(span, Item::Record(rec)),
        Class::ValidThenZeros(rec, len) => {
            let record_end = span.offset + len;
            let record = Span {
                end: record_end,
                terminated: false,
                ..span
            };
            f(record, Item::Record(rec));
            let zeros = Damage {
                reason: LineError::Nul { at: len },
                hard: false,
                partial: true,
                header_prefix: false,
                embedded: Vec::new(),
            };
            let rest = Span {
                offset: record_end,
                ..span
            };
            f(rest, Item::Damaged(zeros));
        }
        Class::Damaged(damage) => {
            let embedded = if salvage {
                damage.embedded.clone()
            } else {
                Vec::new()
            };
            f(span, Item::Damaged(damage));
            let bytes = held_bytes(line);
            for range in embedded {
                let Some(Ok(rec)) = bytes.get(range.clone()).map(record::decode) else {
                    continue;
                };
                let at = Span {
                    offset: span.offset + range.start as u64,
                    end: span.offset + range.end as u64,
                    terminated: true,
                    ..span
                };
                f(at, Item::Record(rec));
            }
        }
    }
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
    /// The first line is a prefix of the header (and no header or record came before).
    header_prefix: bool,
}

/// What a whole log (or tail) is, by the rules.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The end of the last valid line (blank lines included).
    pub valid_len: u64,
    /// The number of lines up to `valid_len`.
    pub valid_lines: u64,
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

/// The rules over a sequence of lines (rules 3, 4, 5 and 7). Feed every
/// line in order, then [`finish`](Rules::finish).
#[derive(Debug)]
pub(crate) struct Rules {
    salvage: bool,
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

    /// Rules for the part of a log after its first `lines` lines, which end
    /// at byte `offset` at a valid line's end.
    pub(crate) fn after(offset: u64, lines: u64) -> Self {
        let mut rules = Rules::new(false);
        rules.header = true;
        rules.out.has_header = true;
        rules.out.valid_len = offset;
        rules.out.valid_lines = lines;
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

    /// Takes in one item; returns whether it is a record to apply.
    pub(crate) fn feed(&mut self, at: Span, item: &Item<'_>) -> Result<bool, Fatal> {
        self.take(at, item.seen())
    }

    /// [`feed`](Self::feed) for what was seen on a line, without its bytes.
    pub(crate) fn take(&mut self, at: Span, seen: Seen<'_>) -> Result<bool, Fatal> {
        match seen {
            Seen::Blank => {
                self.blank(at);
                Ok(false)
            }
            Seen::Damaged(damage) => self.damaged(at, damage).map(|()| false),
            Seen::MoreDamaged(count) => {
                self.more_damaged(count);
                Ok(false)
            }
            Seen::Header(version) => self.valid(at, Some(version)).map(|_| false),
            Seen::Record => self.valid(at, None),
        }
    }

    /// A blank line.
    pub(crate) fn blank(&mut self, at: Span) {
        if self.pending.is_none() {
            self.out.valid_len = at.end;
            self.out.valid_lines = at.no;
        }
    }

    /// A valid line: a header (`Some(version)`) or a record. Returns whether
    /// it counts: a record is to be applied, a header is the log's header
    /// (a later one is damage).
    pub(crate) fn valid(&mut self, at: Span, header: Option<u64>) -> Result<bool, Fatal> {
        if let Some(version) = header {
            if self.header || self.records {
                let late = Damage {
                    reason: LineError::LateHeader,
                    hard: true,
                    partial: false,
                    header_prefix: false,
                    embedded: Vec::new(),
                };
                self.damaged(at, &late)?;
                return Ok(false);
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
        if header.is_some() {
            self.header = true;
            self.out.has_header = true;
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
        self.out.needs_newline = !at.terminated;
        Ok(true)
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
                    partial_record: p.partial,
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

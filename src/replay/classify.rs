//! What one line of a log is, by its bytes alone: rules 1, 2, 5 and 6 of
//! [`super::rules`] ([`classify`], [`items`]), and the folding of long runs
//! of damaged lines ([`Fold`]). The rules over a sequence of lines are in
//! [`super::rules`].

use super::reader::{Held, Line};
use crate::record::{self, LineError, Record};
use std::ops::Range;

/// At most this many damaged lines are listed in a report (all are counted).
pub(crate) const MAX_LISTED: usize = 100;
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
    /// but NUL bytes, with no newline; or, with a newline, by nothing (the
    /// rules then ask for blank lines after it: the padding's).
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
/// the lines around it: [`Rules`](super::rules::Rules)). The result depends on the line's bytes
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
            // A record cut short may be followed by a newline: one written
            // over the newline padding is followed by the padding's
            // newlines. The rules count it as one partial record only if
            // blank lines follow it (DESIGN.md, rule 9). A header is never
            // written over padding: one cut short has no newline.
            let mut d = damage(reason, bytes, true, checksum_holds);
            d.header_prefix &= !terminated;
            Class::Damaged(d)
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
            Item::Record(Record::Batch { count }) => Seen::Batch(*count),
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
    /// A batch line: the next this many records are one sync.
    Batch(u64),
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

//! Catch-up: applying what other processes appended to a log after the
//! part a handle already read, by the same line rules as a whole replay.

use super::classify::{self, Item};
use super::reader::{CHUNK, LineReader};
use super::rules::{Rules, Take, TornTail};
use crate::error::Result;
use crate::index::Index;
use crate::record::Record;
use std::io::Read;
use std::path::Path;

/// What [`apply_tail`] found after a log's known end.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    /// The end of the valid prefix (a file offset).
    pub valid_len: u64,
    /// The number of lines up to `valid_len`.
    pub lines: u64,
    /// The end of the last valid line that is not blank, and the number
    /// of lines up to it (blank lines after it may be newline padding
    /// that the writer writes over next).
    pub content_len: u64,
    pub content_lines: u64,
    /// Keys whose records were applied.
    pub changed: Vec<String>,
    /// Damaged lines at the end, with no valid line after them.
    pub torn: Option<TornTail>,
    /// The last valid record has no newline.
    pub needs_newline: bool,
    /// Whether a removal was applied (slots may hold a re-inserted key).
    pub removed: bool,
}

/// Applies the records read from `reader` (the bytes of a log after byte
/// `start`, which ends line `lines`) to `index`.
///
/// # Errors
///
/// [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt) as for a whole
/// replay; an I/O error reading.
pub(crate) fn apply_tail<V>(
    index: &mut Index<V>,
    reader: impl Read,
    start: u64,
    lines: u64,
    at: TailOf<'_>,
    max_record: usize,
) -> Result<Tail> {
    apply_tail_in_chunks(index, reader, start, lines, at, max_record, CHUNK)
}

/// [`apply_tail`], reading jobs of `chunk` bytes (see [`LineReader::chunk`]).
pub(crate) fn apply_tail_in_chunks<V>(
    index: &mut Index<V>,
    reader: impl Read,
    start: u64,
    lines: u64,
    at: TailOf<'_>,
    max_record: usize,
    chunk: usize,
) -> Result<Tail> {
    let path = at.path;
    let mut rules = Rules::after(start, lines, at.version);
    let mut tail = Tail::default();
    // The records of a batch not complete yet (a job's bytes go away, so
    // they are copied).
    let mut held: Vec<(Change, u64)> = Vec::new();
    let mut reader = LineReader::new(reader, path, max_record, start, lines).chunk(chunk);
    while let Some(job) = reader.next_job()? {
        for line in job.lines() {
            let mut fatal = None;
            classify::items(&line, max_record, false, |span, item| {
                if fatal.is_some() {
                    return;
                }
                let take = match rules.feed(span, &item) {
                    Ok(take) => take,
                    Err(f) => {
                        fatal = Some(f);
                        return;
                    }
                };
                match take {
                    Take::Skip | Take::Header => {}
                    Take::Apply => apply(index, item, span.no, &mut tail),
                    Take::Hold => held.extend(Change::of(item).map(|c| (c, span.no))),
                    Take::Release => {
                        for (change, no) in held.drain(..) {
                            change.apply(index, no, &mut tail);
                        }
                        apply(index, item, span.no, &mut tail);
                    }
                }
            });
            if let Some(f) = fatal {
                return Err(f.into_error(path));
            }
        }
    }
    let out = rules
        .finish(reader.position())
        .map_err(|f| f.into_error(path))?;
    tail.valid_len = out.valid_len;
    tail.lines = out.valid_lines;
    tail.content_len = out.content_len;
    tail.content_lines = out.content_lines;
    tail.torn = out.torn;
    tail.needs_newline = out.needs_newline;
    Ok(tail)
}

/// The log a tail is of: its path (named in errors) and its format version
/// (which says whether batch lines may be in it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TailOf<'a> {
    pub path: &'a Path,
    pub version: u64,
}

/// A record to apply, its bytes copied.
enum Change {
    Put(String, Vec<u8>),
    Del(String),
}

impl Change {
    fn of(item: Item<'_>) -> Option<Change> {
        match item {
            Item::Record(Record::Put { key, value }) => {
                Some(Change::Put(key.into_owned(), value.to_vec()))
            }
            Item::Record(Record::Del { key }) => Some(Change::Del(key.into_owned())),
            Item::Record(Record::Header { .. } | Record::Batch { .. })
            | Item::Blank
            | Item::Damaged(_) => None,
        }
    }
}

impl Change {
    fn apply<V>(self, index: &mut Index<V>, line: u64, tail: &mut Tail) {
        let line = u32::try_from(line).unwrap_or(u32::MAX);
        match self {
            Change::Put(key, value) => {
                index.put_text(&key, &value, line);
                tail.changed.push(key);
            }
            Change::Del(key) => {
                index.remove(&key);
                tail.removed = true;
                tail.changed.push(key);
            }
        }
    }
}

/// Applies the record `item` holds, if it holds one.
fn apply<V>(index: &mut Index<V>, item: Item<'_>, line: u64, tail: &mut Tail) {
    let line = u32::try_from(line).unwrap_or(u32::MAX);
    match item {
        Item::Record(Record::Put { key, value }) => {
            index.put_text(&key, value, line);
            tail.changed.push(key.into_owned());
        }
        Item::Record(Record::Del { key }) => {
            index.remove(&key);
            tail.removed = true;
            tail.changed.push(key.into_owned());
        }
        Item::Record(Record::Header { .. } | Record::Batch { .. })
        | Item::Blank
        | Item::Damaged(_) => {}
    }
}

//! Replay: log bytes -> ordered map, with line numbers, byte offsets and the
//! torn-tail policy of [`rules`]. It reads from any `Read` (a file, or a
//! byte slice in tests and fuzzers) and does no other I/O.
//!
//! Three stages ([`pipeline`]): a thread splits the bytes into lines
//! ([`reader`]); two workers *decode* them: classify each line (checksum,
//! grammar, value JSON), hash its key and copy key and value text into an
//! arena block; the caller *applies* them in order: runs the [`rules`] over
//! the lines and builds the index. A log of one chunk is read on one thread.

pub(crate) mod classify;
pub(crate) mod pipeline;
pub(crate) mod reader;
pub(crate) mod rules;
mod tail;

use crate::error::Result;
use crate::fsio::LogMap;
use crate::index::{Index, KeyHasher, Loc, MappedRange};
use crate::record::{self, Record};
use classify::{Damage, Fold, Folded, Item, Span};
use reader::{Held, Job, Line, LineReader};
use rules::{Fatal, Rules, Take};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use rules::{BadLine, TornTail};
#[cfg(feature = "sim")]
pub(crate) use tail::apply_tail_in_chunks;
pub(crate) use tail::{TailOf, apply_tail};

/// The state rebuilt from a log.
#[derive(Debug)]
pub(crate) struct Replayed<V> {
    pub index: Index<V>,
    /// The length of the log up to the end of its last valid line.
    pub valid_len: u64,
    /// The number of lines up to `valid_len`.
    pub valid_lines: u64,
    /// The end of the last valid line that is not blank, and the number
    /// of lines up to it (blank lines after it are newline padding).
    pub content_len: u64,
    pub content_lines: u64,
    /// Whether a header line was found (false for an empty store, and in
    /// salvage for a log whose header is missing).
    pub has_header: bool,
    /// The header's format version (1 when there is no header).
    pub version: u64,
    /// The settings the header holds (a JSON object's text).
    pub settings: Option<Vec<u8>>,
    /// The last valid record has no newline (a writable open adds it).
    pub needs_newline: bool,
    pub torn: Option<TornTail>,
    /// Damaged lines skipped in salvage mode (the first `MAX_LISTED`).
    pub skipped: Vec<BadLine>,
    /// How many damaged lines were skipped in salvage mode.
    pub skipped_count: u64,
    /// The last batch was cut short after its records were applied: the
    /// state is that of the log's first this many bytes (read them again).
    reread_to: Option<u64>,
    /// The CRC-32 of the log's first bytes, at the end of each job read in
    /// order from the start (for a hint file: [`crate::hint`]); empty if
    /// none is known.
    pub crc_marks: CrcMarks,
}

/// The CRC-32 of a log's first bytes at several lengths, in increasing
/// order: a hint needs the CRC of its covered part, found from the last
/// mark before it and the bytes after the mark.
pub(crate) type CrcMarks = Vec<(u64, crc32fast::Hasher)>;

/// What the decode stage found on one line.
#[derive(Debug)]
enum Found {
    Blank,
    Header(u64, Option<Box<[u8]>>),
    /// Key bytes at `at` in the batch's block, the value's right after them
    /// (or at `value_in_file` in the mapped log).
    Put {
        hash: u64,
        at: u32,
        key_len: u32,
        value_len: u32,
        /// The bytes of the record but its value (`put_len(key, 0)`).
        framing: u32,
        value_in_file: Option<u64>,
    },
    Del {
        hash: u64,
        at: u32,
        key_len: u32,
    },
    /// A batch line: the next this many records are one sync.
    Batch(u64),
    Damaged(Box<Damage>),
    /// This many more damaged lines of a long run ([`Fold`]).
    MoreDamaged(u64),
}

#[derive(Debug)]
struct Event {
    span: Span,
    found: Found,
}

/// The apply stage touches the table for this many records at a time
/// before applying them.
const LOOKAHEAD: usize = 16;

impl Event {
    /// The key's hash, if the event has a key.
    fn hash(&self) -> u64 {
        match self.found {
            Found::Put { hash, .. } | Found::Del { hash, .. } => hash,
            _ => 0,
        }
    }
}

/// Decoded lines, with their keys and values copied into `block` (values
/// left in the mapped log excepted).
#[derive(Debug, Default)]
struct Batch {
    block: Vec<u8>,
    events: Vec<Event>,
    /// The file offset and length of the job's bytes.
    file: (u64, usize),
    /// The CRC-32 of the job's bytes, if it kept them all.
    crc: Option<crc32fast::Hasher>,
}

/// The decode stage's state.
struct Decoder {
    hasher: KeyHasher,
    max_record: usize,
    salvage: bool,
    /// How many bytes of the log are mapped (0: none): a value within them
    /// stays there.
    mapped: u64,
}

impl Decoder {
    fn decode(&self, batch: &mut Batch, fold: &mut Fold, line: &Line<'_>) {
        // Most lines are valid records: decoded here, they skip the rules'
        // classification of damage (which would decode them the same way).
        if let Held::Whole(bytes) = line.held
            && !bytes.is_empty()
            && bytes.len() <= self.max_record
            && let Ok(rec) = record::decode(bytes)
        {
            fold.end_run(|span, folded| self.push(batch, span, folded));
            let found = self.record(batch, rec, Some((bytes, line.offset)));
            batch.push(Span::of(line), found);
            return;
        }
        classify::items(line, self.max_record, self.salvage, |span, item| {
            fold.item(span, item, |span, folded| self.push(batch, span, folded));
        });
    }

    /// Adds what the fold passed on to the batch.
    fn push(&self, batch: &mut Batch, span: Span, folded: Folded<'_>) {
        let found = match folded {
            Folded::One(Item::Blank) => Found::Blank,
            Folded::One(Item::Record(rec)) => self.record(batch, rec, None),
            Folded::One(Item::Damaged(damage)) => Found::Damaged(Box::new(damage)),
            Folded::More(count) => Found::MoreDamaged(count),
        };
        batch.push(span, found);
    }

    /// Copies a valid record's key, and its value unless it stays in the
    /// mapped log (`line` is the line the record was read from, and its
    /// file offset), into the batch's block.
    fn record(&self, batch: &mut Batch, rec: Record<'_>, line: Option<(&[u8], u64)>) -> Found {
        match rec {
            Record::Header { version, settings } => Found::Header(version, settings.map(Box::from)),
            Record::Put { key, value } => {
                let at = batch.block.len() as u32;
                let value_in_file =
                    line.and_then(|(bytes, offset)| self.in_map(bytes, offset, value));
                // Keys are copied: a key in the map would be read (its
                // pages faulted in) whenever a hash matches, which at many
                // millions of keys is most of the log.
                batch.block.extend_from_slice(key.as_bytes());
                if value_in_file.is_none() {
                    batch.block.extend_from_slice(value);
                }
                Found::Put {
                    hash: self.hasher.hash(key.as_bytes()),
                    framing: u32::try_from(record::put_len(&key, 0)).unwrap_or(u32::MAX),
                    at,
                    key_len: key.len() as u32,
                    value_len: value.len() as u32,
                    value_in_file,
                }
            }
            Record::Del { key } => {
                let at = batch.block.len() as u32;
                batch.block.extend_from_slice(key.as_bytes());
                Found::Del {
                    hash: self.hasher.hash(key.as_bytes()),
                    at,
                    key_len: key.len() as u32,
                }
            }
            Record::Batch { count } => Found::Batch(count),
        }
    }
}

impl Decoder {
    /// The file offset of `value`, if it lies within `line` (the bytes of
    /// the line at `offset`) and within the mapped bytes.
    fn in_map(&self, line: &[u8], offset: u64, value: &[u8]) -> Option<u64> {
        if self.mapped == 0 {
            return None;
        }
        let (start, end) = (line.as_ptr() as usize, line.as_ptr() as usize + line.len());
        let at = value.as_ptr() as usize;
        if at < start || at + value.len() > end {
            return None;
        }
        let in_file = offset + (at - start) as u64;
        (in_file + value.len() as u64 <= self.mapped).then_some(in_file)
    }
}

impl Batch {
    fn push(&mut self, span: Span, found: Found) {
        self.events.push(Event { span, found });
    }
}

/// A record to apply, its bytes in an adopted arena block.
#[derive(Debug, Clone, Copy)]
enum Change {
    Put {
        hash: u64,
        key: Loc,
        value: Loc,
        line: u32,
        /// The bytes of the record but its value.
        framing: u64,
    },
    Del {
        hash: u64,
        key: Loc,
    },
}

/// The apply stage's state.
struct Applier<'p, V> {
    index: Index<V>,
    rules: Rules,
    path: &'p Path,
    /// The log's header: its version and settings.
    header: (u64, Option<Box<[u8]>>),
    /// The records of a batch not complete yet.
    held: Vec<Change>,
    /// The mapped log, whose ranges become arena blocks.
    map: Option<Arc<LogMap>>,
    /// The CRC-32 of the log's first bytes at the end of each job so far,
    /// while every job kept its bytes.
    crc_marks: CrcMarks,
    crc_broken: bool,
}

/// Replays a whole log held in memory.
#[cfg(test)]
pub(crate) fn replay_bytes<V>(bytes: &[u8], path: &Path, salvage: bool) -> Result<Replayed<V>> {
    replay(
        || Ok((bytes, bytes.len() as u64)),
        path,
        salvage,
        crate::DEFAULT_MAX_RECORD_SIZE,
    )
}

/// Replays the log that `open` reads (it gives a reader and the file size).
/// The size sizes the map up front and picks one thread or several; `path`
/// only names the file in errors; lines longer than `max_record` bytes are
/// damage.
#[cfg(test)]
pub(crate) fn replay<V, R: Read + Send>(
    open: impl Fn() -> Result<(R, u64)>,
    path: &Path,
    salvage: bool,
    max_record: usize,
) -> Result<Replayed<V>> {
    replay_in_chunks(open, path, salvage, max_record, reader::CHUNK)
}

/// [`replay`], reading jobs of `chunk` bytes (see [`LineReader::chunk`]).
///
/// A batch's records are applied as they come. If the last batch was cut
/// short (a crash while a sync was written), the log is read a second time
/// up to that batch's line, and the torn tail of the first reading is
/// reported: the rare crash pays for the common open, which never holds a
/// large sync's records.
#[cfg(any(test, feature = "sim"))]
pub(crate) fn replay_in_chunks<V, R: Read + Send>(
    open: impl Fn() -> Result<(R, u64)>,
    path: &Path,
    salvage: bool,
    max_record: usize,
    chunk: usize,
) -> Result<Replayed<V>> {
    replay_sources(
        || open().map(|(reader, size)| (reader, size, None)),
        path,
        salvage,
        max_record,
        chunk,
    )
}

/// [`replay`] of a log that `open` may also give mapped: the value texts
/// of the records are then left in the map (their arena blocks are ranges
/// of it), not copied.
pub(crate) fn replay_mapped<V, R: Read + Send>(
    open: impl Fn() -> Result<(R, u64, Option<Arc<LogMap>>)>,
    path: &Path,
    salvage: bool,
    max_record: usize,
) -> Result<Replayed<V>> {
    replay_sources(open, path, salvage, max_record, reader::CHUNK)
}

/// The replay of a log whose first bytes a hint file described: `index`
/// is the state they hold (`covered`, whose CRC the caller checked; its
/// header holds `settings`), and the rest of the log, read from `reader`,
/// is applied by the same line rules. With `map` (a writable open, under
/// the store's lock), the rest is read as a whole replay reads, its value
/// texts left in the map; `None` if its last batch was cut short (read
/// the whole log instead). Without, as a catch-up, copying them.
///
/// # Errors
///
/// As a whole replay, for the lines after the covered part.
pub(crate) fn replay_after_hint<V>(
    mut index: Index<V>,
    reader: impl Read + Send,
    covered: crate::hint::Covered,
    settings: Option<Vec<u8>>,
    (path, max_record): (&Path, usize),
    map: Option<Arc<LogMap>>,
) -> Result<Option<Replayed<V>>> {
    let crc_marks = vec![(
        covered.log_len,
        crc32fast::Hasher::new_with_initial_len(covered.log_crc, covered.log_len),
    )];
    if let Some(map) = map {
        let rest = (map.len() as u64).saturating_sub(covered.log_len);
        let start = Start {
            index,
            offset: covered.log_len,
            lines: covered.lines,
            rules: Rules::after(covered.log_len, covered.lines, covered.version),
            header: (covered.version, settings.map(Vec::into_boxed_slice)),
            crc_marks,
        };
        let replayed: Replayed<V> = replay_from(
            start,
            reader,
            rest,
            Some(map),
            path,
            false,
            max_record,
            reader::CHUNK,
        )?;
        return Ok(replayed.reread_to.is_none().then_some(replayed));
    }
    let at = tail::TailOf {
        path,
        version: covered.version,
    };
    let tail = tail::apply_tail(
        &mut index,
        reader,
        covered.log_len,
        covered.lines,
        at,
        max_record,
    )?;
    Ok(Some(Replayed {
        index,
        valid_len: tail.valid_len,
        valid_lines: tail.lines,
        content_len: tail.content_len,
        content_lines: tail.content_lines,
        has_header: true,
        version: covered.version,
        settings,
        needs_newline: tail.needs_newline,
        torn: tail.torn,
        skipped: Vec::new(),
        skipped_count: 0,
        reread_to: None,
        crc_marks,
    }))
}

fn replay_sources<V, R: Read + Send>(
    open: impl Fn() -> Result<(R, u64, Option<Arc<LogMap>>)>,
    path: &Path,
    salvage: bool,
    max_record: usize,
    chunk: usize,
) -> Result<Replayed<V>> {
    // A reader without the lock may see a writer's batch half written, and
    // the file may be replaced between two readings: a second reading that
    // does not end cleanly where the batch began starts over.
    for _ in 0..REREADS {
        let (reader, size, map) = open()?;
        let first = replay_pass(reader, size, map, path, salvage, max_record, chunk)?;
        let Some(offset) = first.reread_to else {
            return Ok(first);
        };
        let (reader, _, map) = open()?;
        let mut second: Replayed<V> = replay_pass(
            reader.take(offset),
            offset,
            map,
            path,
            salvage,
            max_record,
            chunk,
        )?;
        if second.valid_len == offset && second.torn.is_none() && second.reread_to.is_none() {
            second.torn = first.torn;
            return Ok(second);
        }
    }
    Err(crate::Error::io(
        "read",
        path,
        std::io::Error::other("the log kept changing while it was read"),
    ))
}

/// How many times a log whose last batch was cut short is read again.
const REREADS: usize = 5;

/// One reading of a log (or of its first bytes).
fn replay_pass<V>(
    reader: impl Read + Send,
    size_hint: u64,
    map: Option<Arc<LogMap>>,
    path: &Path,
    salvage: bool,
    max_record: usize,
    chunk: usize,
) -> Result<Replayed<V>> {
    let estimate = usize::try_from(size_hint / 100).unwrap_or(0);
    let start = Start {
        index: Index::with_capacity(estimate),
        offset: 0,
        lines: 0,
        rules: Rules::new(salvage),
        header: (record::PLAIN_VERSION, None),
        crc_marks: Vec::new(),
    };
    replay_from(
        start, reader, size_hint, map, path, salvage, max_record, chunk,
    )
}

/// Where a reading starts: the state of the log's first `offset` bytes
/// (`lines` lines), and the rules to read on by.
struct Start<V> {
    index: Index<V>,
    offset: u64,
    lines: u64,
    rules: Rules,
    header: (u64, Option<Box<[u8]>>),
    crc_marks: CrcMarks,
}

/// [`replay_pass`] from `start` (`reader` reads the log from there).
#[expect(
    clippy::too_many_arguments,
    reason = "one private reading, two callers"
)]
fn replay_from<V>(
    start: Start<V>,
    reader: impl Read + Send,
    size_hint: u64,
    map: Option<Arc<LogMap>>,
    path: &Path,
    salvage: bool,
    max_record: usize,
    chunk: usize,
) -> Result<Replayed<V>> {
    let decoder = Decoder {
        hasher: start.index.hasher(),
        max_record,
        salvage,
        mapped: map.as_ref().map_or(0, |m| m.len() as u64),
    };
    let mut applier = Applier {
        index: start.index,
        rules: start.rules.optimistic(),
        path,
        header: start.header,
        held: Vec::new(),
        map,
        crc_marks: start.crc_marks,
        crc_broken: false,
    };
    let lines = LineReader::new(reader, path, max_record, start.offset, start.lines).chunk(chunk);
    let decode = |job: &Job| {
        let mut batch = Batch {
            // Keys, and values unless they stay in the map.
            block: Vec::with_capacity(if decoder.mapped > 0 {
                job.len() / 4
            } else {
                job.len()
            }),
            events: Vec::with_capacity(job.len() / 64),
            file: (job.offset(), job.len()),
            crc: job.bytes().map(|b| {
                let mut crc = crc32fast::Hasher::new();
                crc.update(b);
                crc
            }),
        };
        let mut fold = Fold::default();
        for line in job.lines() {
            decoder.decode(&mut batch, &mut fold, &line);
        }
        fold.finish(|span, folded| decoder.push(&mut batch, span, folded));
        batch
    };
    let total_len = pipeline::run(lines, size_hint, decode, |batch| applier.apply(batch))?;
    let Applier {
        index,
        rules,
        path,
        header: (version, settings),
        crc_marks,
        ..
    } = applier;
    let out = rules.finish(total_len).map_err(|f| f.into_error(path))?;
    Ok(Replayed {
        index,
        valid_len: out.valid_len,
        valid_lines: out.valid_lines,
        content_len: out.content_len,
        content_lines: out.content_lines,
        has_header: out.has_header,
        version,
        settings: settings.map(Vec::from),
        needs_newline: out.needs_newline,
        torn: out.torn,
        skipped: out.skipped,
        skipped_count: out.skipped_count,
        reread_to: out.reread_to,
        crc_marks,
    })
}

impl<V> Applier<'_, V> {
    fn apply(&mut self, batch: Batch) -> Result<()> {
        let Batch {
            mut block,
            events,
            file,
            crc,
        } = batch;
        self.mark_crc(file, crc);
        // The job's range of the mapped log, as a block, if values stay there.
        let mapped_no = match &self.map {
            Some(map)
                if events.iter().any(|e| {
                    matches!(
                        e.found,
                        Found::Put {
                            value_in_file: Some(_),
                            ..
                        }
                    )
                }) =>
            {
                let start = usize::try_from(file.0).unwrap_or(usize::MAX);
                let range = MappedRange::new(Arc::clone(map), start, file.1);
                Some((self.index.adopt_mapped(range), file.0))
            }
            _ => None,
        };
        // A job of blank or damaged lines leaves nothing in its block: keep
        // no block for it (a removal of the empty key finds no bytes at any
        // number), and give back the room a mostly-empty one does not use,
        // so memory follows the records, never the damage.
        let block_no = if block.is_empty() {
            u32::MAX
        } else {
            if block.capacity() / 2 > block.len() {
                block.shrink_to_fit();
            }
            self.index.adopt_block(block)
        };
        // Probing the table for a key a few records ahead overlaps its
        // cache misses with the work on this one.
        // Touching the table for a group of keys first lets their cache
        // misses overlap (the lookups are independent); applying them then
        // finds the memory in the cache.
        let hashes: Vec<u64> = events.iter().map(Event::hash).collect();
        for (n, ev) in events.into_iter().enumerate() {
            if n % LOOKAHEAD == 0 {
                let group = hashes.get(n + LOOKAHEAD..n + 2 * LOOKAHEAD);
                for &hash in group.unwrap_or_default() {
                    self.index.touch(hash);
                }
            }
            self.apply_event(ev, block_no, mapped_no)
                .map_err(|f| f.into_error(self.path))?;
        }
        Ok(())
    }

    /// Adds the CRC of the job at `file` (offset, length) to the marks, if
    /// every job before it was marked and it follows them.
    fn mark_crc(&mut self, file: (u64, usize), crc: Option<crc32fast::Hasher>) {
        let end = self.crc_marks.last().map_or(0, |(end, _)| *end);
        match crc {
            Some(crc) if !self.crc_broken && file.0 == end => {
                let mut running = self
                    .crc_marks
                    .last()
                    .map_or_else(crc32fast::Hasher::new, |(_, h)| h.clone());
                running.combine(&crc);
                self.crc_marks.push((end + file.1 as u64, running));
            }
            _ => self.crc_broken = true,
        }
    }

    /// Applies one event; its bytes are in block `block`, and a value left
    /// in the mapped log in block `mapped.0`, which starts at file offset
    /// `mapped.1`.
    fn apply_event(
        &mut self,
        ev: Event,
        block: u32,
        mapped: Option<(u32, u64)>,
    ) -> Result<(), Fatal> {
        let span = ev.span;
        let line = u32::try_from(span.no).unwrap_or(u32::MAX);
        let change = match ev.found {
            Found::Blank => {
                self.rules.blank(span);
                return Ok(());
            }
            Found::Damaged(damage) => return self.rules.damaged(span, &damage),
            Found::MoreDamaged(count) => {
                self.rules.more_damaged(count);
                return Ok(());
            }
            Found::Batch(count) => return self.rules.batch(span, count),
            Found::Header(version, settings) => {
                if self.rules.valid(span, Some(version))? == Take::Header {
                    self.header = (version, settings);
                }
                return Ok(());
            }
            Found::Put {
                hash,
                framing,
                at,
                key_len,
                value_len,
                value_in_file,
            } => Change::Put {
                hash,
                key: Loc {
                    block,
                    offset: at,
                    len: key_len,
                },
                value: match (value_in_file, mapped) {
                    (Some(in_file), Some((mapped_block, start))) => Loc {
                        block: mapped_block,
                        offset: u32::try_from(in_file - start).unwrap_or(u32::MAX),
                        len: value_len,
                    },
                    _ => Loc {
                        block,
                        offset: at + key_len,
                        len: value_len,
                    },
                },
                line,
                // put_len(key, n) == put_len(key, 0) + n
                framing: u64::from(framing),
            },
            Found::Del { hash, at, key_len } => Change::Del {
                hash,
                key: Loc {
                    block,
                    offset: at,
                    len: key_len,
                },
            },
        };
        match self.rules.valid(span, None)? {
            Take::Skip | Take::Header => {}
            Take::Apply => self.change(change),
            Take::Hold => self.held.push(change),
            Take::Release => {
                for held in std::mem::take(&mut self.held) {
                    self.change(held);
                }
                self.change(change);
            }
        }
        Ok(())
    }

    fn change(&mut self, change: Change) {
        match change {
            Change::Put {
                hash,
                key,
                value,
                line,
                framing,
            } => self.index.put_loc(hash, key, value, line, framing),
            Change::Del { hash, key } => {
                let key = self.index.bytes(key).to_vec();
                self.index.remove_hashed(hash, &key);
            }
        }
    }
}

/// The path of a copy kept beside the log: `<log>.<what>-<unix secs>[-n]`
/// (`what` is `damaged` for a salvaged log, `torn` for a cut tail).
pub(crate) fn side_name(log: &Path, what: &str, unix_secs: u64, n: u32) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(format!(".{what}-{unix_secs}"));
    if n > 0 {
        name.push(format!("-{n}"));
    }
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::index::ValueRef;
    use reader::CHUNK;

    fn log(records: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut buf = Vec::new();
        record::encode_header(&mut buf, None);
        for (k, v) in records {
            match v {
                Some(v) => {
                    record::encode_put(&mut buf, k, v.as_bytes());
                }
                None => record::encode_del(&mut buf, k),
            }
        }
        buf
    }

    #[test]
    fn a_mapped_replay_reads_values_in_place_and_copies_those_past_the_map() {
        use crate::fsio::{StdStorage, Storage};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let records: Vec<(String, String)> = (0..5000)
            .map(|i| (format!("k{i}"), format!("{{\"n\":{i}}}")))
            .collect();
        let all: Vec<(&str, Option<&str>)> = records
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_str())))
            .chain([("tab\tkey", Some("\"escaped\""))])
            .collect();
        let bytes = log(&all);
        // The first half of the log is mapped; the reader then reads all of it.
        let half = bytes.len() / 2;
        std::fs::write(&path, &bytes[..half]).unwrap();
        let (_, _, map) = StdStorage.open_mapped(&path).unwrap().unwrap();
        std::fs::write(&path, &bytes).unwrap();
        for chunk in [CHUNK, 4096, 97] {
            let replayed: Replayed<()> = replay_pass(
                &bytes[..],
                bytes.len() as u64,
                Some(Arc::clone(&map)),
                &path,
                false,
                crate::DEFAULT_MAX_RECORD_SIZE,
                chunk,
            )
            .unwrap();
            let expected: Vec<(String, String)> = all
                .iter()
                .map(|(k, v)| (k.to_string(), v.unwrap_or_default().to_string()))
                .collect();
            assert_eq!(contents(&replayed), expected, "chunk {chunk}");
            assert!(replayed.index.mapped_blocks() > 0, "values left in the map");
        }
    }

    fn contents(r: &Replayed<()>) -> Vec<(String, String)> {
        r.index
            .slots()
            .map(|i| {
                let v = match r.index.value(i) {
                    ValueRef::Text(t) => String::from_utf8(t.to_vec()).unwrap(),
                    ValueRef::Live(_) => unreachable!(),
                };
                (r.index.key(i).to_string(), v)
            })
            .collect()
    }

    /// Replays `bytes` as a log of `size_hint` bytes (which picks one
    /// thread or several).
    fn replay_hinted(bytes: &[u8], size_hint: u64) -> Result<Replayed<()>> {
        replay(
            || Ok((bytes, size_hint)),
            Path::new("x"),
            false,
            crate::DEFAULT_MAX_RECORD_SIZE,
        )
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn replay_keeps_first_insertion_order() {
        let bytes = log(&[
            ("a", Some("1")),
            ("b", Some("2")),
            ("a", Some("3")),
            ("c", Some("4")),
            ("b", None),
            ("b", Some("5")),
        ]);
        let r = replay_bytes::<()>(&bytes, Path::new("x"), false).unwrap();
        assert_eq!(contents(&r), pairs(&[("a", "3"), ("c", "4"), ("b", "5")]));
        assert_eq!(r.valid_len, bytes.len() as u64);
        assert!(r.torn.is_none());
    }

    #[test]
    fn live_bytes_count_only_current_records() {
        let bytes = log(&[
            ("a", Some("1")),
            ("a", Some("22")),
            ("b", Some("3")),
            ("b", None),
        ]);
        let r = replay_bytes::<()>(&bytes, Path::new("x"), false).unwrap();
        let mut expect = Vec::new();
        record::encode_header(&mut expect, None);
        record::encode_put(&mut expect, "a", b"22");
        let header = record::header_line().len() as u64 + 1;
        assert_eq!(header + r.index.disk_bytes(), expect.len() as u64);
    }

    #[test]
    fn replay_truncates_torn_final_line() {
        let full = log(&[("a", Some("1")), ("b", Some("2"))]);
        let good = log(&[("a", Some("1"))]);
        for cut in good.len() + 1..full.len() - 1 {
            let r = replay_bytes::<()>(&full[..cut], Path::new("x"), false).unwrap();
            assert_eq!(contents(&r), pairs(&[("a", "1")]), "cut {cut}");
            assert_eq!(r.valid_len, good.len() as u64);
            let torn = r.torn.unwrap();
            assert_eq!(torn.first.line, 3);
            assert_eq!(torn.bytes, (cut - good.len()) as u64);
            assert!(torn.partial_record);
        }
        // Only the newline missing: the record is kept.
        let r = replay_bytes::<()>(&full[..full.len() - 1], Path::new("x"), false).unwrap();
        assert_eq!(contents(&r), pairs(&[("a", "1"), ("b", "2")]));
        assert!(r.needs_newline && r.torn.is_none());
        assert_eq!(r.valid_len, full.len() as u64 - 1);
        // Followed by NUL bytes: the record is kept, the NULs are the torn write.
        let mut zeroed = full[..full.len() - 1].to_vec();
        zeroed.extend_from_slice(&[0; 300]);
        let r = replay_bytes::<()>(&zeroed, Path::new("x"), false).unwrap();
        assert_eq!(contents(&r), pairs(&[("a", "1"), ("b", "2")]));
        assert!(r.needs_newline);
        assert_eq!(r.torn.unwrap().bytes, 300);
        // Followed by anything else: its newline was damaged, and that is corruption.
        let mut glued = full[..full.len() - 1].to_vec();
        glued.push(b'X');
        let err = replay_bytes::<()>(&glued, Path::new("x"), false).unwrap_err();
        assert_eq!(err.line(), Some(3));
    }

    #[test]
    fn damaged_line_followed_by_valid_one_is_corruption() {
        let mut bytes = log(&[("a", Some("1")), ("b", Some("2")), ("c", Some("3"))]);
        let header_len = log(&[]).len();
        let line2 = header_len + 20;
        bytes[line2] ^= 0x20;
        let err = replay_bytes::<()>(&bytes, Path::new("x"), false).unwrap_err();
        assert_eq!(err.line(), Some(2));
        match err.kind() {
            ErrorKind::Corrupt { offset, .. } => assert_eq!(*offset, header_len as u64),
            other => panic!("{other:?}"),
        }
        let r = replay_bytes::<()>(&bytes, Path::new("x"), true).unwrap();
        assert_eq!(contents(&r), pairs(&[("b", "2"), ("c", "3")]));
        assert_eq!(r.skipped_count, 1);
        assert_eq!(r.skipped[0].line, 2);
    }

    #[test]
    fn empty_input_has_no_header_and_no_keys() {
        let r = replay_bytes::<()>(b"", Path::new("x"), false).unwrap();
        assert!(!r.has_header);
        assert_eq!(r.index.len(), 0);
    }

    #[test]
    fn garbage_is_not_a_store() {
        for bytes in [&b"hello\n"[..], b"\0\0\0", b"{\"c\":\"00000000\","] {
            let err = replay_bytes::<()>(bytes, Path::new("x"), false).unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::NotAStore { .. }), "{err}");
        }
    }

    #[test]
    fn a_header_cut_short_or_only_blank_lines_are_an_empty_store() {
        let header = log(&[]);
        for bytes in [&b"\n\n"[..], &header[..10], &header[..header.len() - 1]] {
            let r = replay_bytes::<()>(bytes, Path::new("x"), false).unwrap();
            assert_eq!(r.index.len(), 0);
            let complete = bytes.len() == header.len() - 1;
            assert_eq!(r.has_header, complete, "{bytes:?}");
            assert_eq!(r.torn.is_some(), !complete);
        }
    }

    #[test]
    fn newer_version_is_refused_by_name() {
        let body = b"\"format\":\"tastypod\",\"version\":4}";
        let mut bytes = format!("{{\"c\":\"{:08x}\",", crc32fast::hash(body)).into_bytes();
        bytes.extend_from_slice(body);
        bytes.push(b'\n');
        let err = replay_bytes::<()>(&bytes, Path::new("x"), false).unwrap_err();
        assert!(matches!(
            err.kind(),
            ErrorKind::UnsupportedVersion { found: 4, .. }
        ));
    }

    #[test]
    fn lines_longer_than_a_chunk_are_read_whole() {
        let big = format!("\"{}\"", "x".repeat(CHUNK + 10));
        let bytes = log(&[("a", Some(&big)), ("b", Some("1"))]);
        let r = replay_hinted(&bytes[..], 0).unwrap();
        assert_eq!(r.index.len(), 2);
    }

    fn big_log(n: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        record::encode_header(&mut buf, None);
        for i in 0..n {
            let v = format!("{{\"i\":{i},\"pad\":\"{}\"}}", "p".repeat(60));
            record::encode_put(&mut buf, &format!("k{}", i % (n / 2)), v.as_bytes());
            if i % 7 == 0 {
                record::encode_del(&mut buf, &format!("k{}", (i * 13) % (n / 2)));
            }
        }
        buf
    }

    #[test]
    fn two_thread_replay_matches_one_thread() {
        let bytes = big_log(150_000);
        assert!(bytes.len() > 2 * CHUNK);
        let one = replay_hinted(&bytes[..], 0).unwrap();
        let two = replay_hinted(&bytes[..], bytes.len() as u64).unwrap();
        assert_eq!(contents(&one), contents(&two));
        assert_eq!(one.index.disk_bytes(), two.index.disk_bytes());
        assert_eq!(one.valid_len, two.valid_len);
        assert_eq!(two.valid_len, bytes.len() as u64);
    }

    #[test]
    fn two_thread_replay_reports_corruption_and_torn_tails() {
        let mut bytes = big_log(150_000);
        let len = bytes.len() as u64;
        let torn = replay_hinted(&bytes[..bytes.len() - 3], len).unwrap();
        assert!(torn.torn.is_some());
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x04;
        let err = replay_hinted(&bytes[..], len).unwrap_err();
        let line = 1 + bytes[..mid].iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(err.line(), Some(line));
    }
}

//! Replay: log bytes -> ordered map, with line numbers, byte offsets and the
//! torn-tail policy. It reads from any `Read` (a file, or a byte slice in
//! tests and fuzzers) and does no other I/O.
//!
//! Two stages: *decode* splits the bytes into lines, checks each checksum,
//! reads the key, hashes it and copies key and value text into an arena
//! block; *apply* runs the torn-tail/corruption state machine and builds the
//! index. For logs larger than one chunk the stages run on two threads,
//! connected by a bounded channel of decoded batches.

use crate::error::{Error, ErrorKind, Result, fail};
use crate::index::{Index, KeyHasher, Loc};
use crate::record::{self, FORMAT_VERSION, LineError, Record};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// Bytes read per call; a longer line makes the buffer grow to hold it.
const CHUNK: usize = 4 << 20;
/// At most this many damaged lines are listed in a report (all are counted).
const MAX_LISTED: usize = 100;
/// Decoded batches in flight between the two stages.
const IN_FLIGHT: usize = 4;

/// One line that is not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the start of the line.
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
}

/// The state rebuilt from a log.
#[derive(Debug)]
pub(crate) struct Replayed<V> {
    pub index: Index<V>,
    /// The length of the log up to the end of its last valid line.
    pub valid_len: u64,
    /// The length of all the bytes read.
    pub total_len: u64,
    /// The number of lines up to `valid_len`.
    pub valid_lines: u64,
    /// Bytes of the header and the current record of every live key.
    pub live_bytes: u64,
    /// Whether a header line was found (false only for an empty log).
    pub has_header: bool,
    pub torn: Option<TornTail>,
    /// Damaged lines skipped in salvage mode (the first `MAX_LISTED`).
    pub skipped: Vec<BadLine>,
    /// How many damaged lines were skipped in salvage mode.
    pub skipped_count: u64,
}

/// What the decode stage found on one line.
#[derive(Debug)]
enum Found {
    Blank,
    Header(u64),
    /// Key and value bytes at `at` in the batch's block.
    Put {
        hash: u64,
        at: u32,
        key_len: u32,
        value_len: u32,
    },
    Del {
        hash: u64,
        at: u32,
        key_len: u32,
    },
    Bad(LineError),
}

#[derive(Debug)]
struct Event {
    line: u64,
    offset: u64,
    /// Offset just past the line (and its newline, if any).
    end: u64,
    found: Found,
}

/// Decoded lines, with their keys and values copied into `block`.
#[derive(Debug, Default)]
struct Batch {
    block: Vec<u8>,
    events: Vec<Event>,
}

/// The decode stage's state: line numbering and the hasher.
struct Decoder {
    hasher: KeyHasher,
    line_no: u64,
}

impl Decoder {
    fn decode(&mut self, batch: &mut Batch, line: &[u8], offset: u64, terminated: bool) {
        self.line_no += 1;
        let end = offset + line.len() as u64 + u64::from(terminated);
        let found = if !terminated {
            Found::Bad(LineError::Unterminated)
        } else if line.is_empty() {
            Found::Blank
        } else {
            match record::decode(line) {
                Ok(Record::Header { version }) if self.line_no == 1 => Found::Header(version),
                Ok(Record::Header { .. }) => {
                    Found::Bad(LineError::Malformed("header record after line 1"))
                }
                Ok(Record::Put { key, value }) => {
                    let at = batch.block.len() as u32;
                    batch.block.extend_from_slice(key.as_bytes());
                    batch.block.extend_from_slice(value);
                    Found::Put {
                        hash: self.hasher.hash(key.as_bytes()),
                        at,
                        key_len: key.len() as u32,
                        value_len: value.len() as u32,
                    }
                }
                Ok(Record::Del { key }) => {
                    let at = batch.block.len() as u32;
                    batch.block.extend_from_slice(key.as_bytes());
                    Found::Del {
                        hash: self.hasher.hash(key.as_bytes()),
                        at,
                        key_len: key.len() as u32,
                    }
                }
                Err(_) if record::embeds_record(line) => Found::Bad(LineError::LostNewline),
                Err(e) => Found::Bad(e),
            }
        };
        batch.events.push(Event {
            line: self.line_no,
            offset,
            end,
            found,
        });
    }
}

/// The apply stage's state.
struct Applier<'p, V> {
    out: Replayed<V>,
    path: &'p Path,
    salvage: bool,
    /// Damaged lines not yet followed by a valid one.
    pending: Vec<BadLine>,
    pending_count: u64,
    /// A pending line is damage no crash can cause (see `LineError::LostNewline`).
    pending_hard: Option<BadLine>,
}

/// Replays a whole log held in memory.
#[cfg(test)]
pub(crate) fn replay_bytes<V>(bytes: &[u8], path: &Path, salvage: bool) -> Result<Replayed<V>> {
    replay(bytes, bytes.len() as u64, path, salvage)
}

/// Replays the log read from `reader`. `size_hint` (the file size) sizes the
/// map up front and picks one thread or two; `path` only names the file in
/// errors.
pub(crate) fn replay<V>(
    reader: impl Read + Send,
    size_hint: u64,
    path: &Path,
    salvage: bool,
) -> Result<Replayed<V>> {
    let estimate = usize::try_from(size_hint / 100).unwrap_or(0);
    let index = Index::with_capacity(estimate);
    let mut decoder = Decoder {
        hasher: index.hasher(),
        line_no: 0,
    };
    let mut applier = Applier {
        out: Replayed {
            index,
            valid_len: 0,
            total_len: 0,
            valid_lines: 0,
            live_bytes: 0,
            has_header: false,
            torn: None,
            skipped: Vec::new(),
            skipped_count: 0,
        },
        path,
        salvage,
        pending: Vec::new(),
        pending_count: 0,
        pending_hard: None,
    };
    let buf_len = usize::try_from(size_hint).map_or(CHUNK, |n| n.clamp(4096, CHUNK));
    let total_len = if size_hint <= CHUNK as u64 {
        read_batches(reader, buf_len, &mut decoder, path, |batch| {
            applier.apply(batch)
        })?
    } else {
        let (tx, rx) = mpsc::sync_channel::<Batch>(IN_FLIGHT);
        std::thread::scope(|scope| {
            let reading = scope.spawn(move || {
                // A send fails only when the apply stage stopped on an error,
                // which it reports itself.
                read_batches(reader, buf_len, &mut decoder, path, |batch| {
                    tx.send(batch).map_err(|_| stopped())
                })
            });
            for batch in rx.iter() {
                if let Err(e) = applier.apply(batch) {
                    drop(rx);
                    return Err(e);
                }
            }
            reading.join().unwrap_or_else(|_| Err(stopped()))
        })?
    };
    applier.out.total_len = total_len;
    applier.finish()
}

fn stopped() -> Error {
    Error::io(
        "replay",
        Path::new(""),
        io::Error::other("replay stage stopped"),
    )
}

/// Reads `reader` to the end, decoding complete lines into one batch per
/// chunk read and handing each to `sink`; returns the number of bytes read.
fn read_batches(
    mut reader: impl Read,
    buf_len: usize,
    decoder: &mut Decoder,
    path: &Path,
    mut sink: impl FnMut(Batch) -> Result<()>,
) -> Result<u64> {
    let mut buf = vec![0u8; buf_len];
    // `buf[start..end]` holds bytes read but not yet split into lines;
    // `base` is the file offset of `buf[0]`.
    let (mut start, mut end, mut base) = (0usize, 0usize, 0u64);
    loop {
        if end == buf.len() {
            if start > 0 {
                buf.copy_within(start..end, 0);
                end -= start;
                base += start as u64;
                start = 0;
            } else {
                buf.resize(buf.len() * 2, 0);
            }
        }
        let n = match reader.read(&mut buf[end..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", path, e)),
        };
        let scan_from = end;
        end += n;
        let mut batch = Batch {
            block: Vec::with_capacity(end - start),
            events: Vec::new(),
        };
        let mut cut = start;
        for nl in memchr::memchr_iter(b'\n', &buf[scan_from..end]) {
            let nl = scan_from + nl;
            decoder.decode(&mut batch, &buf[cut..nl], base + cut as u64, true);
            cut = nl + 1;
        }
        start = cut;
        if !batch.events.is_empty() {
            sink(batch)?;
        }
    }
    if start < end {
        let mut batch = Batch::default();
        decoder.decode(&mut batch, &buf[start..end], base + start as u64, false);
        sink(batch)?;
    }
    Ok(base + end as u64)
}

impl<V> Applier<'_, V> {
    fn apply(&mut self, batch: Batch) -> Result<()> {
        let Batch { block, events } = batch;
        let block_no = self.out.index.adopt_block(block);
        for ev in events {
            self.apply_event(ev, block_no)?;
        }
        Ok(())
    }

    fn apply_event(&mut self, ev: Event, block: u32) -> Result<()> {
        if !self.out.has_header {
            return self.apply_header(ev);
        }
        let line = u32::try_from(ev.line).unwrap_or(u32::MAX);
        match ev.found {
            Found::Blank => {
                // Blank lines are allowed (JSON-lines readers skip them).
                if self.pending.is_empty() {
                    self.out.valid_len = ev.end;
                    self.out.valid_lines = ev.line;
                }
                return Ok(());
            }
            Found::Bad(e) => {
                if e == LineError::LostNewline && self.pending_hard.is_none() {
                    self.pending_hard = Some(BadLine {
                        line: ev.line,
                        offset: ev.offset,
                        reason: e.to_string(),
                    });
                }
                self.bad(ev.line, ev.offset, e.to_string());
                return Ok(());
            }
            Found::Header(_) => {
                self.bad(ev.line, ev.offset, "header record after line 1".into());
                return Ok(());
            }
            Found::Put {
                hash,
                at,
                key_len,
                value_len,
            } => {
                self.clear_pending()?;
                let out = &mut self.out;
                let key = Loc {
                    block,
                    offset: at,
                    len: key_len,
                };
                let value = Loc {
                    block,
                    offset: at + key_len,
                    len: value_len,
                };
                // put_len(key, n) == put_len(key, 0) + n
                let framing = record::put_len(key_str(&out.index, key), 0);
                let old = out.index.put_loc(hash, key, value, line);
                if let Some(Some(old)) = old {
                    out.live_bytes -= framing + old as u64;
                }
                out.live_bytes += framing + u64::from(value_len);
            }
            Found::Del { hash, at, key_len } => {
                self.clear_pending()?;
                let out = &mut self.out;
                let key = Loc {
                    block,
                    offset: at,
                    len: key_len,
                };
                let key = key_str(&out.index, key).to_string();
                if let Some(Some(old)) = out.index.remove_hashed(hash, key.as_bytes()) {
                    out.live_bytes -= record::put_len(&key, old);
                }
            }
        }
        self.out.valid_len = ev.end;
        self.out.valid_lines = ev.line;
        Ok(())
    }

    fn apply_header(&mut self, ev: Event) -> Result<()> {
        let not_a_store = |reason: String| {
            fail(ErrorKind::NotAStore {
                path: self.path.to_path_buf(),
                reason,
            })
        };
        match ev.found {
            Found::Header(version) if version == FORMAT_VERSION => {
                self.out.has_header = true;
                self.out.valid_len = ev.end;
                self.out.valid_lines = 1;
                self.out.live_bytes = ev.end;
                Ok(())
            }
            Found::Header(version) => fail(ErrorKind::UnsupportedVersion {
                path: self.path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            }),
            Found::Bad(LineError::Unterminated) => not_a_store("first line is incomplete".into()),
            Found::Bad(e) => not_a_store(format!("first line: {e}")),
            _ => not_a_store("first line is not a header record".into()),
        }
    }

    fn bad(&mut self, line: u64, offset: u64, reason: String) {
        self.pending_count += 1;
        if self.pending.len() < MAX_LISTED {
            self.pending.push(BadLine {
                line,
                offset,
                reason,
            });
        }
    }

    /// A valid record follows the pending damaged lines: they are corruption.
    fn clear_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if !self.salvage {
            let first = self.pending.swap_remove(0);
            return fail(ErrorKind::Corrupt {
                path: self.path.to_path_buf(),
                line: first.line,
                offset: first.offset,
                reason: first.reason,
            });
        }
        let room = MAX_LISTED.saturating_sub(self.out.skipped.len());
        let listed = self.pending.drain(..).take(room);
        self.out.skipped.extend(listed);
        self.out.skipped_count += self.pending_count;
        self.pending.clear();
        self.pending_count = 0;
        self.pending_hard = None;
        Ok(())
    }

    fn finish(mut self) -> Result<Replayed<V>> {
        // Damage no crash can cause is corruption even at the end of the log.
        if let Some(hard) = self.pending_hard.take() {
            if !self.salvage {
                return fail(ErrorKind::Corrupt {
                    path: self.path.to_path_buf(),
                    line: hard.line,
                    offset: hard.offset,
                    reason: hard.reason,
                });
            }
            self.clear_pending()?;
            return Ok(self.out);
        }
        if let Some(first) = self.pending.first().cloned() {
            self.out.torn = Some(TornTail {
                bytes: self.out.total_len - first.offset,
                lines: self.pending_count,
                first,
            });
        }
        Ok(self.out)
    }
}

/// What [`apply_tail`] found after a log's known end.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    /// Bytes of complete, valid lines applied (counted from the known end).
    pub valid_len: u64,
    /// Lines applied.
    pub lines: u64,
    /// Keys whose records were applied.
    pub changed: Vec<String>,
    /// Whether damaged lines with no valid line after them follow.
    pub torn: bool,
    /// Whether a removal was applied (slots may hold a re-inserted key).
    pub removed: bool,
}

/// Applies the records in `bytes` (appended to a log after byte `start`,
/// line `lines`) to `index`, keeping `live_bytes` up to date.
pub(crate) fn apply_tail<V>(
    index: &mut Index<V>,
    bytes: &[u8],
    start: u64,
    lines: u64,
    live_bytes: &mut u64,
    path: &Path,
) -> Result<Tail> {
    let mut tail = Tail::default();
    let mut pending: Option<BadLine> = None;
    let mut at = 0usize;
    let mut line_no = lines;
    while at < bytes.len() {
        line_no += 1;
        let rest = bytes.get(at..).unwrap_or_default();
        let Some(nl) = memchr::memchr(b'\n', rest) else {
            tail.torn = true;
            break;
        };
        let line = rest.get(..nl).unwrap_or_default();
        let offset = start + at as u64;
        at += nl + 1;
        if line.is_empty() {
            if pending.is_none() {
                tail.valid_len = at as u64;
                tail.lines = line_no - lines;
            }
            continue;
        }
        let rec = match record::decode(line) {
            Ok(Record::Header { .. }) => Err("header record after line 1".to_string()),
            Ok(rec) => Ok(rec),
            // Damage no crash can cause is corruption even at the end.
            Err(_) if record::embeds_record(line) => {
                return fail(ErrorKind::Corrupt {
                    path: path.to_path_buf(),
                    line: line_no,
                    offset,
                    reason: LineError::LostNewline.to_string(),
                });
            }
            Err(e) => Err(e.to_string()),
        };
        match rec {
            Err(reason) => {
                pending.get_or_insert(BadLine {
                    line: line_no,
                    offset,
                    reason,
                });
            }
            Ok(rec) => {
                if let Some(bad) = pending.take() {
                    return fail(ErrorKind::Corrupt {
                        path: path.to_path_buf(),
                        line: bad.line,
                        offset: bad.offset,
                        reason: bad.reason,
                    });
                }
                let line32 = u32::try_from(line_no).unwrap_or(u32::MAX);
                match rec {
                    Record::Put { key, value } => {
                        if let Some(Some(old)) = index.put_text(&key, value, line32) {
                            *live_bytes -= record::put_len(&key, old);
                        }
                        *live_bytes += record::put_len(&key, value.len());
                        tail.changed.push(key.into_owned());
                    }
                    Record::Del { key } => {
                        if let Some(Some(old)) = index.remove(&key) {
                            *live_bytes -= record::put_len(&key, old);
                        }
                        tail.removed = true;
                        tail.changed.push(key.into_owned());
                    }
                    Record::Header { .. } => {}
                }
                tail.valid_len = at as u64;
                tail.lines = line_no - lines;
            }
        }
    }
    tail.torn |= pending.is_some();
    Ok(tail)
}

/// The key at `loc`, which the decode stage copied from a `&str`.
fn key_str<V>(index: &Index<V>, loc: Loc) -> &str {
    std::str::from_utf8(index.bytes(loc)).unwrap_or_default()
}

/// The path a damaged log is moved to by salvage: `<log>.damaged-<unix secs>[-n]`.
pub(crate) fn damaged_name(log: &Path, unix_secs: u64, n: u32) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(format!(".damaged-{unix_secs}"));
    if n > 0 {
        name.push(format!("-{n}"));
    }
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ValueRef;

    fn log(records: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut buf = Vec::new();
        record::encode_header(&mut buf);
        for (k, v) in records {
            match v {
                Some(v) => record::encode_put(&mut buf, k, v.as_bytes()),
                None => record::encode_del(&mut buf, k),
            }
        }
        buf
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
        record::encode_header(&mut expect);
        record::encode_put(&mut expect, "a", b"22");
        assert_eq!(r.live_bytes, expect.len() as u64);
    }

    #[test]
    fn replay_truncates_torn_final_line() {
        let full = log(&[("a", Some("1")), ("b", Some("2"))]);
        let good = log(&[("a", Some("1"))]);
        for cut in good.len() + 1..full.len() {
            let r = replay_bytes::<()>(&full[..cut], Path::new("x"), false).unwrap();
            assert_eq!(contents(&r), pairs(&[("a", "1")]), "cut {cut}");
            assert_eq!(r.valid_len, good.len() as u64);
            let torn = r.torn.unwrap();
            assert_eq!(torn.first.line, 3);
            assert_eq!(torn.bytes, (cut - good.len()) as u64);
        }
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
        for bytes in [&b"\n"[..], b"hello\n", b"\0\0\0", b"{\"c\":\"00000000\","] {
            let err = replay_bytes::<()>(bytes, Path::new("x"), false).unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::NotAStore { .. }), "{err}");
        }
    }

    #[test]
    fn newer_version_is_refused_by_name() {
        let body = b"\"format\":\"tastypod\",\"version\":2}";
        let mut bytes = format!("{{\"c\":\"{:08x}\",", crc32fast::hash(body)).into_bytes();
        bytes.extend_from_slice(body);
        bytes.push(b'\n');
        let err = replay_bytes::<()>(&bytes, Path::new("x"), false).unwrap_err();
        assert!(matches!(
            err.kind(),
            ErrorKind::UnsupportedVersion { found: 2, .. }
        ));
    }

    #[test]
    fn lines_longer_than_a_chunk_are_read_whole() {
        let big = format!("\"{}\"", "x".repeat(CHUNK + 10));
        let bytes = log(&[("a", Some(&big)), ("b", Some("1"))]);
        let r = replay::<()>(&bytes[..], 0, Path::new("x"), false).unwrap();
        assert_eq!(r.index.len(), 2);
    }

    fn big_log(n: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        record::encode_header(&mut buf);
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
        let one = replay::<()>(&bytes[..], 0, Path::new("x"), false).unwrap();
        let two = replay::<()>(&bytes[..], bytes.len() as u64, Path::new("x"), false).unwrap();
        assert_eq!(contents(&one), contents(&two));
        assert_eq!(one.live_bytes, two.live_bytes);
        assert_eq!(one.valid_len, two.valid_len);
        assert_eq!(two.valid_len, bytes.len() as u64);
    }

    #[test]
    fn two_thread_replay_reports_corruption_and_torn_tails() {
        let mut bytes = big_log(150_000);
        let len = bytes.len() as u64;
        let torn = replay::<()>(&bytes[..bytes.len() - 3], len, Path::new("x"), false).unwrap();
        assert!(torn.torn.is_some());
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x04;
        let err = replay::<()>(&bytes[..], len, Path::new("x"), false).unwrap_err();
        let line = 1 + bytes[..mid].iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(err.line(), Some(line));
    }
}

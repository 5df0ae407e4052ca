//! Splits a log into jobs of whole lines, holding at most one line of at
//! most the maximum record size plus a fixed buffer, whatever the damage:
//! a line that holds a NUL byte (no record does) or that grows past the
//! maximum record size is counted as it streams by, not buffered.

use crate::error::{Error, Result};
use std::io::{self, Read};
use std::path::Path;

/// Bytes read per job (a line longer than this makes one job of its own).
pub(crate) const CHUNK: usize = 1 << 20;

/// Bytes asked for per read.
const READ: usize = 256 << 10;

/// One line of the log.
#[derive(Debug)]
pub(crate) struct Line<'a> {
    /// 1-based line number.
    pub no: u64,
    /// Byte offset of the line's start.
    pub offset: u64,
    /// Byte offset just past the line (and its newline, if any).
    pub end: u64,
    /// Whether the line ends with a newline (only the last line may not).
    pub terminated: bool,
    pub held: Held<'a>,
}

/// What of a line is in memory.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Held<'a> {
    /// The whole line, without its newline.
    Whole(&'a [u8]),
    /// A line too long to hold: longer than the buffer, and holding a NUL
    /// byte or longer than the maximum record size.
    Streamed {
        /// The bytes before the line's first NUL, if they are no longer than
        /// the maximum record size.
        head: Option<&'a [u8]>,
        /// The position in the line of its first NUL byte, if any.
        first_nul: Option<u64>,
        /// The non-NUL bytes after `head` (all of the line's if `head` is `None`).
        nonzero_after: u64,
        /// The line starts with a checksum field and the checksum of the
        /// rest matches it: a record written whole, however long.
        checksum_holds: bool,
    },
}

/// A line being streamed past.
#[derive(Debug)]
struct Streamed {
    head: Option<Vec<u8>>,
    first_nul: Option<u64>,
    nonzero_after: u64,
    /// The checksum the line starts with and the checksum of its body so
    /// far, while the line may still be a record (no NUL byte seen).
    crc: Option<(u32, crc32fast::Hasher)>,
    /// The line's length so far, newline excluded.
    len: u64,
    terminated: bool,
}

/// Whole lines of the log, in order, as they were read: either the bytes
/// of complete lines (the last line of the log may lack its newline), or
/// one line streamed past.
#[derive(Debug)]
pub(crate) struct Job {
    bytes: Vec<u8>,
    /// The file offset of the first line.
    offset: u64,
    /// The number of the first line.
    first_line: u64,
    streamed: Option<Streamed>,
}

impl Job {
    /// The bytes of the job's lines in memory.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The file offset of the job's first byte.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The job's bytes, as they are in the file from [`offset`](Self::offset),
    /// unless it streamed a line past (whose bytes were not kept).
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        self.streamed.is_none().then_some(&self.bytes[..])
    }

    /// The job's lines, in order.
    pub(crate) fn lines(&self) -> Lines<'_> {
        Lines {
            job: self,
            at: 0,
            no: self.first_line,
            streamed_done: false,
        }
    }
}

/// The lines of a [`Job`].
pub(crate) struct Lines<'a> {
    job: &'a Job,
    at: usize,
    no: u64,
    streamed_done: bool,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        let job = self.job;
        if let Some(s) = &job.streamed {
            if self.streamed_done {
                return None;
            }
            self.streamed_done = true;
            return Some(Line {
                no: job.first_line,
                offset: job.offset,
                end: job.offset + s.len + u64::from(s.terminated),
                terminated: s.terminated,
                held: Held::Streamed {
                    head: s.head.as_deref(),
                    first_nul: s.first_nul,
                    nonzero_after: s.nonzero_after,
                    checksum_holds: s
                        .crc
                        .as_ref()
                        .is_some_and(|(stored, h)| h.clone().finalize() == *stored),
                },
            });
        }
        let rest = job.bytes.get(self.at..)?;
        if rest.is_empty() {
            return None;
        }
        let start = self.at;
        if rest.first() == Some(&b'\n') {
            // A run of blank lines is one line to the rules (a blank line
            // only moves the valid end on): the last of the run stands for
            // all, so a run costs its bytes, not a line's work each.
            let run = newline_run(rest);
            self.at += run;
            self.no += run as u64;
            return Some(Line {
                no: self.no - 1,
                offset: job.offset + self.at as u64 - 1,
                end: job.offset + self.at as u64,
                terminated: true,
                held: Held::Whole(&[]),
            });
        }
        let (bytes, terminated) = match memchr::memchr(b'\n', rest) {
            Some(nl) => (&rest[..nl], true),
            None => (rest, false),
        };
        self.at += bytes.len() + usize::from(terminated);
        let line = Line {
            no: self.no,
            offset: job.offset + start as u64,
            end: job.offset + self.at as u64,
            terminated,
            held: Held::Whole(bytes),
        };
        self.no += 1;
        Some(line)
    }
}

/// The eight-byte word with every byte `byte`.
const fn splat(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

/// How many bytes `bytes` starts with that are newlines (a word at a time).
fn newline_run(bytes: &[u8]) -> usize {
    let mut n = 0;
    for word in bytes.chunks_exact(8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        if u64::from_ne_bytes(w) != splat(b'\n') {
            break;
        }
        n += 8;
    }
    n + bytes
        .get(n..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&b| b == b'\n')
        .count()
}

/// How many newlines `bytes` holds (a word at a time: a log may hold long
/// runs of them).
fn count_newlines(bytes: &[u8]) -> u64 {
    const LOW7: u64 = splat(0x7f);
    let words = bytes.chunks_exact(8);
    let mut n = memchr::memchr_iter(b'\n', words.remainder()).count() as u64;
    for word in words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        // A byte of `y` is zero where the word holds a newline; `!(t | LOW7)`
        // has the high bit of exactly those bytes.
        let y = u64::from_ne_bytes(w) ^ splat(b'\n');
        let t = ((y & LOW7).wrapping_add(LOW7)) | y;
        n += u64::from((!(t | LOW7)).count_ones());
    }
    n
}

/// How many bytes of `bytes` are not NUL (a word at a time: runs of NUL
/// bytes can be long).
pub(crate) fn nonzero(bytes: &[u8]) -> u64 {
    let words = bytes.chunks_exact(8);
    let rest = words.remainder();
    let mut n = rest.iter().filter(|&&b| b != 0).count() as u64;
    for word in words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        if u64::from_ne_bytes(w) != 0 {
            n += word.iter().filter(|&&b| b != 0).count() as u64;
        }
    }
    n
}

/// Reads jobs of lines from `R`; see the module docs.
pub(crate) struct LineReader<'p, R> {
    reader: R,
    path: &'p Path,
    max_record: usize,
    /// `buf[..end]` is read but not yet handed out, and starts at a line's
    /// start; the rest of `buf` is room for the next reads.
    buf: Vec<u8>,
    end: usize,
    /// The file offset of `buf[0]`.
    base: u64,
    /// The lines handed out.
    lines: u64,
    /// `buf[..nl_scanned]` holds no newline.
    nl_scanned: usize,
    /// `buf[..nul_scanned]` was searched for NUL bytes; the first found.
    nul_scanned: usize,
    nul_at: Option<usize>,
    streaming: Option<Streamed>,
    eof: bool,
    /// The size of a job's buffer.
    chunk: usize,
    /// Buffers of jobs done with, to read into again (no zeroing, no page
    /// faults).
    recycled: Option<std::sync::mpsc::Receiver<Vec<u8>>>,
}

impl Job {
    /// The job's buffer, to be read into again.
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.bytes
    }
}

impl<'p, R: Read> LineReader<'p, R> {
    /// A reader of the log read from `reader`, whose first byte is at file
    /// offset `offset` and starts line `lines + 1`; `path` names it in errors.
    pub(crate) fn new(
        reader: R,
        path: &'p Path,
        max_record: usize,
        offset: u64,
        lines: u64,
    ) -> Self {
        LineReader {
            reader,
            path,
            max_record,
            buf: Vec::new(),
            end: 0,
            base: offset,
            lines,
            nl_scanned: 0,
            nul_scanned: 0,
            nul_at: None,
            streaming: None,
            eof: false,
            chunk: CHUNK,
            recycled: None,
        }
    }

    /// Reads into the buffers sent back on `recycled` when there are some.
    pub(crate) fn recycle_from(&mut self, recycled: std::sync::mpsc::Receiver<Vec<u8>>) {
        self.recycled = Some(recycled);
    }

    /// A buffer of at least `len` bytes: a recycled one if there is one.
    fn buffer(&mut self, len: usize) -> Vec<u8> {
        match self.recycled.as_ref().and_then(|r| r.try_recv().ok()) {
            Some(mut buf) => {
                let cap = buf.capacity();
                // Keep what is initialised; grow only if too small.
                buf.resize(cap.max(len), 0);
                buf.truncate(cap.max(len));
                buf
            }
            None => vec![0; len],
        }
    }

    /// Reads jobs of `bytes` (at least 1) instead of [`CHUNK`]: tests and
    /// fuzzers use tiny ones, so that every line crosses a job's end.
    pub(crate) fn chunk(mut self, bytes: usize) -> Self {
        self.chunk = bytes.max(1);
        self
    }

    /// The offset just past everything handed out.
    pub(crate) fn position(&self) -> u64 {
        self.base
    }

    /// Reads into the room after `end`; returns the bytes read.
    fn fill(&mut self) -> Result<usize> {
        let room = &mut self.buf[self.end..];
        let limit = room.len().min(READ.max(self.chunk));
        let room = &mut room[..limit];
        loop {
            match self.reader.read(room) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", self.path, e)),
            }
        }
    }

    /// The next job of lines, or `None` at the end of the input.
    pub(crate) fn next_job(&mut self) -> Result<Option<Job>> {
        loop {
            if self.streaming.is_some() {
                if let Some(job) = self.stream()? {
                    return Ok(Some(job));
                }
                continue;
            }
            if self.eof {
                return Ok(self.take_all());
            }
            if self.buf.is_empty() {
                self.buf = vec![0; self.chunk];
            }
            if self.end == self.buf.len() {
                // A line fills the buffer: grow it, or stream past the line.
                self.note_nuls();
                if self.nul_at.is_some() || self.end > self.max_record {
                    self.start_streaming();
                    continue;
                }
                let grown = (self.end * 2).min(self.max_record.saturating_add(1));
                self.buf.resize(grown.max(self.end + 1), 0);
            }
            if self.fill()? == 0 {
                self.eof = true;
                continue;
            }
            // Hand out the complete lines once the buffer is full.
            if self.end < self.buf.len() {
                continue;
            }
            let from = self.nl_scanned;
            match memchr::memrchr(b'\n', &self.buf[from..self.end]) {
                Some(last) => return Ok(Some(self.take(from + last + 1))),
                None => self.nl_scanned = self.end,
            }
        }
    }

    /// Hands out `buf[..cut]` (complete lines) as a job; the rest starts a
    /// new buffer.
    fn take(&mut self, cut: usize) -> Job {
        let kept = self.end - cut;
        let mut rest = self.buffer(self.chunk.max(kept));
        rest[..kept].copy_from_slice(&self.buf[cut..self.end]);
        let mut bytes = std::mem::replace(&mut self.buf, rest);
        bytes.truncate(cut);
        let job = self.job_of(bytes);
        self.end = kept;
        // What was kept is the start of a line: it holds no newline.
        self.nl_scanned = kept;
        job
    }

    /// Hands out everything buffered (at the end of the input).
    fn take_all(&mut self) -> Option<Job> {
        if self.end == 0 {
            return None;
        }
        let mut bytes = std::mem::take(&mut self.buf);
        bytes.truncate(self.end);
        self.end = 0;
        Some(self.job_of(bytes))
    }

    fn job_of(&mut self, bytes: Vec<u8>) -> Job {
        let newlines = count_newlines(&bytes);
        let unterminated = u64::from(bytes.last().is_some_and(|&b| b != b'\n'));
        let job = Job {
            offset: self.base,
            first_line: self.lines + 1,
            streamed: None,
            bytes,
        };
        self.base += job.bytes.len() as u64;
        self.lines += newlines + unterminated;
        self.nl_scanned = 0;
        self.nul_scanned = 0;
        self.nul_at = None;
        job
    }

    /// Notes where the partial line in `buf` has its first NUL byte.
    fn note_nuls(&mut self) {
        if self.nul_at.is_none() {
            let from = self.nul_scanned.min(self.end);
            self.nul_at = memchr::memchr(0, &self.buf[from..self.end]).map(|p| from + p);
        }
        self.nul_scanned = self.end;
    }

    /// Starts streaming past the partial line in `buf`, which has no newline.
    fn start_streaming(&mut self) {
        let line = &self.buf[..self.end];
        let head_len = self.nul_at.unwrap_or(line.len());
        let head = (head_len <= self.max_record).then(|| line[..head_len].to_vec());
        let after = if head.is_some() { head_len } else { 0 };
        let crc = match self.nul_at {
            None => crate::record::checksum_start(line),
            Some(_) => None,
        };
        self.streaming = Some(Streamed {
            head,
            crc,
            first_nul: self.nul_at.map(|p| p as u64),
            nonzero_after: nonzero(&line[after..]),
            len: line.len() as u64,
            terminated: false,
        });
        if self.buf.len() > self.chunk {
            self.buf = vec![0; self.chunk];
        }
        self.end = 0;
        self.nl_scanned = 0;
        self.nul_scanned = 0;
        self.nul_at = None;
    }

    /// Reads on past a streamed line; returns its job once it ends.
    fn stream(&mut self) -> Result<Option<Job>> {
        self.end = 0;
        let n = self.fill()?;
        let Some(mut s) = self.streaming.take() else {
            return Ok(None);
        };
        let read = &self.buf[..n];
        let nl = memchr::memchr(b'\n', read);
        let part = &read[..nl.unwrap_or(n)];
        s.nonzero_after += nonzero(part);
        if s.first_nul.is_none() {
            s.first_nul = memchr::memchr(0, part).map(|p| s.len + p as u64);
        }
        match (&mut s.crc, s.first_nul) {
            (Some((_, hasher)), None) => hasher.update(part),
            _ => s.crc = None,
        }
        s.len += part.len() as u64;
        let ended = match nl {
            Some(nl) => {
                s.terminated = true;
                self.buf.copy_within(nl + 1..n, 0);
                self.end = n - nl - 1;
                true
            }
            None => {
                self.end = 0;
                n == 0
            }
        };
        if !ended {
            self.streaming = Some(s);
            return Ok(None);
        }
        self.eof |= n == 0;
        let job = Job {
            bytes: Vec::new(),
            offset: self.base,
            first_line: self.lines + 1,
            streamed: Some(s),
        };
        self.base += job
            .streamed
            .as_ref()
            .map_or(0, |s| s.len + u64::from(s.terminated));
        self.lines += 1;
        Ok(Some(job))
    }
}

#[cfg(test)]
mod tests {
    use super::{count_newlines, newline_run};

    #[test]
    fn newlines_are_counted_a_word_at_a_time() {
        for text in [
            &b""[..],
            b"\n",
            b"a\nb\n\n\n\n\n\n\n\n\n\nc\x8a\x0a\xff\n",
            b"\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\nxyz",
        ] {
            let slow = text.iter().filter(|&&b| b == b'\n').count() as u64;
            assert_eq!(count_newlines(text), slow);
            let run = text.iter().take_while(|&&b| b == b'\n').count();
            assert_eq!(newline_run(text), run);
        }
        for byte in 0..=255u8 {
            for pos in 0..9 {
                let mut word = [b'x'; 9];
                word[pos] = byte;
                let slow = word.iter().filter(|&&b| b == b'\n').count() as u64;
                assert_eq!(count_newlines(&word), slow, "{byte:#x} at {pos}");
            }
        }
    }
}

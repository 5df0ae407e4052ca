//! Splits a log into lines, holding at most one line of at most the maximum
//! record size plus a fixed buffer, whatever the damage: a line that holds
//! a NUL byte (no record does) or that grows past the maximum record size
//! is counted as it streams by, not buffered.

use crate::error::{Error, Result};
use std::io::{self, Read};
use std::path::Path;

/// Bytes read per call, and the size the buffer returns to after a long line.
pub(crate) const CHUNK: usize = 4 << 20;

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
#[derive(Debug)]
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
    },
}

/// The part of a line being streamed past.
#[derive(Debug)]
struct Streaming {
    no: u64,
    offset: u64,
    len: u64,
    head: Option<Vec<u8>>,
    first_nul: Option<u64>,
    nonzero_after: u64,
}

/// Reads lines from `R`; see the module docs.
pub(crate) struct LineReader<'p, R> {
    reader: R,
    path: &'p Path,
    max_record: usize,
    buf: Vec<u8>,
    /// `buf[start..end]` is read but not yet split into lines; `base` is
    /// the file offset of `buf[0]`.
    start: usize,
    end: usize,
    base: u64,
    /// How far the partial line at `start` was checked for NUL bytes.
    nul_checked: usize,
    /// The number of lines emitted.
    line_no: u64,
    streaming: Option<Streaming>,
    done: bool,
}

impl<'p, R: Read> LineReader<'p, R> {
    /// A reader of the log read from `reader`, whose first byte is at file
    /// offset `offset` and starts line `lines + 1`; `path` names it in errors.
    pub(crate) fn new(
        reader: R,
        path: &'p Path,
        max_record: usize,
        size_hint: u64,
        offset: u64,
        lines: u64,
    ) -> Self {
        let cap = usize::try_from(size_hint).map_or(CHUNK, |n| n.clamp(4096, CHUNK));
        LineReader {
            reader,
            path,
            max_record,
            buf: vec![0; cap],
            start: 0,
            end: 0,
            base: offset,
            nul_checked: 0,
            line_no: lines,
            streaming: None,
            done: false,
        }
    }

    /// The offset just past everything read.
    pub(crate) fn position(&self) -> u64 {
        self.base + self.end as u64
    }

    /// Reads once and calls `f` on every line completed by what was read,
    /// in order (at the end of the input, on the last, unterminated line).
    /// Returns `false` once the input is exhausted.
    pub(crate) fn next_lines(&mut self, mut f: impl FnMut(Line<'_>) -> Result<()>) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        self.make_room();
        let n = loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", self.path, e)),
            }
        };
        if n == 0 {
            self.done = true;
            return self.finish(f).map(|()| false);
        }
        let scan_from = self.end;
        self.end += n;
        let mut cut = self.start;
        if let Some(mut s) = self.streaming.take() {
            let new = &self.buf[scan_from..self.end];
            let nl = memchr::memchr(b'\n', new);
            let part = &new[..nl.unwrap_or(new.len())];
            s.nonzero_after += part.iter().filter(|&&b| b != 0).count() as u64;
            if s.first_nul.is_none() {
                s.first_nul = memchr::memchr(0, part).map(|p| s.len + p as u64);
            }
            s.len += part.len() as u64;
            let Some(nl) = nl else {
                self.streaming = Some(s);
                self.start = self.end;
                return Ok(true);
            };
            f(streamed_line(&s, true))?;
            cut = scan_from + nl + 1;
        }
        let search_from = cut.max(scan_from);
        for nl in memchr::memchr_iter(b'\n', &self.buf[search_from..self.end]) {
            let nl = search_from + nl;
            self.line_no += 1;
            let offset = self.base + cut as u64;
            f(Line {
                no: self.line_no,
                offset,
                end: self.base + nl as u64 + 1,
                terminated: true,
                held: Held::Whole(&self.buf[cut..nl]),
            })?;
            cut = nl + 1;
        }
        if cut != self.start {
            self.nul_checked = 0;
        }
        self.start = cut;
        Ok(true)
    }

    /// Makes room in the buffer for the next read: moves the partial line
    /// to the front, grows the buffer for it, or starts streaming past it.
    fn make_room(&mut self) {
        if self.streaming.is_some() {
            self.start = 0;
            self.end = 0;
            self.base += self.end as u64;
            return;
        }
        if self.end < self.buf.len() {
            return;
        }
        let partial = self.end - self.start;
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.start = 0;
            self.end = partial;
            if partial < self.buf.len() {
                self.shrink();
                return;
            }
        }
        // The partial line fills the buffer.
        let line = &self.buf[..self.end];
        let first_nul = memchr::memchr(0, &line[self.nul_checked.min(line.len())..])
            .map(|p| self.nul_checked + p);
        self.nul_checked = line.len();
        if first_nul.is_none() && line.len() <= self.max_record {
            let grown = (self.buf.len() * 2).min(self.max_record.saturating_add(1));
            self.buf.resize(grown.max(self.buf.len() + 1), 0);
            return;
        }
        let head_len = first_nul.unwrap_or(line.len());
        let head = (head_len <= self.max_record).then(|| line[..head_len].to_vec());
        let after = if head.is_some() { head_len } else { 0 };
        let nonzero_after = line[after..].iter().filter(|&&b| b != 0).count() as u64;
        self.line_no += 1;
        self.streaming = Some(Streaming {
            no: self.line_no,
            offset: self.base,
            len: line.len() as u64,
            head,
            first_nul: first_nul.map(|p| p as u64),
            nonzero_after,
        });
        self.base += self.end as u64;
        self.start = 0;
        self.end = 0;
        self.nul_checked = 0;
        self.shrink();
    }

    /// Gives back the room a long line needed.
    fn shrink(&mut self) {
        if self.buf.len() > CHUNK && self.end <= CHUNK {
            self.buf.truncate(CHUNK);
            self.buf.shrink_to_fit();
        }
    }

    /// Emits the last line, which has no newline.
    fn finish(&mut self, mut f: impl FnMut(Line<'_>) -> Result<()>) -> Result<()> {
        if let Some(s) = self.streaming.take() {
            return f(streamed_line(&s, false));
        }
        if self.start == self.end {
            return Ok(());
        }
        self.line_no += 1;
        let line = Line {
            no: self.line_no,
            offset: self.base + self.start as u64,
            end: self.base + self.end as u64,
            terminated: false,
            held: Held::Whole(&self.buf[self.start..self.end]),
        };
        f(line)
    }
}

fn streamed_line(s: &Streaming, terminated: bool) -> Line<'_> {
    Line {
        no: s.no,
        offset: s.offset,
        end: s.offset + s.len + u64::from(terminated),
        terminated,
        held: Held::Streamed {
            head: s.head.as_deref(),
            first_nul: s.first_nul,
            nonzero_after: s.nonzero_after,
        },
    }
}

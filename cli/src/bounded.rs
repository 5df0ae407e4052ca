//! Reading input lines without letting one line take unbounded memory: a
//! line longer than the store's maximum record size could never be stored,
//! so it is refused as soon as that many bytes have been read, instead of
//! being buffered whole (a 400 MB line in a 400 KB gzip, or `/dev/zero`).

use std::io::{self, BufRead, Read};

/// The longest input line taken: a record of the default maximum size,
/// plus room for its key and punctuation.
pub const MAX_LINE: usize = tastypod::DEFAULT_MAX_RECORD_SIZE + (64 << 10);

/// Lines of `reader` without their `\n`, as bytes, each at most
/// [`MAX_LINE`] long.
pub struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
}

/// What went wrong reading a line.
pub enum LineError {
    Io(io::Error),
    TooLong,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::Io(e) => write!(f, "{e}"),
            LineError::TooLong => write!(
                f,
                "the line is longer than {} MiB, more than a record may hold",
                MAX_LINE >> 20
            ),
        }
    }
}

impl<R: BufRead> Lines<R> {
    pub fn new(reader: R) -> Self {
        Lines {
            reader,
            buf: Vec::new(),
        }
    }

    /// The next line, `None` at the end of the input.
    pub fn next_line(&mut self) -> Option<Result<&[u8], LineError>> {
        self.buf.clear();
        let limit = MAX_LINE as u64 + 1;
        match (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
        {
            Err(e) => Some(Err(LineError::Io(e))),
            Ok(0) => None,
            Ok(_) => {
                if self.buf.last() == Some(&b'\n') {
                    self.buf.pop();
                } else if self.buf.len() > MAX_LINE {
                    return Some(Err(LineError::TooLong));
                }
                Some(Ok(&self.buf))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_without_newlines_and_a_last_line_may_lack_one() {
        let mut lines = Lines::new(&b"a\n\nbc"[..]);
        let mut got = Vec::new();
        while let Some(line) = lines.next_line() {
            got.push(line.ok().map(<[u8]>::to_vec));
        }
        assert_eq!(
            got,
            [Some(b"a".to_vec()), Some(vec![]), Some(b"bc".to_vec())]
        );
    }

    #[test]
    fn an_endless_line_is_refused_after_max_line_bytes() {
        let mut lines = Lines::new(io::BufReader::new(io::repeat(b'x')));
        assert!(matches!(lines.next_line(), Some(Err(LineError::TooLong))));
        assert!(lines.buf.len() <= MAX_LINE + 1);
    }
}

//! The record format: encode and decode one line of the log.
//!
//! ```text
//! line        = prefix body LF
//! prefix      = '{"c":"' crc '",'          ; always 16 bytes
//! crc         = 8 lowercase hex digits      ; CRC-32 (IEEE, zlib's) of the bytes of `body`
//! body        = header / put / del
//! header      = '"format":"tastypod","version":' 1*DIGIT [',"settings":' object] '}'
//! batch       = '"batch":' count '}'       ; version 3: the next `count` lines are one sync
//! put         = '"k":' key ',"v":' value '}'
//! del         = '"k":' key ',"del":true}'
//! key         = a JSON string (RFC 8259), as serde_json writes it
//! value       = compact JSON text, as serde_json writes it (never a raw newline)
//! object      = a value that is a JSON object
//! ```
//!
//! This build writes version 3, whose syncs of more than one record are
//! framed by a batch line, so a sync is all or nothing; it reads versions 1
//! (no settings) and 2 (settings) as well, which hold no batch lines.
//!
//! The checksum comes first and the value last, so a reader can check a line
//! and find the value's bytes without parsing the value.

use crate::json;
use std::borrow::Cow;
use std::fmt;

/// The log format version this build writes: 3, whose syncs of several
/// records are framed by a batch line (all or nothing after a crash). It
/// reads versions 1 and 2 as well; a writable open rewrites such a log as
/// version 3.
pub const FORMAT_VERSION: u64 = 3;

/// The version of a log whose header holds no settings, before version 3.
pub(crate) const PLAIN_VERSION: u64 = 1;

/// The first version with batch lines.
pub(crate) const BATCH_VERSION: u64 = 3;

/// Length of `{"c":"xxxxxxxx",`.
const PREFIX_LEN: usize = 16;
const PREFIX_HEAD: &[u8] = b"{\"c\":\"";
const KEY_HEAD: &[u8] = b"\"k\":";
const VALUE_HEAD: &[u8] = b",\"v\":";
const DEL_TAIL: &[u8] = b",\"del\":true}";
const HEADER_HEAD: &[u8] = b"\"format\":\"tastypod\",\"version\":";
const SETTINGS_HEAD: &[u8] = b",\"settings\":";
const BATCH_HEAD: &[u8] = b"\"batch\":";

/// One decoded line.
#[derive(Debug, PartialEq)]
pub(crate) enum Record<'a> {
    /// The first line of every log, with the store's settings (a JSON
    /// object's text) in version 2.
    Header {
        version: u64,
        settings: Option<&'a [u8]>,
    },
    /// `key` now maps to the JSON text `value`.
    Put { key: Cow<'a, str>, value: &'a [u8] },
    /// `key` is removed.
    Del { key: Cow<'a, str> },
    /// The next `count` lines (at least 2) are the records of one sync
    /// (version 3).
    Batch { count: u64 },
}

/// Why a line is not a valid record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LineError {
    /// The line does not start with the checksum prefix.
    NoPrefix,
    /// The checksum field is not 8 lowercase hex digits.
    BadChecksumField,
    /// The stored checksum does not match the body.
    ChecksumMismatch { stored: u32, computed: u32 },
    /// The checksum matches but the body does not follow the grammar.
    Malformed(&'static str),
    /// The checksum matches but the value is not one valid JSON value.
    BadValue(String),
    /// A header record after the log's first record.
    LateHeader,
    /// The line holds a NUL byte (which no record contains) at this
    /// position in the line.
    Nul { at: u64 },
    /// The line is longer than the maximum record size.
    TooLong { len: u64, max: u64 },
    /// The line is longer than the maximum record size, and its checksum
    /// holds: a record written whole, which is never cut.
    OverMax { len: u64, max: u64 },
    /// A damaged line holds a complete, valid record followed by more
    /// bytes: a newline was damaged. A torn write cannot produce this.
    LostNewline,
    /// The last line has no newline and is not a complete record.
    Unterminated,
}

impl LineError {
    /// Whether a crash can leave this line at the end of a log. A line
    /// whose checksum matches (or that holds a record that does) was
    /// written whole, so it is never a torn write.
    pub(crate) fn checksum_holds(&self) -> bool {
        matches!(
            self,
            LineError::Malformed(_)
                | LineError::OverMax { .. }
                | LineError::BadValue(_)
                | LineError::LateHeader
                | LineError::LostNewline
        )
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::NoPrefix => f.write_str("line does not start with a checksum field"),
            LineError::BadChecksumField => f.write_str("checksum field is not 8 hex digits"),
            LineError::ChecksumMismatch { stored, computed } => write!(
                f,
                "bad checksum (stored {stored:08x}, computed {computed:08x})"
            ),
            LineError::Malformed(what) => write!(f, "malformed record: {what}"),
            LineError::BadValue(why) => write!(f, "the value is not one valid JSON value: {why}"),
            LineError::LateHeader => f.write_str("header record after the first record"),
            LineError::Nul { at } => write!(f, "NUL byte at column {}", at + 1),
            LineError::TooLong { len, max } => write!(
                f,
                "line of {len} bytes is longer than the maximum record size ({max} bytes)"
            ),
            LineError::OverMax { len, max } => write!(
                f,
                "a record of {len} bytes whose checksum holds is longer than the maximum \
                 record size ({max} bytes); open the store with a larger one \
                 (PodOptions::max_record_size, tastypod --max-record-size)"
            ),
            LineError::LostNewline => {
                f.write_str("a complete record runs into more bytes (its newline is damaged)")
            }
            LineError::Unterminated => f.write_str("incomplete line (no newline)"),
        }
    }
}

/// The length of the header line written for `settings`, its newline included.
pub(crate) fn header_len(settings: Option<&[u8]>) -> u64 {
    let settings = settings.map_or(0, |s| SETTINGS_HEAD.len() + s.len());
    (PREFIX_LEN + HEADER_HEAD.len() + 1 + settings + 1 + 1) as u64
}

/// The header line written for a store without settings, without its newline.
#[cfg(test)]
pub(crate) fn header_line() -> Vec<u8> {
    let mut buf = Vec::new();
    encode_header(&mut buf, None);
    buf.pop();
    buf
}

/// Whether `bytes` could be what a crash left of a header line: a prefix
/// of `{"c":"<8 hex digits>","format":"tastypod","version":`, or that
/// whole and more.
pub(crate) fn could_start_a_header(bytes: &[u8]) -> bool {
    let fixed_len = PREFIX_LEN + HEADER_HEAD.len();
    let head = bytes.get(..fixed_len).unwrap_or(bytes);
    !head.is_empty()
        && could_start_a_record(head)
        && head
            .get(PREFIX_LEN..)
            .is_none_or(|body| HEADER_HEAD.starts_with(body))
}

/// Decodes one line (without its newline): the checksum, the grammar, and
/// that the value is one valid JSON value ([`json::check`]).
pub(crate) fn decode(line: &[u8]) -> Result<Record<'_>, LineError> {
    let (stored, body) = split_checked(line)?;
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(LineError::ChecksumMismatch { stored, computed });
    }
    decode_body(body)
}

/// Whether `bytes` could be the start of a record as tastypod writes it
/// (what a crash can leave of one): a prefix of `{"c":"<8 hex digits>",`
/// followed by a prefix of `"k":"`, of the header's body or of a batch
/// line's body.
pub(crate) fn could_start_a_record(bytes: &[u8]) -> bool {
    let fixed = |have: &[u8], want: &[u8]| {
        let n = have.len().min(want.len());
        have.get(..n) == want.get(..n)
    };
    if !fixed(bytes, PREFIX_HEAD) {
        return false;
    }
    let digits = bytes.get(PREFIX_HEAD.len()..).unwrap_or_default();
    let hex = digits.iter().take(8);
    if !hex.clone().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return false;
    }
    let rest = digits.get(8..).unwrap_or_default();
    if !fixed(rest, b"\",") {
        return false;
    }
    let body = rest.get(2..).unwrap_or_default();
    fixed(body, b"\"k\":\"") || fixed(body, HEADER_HEAD) || fixed(body, BATCH_HEAD)
}

/// The byte ranges of the complete, valid records inside the damaged line
/// `line`, in order (its newlines were damaged, say), and whether the search
/// gave up before the end: a record can start at any `{"c":"` and end at
/// any `}`, so a hostile line could make the search quadratic; it stops
/// after looking at about 16 times the line's bytes.
pub(crate) fn embedded(line: &[u8]) -> (Vec<std::ops::Range<usize>>, bool) {
    let budget = 16 * line.len() as u64 + (1 << 20);
    let mut work = 0u64;
    let mut found = Vec::new();
    let mut pos = 0;
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(PREFIX_HEAD));
    while let Some(at) = line.get(pos..).and_then(|rest| FINDER.find(rest)) {
        let start = pos + at;
        let candidate = line.get(start..).unwrap_or_default();
        match record_end(candidate, &mut work) {
            Some(len) => {
                found.push(start..start + len);
                pos = start + len;
            }
            None => pos = start + 1,
        }
        if work > budget {
            return (found, true);
        }
    }
    (found, false)
}

/// The length of the valid record that starts `bytes` and is followed by
/// more bytes (or ends it), if there is one; adds the bytes looked at to `work`.
fn record_end(bytes: &[u8], work: &mut u64) -> Option<usize> {
    let (stored, body) = split_checked(bytes).ok()?;
    let mut hasher = crc32fast::Hasher::new();
    let mut done = 0;
    for j in memchr::memchr_iter(b'}', body) {
        *work += (j + 1 - done) as u64;
        let part = body.get(done..=j)?;
        hasher.update(part);
        done = j + 1;
        if hasher.clone().finalize() == stored {
            let record = body.get(..=j)?;
            *work += record.len() as u64;
            if decode_body(record).is_ok() {
                return Some(PREFIX_LEN + j + 1);
            }
        }
    }
    *work += (body.len() - done) as u64;
    None
}

/// The checksum the start of a line holds and the checksum of the rest of
/// `start`, to go on with the line's further bytes: `None` if the line
/// does not start with a checksum field.
pub(crate) fn checksum_start(start: &[u8]) -> Option<(u32, crc32fast::Hasher)> {
    let (stored, body) = split_checked(start).ok()?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(body);
    Some((stored, hasher))
}

/// Whether the line starts with a checksum field that matches the rest.
pub(crate) fn checksum_holds(line: &[u8]) -> bool {
    split_checked(line).is_ok_and(|(stored, body)| crc32fast::hash(body) == stored)
}

/// Splits a line into its stored checksum and its body.
fn split_checked(line: &[u8]) -> Result<(u32, &[u8]), LineError> {
    if line.len() < PREFIX_LEN || !line.starts_with(PREFIX_HEAD) {
        return Err(LineError::NoPrefix);
    }
    let (prefix, body) = line.split_at(PREFIX_LEN);
    if &prefix[14..] != b"\"," {
        return Err(LineError::NoPrefix);
    }
    let mut crc = 0u32;
    for &digit in &prefix[6..14] {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => return Err(LineError::BadChecksumField),
        };
        crc = (crc << 4) | u32::from(nibble);
    }
    Ok((crc, body))
}

fn decode_body(body: &[u8]) -> Result<Record<'_>, LineError> {
    if let Some(rest) = body.strip_prefix(KEY_HEAD) {
        let (key, rest) = split_key(rest)?;
        if rest == DEL_TAIL {
            return Ok(Record::Del { key });
        }
        let value = rest
            .strip_prefix(VALUE_HEAD)
            .and_then(|v| v.strip_suffix(b"}"))
            .ok_or(LineError::Malformed(
                "expected \"v\" or \"del\" after the key",
            ))?;
        if value.is_empty() {
            return Err(LineError::Malformed("empty value"));
        }
        json::check(value).map_err(|e| LineError::BadValue(e.to_string()))?;
        return Ok(Record::Put { key, value });
    }
    if let Some(rest) = body.strip_prefix(HEADER_HEAD) {
        return decode_header(rest);
    }
    if let Some(rest) = body.strip_prefix(BATCH_HEAD) {
        let count = rest
            .strip_suffix(b"}")
            .and_then(decimal)
            .filter(|&n| n >= 2)
            .ok_or(LineError::Malformed(
                "batch count is not a number of at least 2",
            ))?;
        return Ok(Record::Batch { count });
    }
    Err(LineError::Malformed(
        "expected a \"k\", \"format\" or \"batch\" field",
    ))
}

/// A decimal number without leading zeros.
fn decimal(digits: &[u8]) -> Option<u64> {
    std::str::from_utf8(digits)
        .ok()
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .filter(|d| d.len() == 1 || !d.starts_with('0'))
        .and_then(|d| d.parse().ok())
}

/// The header after `"version":`: the version, then the settings or `}`.
fn decode_header(rest: &[u8]) -> Result<Record<'_>, LineError> {
    let rest = rest
        .strip_suffix(b"}")
        .ok_or(LineError::Malformed("header does not end with }"))?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (number, rest) = rest.split_at(digits);
    let version = decimal(number).ok_or(LineError::Malformed("header version is not a number"))?;
    if rest.is_empty() {
        return Ok(Record::Header {
            version,
            settings: None,
        });
    }
    let settings = rest
        .strip_prefix(SETTINGS_HEAD)
        .ok_or(LineError::Malformed(
            "expected \"settings\" after the version",
        ))?;
    if version == PLAIN_VERSION {
        return Err(LineError::Malformed("a version-1 header holds no settings"));
    }
    if settings.first() != Some(&b'{') {
        return Err(LineError::Malformed("the settings are not a JSON object"));
    }
    json::check(settings).map_err(|e| LineError::BadValue(e.to_string()))?;
    Ok(Record::Header {
        version,
        settings: Some(settings),
    })
}

/// Reads the JSON string at the start of `bytes`; returns it decoded and the rest.
fn split_key(bytes: &[u8]) -> Result<(Cow<'_, str>, &[u8]), LineError> {
    const BAD: LineError = LineError::Malformed("key is not a valid JSON string");
    if bytes.first() != Some(&b'"') {
        return Err(BAD);
    }
    let mut escaped = false;
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => break,
            b'\\' => {
                escaped = true;
                i += 2;
            }
            _ => i += 1,
        }
    }
    if i >= bytes.len() {
        return Err(BAD);
    }
    let (token, rest) = bytes.split_at(i + 1);
    let key = if escaped {
        Cow::Owned(serde_json::from_slice::<String>(token).map_err(|_| BAD)?)
    } else {
        let inner = &token[1..token.len() - 1];
        // serde_json never writes raw control characters inside a string.
        if inner.iter().any(|&b| b < 0x20) {
            return Err(BAD);
        }
        Cow::Borrowed(std::str::from_utf8(inner).map_err(|_| BAD)?)
    };
    Ok((key, rest))
}

/// Appends a version-3 header line to `out`, holding `settings` (the text
/// of a JSON object, as serde_json writes it) if any.
pub(crate) fn encode_header(out: &mut Vec<u8>, settings: Option<&[u8]>) {
    let start = begin(out);
    out.extend_from_slice(HEADER_HEAD);
    out.extend_from_slice(FORMAT_VERSION.to_string().as_bytes());
    if let Some(settings) = settings {
        out.extend_from_slice(SETTINGS_HEAD);
        out.extend_from_slice(settings);
    }
    out.push(b'}');
    finish(out, start);
}

/// Appends the batch line that frames the `count` records of one sync.
pub(crate) fn encode_batch(out: &mut Vec<u8>, count: u64) {
    let start = begin(out);
    out.extend_from_slice(BATCH_HEAD);
    out.extend_from_slice(count.to_string().as_bytes());
    out.push(b'}');
    finish(out, start);
}

/// Appends a put line for `key` with the JSON text `value` to `out`;
/// returns where the value text sits in `out`.
pub(crate) fn encode_put(out: &mut Vec<u8>, key: &str, value: &[u8]) -> std::ops::Range<usize> {
    let copied = encode_put_with(out, key, |buf| {
        buf.extend_from_slice(value);
        Ok::<(), std::convert::Infallible>(())
    });
    copied.unwrap_or_else(|never| match never {})
}

/// Appends a put line for `key` to `out`, its value text written by
/// `value` (which appends it to the buffer it is given); returns where the
/// value text sits in `out`. The one encoder of put records: if `value`
/// fails, or panics, `out` is cut back to where it was, so a half record is
/// never left behind.
pub(crate) fn encode_put_with<E>(
    out: &mut Vec<u8>,
    key: &str,
    value: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<std::ops::Range<usize>, E> {
    let mut guard = CutOnDrop {
        at: out.len(),
        buf: out,
    };
    let start = begin(guard.buf);
    guard.buf.extend_from_slice(KEY_HEAD);
    push_json_string(guard.buf, key);
    guard.buf.extend_from_slice(VALUE_HEAD);
    let value_start = guard.buf.len();
    value(guard.buf)?;
    let value_end = guard.buf.len();
    guard.buf.push(b'}');
    finish(guard.buf, start);
    guard.at = usize::MAX;
    Ok(value_start..value_end)
}

/// Truncates `buf` back to `at` when dropped, unless `at` is past its end.
struct CutOnDrop<'a> {
    buf: &'a mut Vec<u8>,
    at: usize,
}

impl Drop for CutOnDrop<'_> {
    fn drop(&mut self) {
        self.buf.truncate(self.at);
    }
}

/// Appends a removal line for `key` to `out`.
pub(crate) fn encode_del(out: &mut Vec<u8>, key: &str) {
    let start = begin(out);
    out.extend_from_slice(KEY_HEAD);
    push_json_string(out, key);
    out.extend_from_slice(DEL_TAIL);
    finish(out, start);
}

/// The exact length in bytes (newline included) of the put line for `key` and
/// a value of `value_len` bytes.
pub(crate) fn put_len(key: &str, value_len: usize) -> u64 {
    (PREFIX_LEN + KEY_HEAD.len() + json_string_len(key) + VALUE_HEAD.len() + value_len + 2) as u64
}

/// The exact length in bytes (newline included) of the removal line for `key`.
pub(crate) fn del_len(key: &str) -> u64 {
    (PREFIX_LEN + KEY_HEAD.len() + json_string_len(key) + DEL_TAIL.len() + 1) as u64
}

fn begin(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(b"{\"c\":\"00000000\",");
    start
}

fn finish(out: &mut Vec<u8>, start: usize) {
    let body_start = start + PREFIX_LEN;
    let crc = crc32fast::hash(&out[body_start..]);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (n, digit) in out[start + 6..start + 14].iter_mut().enumerate() {
        *digit = HEX[((crc >> (28 - 4 * n)) & 0xf) as usize];
    }
    out.push(b'\n');
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Writes `s` as a JSON string exactly as serde_json does.
fn push_json_string(out: &mut Vec<u8>, s: &str) {
    if !s.bytes().any(needs_escape) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // Serialising a &str into a Vec cannot fail; the fallback keeps that
    // impossible branch free of panics.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

fn json_string_len(s: &str) -> usize {
    if !s.bytes().any(needs_escape) {
        return s.len() + 2;
    }
    let mut buf = Vec::new();
    push_json_string(&mut buf, s);
    buf.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(buf: &[u8]) -> &[u8] {
        buf.strip_suffix(b"\n").unwrap()
    }

    #[test]
    fn put_round_trips_with_exact_length() {
        let mut buf = Vec::new();
        encode_put(&mut buf, "task-1", br#"{"a":1}"#);
        assert_eq!(buf.len() as u64, put_len("task-1", 7));
        assert_eq!(
            decode(line(&buf)).unwrap(),
            Record::Put {
                key: Cow::Borrowed("task-1"),
                value: br#"{"a":1}"#
            }
        );
    }

    #[test]
    fn escaped_keys_round_trip_without_raw_newlines() {
        let key = "a\"b\\c\nd\u{1}é";
        let mut buf = Vec::new();
        encode_del(&mut buf, key);
        assert_eq!(buf.len() as u64, del_len(key));
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
        match decode(line(&buf)).unwrap() {
            Record::Del { key: k } => assert_eq!(k, key),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn worked_example_matches_design_doc() {
        let mut buf = Vec::new();
        encode_put(&mut buf, "task-1", b"{\"_done\":false}");
        let text = String::from_utf8(buf).unwrap();
        let body = "\"k\":\"task-1\",\"v\":{\"_done\":false}}";
        let crc = crc32fast::hash(body.as_bytes());
        assert_eq!(text, format!("{{\"c\":\"{crc:08x}\",{body}\n"));
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["k"], "task-1");
    }

    #[test]
    fn the_header_length_is_what_is_written() {
        assert_eq!(header_len(None), header_line().len() as u64 + 1);
        let mut buf = Vec::new();
        encode_header(&mut buf, Some(br#"{"tracker":{"max_tries":3}}"#));
        assert_eq!(
            header_len(Some(br#"{"tracker":{"max_tries":3}}"#)),
            buf.len() as u64
        );
    }

    #[test]
    fn header_round_trips() {
        let mut buf = Vec::new();
        encode_header(&mut buf, None);
        assert_eq!(
            decode(line(&buf)).unwrap(),
            Record::Header {
                version: FORMAT_VERSION,
                settings: None,
            }
        );
        let mut buf = Vec::new();
        encode_header(&mut buf, Some(br#"{"a":[1,2]}"#));
        assert_eq!(
            decode(line(&buf)).unwrap(),
            Record::Header {
                version: FORMAT_VERSION,
                settings: Some(br#"{"a":[1,2]}"#),
            }
        );
    }

    #[test]
    fn bad_headers_are_refused() {
        let with = |body: &str| {
            let mut out = Vec::new();
            let start = begin(&mut out);
            out.extend_from_slice(body.as_bytes());
            finish(&mut out, start);
            out.pop();
            out
        };
        for body in [
            r#""format":"tastypod","version":1,"settings":{}}"#,
            r#""format":"tastypod","version":2,"settings":[1]}"#,
            r#""format":"tastypod","version":2,"settings":{"a":1}x}"#,
            r#""format":"tastypod","version":2,"settings":{"a":1e999}}"#,
            r#""format":"tastypod","version":02}"#,
            r#""format":"tastypod","version":2,}"#,
            r#""format":"tastypod","version":}"#,
        ] {
            assert!(decode(&with(body)).is_err(), "{body}");
        }
        assert!(decode(&with(r#""format":"tastypod","version":2}"#)).is_ok());
    }

    #[test]
    fn what_a_crash_leaves_of_a_header_is_known() {
        let mut buf = Vec::new();
        encode_header(&mut buf, Some(br#"{"tracker":{"max_tries":3}}"#));
        for n in 1..buf.len() {
            assert!(could_start_a_header(&buf[..n]), "{n}");
        }
        assert!(!could_start_a_header(b""));
        assert!(!could_start_a_header(br#"{"c":"0000000g"#));
        assert!(!could_start_a_header(br#"{"c":"00000000","k":"a""#));
    }

    #[test]
    fn records_glued_together_are_found() {
        let mut buf = Vec::new();
        encode_put(&mut buf, "a", b"{\"x\":1}");
        let first = buf.len() - 1;
        encode_put(&mut buf, "b", b"2");
        encode_put(&mut buf, "c", b"[3]");
        // Damage both newlines: one replaced, one removed.
        let mut glued = buf.clone();
        glued[first] = b'X';
        let second = glued.len() - 1 - put_len("c", 3) as usize;
        glued.remove(second);
        let line = glued.strip_suffix(b"\n").unwrap();
        assert!(decode(line).is_err());
        let (found, gave_up) = embedded(line);
        assert!(!gave_up);
        let keys: Vec<String> = found
            .iter()
            .map(|r| match decode(&line[r.clone()]).unwrap() {
                Record::Put { key, .. } => key.into_owned(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(keys, ["a", "b", "c"]);
        // A prefix of a record (a torn write) holds none.
        assert!(embedded(&buf[..first - 3]).0.is_empty());
    }

    #[test]
    fn what_a_crash_leaves_of_a_record_could_start_one() {
        let mut buf = Vec::new();
        encode_put(&mut buf, "key", b"{\"a\":1}");
        for cut in 0..buf.len() {
            assert!(could_start_a_record(&buf[..cut]), "cut {cut}");
        }
        let header = header_line();
        assert!(could_start_a_record(&header));
        for bad in [
            &b"hello"[..],
            b"{\"c\":\"XYZ",
            b"{\"c\":\"0123456789",
            b"{\"c\":\"01234567\",\"x\"",
        ] {
            assert!(
                !could_start_a_record(bad),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_hostile_line_stops_the_search() {
        let mut line = Vec::new();
        for _ in 0..20_000 {
            line.extend_from_slice(b"{\"c\":\"00000000\",\"k\":\"a\",\"v\":{}}");
        }
        let (found, gave_up) = embedded(&line);
        assert!(found.is_empty());
        assert!(gave_up);
    }

    #[test]
    fn values_must_be_one_valid_json_value() {
        for value in [&b"1,\"evil\":2"[..], b"1e400", b"\"\\ud800\""] {
            let mut buf = Vec::new();
            encode_put(&mut buf, "k", value);
            assert!(matches!(decode(line(&buf)), Err(LineError::BadValue(_))));
        }
    }

    #[test]
    fn flipped_byte_is_a_checksum_mismatch() {
        let mut buf = Vec::new();
        encode_put(&mut buf, "k", b"123");
        let n = buf.len() - 3;
        buf[n] ^= 1;
        assert!(matches!(
            decode(line(&buf)),
            Err(LineError::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn hand_made_bad_lines_are_refused() {
        for bad in [
            &b""[..],
            b"{}",
            b"{\"c\":\"zzzzzzzz\",\"k\":\"a\",\"v\":1}",
            b"{\"c\":\"00000000\",\"k\":\"a\",\"v\":1}",
            b"{\"c\":\"00000000\"x\"k\":\"a\",\"v\":1}",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn malformed_body_with_valid_checksum_is_refused() {
        for body in [
            &b"\"k\":\"a\",\"v\":}"[..],
            b"\"k\":\"a\"",
            b"\"k\":a,\"v\":1}",
            b"\"k\":\"\xff\",\"v\":1}",
            b"\"x\":1}",
            b"\"format\":\"tastypod\",\"version\":x}",
        ] {
            let mut line = format!("{{\"c\":\"{:08x}\",", crc32fast::hash(body)).into_bytes();
            line.extend_from_slice(body);
            assert!(
                matches!(decode(&line), Err(LineError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(&line)
            );
        }
    }
}

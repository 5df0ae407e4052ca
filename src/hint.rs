//! The hint file, `pod.hint`: an index of a log's first bytes kept beside
//! it (like Bitcask's hint files), so that an open reads each live key's
//! place from it instead of decoding every record.
//!
//! It is derived data: the log stays the one source of truth. A hint is
//! used only if its own checksum holds and the CRC-32 of the log's first
//! `log_len` bytes is the one it was written with; anything else (a log
//! compacted, repaired, edited or damaged since, a hint cut short or
//! damaged) makes the open read the whole log, and write a new hint.
//! DESIGN.md ("The hint file") gives the layout byte by byte.

use std::io::Read;

/// The hint file inside a store directory.
pub const HINT_FILE: &str = "pod.hint";
/// The file a hint is written to before it is renamed over [`HINT_FILE`].
pub(crate) const HINT_TMP: &str = "pod.hint.tmp";

/// The first bytes of a hint file.
const MAGIC: &[u8; 8] = b"TPODHINT";
/// The layout's version.
const VERSION: u32 = 1;
/// The bytes before the settings: magic, version, reserved, log length,
/// log CRC, reserved, lines, format version, entries, key bytes, settings
/// length.
const HEAD_LEN: usize = 8 + 4 + 4 + 8 + 4 + 4 + 8 + 8 + 8 + 8 + 8;
/// An entry: value offset, key offset, value length, line, key length.
const ENTRY_LEN: usize = 8 + 8 + 4 + 4 + 4;
/// The settings length that means "no settings".
const NO_SETTINGS: u64 = u64::MAX;

/// Hints are kept for logs of at least this many bytes: a smaller log
/// replays in a few milliseconds.
pub(crate) const MIN_LOG: u64 = 1 << 20;

/// A hint is rewritten once the log has grown past the part it covers by
/// more than an eighth of that part (an open replays the rest).
pub(crate) fn is_stale(covered: u64, log_len: u64) -> bool {
    log_len.saturating_sub(covered) > covered / 8
}

/// An open uses a hint only if the rest of the log, which it replays
/// record by record, is at most a quarter of what the hint covers.
pub(crate) fn is_worth_using(covered: u64, log_len: u64) -> bool {
    log_len.saturating_sub(covered) <= covered / 4
}

/// The largest hint file an open reads for a log of `log_len` bytes: an
/// entry is no longer than the shortest record it could stand for (and
/// its key is in both), so a larger file is not a hint of this log and
/// is not read into memory.
pub(crate) fn max_len(log_len: u64) -> u64 {
    log_len.saturating_add(HEAD_LEN as u64 + 4)
}

/// What a hint says about the log it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Covered {
    /// The hint describes the log's first this many bytes: up to the end
    /// of a line.
    pub log_len: u64,
    /// The CRC-32 of those bytes.
    pub log_crc: u32,
    /// The number of lines in them.
    pub lines: u64,
    /// The log's format version (its header's).
    pub version: u64,
}

/// One live key, in order: its key and where its value text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    /// The key's bytes (UTF-8 when written; a reader checks).
    pub key: &'a [u8],
    /// The value text's offset in the log, and its length.
    pub value_at: u64,
    pub value_len: u32,
    /// The log line of the key's last record.
    pub line: u32,
}

/// Writes a hint: [`begin`](Encoder::begin), an [`entry`](Encoder::entry)
/// per live key in order, then [`finish`](Encoder::finish).
#[derive(Debug)]
pub(crate) struct Encoder {
    covered: Covered,
    settings: Option<Vec<u8>>,
    entries: Vec<u8>,
    keys: Vec<u8>,
    count: u64,
}

impl Encoder {
    /// Starts a hint of the log `covered`, whose header holds `settings`;
    /// `entries` and `key_bytes` size the buffers.
    pub(crate) fn begin(
        covered: Covered,
        settings: Option<&[u8]>,
        entries: usize,
        key_bytes: usize,
    ) -> Self {
        Encoder {
            covered,
            settings: settings.map(<[u8]>::to_vec),
            entries: Vec::with_capacity(entries * ENTRY_LEN),
            keys: Vec::with_capacity(key_bytes),
            count: 0,
        }
    }

    /// Adds the next live key.
    pub(crate) fn entry(&mut self, entry: Entry<'_>) {
        let e = &mut self.entries;
        e.extend_from_slice(&entry.value_at.to_le_bytes());
        e.extend_from_slice(&(self.keys.len() as u64).to_le_bytes());
        e.extend_from_slice(&entry.value_len.to_le_bytes());
        e.extend_from_slice(&entry.line.to_le_bytes());
        e.extend_from_slice(&(entry.key.len() as u32).to_le_bytes());
        self.keys.extend_from_slice(entry.key);
        self.count += 1;
    }

    /// The hint's bytes, in three parts to write in order (head and
    /// settings, entries, keys and the checksum); `log_crc` (if given)
    /// replaces the CRC `begin` was given (the log's CRC is computed once
    /// the hint is known to be possible).
    pub(crate) fn finish(self, log_crc: Option<u32>) -> [Vec<u8>; 3] {
        let c = self.covered;
        let settings = self.settings.as_deref();
        let mut head = Vec::with_capacity(HEAD_LEN + settings.map_or(0, <[u8]>::len));
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&0u32.to_le_bytes());
        head.extend_from_slice(&c.log_len.to_le_bytes());
        head.extend_from_slice(&log_crc.unwrap_or(c.log_crc).to_le_bytes());
        head.extend_from_slice(&0u32.to_le_bytes());
        head.extend_from_slice(&c.lines.to_le_bytes());
        head.extend_from_slice(&c.version.to_le_bytes());
        head.extend_from_slice(&self.count.to_le_bytes());
        head.extend_from_slice(&(self.keys.len() as u64).to_le_bytes());
        match settings {
            Some(s) => {
                head.extend_from_slice(&(s.len() as u64).to_le_bytes());
                head.extend_from_slice(s);
            }
            None => head.extend_from_slice(&NO_SETTINGS.to_le_bytes()),
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.update(&self.entries);
        crc.update(&self.keys);
        let mut keys = self.keys;
        keys.extend_from_slice(&crc.finalize().to_le_bytes());
        [head, self.entries, keys]
    }
}

/// Why a hint file cannot be used, as a phrase.
pub(crate) type Why = &'static str;

/// Reads `n` little-endian bytes at `at` of `bytes`.
fn le<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], Why> {
    bytes
        .get(at..at + N)
        .and_then(|b| b.try_into().ok())
        .ok_or("it is cut short")
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, Why> {
    le::<4>(bytes, at).map(u32::from_le_bytes)
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, Why> {
    le::<8>(bytes, at).map(u64::from_le_bytes)
}

/// The head of a hint file: what it covers and how long its parts are.
#[derive(Debug)]
pub(crate) struct Head {
    pub covered: Covered,
    count: u64,
    keys_len: u64,
    settings_len: Option<u64>,
    crc: crc32fast::Hasher,
}

impl Head {
    /// Reads the head of a hint file of `file_len` bytes from `reader`.
    ///
    /// # Errors
    ///
    /// Why it is not a hint this version can use.
    pub(crate) fn read(reader: &mut impl Read, file_len: u64) -> Result<Head, Why> {
        let mut head = [0u8; HEAD_LEN];
        reader
            .read_exact(&mut head)
            .map_err(|_| "it is cut short")?;
        if head.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
            return Err("it is not a hint file");
        }
        if u32_at(&head, 8)? != VERSION {
            return Err("it is of another version");
        }
        let settings_len = Some(u64_at(&head, 64)?).filter(|&n| n != NO_SETTINGS);
        let h = Head {
            covered: Covered {
                log_len: u64_at(&head, 16)?,
                log_crc: u32_at(&head, 24)?,
                lines: u64_at(&head, 32)?,
                version: u64_at(&head, 40)?,
            },
            count: u64_at(&head, 48)?,
            keys_len: u64_at(&head, 56)?,
            settings_len,
            crc: {
                let mut crc = crc32fast::Hasher::new();
                crc.update(&head);
                crc
            },
        };
        let parts = [
            Some(h.count.checked_mul(ENTRY_LEN as u64)),
            Some(Some(h.keys_len)),
            h.settings_len.map(Some),
            Some(Some(HEAD_LEN as u64 + 4)),
        ];
        let total = parts
            .into_iter()
            .flatten()
            .try_fold(0u64, |sum, n| sum.checked_add(n?));
        if total != Some(file_len) {
            return Err("its length is not the one its head gives");
        }
        Ok(h)
    }

    /// Reads the rest of the hint file after its head.
    ///
    /// # Errors
    ///
    /// Why it is not a hint this version can use.
    pub(crate) fn read_rest(mut self, reader: &mut impl Read) -> Result<Hint, Why> {
        let mut read = |len: u64| -> Result<Vec<u8>, Why> {
            let len = usize::try_from(len).map_err(|_| "it is too large")?;
            let mut buf = vec![0u8; len];
            reader.read_exact(&mut buf).map_err(|_| "it is cut short")?;
            self.crc.update(&buf);
            Ok(buf)
        };
        let settings = self.settings_len.map(&mut read).transpose()?;
        let entries = read(self.count * ENTRY_LEN as u64)?;
        let keys = read(self.keys_len)?;
        let mut sum = [0u8; 4];
        reader.read_exact(&mut sum).map_err(|_| "it is cut short")?;
        if self.crc.finalize() != u32::from_le_bytes(sum) {
            return Err("its checksum does not match (it is damaged or cut short)");
        }
        Ok(Hint {
            covered: self.covered,
            settings,
            entries,
            keys,
        })
    }
}

/// A hint file's contents, its checksum checked.
#[derive(Debug)]
pub(crate) struct Hint {
    pub covered: Covered,
    pub settings: Option<Vec<u8>>,
    /// The entries, [`ENTRY_LEN`] bytes each.
    entries: Vec<u8>,
    /// The keys, one after another.
    pub keys: Vec<u8>,
}

/// One entry of a [`Hint`]: where its key is among the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawEntry {
    pub value_at: u64,
    pub key_at: u64,
    pub value_len: u32,
    pub line: u32,
    pub key_len: u32,
}

impl Hint {
    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len() / ENTRY_LEN
    }

    /// The entries, in order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = RawEntry> + '_ {
        self.entries.chunks_exact(ENTRY_LEN).map(RawEntry::of)
    }

    /// Entry number `n`.
    pub(crate) fn entry(&self, n: usize) -> Option<RawEntry> {
        let at = n.checked_mul(ENTRY_LEN)?;
        self.entries.get(at..at + ENTRY_LEN).map(RawEntry::of)
    }
}

impl RawEntry {
    /// The entry in `e`, [`ENTRY_LEN`] bytes.
    fn of(e: &[u8]) -> RawEntry {
        let u64_of = |at: usize| u64_at(e, at).unwrap_or(u64::MAX);
        let u32_of = |at: usize| u32_at(e, at).unwrap_or(u32::MAX);
        RawEntry {
            value_at: u64_of(0),
            key_at: u64_of(8),
            value_len: u32_of(16),
            line: u32_of(20),
            key_len: u32_of(24),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let covered = Covered {
            log_len: 4096,
            log_crc: 7,
            lines: 12,
            version: 3,
        };
        let mut enc = Encoder::begin(covered, Some(br#"{"max_tries":3}"#), 2, 4);
        for (key, at) in [("a", 40), ("é", 90)] {
            enc.entry(Entry {
                key: key.as_bytes(),
                value_at: at,
                value_len: 5,
                line: 2,
            });
        }
        enc.finish(None).concat()
    }

    fn read(bytes: &[u8]) -> Result<Hint, Why> {
        let mut r = bytes;
        Head::read(&mut r, bytes.len() as u64)?.read_rest(&mut r)
    }

    #[test]
    fn a_hint_reads_back_as_written() {
        let bytes = sample();
        let hint = read(&bytes).unwrap();
        assert_eq!(hint.covered.log_len, 4096);
        assert_eq!(hint.covered.version, 3);
        assert_eq!(hint.settings.as_deref(), Some(&br#"{"max_tries":3}"#[..]));
        let keys: Vec<_> = hint
            .entries()
            .map(|e| {
                let key = &hint.keys[e.key_at as usize..][..e.key_len as usize];
                (String::from_utf8(key.to_vec()).unwrap(), e.value_at)
            })
            .collect();
        assert_eq!(keys, [("a".to_string(), 40), ("é".to_string(), 90)]);
    }

    #[test]
    fn any_damage_or_cut_is_refused() {
        let bytes = sample();
        for n in 0..bytes.len() {
            assert!(read(&bytes[..n]).is_err(), "cut at {n}");
            let mut bad = bytes.clone();
            bad[n] ^= 0x10;
            assert!(read(&bad).is_err(), "byte {n} flipped");
        }
    }

    #[test]
    fn lengths_beyond_the_file_are_refused_before_anything_is_read() {
        let mut bytes = sample();
        bytes[48..56].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Head::read(&mut &bytes[..], bytes.len() as u64).is_err());
        let mut bytes = sample();
        bytes[56..64].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(Head::read(&mut &bytes[..], bytes.len() as u64).is_err());
    }

    #[test]
    fn the_rules_for_using_and_rewriting_a_hint() {
        assert!(!is_stale(800, 900));
        assert!(is_stale(800, 901));
        assert!(is_worth_using(800, 1000));
        assert!(!is_worth_using(800, 1001));
    }
}

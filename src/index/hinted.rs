//! An index to and from a hint file ([`crate::hint`]): its live keys in
//! order, each with the file offset of its value text.

use super::arena::{Loc, MappedRange};
use super::slot::{Flags, Slot};
use super::{Bucket, Index, widen};
use crate::fsio::LogMap;
use crate::hint::{self, Covered, Encoder, Entry, Hint, RawEntry};
use crate::record;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry as TableEntry;
use std::sync::Arc;

/// A mapped block covers this many bytes of the log from a multiple of
/// [`WINDOW_STEP`], so that every value text (shorter than 2 GiB) lies
/// whole in one block at a 32-bit offset.
const WINDOW_STEP: u64 = 1 << 31;

impl<V> Index<V> {
    /// The index a hint describes, its value texts read in place from
    /// `map` (the log the hint covers, mapped whole); the hint's keys
    /// become its keys block. With `threads`, the hash table is built on
    /// another thread while the slots are made.
    ///
    /// # Errors
    ///
    /// Why the hint does not describe the log: an entry past the bytes it
    /// covers, a line past its lines, a key that is not UTF-8, a key twice.
    pub(crate) fn from_hint(
        hint: Hint,
        map: &Arc<LogMap>,
        max_record: usize,
        threads: bool,
    ) -> Result<Self, hint::Why> {
        let covered = hint.covered;
        if covered.log_len > map.len() as u64 {
            return Err("it covers more than the log holds");
        }
        if u32::try_from(hint.keys.len()).is_err() || u32::try_from(hint.len()).is_err() {
            return Err("it is too large");
        }
        let text = std::str::from_utf8(&hint.keys).map_err(|_| "a key is not UTF-8")?;
        let mut index = Index::with_capacity(0);
        // Block 0 holds the keys; blocks 1.. are windows of the map.
        let keys_block = index.arena.adopt(Vec::new());
        let windows = covered.log_len / WINDOW_STEP + 1;
        for w in 0..windows {
            let start = usize::try_from(w * WINDOW_STEP).map_err(|_| "it is too large")?;
            index
                .arena
                .adopt_mapped(MappedRange::new(Arc::clone(map), start, u32::MAX as usize));
        }
        let windows: Vec<usize> = (1..=windows as u32)
            .map(|b| index.arena.len_of(b))
            .collect();
        let parts = Parts {
            hint: &hint,
            text,
            windows: &windows,
            hasher: index.hasher,
            keys_block,
            max_record: max_record as u64,
        };
        let (slots, table) = if threads {
            std::thread::scope(|s| {
                let table = s.spawn(|| parts.table());
                let slots = parts.slots::<V>();
                (slots, table.join().unwrap_or(Err("a thread failed")))
            })
        } else {
            (parts.slots::<V>(), parts.table())
        };
        let ((slots, disk_bytes), table) = (slots?, table?);
        index.slots = slots;
        index.table = table;
        index.arena.set(keys_block, hint.keys);
        index.live = index.slots.len();
        index.disk_bytes = disk_bytes;
        Ok(index)
    }

    /// A hint of this index (to [`finish`](Encoder::finish)), the log it
    /// describes being `covered` (whose header holds `settings`); `None` if a live key has a change not
    /// written yet or a value text that is not an image of the log (a
    /// value copied out of a small write, say).
    pub(crate) fn to_hint(&self, covered: Covered, settings: Option<&[u8]>) -> Option<Encoder> {
        if self.has_changes() {
            return None;
        }
        let key_bytes: usize = self
            .slots
            .iter()
            .filter(|s| s.is_live())
            .map(|s| s.key.len as usize)
            .sum();
        // A reader places keys by 32-bit offsets.
        if u32::try_from(key_bytes).is_err() {
            return None;
        }
        let mut enc = Encoder::begin(covered, settings, self.live, key_bytes);
        for i in self.slots() {
            let slot = self.slots.get(i)?;
            let line = slot.line()?;
            let value_at = self.arena.file_offset(slot.value)?;
            if value_at + u64::from(slot.value.len) > covered.log_len {
                return None;
            }
            enc.entry(Entry {
                key: self.key(i).as_bytes(),
                value_at,
                value_len: slot.value.len,
                line,
            });
        }
        Some(enc)
    }
}

/// What building an index from a hint needs.
struct Parts<'a> {
    hint: &'a Hint,
    /// The hint's keys, checked to be UTF-8 as a whole.
    text: &'a str,
    /// The lengths of the map's windows (blocks 1, 2...).
    windows: &'a [usize],
    hasher: super::KeyHasher,
    keys_block: u32,
    /// The longest line a record may be (a longer one is damage).
    max_record: u64,
}

impl Parts<'_> {
    /// The key of entry `e`, if it lies between two characters of the
    /// keys' text (UTF-8 as a whole): then it is UTF-8 itself.
    fn key(&self, e: &RawEntry) -> Result<&str, hint::Why> {
        let start = usize::try_from(e.key_at).map_err(|_| "it is too large")?;
        self.text
            .get(start..start.saturating_add(e.key_len as usize))
            .ok_or("a key is not UTF-8 or lies past the keys")
    }

    /// A slot per entry, in order, and the sum of their record lengths.
    fn slots<V>(&self) -> Result<(Vec<Slot<V>>, u64), hint::Why> {
        let covered = self.hint.covered;
        let mut slots = Vec::with_capacity(self.hint.len());
        let mut disk_bytes = 0u64;
        for entry in self.hint.entries() {
            let end = entry.value_at.checked_add(u64::from(entry.value_len));
            if end.is_none_or(|end| end > covered.log_len) {
                return Err("a value lies past the part of the log it covers");
            }
            if entry.line == 0 || u64::from(entry.line) > covered.lines {
                return Err("a line number lies past the lines it covers");
            }
            let window = entry.value_at / WINDOW_STEP;
            let offset = entry.value_at - window * WINDOW_STEP;
            let fits = usize::try_from(window)
                .ok()
                .and_then(|w| self.windows.get(w))
                .is_some_and(|&len| offset as usize + entry.value_len as usize <= len);
            if !fits {
                return Err("a value lies past the log");
            }
            let value = Loc {
                // Block 1 + window: windows follow the keys block.
                block: window as u32 + 1,
                offset: offset as u32,
                len: entry.value_len,
            };
            let key = self.key(&entry)?;
            let key_loc = Loc {
                block: self.keys_block,
                offset: entry.key_at as u32,
                len: entry.key_len,
            };
            let hash = self.hasher.hash(key.as_bytes()) as u32;
            slots.push(Slot::new(hash, key_loc, value, entry.line, Flags::ON_DISK));
            let record_len = record::put_len(key, entry.value_len as usize);
            // The line but its newline, as a replay measures it.
            if record_len.saturating_sub(1) > self.max_record {
                return Err("a record is longer than the maximum record size");
            }
            disk_bytes += record_len;
        }
        Ok((slots, disk_bytes))
    }

    /// The hash table of the entries' keys (each entry by its number),
    /// filled in the order of its buckets, so that it is written from
    /// start to end instead of at a random place per key.
    fn table(&self) -> Result<HashTable<Bucket>, hint::Why> {
        let hashes = self
            .hint
            .entries()
            .map(|e| Ok(self.hasher.hash(self.key(&e)?.as_bytes()) as u32))
            .collect::<Result<Vec<u32>, hint::Why>>()?;
        let mut table = HashTable::with_capacity(hashes.len());
        let key_of = |i: u32| self.hint.entry(i as usize).and_then(|e| self.key(&e).ok());
        for (hash, i) in in_bucket_order(&hashes, table.capacity()) {
            // Keys are read only when a hash matches: an entry at random
            // would miss the cache.
            let eq = |b: &Bucket| b.hash == hash && key_of(b.slot) == key_of(i);
            match table.entry(widen(hash), eq, Bucket::table_hash) {
                TableEntry::Occupied(_) => return Err("it lists a key twice"),
                TableEntry::Vacant(vacant) => {
                    vacant.insert(Bucket { slot: i, hash });
                }
            }
        }
        Ok(table)
    }
}

/// The hashes and their numbers, ordered by the table bucket each hash
/// starts at (in a table of `capacity` entries: `capacity * 8 / 7`
/// buckets, a power of two, indexed by the hash's low bits), to within
/// 256 buckets: a counting sort.
fn in_bucket_order(hashes: &[u32], capacity: usize) -> Vec<(u32, u32)> {
    let buckets = (capacity.max(1) + 1).next_power_of_two();
    let bins = (buckets >> 8).max(1);
    let bin = |hash: u32| ((hash as usize) & (buckets - 1)) >> 8;
    let mut starts = vec![0usize; bins + 1];
    for &h in hashes {
        if let Some(c) = starts.get_mut(bin(h) + 1) {
            *c += 1;
        }
    }
    let mut sum = 0;
    for c in &mut starts {
        sum += *c;
        *c = sum;
    }
    let mut order = vec![(0u32, 0u32); hashes.len()];
    for (i, &h) in hashes.iter().enumerate() {
        if let Some(at) = starts.get_mut(bin(h))
            && let Some(o) = order.get_mut(*at)
        {
            *o = (h, i as u32);
            *at += 1;
        }
    }
    order
}

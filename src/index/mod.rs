//! The in-memory ordered map behind a `Pod`.
//!
//! Keys and the JSON text of values live in an append-only byte arena
//! ([`arena`]; whole replay batches and written pending chunks are adopted
//! as arena blocks, so neither is copied twice); a slot per key ([`slot`])
//! keeps insertion order, and a hash table maps key bytes to slots. A value
//! is decoded only when it is accessed, or kept decoded (`live`) while it
//! has a change made in place and not yet written. Removed slots become
//! tombstones until the slot vector is rebuilt. Changes not yet written are
//! records in the pending block ([`pending`]).
//!
//! The invariants the index keeps (checked by [`Index::check`] in debug
//! builds, and listed in DESIGN.md):
//!
//! 1. `live` is the number of slots that are not tombstones, and the table
//!    maps exactly those slots, each by the hash its slot keeps.
//! 2. A slot is `DIRTY` exactly when it has a change not yet written, and
//!    every dirty slot is in the `dirty` list; `dirty_count` counts them.
//! 3. A `PENDING` slot is `DIRTY`, and its value text is that of its
//!    latest record in the pending block.
//! 4. A tombstone has no other flag and no decoded value.
//! 5. `disk_bytes` is the sum of the record lengths of the slots whose
//!    value text is their record on disk (`ON_DISK`, not `PENDING`).

mod arena;
mod hinted;
mod pending;
mod relocate;
mod slot;

pub(crate) use arena::{Loc, MappedRange, Snapshot};
pub(crate) use relocate::Relocation;
pub(crate) use slot::SlotTask;

use crate::record;
use arena::Arena;
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use slot::{Flags, Slot};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The value of a slot: its stored JSON text, or a decoded value with unsynced changes.
pub(crate) enum ValueRef<'a, V> {
    /// JSON text as it is on disk (or in the pending block).
    Text(&'a [u8]),
    /// A value changed in memory since the last sync.
    Live(&'a V),
}

/// Hashes keys for the table: 32 bits of foldhash, widened (see [`widen`]),
/// so a slot can keep its key's whole table hash in 4 bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyHasher(RandomState);

impl KeyHasher {
    /// The table hash of `key`.
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        widen(self.0.hash_one(key) as u32)
    }
}

/// A table hash from its 32 bits: the low half picks the bucket and the top
/// seven bits are the control tag, so both come from the 32 bits (disjoint
/// bits for tables of up to 2^25 buckets).
fn widen(h: u32) -> u64 {
    (u64::from(h) << 32) | u64::from(h)
}

/// An entry of the hash table: a slot's number and the 32 bits of its
/// key's hash. Growing the table rehashes its entries from the table
/// alone, and a probe that meets another key's entry with the same 7-bit
/// tag tells them apart by the 32 bits, without reading a slot (at random,
/// a miss of the cache each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bucket {
    pub slot: u32,
    pub hash: u32,
}

impl Bucket {
    /// The entry's table hash.
    pub(crate) fn table_hash(&self) -> u64 {
        widen(self.hash)
    }
}

/// An insertion-ordered map from string keys to JSON values.
#[derive(Debug)]
pub(crate) struct Index<V> {
    slots: Vec<Slot<V>>,
    /// The decoded values of the slots changed in place and not yet
    /// written (a value differing from its slot's text), by slot number.
    /// Every change of a slot's text (written, pending, removed) drops its
    /// entry.
    lives: hashbrown::HashMap<u32, Box<V>, foldhash::fast::RandomState>,
    table: HashTable<Bucket>,
    hasher: KeyHasher,
    arena: Arena,
    live: usize,
    /// Slots marked dirty since the last `prune_dirty`, each listed once
    /// (may include slots cleaned or removed since).
    dirty: Vec<u32>,
    /// The number of live dirty slots.
    dirty_count: usize,
    /// Bumped when slots are renumbered.
    generation: u64,
    pending: pending::Pending,
    /// Invariant 5.
    pub(super) disk_bytes: u64,
    /// The slot [`find`](Self::find) found last, and whether it was the one
    /// after the slot found before it: while keys are looked up in
    /// insertion order (a tracker loop), the next slot is tried first.
    last_found: AtomicUsize,
    in_order: AtomicBool,
}

impl<V> Default for Index<V> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<V> Index<V> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Index {
            slots: Vec::with_capacity(n),
            lives: hashbrown::HashMap::with_hasher(foldhash::fast::RandomState::default()),
            table: HashTable::with_capacity(n),
            hasher: KeyHasher(RandomState::default()),
            arena: Arena::default(),
            live: 0,
            dirty: Vec::new(),
            dirty_count: 0,
            generation: 0,
            pending: pending::Pending::default(),
            disk_bytes: 0,
            last_found: AtomicUsize::new(usize::MAX),
            in_order: AtomicBool::new(false),
        }
    }

    /// The number of keys.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The hash of `key`.
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash(key)
    }

    /// The hasher keys are hashed with, for callers that hash ahead of time.
    pub(crate) fn hasher(&self) -> KeyHasher {
        self.hasher
    }

    /// Looks at the table where a key hashing to `hash` would be, so that
    /// a lookup of it soon after finds that memory in the cache.
    pub(crate) fn touch(&self, hash: u64) {
        std::hint::black_box(self.table.find(hash, |_| false));
    }

    /// The slot of `key`, if present.
    pub(crate) fn find(&self, key: &str) -> Option<usize> {
        let key = key.as_bytes();
        let last = self.last_found.load(Ordering::Relaxed);
        if self.in_order.load(Ordering::Relaxed) {
            let next = last.wrapping_add(1);
            let hit = self
                .slots
                .get(next)
                .is_some_and(|s| s.is_live() && self.arena.bytes(s.key) == key);
            if hit {
                self.last_found.store(next, Ordering::Relaxed);
                return Some(next);
            }
        }
        let found = self.find_hashed(self.hash(key), key);
        if let Some(i) = found {
            self.in_order
                .store(i == last.wrapping_add(1), Ordering::Relaxed);
            self.last_found.store(i, Ordering::Relaxed);
        }
        found
    }

    /// [`find_hashed`](Self::find_hashed), trying first the slot
    /// [`find`](Self::find) found last: a read-modify-write (a tracker
    /// update, `get` then `insert` of one key) finds its key there without
    /// a probe of the table, which misses the cache on a large store.
    pub(crate) fn find_hashed_from_last(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let last = self.last_found.load(Ordering::Relaxed);
        let hit = self.slots.get(last).is_some_and(|s| {
            s.is_live() && s.hash == hash as u32 && self.arena.bytes(s.key) == key
        });
        if hit {
            return Some(last);
        }
        self.find_hashed(hash, key)
    }

    /// The slot of `key`, whose hash is `hash`, if present.
    pub(crate) fn find_hashed(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let (slots, arena) = (&self.slots, &self.arena);
        self.table
            .find(hash, |b| {
                b.hash == hash as u32
                    && slots
                        .get(b.slot as usize)
                        .is_some_and(|s| arena.bytes(s.key) == key)
            })
            .map(|b| b.slot as usize)
    }

    /// Appends a slot for a key (which must be absent) whose hash is `hash`.
    fn insert_slot(&mut self, hash: u64, key: Loc, value: Loc, line: u32, flags: Flags) -> usize {
        let slot_no = self.slots.len();
        self.slots
            .push(Slot::new(hash as u32, key, value, line, flags));
        let bucket = Bucket {
            slot: slot_no as u32,
            hash: hash as u32,
        };
        self.table.insert_unique(hash, bucket, Bucket::table_hash);
        self.live += 1;
        if flags.contains(Flags::DIRTY) {
            self.dirty.push(slot_no as u32);
            self.dirty_count += 1;
        }
        slot_no
    }

    /// Takes `block` into the arena; returns its number.
    pub(crate) fn adopt_block(&mut self, block: Vec<u8>) -> u32 {
        self.arena.adopt(block)
    }

    /// How many arena blocks are ranges of a mapped log.
    #[cfg(test)]
    pub(crate) fn mapped_blocks(&self) -> usize {
        self.arena.mapped_blocks()
    }

    /// Takes a range of the mapped log into the arena; returns its number.
    pub(crate) fn adopt_mapped(&mut self, range: MappedRange) -> u32 {
        self.arena.adopt_mapped(range)
    }

    /// The bytes at `loc`.
    pub(crate) fn bytes(&self, loc: Loc) -> &[u8] {
        self.arena.bytes(loc)
    }

    /// The record length of slot `i` if it counts towards `disk_bytes`.
    fn counted_len(&self, i: usize) -> Option<u64> {
        let slot = self.slots.get(i)?;
        let value_len = slot.disk_value_len()?;
        Some(record::put_len(self.key(i), value_len))
    }

    fn count(&mut self, i: usize) {
        if let Some(len) = self.counted_len(i) {
            self.disk_bytes += len;
        }
    }

    /// [`uncount`](Self::uncount) knowing the record's framing (the bytes
    /// of its record but the value), which only depends on the key.
    fn uncount_with(&mut self, i: usize, framing: u64) {
        if let Some(old) = self.slots.get(i).and_then(Slot::disk_value_len) {
            let len = framing + old as u64;
            debug_assert_eq!(Some(len), self.counted_len(i));
            debug_assert!(self.disk_bytes >= len, "disk bytes would go below zero");
            self.disk_bytes = self.disk_bytes.saturating_sub(len);
        }
    }

    fn uncount(&mut self, i: usize) {
        if let Some(len) = self.counted_len(i) {
            debug_assert!(self.disk_bytes >= len, "disk bytes would go below zero");
            self.disk_bytes = self.disk_bytes.saturating_sub(len);
        }
    }

    /// The sum of the record lengths of the keys whose record on disk is
    /// their current value (invariant 5): with the header, the bytes a
    /// compaction would write, once nothing is pending.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.disk_bytes
    }

    /// Records that the key at `key` (hashing to `hash`) maps to the on-disk
    /// value text at `value`, from log line `line`; `framing` is the length
    /// of its record but the value (`put_len(key, 0)`), known to the caller.
    pub(crate) fn put_loc(&mut self, hash: u64, key: Loc, value: Loc, line: u32, framing: u64) {
        match self.find_hashed(hash, self.arena.bytes(key)) {
            Some(i) => {
                if let Some(old) = self.slots.get(i).and_then(Slot::disk_value_len) {
                    let len = framing + old as u64;
                    debug_assert!(self.disk_bytes >= len);
                    self.disk_bytes = self.disk_bytes.saturating_sub(len);
                }
                self.clean(i);
                if let Some(slot) = self.slots.get_mut(i) {
                    slot.set_on_disk(value, line);
                }
                self.forget_live(i);
            }
            None => {
                self.insert_slot(hash, key, value, line, Flags::ON_DISK);
            }
        }
        self.disk_bytes += framing + u64::from(value.len);
    }

    /// Records that `key` maps to the on-disk value text `text` (copied into
    /// the arena) from log line `line`.
    pub(crate) fn put_text(&mut self, key: &str, text: &[u8], line: u32) {
        let hash = self.hash(key.as_bytes());
        let value = self.arena.push(text);
        match self.find_hashed(hash, key.as_bytes()) {
            Some(i) => self.set_text(i, value, line),
            None => {
                let key = self.arena.push(key.as_bytes());
                let i = self.insert_slot(hash, key, value, line, Flags::ON_DISK);
                self.count(i);
            }
        }
    }

    /// Points slot `i`'s value at the on-disk text at `value` (its record
    /// at log line `line`) and clears its changes.
    pub(crate) fn set_text(&mut self, i: usize, value: Loc, line: u32) {
        self.uncount(i);
        self.clean(i);
        if let Some(slot) = self.slots.get_mut(i) {
            slot.set_on_disk(value, line);
        }
        self.forget_live(i);
        self.count(i);
    }

    /// Drops slot `i`'s decoded value, its text having changed.
    pub(super) fn forget_live(&mut self, i: usize) {
        if !self.lives.is_empty() {
            self.lives.remove(&(i as u32));
        }
    }

    /// Whether slot `i` holds a value decoded and changed in place.
    pub(super) fn has_live(&self, i: usize) -> bool {
        !self.lives.is_empty() && self.lives.contains_key(&(i as u32))
    }

    /// Notes that slot `i` is no longer dirty (before it is changed).
    pub(super) fn clean(&mut self, i: usize) {
        if self.slots.get(i).is_some_and(Slot::is_dirty) {
            self.dirty_count -= 1;
        }
    }

    /// Removes `key`; returns whether it was present.
    pub(crate) fn remove(&mut self, key: &str) -> bool {
        self.remove_hashed(self.hash(key.as_bytes()), key.as_bytes())
    }

    /// [`remove`](Self::remove) for a key whose hash is `hash`.
    pub(crate) fn remove_hashed(&mut self, hash: u64, key: &[u8]) -> bool {
        let Some(i) = self.find_hashed(hash, key) else {
            return false;
        };
        self.tombstone(i);
        self.maybe_shrink();
        true
    }

    /// Makes live slot `i` a tombstone (slot numbers stay as they are).
    pub(super) fn tombstone(&mut self, i: usize) {
        let hash = widen(self.slots.get(i).map_or(0, |s| s.hash));
        if let Ok(entry) = self.table.find_entry(hash, |b| b.slot as usize == i) {
            entry.remove();
        }
        self.uncount(i);
        self.clean(i);
        if let Some(slot) = self.slots.get_mut(i) {
            slot.set_removed();
        }
        self.forget_live(i);
        self.live -= 1;
    }

    /// Drops tombstones when they outnumber the keys, renumbering slots.
    pub(super) fn maybe_shrink(&mut self) {
        let dead = self.slots.len() - self.live;
        if dead < 1024 || dead < self.live {
            return;
        }
        self.drop_tombstones();
    }

    /// Drops every tombstone, renumbering slots and mapping keys anew.
    fn drop_tombstones(&mut self) {
        self.renumber_lives();
        self.slots.retain(Slot::is_live);
        self.generation += 1;
        self.dirty = (0..self.slots.len() as u32)
            .filter(|&i| self.is_dirty(i as usize))
            .collect();
        self.rebuild_table();
    }

    /// Renumbers the decoded values as dropping the tombstones will
    /// renumber their slots (tombstones have none).
    pub(super) fn renumber_lives(&mut self) {
        if self.lives.is_empty() {
            return;
        }
        let mut lives = std::mem::take(&mut self.lives);
        let mut next = 0u32;
        for (i, slot) in self.slots.iter().enumerate() {
            if !slot.is_live() {
                continue;
            }
            if let Some(v) = lives.remove(&(i as u32)) {
                self.lives.insert(next, v);
            }
            next += 1;
        }
    }

    /// Maps every slot's key to it anew, after slots were renumbered.
    fn rebuild_table(&mut self) {
        self.table.clear();
        for (i, slot) in self.slots.iter().enumerate() {
            let bucket = Bucket {
                slot: i as u32,
                hash: slot.hash,
            };
            self.table
                .insert_unique(bucket.table_hash(), bucket, Bucket::table_hash);
        }
    }

    /// The key of slot `i`.
    pub(crate) fn key(&self, i: usize) -> &str {
        let bytes = self
            .slots
            .get(i)
            .map(|s| self.arena.bytes(s.key))
            .unwrap_or_default();
        // Keys enter the arena only from `&str`, so this never falls back.
        std::str::from_utf8(bytes).unwrap_or_default()
    }

    /// The value of slot `i`.
    pub(crate) fn value(&self, i: usize) -> ValueRef<'_, V> {
        if !self.lives.is_empty()
            && let Some(v) = self.lives.get(&(i as u32))
        {
            return ValueRef::Live(v);
        }
        match self.slots.get(i) {
            Some(s) => ValueRef::Text(self.arena.bytes(s.value)),
            None => ValueRef::Text(&[]),
        }
    }

    /// The task state of slot `i`.
    pub(crate) fn task(&self, i: usize) -> SlotTask {
        self.slots.get(i).map_or_else(SlotTask::default, Slot::task)
    }

    /// Sets the task state of slot `i`.
    pub(crate) fn set_task(&mut self, i: usize, state: SlotTask) {
        if let Some(slot) = self.slots.get_mut(i) {
            slot.set_task(state);
        }
    }

    /// Bumped whenever slot numbers change, so cursors can re-find their place.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The first live slot at or after `from`.
    pub(crate) fn next_slot(&self, from: usize) -> Option<usize> {
        let rest = self.slots.get(from..)?;
        rest.iter().position(Slot::is_live).map(|p| from + p)
    }

    /// The log line of the record slot `i`'s value text comes from (0 if
    /// it is not on disk yet).
    pub(crate) fn line(&self, i: usize) -> u64 {
        self.slots.get(i).and_then(Slot::line).map_or(0, u64::from)
    }

    /// The decoded value of slot `i`, if it has one.
    pub(crate) fn live_value_mut(&mut self, i: usize) -> Option<&mut V> {
        self.lives.get_mut(&(i as u32)).map(|v| &mut **v)
    }

    /// Takes slot `i`'s decoded value out, leaving its text.
    pub(crate) fn take_live(&mut self, i: usize) -> Option<Box<V>> {
        self.lives.remove(&(i as u32))
    }

    /// Replaces the value of slot `i` with `value`, marking it dirty.
    pub(crate) fn set_live(&mut self, i: usize, value: V) {
        self.mark_dirty(i);
        if i < self.slots.len() {
            self.lives.insert(i as u32, Box::new(value));
        }
    }

    /// Marks slot `i` dirty; returns whether it was clean.
    pub(crate) fn mark_dirty(&mut self, i: usize) -> bool {
        if i < self.slots.len() {
            self.pending.in_place = true;
        }
        match self.slots.get_mut(i) {
            Some(slot) if slot.is_live() && !slot.flags.contains(Flags::DIRTY) => {
                slot.flags.insert(Flags::DIRTY);
                self.dirty.push(i as u32);
                self.dirty_count += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether slot `i` has unsynced changes.
    pub(crate) fn is_dirty(&self, i: usize) -> bool {
        self.slots.get(i).is_some_and(Slot::is_dirty)
    }

    /// Whether slot `i` has a record on disk.
    pub(crate) fn is_on_disk(&self, i: usize) -> bool {
        self.slots
            .get(i)
            .is_some_and(|s| s.flags.contains(Flags::ON_DISK))
    }

    /// Live slots in insertion order.
    pub(crate) fn slots(&self) -> impl DoubleEndedIterator<Item = usize> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_live())
            .map(|(i, _)| i)
    }

    /// Live slots with unsynced changes, in insertion order. Costs
    /// O(d log d) for d dirty slots, whatever the size of the map.
    pub(crate) fn dirty_slots(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .dirty
            .iter()
            .map(|&i| i as usize)
            .filter(|&i| self.is_dirty(i))
            .collect();
        out.sort_unstable();
        // A slot cleaned and dirtied again is listed twice.
        out.dedup();
        out
    }

    /// The number of keys with unsynced changes: dirty slots, and keys
    /// removed (and not inserted again) whose removal is not written.
    pub(crate) fn dirty_len(&self) -> usize {
        self.dirty_count + self.removed_keys().count()
    }

    /// Drops slots that are no longer dirty from the dirty list.
    pub(crate) fn prune_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.retain(|&i| self.is_dirty(i as usize));
        self.dirty = dirty;
    }

    /// Checks the invariants listed in the module docs; panics naming the
    /// first one broken. Debug builds run it after every write, replay and
    /// compaction; it costs O(n), so it looks at indexes of at most 4096
    /// slots (what the model and crash tests build) and only at the dirty
    /// count for larger ones.
    #[cfg(debug_assertions)]
    pub(crate) fn check(&self) {
        let dirty_listed = self
            .dirty
            .iter()
            .filter(|&&i| self.is_dirty(i as usize))
            .count();
        assert!(dirty_listed >= self.dirty_count, "invariant 2: dirty list");
        if self.slots.len() > 4096 {
            return;
        }
        let live = self.slots.iter().filter(|s| s.is_live()).count();
        assert_eq!(live, self.live, "invariant 1: live count");
        assert_eq!(self.table.len(), self.live, "invariant 1: table size");
        for b in &self.table {
            assert_eq!(
                self.slots.get(b.slot as usize).map(|s| s.hash),
                Some(b.hash),
                "invariant 1: table entry of slot {}",
                b.slot
            );
        }
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.is_live() {
                let key = self.arena.bytes(slot.key);
                assert_eq!(
                    self.find_hashed(self.hash(key), key),
                    Some(i),
                    "invariant 1: slot {i}"
                );
                assert_eq!(
                    widen(slot.hash),
                    self.hash(key),
                    "invariant 1: hash of slot {i}"
                );
            } else {
                assert_eq!(slot.flags, Flags::REMOVED, "invariant 4: slot {i}");
                assert!(!self.has_live(i), "invariant 4: slot {i}");
            }
            if slot.is_pending() {
                assert!(slot.flags.contains(Flags::DIRTY), "invariant 3: slot {i}");
            }
        }
        let dirty: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.is_dirty(i))
            .collect();
        assert_eq!(dirty.len(), self.dirty_count, "invariant 2: dirty count");
        assert_eq!(dirty, self.dirty_slots(), "invariant 2: dirty list");
        let disk: u64 = (0..self.slots.len())
            .filter_map(|i| self.counted_len(i))
            .sum();
        assert_eq!(disk, self.disk_bytes, "invariant 5: disk bytes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_hash_comes_whole_from_the_32_bits_a_slot_keeps() {
        let hasher = KeyHasher(RandomState::default());
        for key in ["", "a", "task-00000123", "ключ"] {
            let hash = hasher.hash(key.as_bytes());
            assert_eq!(widen(hash as u32), hash);
        }
    }

    fn text(index: &Index<()>, i: usize) -> Vec<u8> {
        match index.value(i) {
            ValueRef::Text(t) => t.to_vec(),
            ValueRef::Live(_) => Vec::new(),
        }
    }

    fn put(index: &mut Index<()>, key: &str, value: &str) {
        let hash = index.hash(key.as_bytes());
        index
            .put_pending(hash, key, |buf| {
                buf.extend_from_slice(value.as_bytes());
                Ok(())
            })
            .unwrap();
    }

    /// Writes the pending block as a sync would; returns its bytes.
    fn write(index: &mut Index<()>, first_line: u64) -> Vec<u8> {
        index.prepare_write(|_, _, _| Ok(())).unwrap();
        let w = index.take_write();
        let bytes = w.parts().concat();
        index.written(w, first_line, None);
        index.check();
        bytes
    }

    #[test]
    fn a_superseded_record_is_never_written() {
        let mut index = Index::default();
        put(&mut index, "a", "1");
        put(&mut index, "b", "2");
        put(&mut index, "a", "3");
        assert!(index.remove_pending("b"));
        put(&mut index, "c", "4");
        let bytes = write(&mut index, 2);
        let mut expect = Vec::new();
        record::encode_put(&mut expect, "a", b"3");
        record::encode_put(&mut expect, "c", b"4");
        assert_eq!(bytes, expect);
        let a = index.find("a").unwrap();
        assert_eq!((text(&index, a), index.line(a)), (b"3".to_vec(), 2));
        assert_eq!(index.line(index.find("c").unwrap()), 3);
        assert_eq!(index.disk_bytes(), expect.len() as u64);
    }

    #[test]
    fn a_key_removed_and_inserted_again_counts_once_as_dirty() {
        let mut index = Index::default();
        put(&mut index, "k", "1");
        write(&mut index, 2);
        assert!(index.remove_pending("k"));
        assert_eq!(index.dirty_len(), 1);
        assert_eq!(index.removed_keys().collect::<Vec<_>>(), ["k"]);
        put(&mut index, "k", "2");
        assert_eq!(index.dirty_len(), 1);
        assert_eq!(index.removed_keys().count(), 0);
        assert_eq!(index.dirty_slots().len(), 1);
    }

    #[test]
    fn an_exact_pending_block_is_written_as_it_is() {
        let mut index = Index::default();
        put(&mut index, "a", "1");
        put(&mut index, "b", "2");
        let bytes = write(&mut index, 2);
        assert_eq!(index.dirty_len(), 0);
        // A removal of an on-disk key, and the key inserted again.
        assert!(index.remove_pending("a"));
        put(&mut index, "a", "5");
        let again = write(&mut index, 4);
        let mut expect = Vec::new();
        record::encode_del(&mut expect, "a");
        record::encode_put(&mut expect, "a", b"5");
        assert_eq!(again, expect);
        assert_eq!(
            index
                .slots()
                .map(|i| index.key(i).to_string())
                .collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert!(!bytes.is_empty());
    }
}

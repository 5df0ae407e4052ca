//! The pending block: every change since the last write, as complete
//! records in the order the changes were made, ready to be written as they
//! are. It is a redo log: writing it (or any prefix of it) after the log
//! gives the state the changes made, so writing it is always correct. A
//! sync first makes it *exact* ([`Index::prepare_write`]): the changes made
//! in place become records at its end, and if a later change superseded a
//! record in it, it is rebuilt with one record per changed key (removals
//! first, then puts in key order), so no dead record is written. The
//! written chunks stay in the arena as the home of their value texts: an
//! inserted value is encoded once and never copied.

use super::arena::Loc;
use super::slot::Flags;
use super::{Index, ValueRef};
use crate::error::Result;
use crate::record;
use std::collections::HashMap;

/// The size of the first pending chunk.
const FIRST_CHUNK: usize = 64 << 10;
/// A written chunk holding this much stays as the home of its value texts;
/// the texts of a smaller one are copied out and it is reused.
const KEEP: usize = 32 << 10;
/// The pending block is a list of chunks, so it never grows by copying: the
/// first is `FIRST_CHUNK` bytes, each next one twice the last, up to this.
/// Only the last chunk of a sync is partly empty, and it is at most about
/// the size of the others, so the chunks of a sync take at most about twice
/// what they hold.
const MAX_CHUNK: usize = 1 << 20;
/// A chunk is full when less than this is left in it.
const SLACK: usize = 4 << 10;

/// A pending chunk taken out of the arena: its block number and bytes.
pub(crate) type Chunk = (u32, Vec<u8>);

/// The records of changes not yet written.
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// The chunks, oldest first (with no records, at most one empty chunk
    /// kept for reuse).
    chunks: Vec<u32>,
    /// Records are numbered from 1 since the last full write; the chunks
    /// hold numbers `base + 1 ..= records` (a `sync_key` writes a prefix).
    base: u32,
    records: u32,
    /// The bytes of the latest record of every `PENDING` slot.
    latest_bytes: u64,
    /// The bytes of records a later change superseded (they are dead).
    superseded: u64,
    /// Keys with a record on disk that were removed since the last write,
    /// with the number of their removal record.
    pub(super) removals: HashMap<String, u32>,
    /// A value was changed in place since the last full write (even if a
    /// later insert superseded the change): such a change has no record
    /// where it happened, so the records are not in call order.
    pub(super) in_place: bool,
}

/// One key's unwritten change: the key, its value changed in place, the
/// text of its latest pending record.
type Change<V> = (String, Option<Box<V>>, Option<Vec<u8>>);

/// Unwritten changes taken out of an index ([`Index::take_changes`]).
#[derive(Debug)]
pub(crate) struct Changes<V> {
    removals: Vec<String>,
    changed: Vec<Change<V>>,
    /// The old pending chunks, freed once the changes are back.
    chunks: Vec<u32>,
}

/// The pending block, taken out to be written: [`Index::written`] or
/// [`Index::unwritten`] takes it back.
#[derive(Debug)]
pub(crate) struct PendingWrite {
    chunks: Vec<Chunk>,
    /// The number of the first record in it, and how many it holds.
    first: u32,
    records: u32,
}

impl Pending {
    /// Takes a superseded latest record's bytes off `latest_bytes`.
    fn forget_latest(&mut self, len: u64) {
        debug_assert!(self.latest_bytes >= len, "latest bytes would go below zero");
        self.latest_bytes = self.latest_bytes.saturating_sub(len);
    }

    /// The blocks holding the pending chunks.
    pub(super) fn chunks(&self) -> &[u32] {
        &self.chunks
    }
}

impl PendingWrite {
    /// The bytes to write, in order.
    pub(crate) fn parts(&self) -> Vec<&[u8]> {
        self.chunks.iter().map(|(_, c)| &c[..]).collect()
    }

    /// The number of records (lines) in it.
    pub(crate) fn records(&self) -> u32 {
        self.records
    }
}

impl<V> Index<V> {
    /// The chunk records are appended to, started if needed.
    fn chunk_for(&mut self, bytes: usize) -> (u32, &mut Vec<u8>) {
        let full = match self.pending.chunks.last() {
            Some(&n) => {
                let len = self.arena.len_of(n);
                len + bytes.max(SLACK) > self.arena.capacity_of(n)
                    || u32::try_from(len + bytes).is_err()
            }
            None => true,
        };
        if full {
            let size = (FIRST_CHUNK << self.pending.chunks.len().min(8)).min(MAX_CHUNK);
            let n = self.arena.adopt(Vec::with_capacity(size.max(bytes)));
            self.pending.chunks.push(n);
        }
        let n = self.pending.chunks.last().copied().unwrap_or_default();
        (n, self.arena.block_mut(n))
    }

    /// Appends a put record for `key` (hashing to `hash`) to the pending
    /// block, with the value text `encode` writes; the key's slot (a new
    /// one at the end if absent) takes that text and becomes dirty. If
    /// `encode` fails (or panics), nothing changes.
    pub(crate) fn put_pending(
        &mut self,
        hash: u64,
        key: &str,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let (block, buf) = self.chunk_for(0);
        let start = buf.len();
        let range = record::encode_put_with(buf, key, encode)?;
        let record_len = (buf.len() - start) as u64;
        let value = Loc::of(block, range).unwrap_or_default();
        self.pending.records = self.pending.records.saturating_add(1);
        let ordinal = self.pending.records;
        self.pending.latest_bytes += record_len;
        match self.find_hashed_from_last(hash, key.as_bytes()) {
            None => {
                let key = self.arena.push(key.as_bytes());
                let flags = Flags::DIRTY.union(Flags::PENDING);
                self.insert_slot(hash, key, value, ordinal, flags);
            }
            Some(i) => {
                self.uncount_with(i, record_len - u64::from(value.len));
                if let Some(slot) = self.slots.get(i)
                    && slot.is_pending()
                {
                    // Same key, so the same framing: its old record's length.
                    let old = record_len - u64::from(value.len) + u64::from(slot.value.len);
                    self.pending.superseded += old;
                    self.pending.forget_latest(old);
                }
                self.mark_dirty(i);
                if let Some(slot) = self.slots.get_mut(i) {
                    slot.set_pending(value, ordinal);
                }
                self.forget_live(i);
            }
        }
        Ok(())
    }

    /// Removes `key`; returns whether it was present. Its removal is
    /// recorded if it has a record on disk or in the pending block.
    pub(crate) fn remove_pending(&mut self, key: &str) -> bool {
        let Some(i) = self.find(key) else {
            return false;
        };
        let (on_disk, pending) = match self.slots.get(i) {
            Some(s) => (s.flags.contains(Flags::ON_DISK), s.is_pending()),
            None => (false, false),
        };
        if pending {
            let len = self.latest_len(i);
            self.pending.superseded += len;
            self.pending.forget_latest(len);
        }
        self.remove(key);
        if on_disk || pending {
            let ordinal = self.append_del(key);
            if on_disk {
                self.pending.removals.insert(key.to_string(), ordinal);
            }
        }
        if pending && !on_disk {
            // Its put and its removal are both dead: nothing to write.
            self.pending.superseded += record::del_len(key);
        }
        true
    }

    /// Appends a removal record for `key`; returns its number.
    fn append_del(&mut self, key: &str) -> u32 {
        let (_, buf) = self.chunk_for(0);
        record::encode_del(buf, key);
        self.pending.records = self.pending.records.saturating_add(1);
        self.pending.records
    }

    /// The length of slot `i`'s latest pending record.
    fn latest_len(&self, i: usize) -> u64 {
        self.slots
            .get(i)
            .map_or(0, |s| record::put_len(self.key(i), s.value.len as usize))
    }

    /// Whether writing the pending block as it is would write a dead
    /// record, or miss a change made in place after a pending record.
    fn needs_rebuild(&self) -> bool {
        self.pending.superseded > 0
            || self.dirty.iter().any(|&i| {
                self.has_live(i as usize)
                    && self
                        .slots
                        .get(i as usize)
                        .is_some_and(|s| s.is_dirty() && s.is_pending())
            })
    }

    /// Whether the pending records are in the order of the changes that
    /// made them, so that every prefix of them is a state the program
    /// passed through: nothing was changed in place (such changes become
    /// records at the end) and no pending record was superseded (a rebuild
    /// orders them by kind and key).
    pub(crate) fn in_call_order(&self) -> bool {
        !self.pending.in_place
            && !self.needs_rebuild()
            && !self.dirty.iter().any(|&i| {
                self.slots
                    .get(i as usize)
                    .is_some_and(|s| s.is_dirty() && !s.is_pending())
            })
    }

    /// Makes the pending block exact: afterwards it holds exactly the
    /// records the next write must add (every dirty slot is `PENDING`).
    /// `encode` writes a value changed in place. On an error nothing
    /// changes.
    pub(crate) fn prepare_write(
        &mut self,
        mut encode: impl FnMut(&mut Vec<u8>, &str, &V) -> Result<()>,
    ) -> Result<()> {
        if self.needs_rebuild() {
            return self.rebuild_pending(encode);
        }
        // Records for the changes made in place, encoded before anything
        // changes (encoding runs the caller's code, which may fail or panic).
        let in_place = |i: &u32| {
            self.slots
                .get(*i as usize)
                .is_some_and(|s| s.is_dirty() && !s.is_pending())
        };
        if !self.dirty.iter().any(in_place) {
            return Ok(());
        }
        let mut slots: Vec<usize> = self
            .dirty
            .iter()
            .filter(|i| in_place(i))
            .map(|&i| i as usize)
            .collect();
        slots.sort_unstable();
        slots.dedup();
        let mut extra = Vec::with_capacity(slots.len() * 128);
        let mut placed = Vec::with_capacity(slots.len());
        for &i in &slots {
            let start = extra.len();
            let range = self.encode_current(&mut extra, i, &mut encode)?;
            placed.push((i, range, (extra.len() - start) as u64));
        }
        let (block, chunk) = self.chunk_for(extra.len());
        let base = chunk.len();
        chunk.extend_from_slice(&extra);
        let mut latest = 0;
        for (i, range, record_len) in placed {
            let value = Loc::of(block, base + range.start..base + range.end).unwrap_or_default();
            self.pending.records = self.pending.records.saturating_add(1);
            let ordinal = self.pending.records;
            // The same key, so the same framing as its record on disk.
            let framing = record_len - range.len() as u64;
            self.uncount_with(i, framing);
            if let Some(slot) = self.slots.get_mut(i) {
                slot.set_pending(value, ordinal);
            }
            self.forget_live(i);
            latest += record_len;
        }
        self.pending.latest_bytes += latest;
        Ok(())
    }

    /// Appends a put record for slot `i`'s current value to `out`; returns
    /// where its value text sits.
    fn encode_current(
        &self,
        out: &mut Vec<u8>,
        i: usize,
        encode: &mut impl FnMut(&mut Vec<u8>, &str, &V) -> Result<()>,
    ) -> Result<std::ops::Range<usize>> {
        let key = self.key(i);
        record::encode_put_with(out, key, |buf| match self.value(i) {
            ValueRef::Text(t) => {
                buf.extend_from_slice(t);
                Ok(())
            }
            ValueRef::Live(v) => encode(buf, key, v),
        })
    }

    /// Replaces the pending block with one record per change: removals,
    /// then a put per dirty slot in order.
    fn rebuild_pending(
        &mut self,
        mut encode: impl FnMut(&mut Vec<u8>, &str, &V) -> Result<()>,
    ) -> Result<()> {
        let mut buf = Vec::new();
        let mut removals: Vec<String> = self.pending.removals.keys().cloned().collect();
        removals.sort_unstable();
        for key in &removals {
            record::encode_del(&mut buf, key);
        }
        let records = removals.len();
        let mut placed = Vec::new();
        for i in self.dirty_slots() {
            let range = self.encode_current(&mut buf, i, &mut encode)?;
            placed.push((i, range));
        }
        // The old chunks hold no text any slot needs once the new one is in.
        let old = std::mem::take(&mut self.pending.chunks);
        for n in old {
            self.arena.set(n, Vec::new());
        }
        let block = self.arena.adopt(buf);
        self.pending.chunks.push(block);
        let base = self.pending.base;
        for (n, key) in removals.into_iter().enumerate() {
            let ordinal = base.saturating_add(u32::try_from(n + 1).unwrap_or(u32::MAX));
            self.pending.removals.insert(key, ordinal);
        }
        self.pending.records = base.saturating_add(u32::try_from(records).unwrap_or(u32::MAX));
        self.pending.superseded = 0;
        self.pending.latest_bytes = 0;
        for (i, range) in placed {
            self.pending.records = self.pending.records.saturating_add(1);
            let ordinal = self.pending.records;
            let value = Loc::of(block, range).unwrap_or_default();
            self.uncount(i);
            if let Some(slot) = self.slots.get_mut(i) {
                slot.set_pending(value, ordinal);
            }
            self.forget_live(i);
            self.pending.latest_bytes += self.latest_len(i);
        }
        Ok(())
    }

    /// Takes the pending block out to be written (after
    /// [`prepare_write`](Self::prepare_write)).
    pub(crate) fn take_write(&mut self) -> PendingWrite {
        self.take_write_upto(self.pending.records)
    }

    /// The number of the latest record of `key`'s change (its put or its
    /// removal), if it has one pending (after [`prepare_write`](Self::prepare_write)).
    pub(crate) fn latest_record_of(&self, key: &str) -> Option<u32> {
        match self.find(key) {
            Some(i) => self.slots.get(i).and_then(|s| s.ordinal()),
            None => self.pending.removals.get(key).copied(),
        }
    }

    /// Takes the pending records up to number `upto` out to be written;
    /// the later ones stay pending, moved to a chunk of their own.
    pub(crate) fn take_write_upto(&mut self, upto: u32) -> PendingWrite {
        let first = self.pending.base + 1;
        let upto = upto.clamp(self.pending.base, self.pending.records);
        let count = upto - self.pending.base;
        let mut chunks: Vec<Chunk> = std::mem::take(&mut self.pending.chunks)
            .into_iter()
            .map(|n| (n, self.arena.take(n)))
            .collect();
        if upto < self.pending.records {
            self.split_off_after(&mut chunks, count);
        } else {
            self.pending.in_place = false;
        }
        self.pending.base = upto;
        PendingWrite {
            chunks,
            first,
            records: count,
        }
    }

    /// Cuts `chunks` after their `count`th record; what follows moves to a
    /// new pending chunk, and the slots whose texts are there follow it.
    fn split_off_after(&mut self, chunks: &mut Vec<Chunk>, count: u32) {
        // Where the cut is: chunk `c`, byte `b`.
        let (mut c, mut b, mut seen) = (0, 0, 0u32);
        for (n, (_, bytes)) in chunks.iter().enumerate() {
            let lines = memchr::memchr_iter(b'\n', bytes).count() as u32;
            if seen + lines >= count {
                let need = (count - seen) as usize;
                b = memchr::memchr_iter(b'\n', bytes)
                    .nth(need.wrapping_sub(1))
                    .map_or(0, |p| p + 1);
                c = n;
                break;
            }
            seen += lines;
            c = n + 1;
        }
        let mut suffix = Vec::new();
        // Old block and offset of the suffix's pieces, to move slots by.
        let mut moved: Vec<(u32, usize, usize)> = Vec::new();
        for (n, (block, bytes)) in chunks.iter_mut().enumerate().skip(c) {
            let from = if n == c { b } else { 0 };
            moved.push((*block, from, suffix.len()));
            suffix.extend_from_slice(bytes.get(from..).unwrap_or_default());
            bytes.truncate(from);
        }
        chunks.retain(|(_, bytes)| !bytes.is_empty());
        let new_block = self.arena.adopt(suffix);
        self.pending.chunks.push(new_block);
        for i in self.dirty_slots() {
            let Some(slot) = self.slots.get_mut(i) else {
                continue;
            };
            let Some((_, from, to)) = moved.iter().find(|(blk, from, _)| {
                *blk == slot.value.block && slot.value.offset as usize >= *from
            }) else {
                continue;
            };
            slot.value.block = new_block;
            slot.value.offset = (slot.value.offset as usize - from + to) as u32;
        }
    }

    /// Puts back a pending block that could not be written; the next write
    /// rebuilds it.
    pub(crate) fn unwritten(&mut self, write: PendingWrite) {
        let later = std::mem::take(&mut self.pending.chunks);
        for (n, buf) in write.chunks {
            self.arena.set(n, buf);
            self.pending.chunks.push(n);
        }
        self.pending.chunks.extend(later);
        self.pending.base = write.first - 1;
        self.pending.superseded = self.pending.superseded.max(1);
    }

    /// Takes back a pending block once written, its first record at log
    /// line `first_line` (and at byte `at`, if the writer knows where its
    /// bytes went): every slot whose latest record was in it now points at
    /// that record on disk (in a chunk kept as an arena block, or copied
    /// out of a small one).
    pub(crate) fn written(&mut self, write: PendingWrite, first_line: u64, at: Option<u64>) {
        let last = write.first + write.records - 1;
        let mut small = Vec::new();
        let mut next_at = at;
        // A chunk is kept as the home of its texts if it is large, or part
        // of a large write (whose every text then has its place in the log
        // file, for a hint: `crate::hint`); a small write's are copied out.
        let total: usize = write.chunks.iter().map(|(_, c)| c.len()).sum();
        for (n, mut buf) in write.chunks {
            let len = buf.len() as u64;
            if buf.len() < KEEP && total < KEEP {
                small.push((n, buf));
            } else {
                if buf.len() < KEEP && buf.capacity() / 2 > buf.len() {
                    buf.shrink_to_fit();
                }
                // Kept: the home of the texts in it.
                self.arena.set(n, buf);
                if let Some(at) = next_at {
                    self.arena.set_in_file(n, at);
                }
            }
            next_at = next_at.map(|at| at + len);
        }
        let mut latest = 0u64;
        // A full write adds every pending slot's latest record, whose
        // lengths are summed already; a prefix counts slot by slot.
        let full = last >= self.pending.records;
        // In any order: each slot is cleaned once (a duplicate in the list
        // is no longer dirty when met again).
        let dirty = std::mem::take(&mut self.dirty);
        for &i in &dirty {
            let i = i as usize;
            if !self.is_dirty(i) {
                continue;
            }
            let Some((value, ordinal)) = self
                .slots
                .get(i)
                .and_then(|s| Some((s.value, s.ordinal()?)))
            else {
                continue;
            };
            if ordinal > last {
                latest += self.latest_len(i);
                continue;
            }
            let value = match small.iter().find(|(n, _)| *n == value.block) {
                Some((_, chunk)) => {
                    let start = value.offset as usize;
                    let text = chunk.get(start..start + value.len as usize);
                    self.arena.push(text.unwrap_or_default())
                }
                None => value,
            };
            let line = first_line + u64::from(ordinal - write.first);
            let line = u32::try_from(line).unwrap_or(u32::MAX);
            if full {
                // Pending, so not counted: no uncounting to do.
                self.clean(i);
                if let Some(slot) = self.slots.get_mut(i) {
                    slot.set_on_disk(value, line);
                }
                self.forget_live(i);
            } else {
                self.set_text(i, value, line);
            }
        }
        if full {
            self.disk_bytes += self.pending.latest_bytes;
        }
        self.pending
            .removals
            .retain(|_, &mut ordinal| ordinal > last);
        let reuse = self.pending.chunks.is_empty();
        // One small chunk is emptied for reuse; the rest are freed.
        for (n, mut buf) in small {
            if reuse && self.pending.chunks.is_empty() && buf.capacity() <= MAX_CHUNK {
                buf.clear();
                self.arena.set(n, buf);
                self.pending.chunks.push(n);
            } else {
                self.arena.set(n, Vec::new());
            }
        }
        if last >= self.pending.records {
            self.pending.base = 0;
            self.pending.records = 0;
            self.pending.superseded = 0;
        }
        self.pending.latest_bytes = latest;
        self.dirty = dirty;
        self.prune_dirty();
    }

    /// Takes every unwritten change out, leaving the index as if they had
    /// never been made but their texts were on disk (keys never on disk are
    /// removed), so that other processes' records can be applied; then
    /// [`restore_changes`](Self::restore_changes) puts them back on top.
    pub(crate) fn take_changes(&mut self) -> Changes<V> {
        let mut changed = Vec::new();
        for i in self.dirty_slots() {
            let key = self.key(i).to_string();
            let live = self.take_live(i);
            let text = match (&live, self.slots.get(i)) {
                (None, Some(s)) if s.is_pending() => Some(self.arena.bytes(s.value).to_vec()),
                _ => None,
            };
            let on_disk = self.is_on_disk(i);
            if on_disk {
                // Clean, its text taken as on disk (an old line number is
                // harmless: the change put back makes it pending again).
                self.uncount(i);
                self.clean(i);
                if let Some(slot) = self.slots.get_mut(i) {
                    let (value, line) = (slot.value, slot.line().unwrap_or_default());
                    slot.set_on_disk(value, line);
                }
                self.forget_live(i);
                self.count(i);
            } else {
                self.tombstone(i);
            }
            changed.push((key, live, text));
        }
        self.maybe_shrink();
        let removals = std::mem::take(&mut self.pending.removals);
        let chunks = std::mem::take(&mut self.pending.chunks);
        self.pending = Pending::default();
        self.prune_dirty();
        Changes {
            removals: removals.into_keys().collect(),
            changed,
            chunks,
        }
    }

    /// Puts back the changes [`take_changes`](Self::take_changes) took:
    /// removals, then each change in the order of its key. A change in
    /// place of a key that is gone now is inserted anew (encoded by
    /// `encode`); if that fails, the error is returned after the rest are
    /// back.
    pub(crate) fn restore_changes(
        &mut self,
        changes: Changes<V>,
        mut encode: impl FnMut(&mut Vec<u8>, &str, &V) -> Result<()>,
    ) -> Result<()> {
        let Changes {
            mut removals,
            changed,
            chunks,
        } = changes;
        removals.sort_unstable();
        for key in removals {
            if !self.remove_pending(&key) {
                // Gone already: its record on disk still needs the removal.
                let ordinal = self.append_del(&key);
                self.pending.removals.insert(key, ordinal);
            }
        }
        let mut failed = Ok(());
        for (key, live, text) in changed {
            let hash = self.hash(key.as_bytes());
            let found = self.find_hashed(hash, key.as_bytes());
            let put = match (found, live, text) {
                (_, None, Some(text)) => self.put_pending(hash, &key, |buf| {
                    buf.extend_from_slice(&text);
                    Ok(())
                }),
                (Some(i), Some(value), _) => {
                    self.set_live(i, *value);
                    Ok(())
                }
                (Some(i), None, None) => {
                    self.mark_dirty(i);
                    Ok(())
                }
                (None, Some(value), _) => {
                    self.put_pending(hash, &key, |buf| encode(buf, &key, &value))
                }
                (None, None, None) => Ok(()),
            };
            if put.is_err() && failed.is_ok() {
                failed = put;
            }
        }
        // No slot points into the old chunks any more.
        for n in chunks {
            self.arena.set(n, Vec::new());
        }
        failed
    }

    /// Whether anything is pending: a record or a change in place.
    pub(crate) fn has_changes(&self) -> bool {
        self.dirty_count > 0 || !self.pending.removals.is_empty() || self.pending.records > 0
    }

    /// Keys with a record on disk removed since the last write and not
    /// inserted again.
    pub(crate) fn removed_keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.pending
            .removals
            .keys()
            .map(String::as_str)
            .filter(|k| self.find(k).is_none())
    }
}

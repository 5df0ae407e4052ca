//! The in-memory ordered map behind a `Pod`.
//!
//! Keys and the JSON text of values live in an append-only byte arena (whole
//! replay batches and sync buffers are adopted as arena blocks, so neither is
//! copied twice); a slot per key keeps insertion order, and a hash table maps
//! key bytes to slots. A value is decoded only when it is accessed, or kept
//! decoded (`live`) while it has changes not yet written to the log. Removed
//! slots become tombstones until the slot vector is rebuilt.
//!
//! An inserted value is encoded at once, as a complete put record appended
//! to the *pending block*, an arena block that collects the records of the
//! next sync in the order the changes were made. While no record in it has
//! been superseded, a sync writes the pending block as it is, and its value
//! texts stay where they are: the value is encoded once and never copied.

use crate::record;
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Arena blocks for new keys are this big.
const BLOCK_SIZE: usize = 64 << 10;

/// Slot flag: the key was removed; the slot is a tombstone.
const REMOVED: u8 = 1;
/// Task bits of a slot.
const TASK_DONE: u8 = 1;
const TASK_ABORTED: u8 = 2;

/// Slot flag: the slot has changes not yet written to the log.
const DIRTY: u8 = 2;
/// Slot flag: the key has a record on disk (so removing it needs a removal record).
const ON_DISK: u8 = 4;
/// Slot flag: `value` is the text of an unsynced put record in the pending
/// block, and `line` that record's 1-based position there. Without it, an
/// `ON_DISK` slot's `value` is the text of its last record on disk.
const PENDING: u8 = 8;

/// The size of the first pending chunk.
const PENDING_FIRST: usize = 64 << 10;
/// A written pending chunk holding this much stays as the home of its value
/// texts; the texts of a smaller one are copied out and it is reused.
const PENDING_KEEP: usize = 32 << 10;
/// The pending block is a list of chunks, so it never grows by copying: the
/// first is `PENDING_FIRST` bytes, each next one twice the last, up to this.
/// Only the last chunk of a sync is partly empty, and it is at most about
/// the size of the others, so the chunks of a sync take at most about twice
/// what they hold.
const PENDING_CHUNK: usize = 1 << 20;
/// A chunk is full when less than this is left in it.
const CHUNK_SLACK: usize = 4 << 10;

/// Where some bytes sit in the arena.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Loc {
    pub block: u32,
    pub offset: u32,
    pub len: u32,
}

/// A tracker task's state, kept beside each slot so gates and counters
/// never parse JSON. Unused by plain `Pod`s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    pub tries: u32,
    pub done: bool,
    pub aborted: bool,
}

#[derive(Debug)]
struct Slot<V> {
    /// The task state: tries, and `TASK_DONE` / `TASK_ABORTED` bits.
    tries: u32,
    task: u8,
    /// The low 32 bits of the key's hash (all the table's hash is made of),
    /// so the table grows without reading keys.
    hash: u32,
    key: Loc,
    /// The value text of the key's last record on disk (if `ON_DISK`).
    value: Loc,
    /// The 1-based log line of the key's last record, 0 if never on disk
    /// (with `PENDING`: the record's position in the pending block).
    line: u32,
    flags: u8,
    /// The decoded value, present while it differs from `value` (or no text exists).
    live: Option<Box<V>>,
}

/// The value of a slot: its stored JSON text, or a decoded value with unsynced changes.
pub(crate) enum ValueRef<'a, V> {
    /// JSON text as it is on disk.
    Text(&'a [u8]),
    /// A value changed in memory since the last sync.
    Live(&'a V),
}

/// An arena block: owned, or shared with a background compaction.
#[derive(Debug)]
enum Block {
    Owned(Vec<u8>),
    Shared(Arc<Vec<u8>>),
}

impl Default for Block {
    fn default() -> Self {
        Block::Owned(Vec::new())
    }
}

impl Block {
    fn bytes(&self) -> &Vec<u8> {
        match self {
            Block::Owned(v) => v,
            Block::Shared(a) => a,
        }
    }

    /// The block to change: a shared block is taken back, or copied if
    /// the compaction still holds it.
    fn to_mut(&mut self) -> &mut Vec<u8> {
        if matches!(self, Block::Shared(_)) {
            let owned = match std::mem::take(self) {
                Block::Shared(a) => Arc::try_unwrap(a).unwrap_or_else(|a| {
                    // Keep the room: a pending chunk must not grow by copying.
                    let mut v = Vec::with_capacity(a.capacity());
                    v.extend_from_slice(&a);
                    v
                }),
                Block::Owned(v) => v,
            };
            *self = Block::Owned(owned);
        }
        match self {
            Block::Owned(v) => v,
            Block::Shared(a) => Arc::make_mut(a),
        }
    }

    /// A handle on the block for another thread to read.
    fn share(&mut self) -> Arc<Vec<u8>> {
        if let Block::Owned(v) = self {
            *self = Block::Shared(Arc::new(std::mem::take(v)));
        }
        match self {
            Block::Shared(a) => a.clone(),
            Block::Owned(v) => Arc::new(v.clone()),
        }
    }

    fn is_shared(&self) -> bool {
        matches!(self, Block::Shared(_))
    }
}

/// Append-only storage for key and value bytes. Blocks are shared with a
/// background compaction while it runs; a shared block is never changed in
/// place (new keys go to a new block; a pending block is copied first).
#[derive(Debug, Default)]
struct Arena {
    blocks: Vec<Block>,
    /// The block new keys are pushed into, if any.
    open: Option<usize>,
}

impl Arena {
    fn push(&mut self, bytes: &[u8]) -> Loc {
        let fits =
            |b: &Block| !b.is_shared() && b.bytes().capacity() - b.bytes().len() >= bytes.len();
        let n = match self.open {
            Some(n) if self.blocks.get(n).is_some_and(fits) => n,
            _ => {
                self.blocks.push(Block::Owned(Vec::with_capacity(
                    bytes.len().max(BLOCK_SIZE),
                )));
                self.open = Some(self.blocks.len() - 1);
                self.blocks.len() - 1
            }
        };
        let block = self.block_mut(n as u32);
        let loc = Loc {
            block: n as u32,
            offset: block.len() as u32,
            len: bytes.len() as u32,
        };
        block.extend_from_slice(bytes);
        loc
    }

    fn adopt(&mut self, block: Vec<u8>) -> u32 {
        self.blocks.push(Block::Owned(block));
        (self.blocks.len() - 1) as u32
    }

    fn capacity_of(&self, block: u32) -> usize {
        self.blocks
            .get(block as usize)
            .map_or(0, |b| b.bytes().capacity())
    }

    fn len_of(&self, block: u32) -> usize {
        self.blocks
            .get(block as usize)
            .map_or(0, |b| b.bytes().len())
    }

    /// Block `n` (which must exist) to change.
    fn block_mut(&mut self, n: u32) -> &mut Vec<u8> {
        let n = n as usize;
        if n >= self.blocks.len() {
            // Never happens: callers only pass numbers the arena handed out.
            self.blocks.resize_with(n + 1, Block::default);
        }
        self.blocks[n].to_mut()
    }

    /// Makes `bytes` the contents of block `n` (which must exist).
    fn set(&mut self, n: u32, bytes: Vec<u8>) {
        if let Some(block) = self.blocks.get_mut(n as usize) {
            *block = Block::Owned(bytes);
        }
    }

    fn bytes(&self, loc: Loc) -> &[u8] {
        let start = loc.offset as usize;
        let end = start + loc.len as usize;
        self.blocks
            .get(loc.block as usize)
            .and_then(|b| b.bytes().get(start..end))
            .unwrap_or_default()
    }
}

/// A pending chunk taken out of the arena: its block number and bytes.
pub(crate) type Chunk = (u32, Vec<u8>);

/// Truncates `buf` back to `at` when dropped, unless `at` is past its end:
/// a record that failed (or panicked) half way is never left behind.
struct CutOnDrop<'a> {
    buf: &'a mut Vec<u8>,
    at: usize,
}

impl Drop for CutOnDrop<'_> {
    fn drop(&mut self) {
        self.buf.truncate(self.at);
    }
}

/// Where a rewrite of the log put each live key's record: the new log's
/// bytes as a new arena, and each live slot's key, value text and line in it.
#[derive(Debug, Default)]
pub(crate) struct Relocation {
    arena: Arena,
    places: Vec<(Loc, Loc, u32)>,
}

impl Relocation {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Relocation {
            arena: Arena::default(),
            places: Vec::with_capacity(n),
        }
    }

    /// Numbers a block of the new arena, to be filled later.
    pub(crate) fn reserve_block(&mut self) -> u32 {
        self.arena.adopt(Vec::new())
    }

    /// Fills a block numbered by [`reserve_block`](Self::reserve_block).
    pub(crate) fn fill_block(&mut self, block: u32, bytes: Vec<u8>) {
        self.arena.set(block, bytes);
    }

    /// Records that the next live slot's key is `key` and its value text
    /// sits at `offset..offset + len` in `block`, from log line `line`.
    pub(crate) fn place(&mut self, key: &str, block: u32, offset: usize, len: usize, line: u32) {
        let key = self.arena.push(key.as_bytes());
        let value = Loc {
            block,
            offset: offset as u32,
            len: len as u32,
        };
        self.places.push((key, value, line));
    }
}

/// The live keys of a fully synced index and their value texts, sharing
/// its arena blocks, for a compaction running beside further changes.
#[derive(Debug)]
pub(crate) struct Snapshot {
    blocks: Vec<Arc<Vec<u8>>>,
    /// Live slots in order: slot number, key, value text.
    entries: Vec<(u32, Loc, Loc)>,
    /// The index's generation when taken.
    generation: u64,
}

impl Snapshot {
    /// The number of keys.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn bytes(&self, loc: Loc) -> &[u8] {
        let start = loc.offset as usize;
        let end = start + loc.len as usize;
        self.blocks
            .get(loc.block as usize)
            .and_then(|b| b.get(start..end))
            .unwrap_or_default()
    }

    /// Every key and value text, in order.
    pub(crate) fn records(
        &self,
    ) -> impl Iterator<Item = crate::error::Result<(&str, std::borrow::Cow<'_, [u8]>)>> {
        self.entries.iter().map(|&(_, key, value)| {
            // Keys enter the arena only from `&str`, so this never falls back.
            let key = std::str::from_utf8(self.bytes(key)).unwrap_or_default();
            Ok((key, std::borrow::Cow::Borrowed(self.bytes(value))))
        })
    }
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

/// The table hash of slot `i`, from the 32 bits it keeps.
fn slot_hash<V>(slots: &[Slot<V>], i: u32) -> u64 {
    widen(slots.get(i as usize).map_or(0, |s| s.hash))
}

/// An insertion-ordered map from string keys to JSON values.
#[derive(Debug)]
pub(crate) struct Index<V> {
    slots: Vec<Slot<V>>,
    table: HashTable<u32>,
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
    /// The chunks of the pending block, oldest first (with no records, at
    /// most one empty chunk kept for reuse).
    pending: Vec<u32>,
    /// The number of records in the pending blocks.
    pending_records: u32,
    /// The bytes of the put records among them.
    pending_put_bytes: u64,
    /// Whether the pending blocks hold exactly the records a full sync must
    /// write for `PENDING` slots and removals: none of them superseded.
    pending_exact: bool,
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
            table: HashTable::with_capacity(n),
            hasher: KeyHasher(RandomState::default()),
            arena: Arena::default(),
            live: 0,
            dirty: Vec::new(),
            dirty_count: 0,
            generation: 0,
            pending: Vec::new(),
            pending_records: 0,
            pending_put_bytes: 0,
            pending_exact: true,
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

    /// The slot of `key`, if present.
    pub(crate) fn find(&self, key: &str) -> Option<usize> {
        let key = key.as_bytes();
        let last = self.last_found.load(Ordering::Relaxed);
        if self.in_order.load(Ordering::Relaxed) {
            let next = last.wrapping_add(1);
            let hit = self
                .slots
                .get(next)
                .is_some_and(|s| s.flags & REMOVED == 0 && self.arena.bytes(s.key) == key);
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

    /// Looks at the table where a key hashing to `hash` would be, so that
    /// a lookup of it soon after finds that memory in the cache.
    pub(crate) fn touch(&self, hash: u64) {
        std::hint::black_box(self.table.find(hash, |_| false));
    }

    /// The slot of `key`, whose hash is `hash`, if present.
    pub(crate) fn find_hashed(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let (slots, arena) = (&self.slots, &self.arena);
        self.table
            .find(hash, |&i| {
                slots
                    .get(i as usize)
                    .is_some_and(|s| s.hash == hash as u32 && arena.bytes(s.key) == key)
            })
            .map(|&i| i as usize)
    }

    /// Appends a slot for a key (which must be absent) whose hash is `hash`.
    fn insert_slot(
        &mut self,
        hash: u64,
        key: Loc,
        value: Loc,
        line: u32,
        flags: u8,
        live: Option<Box<V>>,
    ) -> usize {
        let slot_no = self.slots.len();
        let dirty = flags & DIRTY != 0;
        self.slots.push(Slot {
            tries: 0,
            task: 0,
            hash: hash as u32,
            key,
            value,
            line,
            flags,
            live,
        });
        let slots = &self.slots;
        self.table
            .insert_unique(hash, slot_no as u32, |&i| slot_hash(slots, i));
        self.live += 1;
        if dirty {
            self.dirty.push(slot_no as u32);
            self.dirty_count += 1;
        }
        slot_no
    }

    /// Appends a slot for a new key whose record is on disk.
    fn insert_on_disk(&mut self, hash: u64, key: Loc, value: Loc, line: u32) {
        self.insert_slot(hash, key, value, line, ON_DISK, None);
    }

    /// Takes `block` into the arena; returns its number.
    pub(crate) fn adopt_block(&mut self, block: Vec<u8>) -> u32 {
        self.arena.adopt(block)
    }

    /// Copies `bytes` into the arena.
    pub(crate) fn push_bytes(&mut self, bytes: &[u8]) -> Loc {
        self.arena.push(bytes)
    }

    /// Takes slot `i`'s decoded value out, leaving its text.
    pub(crate) fn take_live(&mut self, i: usize) -> Option<Box<V>> {
        self.slots.get_mut(i).and_then(|s| s.live.take())
    }

    /// The bytes at `loc`.
    pub(crate) fn bytes(&self, loc: Loc) -> &[u8] {
        self.arena.bytes(loc)
    }

    /// Records that the key at `key` (hashing to `hash`) maps to the on-disk
    /// value text at `value`, from log line `line`. Returns the previous
    /// on-disk value length if the key was present.
    pub(crate) fn put_loc(
        &mut self,
        hash: u64,
        key: Loc,
        value: Loc,
        line: u32,
    ) -> Option<Option<usize>> {
        let found = self.find_hashed(hash, self.arena.bytes(key));
        match found {
            Some(i) => {
                let old = self.disk_value_len(i);
                self.set_text(i, value, line);
                Some(old)
            }
            None => {
                self.insert_on_disk(hash, key, value, line);
                None
            }
        }
    }

    /// Records that `key` maps to the on-disk value text `text` (copied into
    /// the arena) from log line `line`.
    pub(crate) fn put_text(&mut self, key: &str, text: &[u8], line: u32) -> Option<Option<usize>> {
        let hash = self.hash(key.as_bytes());
        let value = self.arena.push(text);
        match self.find_hashed(hash, key.as_bytes()) {
            Some(i) => {
                let old = self.disk_value_len(i);
                self.set_text(i, value, line);
                Some(old)
            }
            None => {
                let key = self.arena.push(key.as_bytes());
                self.insert_on_disk(hash, key, value, line);
                None
            }
        }
    }

    /// Points slot `i`'s value at the on-disk text at `value` and clears its changes.
    pub(crate) fn set_text(&mut self, i: usize, value: Loc, line: u32) {
        if let Some(slot) = self.slots.get_mut(i) {
            if slot.flags & DIRTY != 0 {
                self.dirty_count -= 1;
            }
            slot.value = value;
            slot.line = line;
            slot.flags = ON_DISK;
            slot.live = None;
        }
    }

    /// Appends a new, never-synced key (hashing to `hash`) holding `value`.
    pub(crate) fn push_live(&mut self, hash: u64, key: &str, value: V) -> usize {
        let key = self.arena.push(key.as_bytes());
        let live = Some(Box::new(value));
        self.insert_slot(hash, key, Loc::default(), 0, DIRTY, live)
    }

    /// Removes `key`; returns its old slot's on-disk value length
    /// (`Some(None)` if it was present but never on disk).
    pub(crate) fn remove(&mut self, key: &str) -> Option<Option<usize>> {
        self.remove_hashed(self.hash(key.as_bytes()), key.as_bytes())
    }

    /// [`remove`](Self::remove) for a key whose hash is `hash`.
    pub(crate) fn remove_hashed(&mut self, hash: u64, key: &[u8]) -> Option<Option<usize>> {
        let (slots, arena) = (&self.slots, &self.arena);
        let entry = self
            .table
            .find_entry(hash, |&i| {
                slots
                    .get(i as usize)
                    .is_some_and(|s| arena.bytes(s.key) == key)
            })
            .ok()?;
        let (i, _) = entry.remove();
        let i = i as usize;
        let old = self.disk_value_len(i);
        if let Some(slot) = self.slots.get_mut(i) {
            if slot.flags & DIRTY != 0 {
                self.dirty_count -= 1;
            }
            if slot.flags & PENDING != 0 {
                self.pending_exact = false;
            }
            slot.flags = REMOVED;
            slot.live = None;
        }
        self.live -= 1;
        self.maybe_shrink();
        Some(old)
    }

    /// Points every live slot at its record in a rewritten log, in order,
    /// and drops the old arena, the tombstones and every unsynced change.
    pub(crate) fn relocate(&mut self, relocation: Relocation) {
        let had_tombstones = self.slots.len() != self.live;
        if had_tombstones {
            self.slots.retain(|s| s.flags & REMOVED == 0);
            self.generation += 1;
        }
        for (slot, (key, value, line)) in self.slots.iter_mut().zip(relocation.places) {
            slot.key = key;
            slot.value = value;
            slot.line = line;
            slot.flags = ON_DISK;
            slot.live = None;
        }
        self.arena = relocation.arena;
        self.dirty.clear();
        self.dirty_count = 0;
        self.pending.clear();
        self.pending_records = 0;
        self.pending_put_bytes = 0;
        self.pending_exact = true;
        if had_tombstones {
            self.rebuild_table();
        }
    }

    /// A snapshot of the live keys and their value texts, if every change
    /// is written (nothing dirty, nothing pending).
    pub(crate) fn snapshot(&mut self) -> Option<Snapshot> {
        if self.dirty_count > 0 || self.pending_records > 0 {
            return None;
        }
        let entries = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.flags & REMOVED == 0)
            .map(|(i, s)| (i as u32, s.key, s.value))
            .collect();
        Some(Snapshot {
            blocks: self.arena.blocks.iter_mut().map(Block::share).collect(),
            entries,
            generation: self.generation,
        })
    }

    /// Whether `snapshot`'s slot numbers still hold.
    pub(crate) fn is_current(&self, snapshot: &Snapshot) -> bool {
        snapshot.generation == self.generation
    }

    /// Takes in a compaction of `snapshot` (made while the log went on
    /// growing past line `snap_lines`): keys, and values unchanged since,
    /// move to the rewritten records; log lines are renumbered for a log
    /// of `new_lines` compacted lines followed by what came after the
    /// snapshot; then arena blocks nothing points into are freed.
    pub(crate) fn adopt_compacted(
        &mut self,
        relocation: Relocation,
        snapshot: &Snapshot,
        snap_lines: u64,
        new_lines: u64,
    ) {
        let base = self.arena.blocks.len() as u32;
        let rebase = |loc: Loc| Loc {
            block: loc.block + base,
            ..loc
        };
        self.arena.blocks.extend(relocation.arena.blocks);
        let mut placed = snapshot.entries.iter().zip(relocation.places).peekable();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let here = placed.next_if(|((n, _, _), _)| *n as usize == i);
            if slot.flags & REMOVED != 0 {
                continue;
            }
            let line = u64::from(slot.line);
            if let Some(((_, _, old_value), (key, value, new_line))) = here {
                slot.key = rebase(key);
                if slot.flags & PENDING == 0 && line <= snap_lines {
                    // Its record on disk is the one the compaction copied.
                    slot.line = new_line;
                    if slot.value == *old_value {
                        slot.value = rebase(value);
                    }
                    continue;
                }
            }
            if slot.flags & PENDING == 0 && line > snap_lines {
                let moved = line - snap_lines + new_lines;
                slot.line = u32::try_from(moved).unwrap_or(u32::MAX);
            }
        }
        self.collect_garbage();
    }

    /// Frees the arena blocks no slot points into.
    fn collect_garbage(&mut self) {
        let mut used = vec![false; self.arena.blocks.len()];
        let mut mark = |n: u32| {
            if let Some(u) = used.get_mut(n as usize) {
                *u = true;
            }
        };
        for slot in self.slots.iter().filter(|s| s.flags & REMOVED == 0) {
            mark(slot.key.block);
            mark(slot.value.block);
        }
        for &n in &self.pending {
            mark(n);
        }
        if let Some(n) = self.arena.open {
            mark(n as u32);
        }
        for (block, used) in self.arena.blocks.iter_mut().zip(used) {
            if !used && block.bytes().capacity() > 0 {
                *block = Block::default();
            }
        }
    }

    /// Drops tombstones when they outnumber the keys, renumbering slots.
    fn maybe_shrink(&mut self) {
        let dead = self.slots.len() - self.live;
        if dead < 1024 || dead < self.live {
            return;
        }
        self.slots.retain(|s| s.flags & REMOVED == 0);
        self.generation += 1;
        self.dirty = (0..self.slots.len() as u32)
            .filter(|&i| self.is_dirty(i as usize))
            .collect();
        self.rebuild_table();
    }

    /// Maps every slot's key to it anew, after slots were renumbered.
    fn rebuild_table(&mut self) {
        self.table.clear();
        let slots = &self.slots;
        for (i, slot) in slots.iter().enumerate() {
            let hash = widen(slot.hash);
            self.table
                .insert_unique(hash, i as u32, |&j| slot_hash(slots, j));
        }
    }

    /// The length of the value text of slot `i`'s record on disk, if it has
    /// one that no pending record has superseded yet.
    pub(crate) fn disk_value_len(&self, i: usize) -> Option<usize> {
        self.slots
            .get(i)
            .filter(|s| s.flags & (ON_DISK | PENDING) == ON_DISK)
            .map(|s| s.value.len as usize)
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
        match self.slots.get(i) {
            Some(Slot { live: Some(v), .. }) => ValueRef::Live(v),
            Some(s) => ValueRef::Text(self.arena.bytes(s.value)),
            None => ValueRef::Text(&[]),
        }
    }

    /// The task state of slot `i`.
    pub(crate) fn meta(&self, i: usize) -> Meta {
        self.slots.get(i).map_or_else(Meta::default, |s| Meta {
            tries: s.tries,
            done: s.task & TASK_DONE != 0,
            aborted: s.task & TASK_ABORTED != 0,
        })
    }

    /// Sets the task state of slot `i`.
    pub(crate) fn set_meta(&mut self, i: usize, meta: Meta) {
        if let Some(slot) = self.slots.get_mut(i) {
            slot.tries = meta.tries;
            slot.task = (u8::from(meta.done) * TASK_DONE) | (u8::from(meta.aborted) * TASK_ABORTED);
        }
    }

    /// Bumped whenever slot numbers change, so cursors can re-find their place.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The first live slot at or after `from`.
    pub(crate) fn next_slot(&self, from: usize) -> Option<usize> {
        let rest = self.slots.get(from..)?;
        rest.iter()
            .position(|s| s.flags & REMOVED == 0)
            .map(|p| from + p)
    }

    /// The log line of the record slot `i`'s value text comes from (0 if
    /// it is not on disk yet).
    pub(crate) fn line(&self, i: usize) -> u64 {
        match self.slots.get(i) {
            Some(s) if s.flags & PENDING == 0 => u64::from(s.line),
            _ => 0,
        }
    }

    /// The decoded value of slot `i`, if it has one.
    pub(crate) fn live_value_mut(&mut self, i: usize) -> Option<&mut V> {
        self.slots.get_mut(i).and_then(|s| s.live.as_deref_mut())
    }

    /// Replaces the value of slot `i` with `value`, marking it dirty.
    pub(crate) fn set_live(&mut self, i: usize, value: V) {
        self.mark_dirty(i);
        if let Some(slot) = self.slots.get_mut(i) {
            if slot.flags & PENDING != 0 {
                // Its pending record is superseded.
                self.pending_exact = false;
            }
            slot.live = Some(Box::new(value));
        }
    }

    /// Marks slot `i` dirty; returns whether it was clean.
    pub(crate) fn mark_dirty(&mut self, i: usize) -> bool {
        match self.slots.get_mut(i) {
            Some(slot) if slot.flags & (DIRTY | REMOVED) == 0 => {
                slot.flags |= DIRTY;
                self.dirty.push(i as u32);
                self.dirty_count += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether slot `i` has unsynced changes.
    pub(crate) fn is_dirty(&self, i: usize) -> bool {
        self.slots
            .get(i)
            .is_some_and(|s| s.flags & (DIRTY | REMOVED) == DIRTY)
    }

    /// Where slot `i`'s value text sits in the pending block, and its
    /// record's position there, if it is pending.
    pub(crate) fn pending_value(&self, i: usize) -> Option<(Loc, u32)> {
        self.slots
            .get(i)
            .filter(|s| s.flags & PENDING != 0)
            .map(|s| (s.value, s.line))
    }

    /// Puts back a pending chunk taken by
    /// [`take_exact_pending`](Self::take_exact_pending) that could not be written.
    pub(crate) fn return_pending(&mut self, block: u32, buf: Vec<u8>) {
        self.arena.set(block, buf);
    }

    /// Whether slot `i`'s value is the text of a record in the pending block.
    pub(crate) fn is_pending(&self, i: usize) -> bool {
        self.slots.get(i).is_some_and(|s| s.flags & PENDING != 0)
    }

    /// Whether slot `i` has a record on disk.
    pub(crate) fn is_on_disk(&self, i: usize) -> bool {
        self.slots.get(i).is_some_and(|s| s.flags & ON_DISK != 0)
    }

    /// Live slots in insertion order.
    pub(crate) fn slots(&self) -> impl DoubleEndedIterator<Item = usize> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.flags & REMOVED == 0)
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

    /// The number of live slots with unsynced changes.
    pub(crate) fn dirty_len(&self) -> usize {
        self.dirty_count
    }

    /// Drops slots that are no longer dirty from the dirty list.
    pub(crate) fn prune_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.retain(|&i| self.is_dirty(i as usize));
        self.dirty = dirty;
    }

    /// The pending chunk records are appended to, started if needed.
    fn pending_buf(&mut self) -> (u32, &mut Vec<u8>) {
        let full = match self.pending.last() {
            Some(&n) => self.arena.len_of(n) + CHUNK_SLACK > self.arena.capacity_of(n),
            None => true,
        };
        if full {
            self.start_chunk(0);
        }
        let n = self.pending.last().copied().unwrap_or_default();
        (n, self.arena.block_mut(n))
    }

    /// Starts the next pending chunk, with room for at least `bytes`.
    fn start_chunk(&mut self, bytes: usize) {
        let size = (PENDING_FIRST << self.pending.len().min(8)).min(PENDING_CHUNK);
        let n = self.arena.adopt(Vec::with_capacity(size.max(bytes)));
        self.pending.push(n);
    }

    /// Appends a put record for `key` (hashing to `hash`) to the pending
    /// block, with the value text `encode` writes; the key's slot (a new one
    /// at the end if absent) takes that text and becomes dirty. If `encode`
    /// fails, nothing changes. Returns the value text length of the key's
    /// record on disk that this change supersedes, unless already superseded.
    pub(crate) fn put_pending<E>(
        &mut self,
        hash: u64,
        key: &str,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Option<usize>, E> {
        let (block, buf) = self.pending_buf();
        let start = record::begin_put(buf, key);
        // Cut the record off again if encoding fails, or panics.
        let mut guard = CutOnDrop { buf, at: start };
        let value_start = guard.buf.len();
        encode(guard.buf)?;
        let value = Loc {
            block,
            offset: value_start as u32,
            len: (guard.buf.len() - value_start) as u32,
        };
        guard.at = usize::MAX;
        record::end_put(guard.buf, start);
        let record_len = (guard.buf.len() - start) as u64;
        drop(guard);
        self.pending_put_bytes += record_len;
        self.pending_records = self.pending_records.saturating_add(1);
        let line = self.pending_records;
        let Some(i) = self.find_hashed(hash, key.as_bytes()) else {
            let key = self.arena.push(key.as_bytes());
            self.insert_slot(hash, key, value, line, DIRTY | PENDING, None);
            return Ok(None);
        };
        let superseded = self.disk_value_len(i);
        self.mark_dirty(i);
        if let Some(slot) = self.slots.get_mut(i) {
            if slot.flags & PENDING != 0 {
                self.pending_exact = false;
            }
            slot.flags |= PENDING;
            slot.value = value;
            slot.line = line;
            slot.live = None;
        }
        Ok(superseded)
    }

    /// Appends `records` (put records of changes made in place, numbered
    /// by the caller) to the pending block, in its last chunk if they fit;
    /// returns the chunk and where in it they start.
    pub(crate) fn append_to_pending(&mut self, records: &[u8]) -> (u32, usize) {
        let fits = self.pending.last().is_some_and(|&n| {
            let len = self.arena.len_of(n);
            self.arena.capacity_of(n) - len >= records.len()
                && u32::try_from(len + records.len()).is_ok()
        });
        if !fits {
            self.start_chunk(records.len());
        }
        let n = self.pending.last().copied().unwrap_or_default();
        let chunk = self.arena.block_mut(n);
        let base = chunk.len();
        chunk.extend_from_slice(records);
        (n, base)
    }

    /// Appends a removal record for `key` to the pending block.
    pub(crate) fn pending_del(&mut self, key: &str) {
        let (_, buf) = self.pending_buf();
        record::encode_del(buf, key);
        self.pending_records = self.pending_records.saturating_add(1);
    }

    /// Notes that the pending block no longer holds exactly what the next
    /// full sync writes (after writing some records on their own, or a
    /// failed write that left in-place records in it).
    pub(crate) fn pending_superseded(&mut self) {
        self.pending_exact = false;
    }

    /// The bytes of the put records in the pending block: with
    /// [`pending_is_exact`](Self::pending_is_exact), what writing it adds
    /// to the live records of the log.
    pub(crate) fn pending_put_bytes(&self) -> u64 {
        self.pending_put_bytes
    }

    /// Whether the pending block holds exactly the records of the next full
    /// sync, so it can be written as it is.
    pub(crate) fn pending_is_exact(&self) -> bool {
        self.pending_exact
    }

    /// Takes the pending chunks out to be written as they are, if they hold
    /// exactly the records of the next full sync; returns them (block
    /// number and bytes, in order) with their record count. Hand them back
    /// with [`finish_pending`](Self::finish_pending) or
    /// [`return_pending`](Self::return_pending).
    pub(crate) fn take_exact_pending(&mut self) -> Option<(Vec<Chunk>, u32)> {
        if !self.pending_exact {
            return None;
        }
        let blocks = self.pending.clone();
        let chunks = blocks
            .into_iter()
            .map(|n| (n, std::mem::take(self.arena.block_mut(n))))
            .collect();
        Some((chunks, self.pending_records))
    }

    /// Whether a written pending chunk of `len` bytes stays in the arena as
    /// the home of its value texts (otherwise they are copied out).
    pub(crate) fn keeps_pending(len: usize) -> bool {
        len >= PENDING_KEEP
    }

    /// Puts back the pending chunks taken by
    /// [`take_exact_pending`](Self::take_exact_pending) once they are written
    /// and no slot points into those not `kept`: kept chunks become ordinary
    /// arena blocks; one other is emptied for reuse, the rest freed.
    pub(crate) fn finish_pending(&mut self, chunks: Vec<Chunk>) {
        self.pending.clear();
        for (n, mut buf) in chunks {
            if Self::keeps_pending(buf.len()) {
                self.arena.set(n, buf);
            } else if self.pending.is_empty() && buf.capacity() <= PENDING_CHUNK {
                buf.clear();
                self.arena.set(n, buf);
                self.pending.push(n);
            } else {
                self.arena.set(n, Vec::new());
            }
        }
        self.pending_records = 0;
        self.pending_put_bytes = 0;
        self.pending_exact = true;
    }

    /// Empties the pending chunks after every change in them was written
    /// (or dropped) another way; no slot may point into them any more.
    pub(crate) fn reset_pending(&mut self) {
        let blocks = std::mem::take(&mut self.pending);
        for n in blocks {
            if self.pending.is_empty() && self.arena.capacity_of(n) <= PENDING_CHUNK {
                self.arena.block_mut(n).clear();
                self.pending.push(n);
            } else {
                self.arena.set(n, Vec::new());
            }
        }
        self.pending_records = 0;
        self.pending_put_bytes = 0;
        self.pending_exact = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_48_bytes() {
        // The memory budget of a million-key store counts on it.
        assert_eq!(std::mem::size_of::<Slot<serde_json::Value>>(), 48);
    }

    #[test]
    fn the_table_hash_comes_whole_from_the_32_bits_a_slot_keeps() {
        let hasher = KeyHasher(RandomState::default());
        for key in ["", "a", "task-00000123", "ключ"] {
            let hash = hasher.hash(key.as_bytes());
            assert_eq!(widen(hash as u32), hash);
        }
    }
}

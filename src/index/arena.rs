//! Append-only storage for key and value bytes, in blocks that a background
//! compaction can share while it runs.

use crate::fsio::LogMap;
use std::sync::Arc;

/// Arena blocks for new keys are this big.
const BLOCK_SIZE: usize = 64 << 10;

/// Where some bytes sit in the arena.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Loc {
    pub block: u32,
    pub offset: u32,
    pub len: u32,
}

impl Loc {
    /// The bytes at `range` of block `block`; `None` if the offsets do not
    /// fit 32 bits.
    pub(crate) fn of(block: u32, range: std::ops::Range<usize>) -> Option<Loc> {
        Some(Loc {
            block,
            offset: u32::try_from(range.start).ok()?,
            len: u32::try_from(range.len()).ok()?,
        })
    }
}

/// An arena block: owned, or shared with a background compaction, or a
/// range of the log file as mapped at open (the value texts of its
/// records, read in place: they stay in the kernel's page cache, not in
/// this process's own memory).
#[derive(Debug)]
enum Block {
    Owned(Vec<u8>),
    Shared(Arc<Vec<u8>>),
    Mapped(MappedRange),
}

/// A range of a mapped log.
#[derive(Debug, Clone)]
pub(crate) struct MappedRange {
    map: Arc<LogMap>,
    start: usize,
    len: usize,
}

impl MappedRange {
    /// `len` bytes of `map` from `start`, or as many of them as it holds.
    pub(crate) fn new(map: Arc<LogMap>, start: usize, len: usize) -> Self {
        let len = len.min(map.len().saturating_sub(start));
        MappedRange { map, start, len }
    }

    fn bytes(&self) -> &[u8] {
        self.map
            .bytes()
            .get(self.start..self.start + self.len)
            .unwrap_or_default()
    }
}

/// Bytes a snapshot shares with the index: a block of the heap, or of the
/// mapped log.
#[derive(Debug, Clone)]
pub(crate) enum SharedBytes {
    Heap(Arc<Vec<u8>>),
    Mapped(MappedRange),
}

impl SharedBytes {
    fn bytes(&self) -> &[u8] {
        match self {
            SharedBytes::Heap(v) => v,
            SharedBytes::Mapped(m) => m.bytes(),
        }
    }
}

impl Default for Block {
    fn default() -> Self {
        Block::Owned(Vec::new())
    }
}

impl Block {
    fn bytes(&self) -> &[u8] {
        match self {
            Block::Owned(v) => v,
            Block::Shared(a) => a,
            Block::Mapped(m) => m.bytes(),
        }
    }

    /// The room of the block (its length for a mapped one).
    fn capacity(&self) -> usize {
        match self {
            Block::Owned(v) => v.capacity(),
            Block::Shared(a) => a.capacity(),
            Block::Mapped(m) => m.len,
        }
    }

    /// The block to change: a shared block is taken back, or copied if
    /// the compaction still holds it; a mapped one becomes an empty owned
    /// block (never needed: only pending chunks change, and they are owned).
    fn to_mut(&mut self) -> &mut Vec<u8> {
        if !matches!(self, Block::Owned(_)) {
            let owned = match std::mem::take(self) {
                Block::Shared(a) => Arc::try_unwrap(a).unwrap_or_else(|a| {
                    // Keep the room: a pending chunk must not grow by copying.
                    let mut v = Vec::with_capacity(a.capacity());
                    v.extend_from_slice(&a);
                    v
                }),
                // Never reached (only pending chunks change, and they are
                // owned); the range may reach past a cut torn tail, so it
                // is not read.
                Block::Mapped(_) => Vec::new(),
                Block::Owned(v) => v,
            };
            *self = Block::Owned(owned);
        }
        match self {
            Block::Owned(v) => v,
            Block::Shared(a) => Arc::make_mut(a),
            // Made owned just above.
            Block::Mapped(_) => {
                *self = Block::Owned(Vec::new());
                self.to_mut()
            }
        }
    }

    /// A handle on the block for another thread to read.
    fn share(&mut self) -> SharedBytes {
        if let Block::Owned(v) = self {
            *self = Block::Shared(Arc::new(std::mem::take(v)));
        }
        match self {
            Block::Shared(a) => SharedBytes::Heap(a.clone()),
            Block::Owned(v) => SharedBytes::Heap(Arc::new(v.clone())),
            Block::Mapped(m) => SharedBytes::Mapped(m.clone()),
        }
    }

    /// Whether the block must not change in place (new keys go elsewhere).
    fn is_fixed(&self) -> bool {
        !matches!(self, Block::Owned(_))
    }
}

/// Append-only storage for key and value bytes. Blocks are shared with a
/// background compaction while it runs; a shared block is never changed in
/// place (new keys go to a new block; a pending chunk is copied first).
#[derive(Debug, Default)]
pub(crate) struct Arena {
    blocks: Vec<Block>,
    /// The block new keys are pushed into, if any.
    open: Option<usize>,
    /// Where each block's bytes are in the log file now in place, for the
    /// blocks that are an image of it (a mapped range, or a pending chunk
    /// kept after it was written); [`NOT_IN_FILE`] for the others (a
    /// shorter vector means the rest are not). The hint file needs the
    /// file offset of every value text ([`crate::hint`]).
    in_file: Vec<u64>,
}

/// The `in_file` of a block whose bytes are not an image of the log.
const NOT_IN_FILE: u64 = u64::MAX;

impl Arena {
    /// Copies `bytes` into the arena.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Loc {
        let fits = |b: &Block| !b.is_fixed() && b.capacity() - b.bytes().len() >= bytes.len();
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

    /// Takes `block` in; returns its number.
    pub(crate) fn adopt(&mut self, block: Vec<u8>) -> u32 {
        self.blocks.push(Block::Owned(block));
        (self.blocks.len() - 1) as u32
    }

    /// Takes a range of the mapped log in as a block; returns its number.
    pub(crate) fn adopt_mapped(&mut self, range: MappedRange) -> u32 {
        let start = range.start as u64;
        self.blocks.push(Block::Mapped(range));
        let n = (self.blocks.len() - 1) as u32;
        self.set_in_file(n, start);
        n
    }

    /// Notes that block `n` holds the log file's bytes from offset `at`.
    pub(crate) fn set_in_file(&mut self, n: u32, at: u64) {
        let n = n as usize;
        if self.in_file.len() <= n {
            self.in_file.resize(n + 1, NOT_IN_FILE);
        }
        if let Some(slot) = self.in_file.get_mut(n) {
            *slot = at;
        }
    }

    /// Forgets where block `n`'s bytes are in the log file (it changes).
    fn not_in_file(&mut self, n: u32) {
        if let Some(slot) = self.in_file.get_mut(n as usize) {
            *slot = NOT_IN_FILE;
        }
    }

    /// Forgets every block's place in the log file (a new log is in place).
    pub(crate) fn forget_file(&mut self) {
        self.in_file.clear();
    }

    /// The log file offset of the bytes at `loc`, if its block is an image
    /// of the log.
    pub(crate) fn file_offset(&self, loc: Loc) -> Option<u64> {
        let at = *self.in_file.get(loc.block as usize)?;
        (at != NOT_IN_FILE && (loc.offset as usize + loc.len as usize) <= self.len_of(loc.block))
            .then(|| at + u64::from(loc.offset))
    }

    /// The number of blocks (numbers handed out so far).
    pub(crate) fn block_count(&self) -> usize {
        self.blocks.len()
    }

    pub(crate) fn capacity_of(&self, block: u32) -> usize {
        self.blocks.get(block as usize).map_or(0, Block::capacity)
    }

    pub(crate) fn len_of(&self, block: u32) -> usize {
        self.blocks
            .get(block as usize)
            .map_or(0, |b| b.bytes().len())
    }

    /// Block `n` (which must exist) to change.
    pub(crate) fn block_mut(&mut self, n: u32) -> &mut Vec<u8> {
        self.not_in_file(n);
        let n = n as usize;
        if n >= self.blocks.len() {
            // Never happens: callers only pass numbers the arena handed out.
            self.blocks.resize_with(n + 1, Block::default);
        }
        self.blocks[n].to_mut()
    }

    /// Takes the bytes of block `n` out, leaving it empty.
    pub(crate) fn take(&mut self, n: u32) -> Vec<u8> {
        std::mem::take(self.block_mut(n))
    }

    /// Makes `bytes` the contents of block `n` (which must exist).
    pub(crate) fn set(&mut self, n: u32, bytes: Vec<u8>) {
        self.not_in_file(n);
        if let Some(block) = self.blocks.get_mut(n as usize) {
            *block = Block::Owned(bytes);
        }
    }

    pub(crate) fn bytes(&self, loc: Loc) -> &[u8] {
        let start = loc.offset as usize;
        let end = start + loc.len as usize;
        let block = self.blocks.get(loc.block as usize);
        if let Some(Block::Mapped(m)) = block {
            m.map.note_read(loc.len as usize);
        }
        block
            .and_then(|b| b.bytes().get(start..end))
            .unwrap_or_default()
    }

    /// How many blocks are ranges of a mapped log.
    #[cfg(test)]
    pub(crate) fn mapped_blocks(&self) -> usize {
        self.blocks
            .iter()
            .filter(|b| matches!(b, Block::Mapped(_)))
            .count()
    }

    /// Shared handles on every block, for a snapshot.
    pub(crate) fn share_all(&mut self) -> Vec<SharedBytes> {
        self.blocks.iter_mut().map(Block::share).collect()
    }

    /// Appends the blocks of `other` (renumbered from `block_count()`).
    pub(crate) fn append(&mut self, other: Arena) {
        if !other.in_file.is_empty() {
            self.in_file.resize(self.blocks.len(), NOT_IN_FILE);
            self.in_file.extend(other.in_file);
        }
        self.blocks.extend(other.blocks);
    }

    /// Frees every block not marked in `used` (nor the open one).
    pub(crate) fn free_unused(&mut self, mut used: Vec<bool>) {
        if let Some(n) = self.open
            && let Some(u) = used.get_mut(n)
        {
            *u = true;
        }
        for (n, (block, used)) in self.blocks.iter_mut().zip(used).enumerate() {
            if !used && block.capacity() > 0 {
                *block = Block::default();
                if let Some(at) = self.in_file.get_mut(n) {
                    *at = NOT_IN_FILE;
                }
            }
        }
    }
}

/// The live keys of a fully synced index and their value texts, sharing
/// its arena blocks, for a compaction running beside further changes.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(super) blocks: Vec<SharedBytes>,
    /// Live slots in order: slot number, key, value text.
    pub(super) entries: Vec<(u32, Loc, Loc)>,
    /// The index's generation when taken.
    pub(super) generation: u64,
}

impl Snapshot {
    /// The number of keys.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn bytes(&self, loc: Loc) -> &[u8] {
        let start = loc.offset as usize;
        let end = start + loc.len as usize;
        let block = self.blocks.get(loc.block as usize);
        if let Some(SharedBytes::Mapped(m)) = block {
            m.map.note_read(loc.len as usize);
        }
        block
            .and_then(|b| b.bytes().get(start..end))
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

//! Compaction's side of the index: snapshots for a background compaction,
//! and moving slots to the records of a rewritten log.

use super::Index;
use super::arena::{Arena, Loc, Snapshot};
use super::slot::Slot;

/// Where a rewrite of the log put each live key's record: the new log's
/// bytes as a new arena, and each live slot's key, value text and line in it.
#[derive(Debug, Default)]
pub(crate) struct Relocation {
    arena: Arena,
    places: Vec<(Loc, Loc, u32)>,
    /// The bytes of the records written (the header excluded).
    record_bytes: u64,
}

impl Relocation {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Relocation {
            arena: Arena::default(),
            places: Vec::with_capacity(n),
            record_bytes: 0,
        }
    }

    /// Numbers a block of the new arena, to be filled later.
    pub(crate) fn reserve_block(&mut self) -> u32 {
        self.arena.adopt(Vec::new())
    }

    /// Fills a block numbered by [`reserve_block`](Self::reserve_block)
    /// with the bytes written at offset `at` of the new log.
    pub(crate) fn fill_block(&mut self, block: u32, bytes: Vec<u8>, at: u64) {
        self.arena.set(block, bytes);
        self.arena.set_in_file(block, at);
    }

    /// Records that the next live slot's key is `key`, its record `len`
    /// bytes long, and its value text sits at `value` in `block`, from log
    /// line `line`.
    pub(crate) fn place(
        &mut self,
        key: &str,
        block: u32,
        value: std::ops::Range<usize>,
        len: usize,
        line: u32,
    ) {
        let key = self.arena.push(key.as_bytes());
        let value = Loc::of(block, value).unwrap_or_default();
        self.places.push((key, value, line));
        self.record_bytes += len as u64;
    }
}

impl<V> Index<V> {
    /// Points every live slot at its record in a rewritten log, in order,
    /// and drops the old arena, the tombstones and every unsynced change.
    pub(crate) fn relocate(&mut self, relocation: Relocation) {
        if self.slots.len() != self.live {
            self.slots.retain(Slot::is_live);
            self.generation += 1;
            self.rebuild_table();
        }
        for (slot, (key, value, line)) in self.slots.iter_mut().zip(relocation.places) {
            slot.key = key;
            slot.set_on_disk(value, line);
        }
        // Every value is written now, as its text.
        self.lives.clear();
        self.arena = relocation.arena;
        self.dirty.clear();
        self.dirty_count = 0;
        self.pending = super::pending::Pending::default();
        self.disk_bytes = relocation.record_bytes;
        #[cfg(debug_assertions)]
        self.check();
    }

    /// A snapshot of the live keys and their value texts, if every change
    /// is written (nothing dirty, nothing pending).
    pub(crate) fn snapshot(&mut self) -> Option<Snapshot> {
        if self.has_changes() {
            return None;
        }
        let entries = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_live())
            .map(|(i, s)| (i as u32, s.key, s.value))
            .collect();
        Some(Snapshot {
            blocks: self.arena.share_all(),
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
    /// snapshot; then arena blocks nothing points into are freed. Record
    /// lengths do not change, so neither do the disk bytes.
    pub(crate) fn adopt_compacted(
        &mut self,
        relocation: Relocation,
        snapshot: &Snapshot,
        snap_lines: u64,
        new_lines: u64,
    ) {
        let base = self.arena.block_count() as u32;
        let rebase = |loc: Loc| Loc {
            block: loc.block + base,
            ..loc
        };
        // The blocks so far are images of the old log (if any); the
        // compaction's are of the new one.
        self.arena.forget_file();
        self.arena.append(relocation.arena);
        let mut placed = snapshot.entries.iter().zip(relocation.places).peekable();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let here = placed.next_if(|((n, _, _), _)| *n as usize == i);
            if !slot.is_live() {
                continue;
            }
            let line = slot.line().map(u64::from);
            if let Some(((_, _, old_value), (key, value, new_line))) = here {
                slot.key = rebase(key);
                if line.is_some_and(|l| l <= snap_lines) {
                    // Its record on disk is the one the compaction copied.
                    slot.set_line(new_line);
                    if slot.value == *old_value {
                        slot.value = rebase(value);
                    }
                    continue;
                }
            }
            if let Some(line) = line.filter(|&l| l > snap_lines) {
                let moved = line - snap_lines + new_lines;
                slot.set_line(u32::try_from(moved).unwrap_or(u32::MAX));
            }
        }
        self.collect_garbage();
        #[cfg(debug_assertions)]
        self.check();
    }

    /// Frees the arena blocks no slot points into.
    fn collect_garbage(&mut self) {
        let mut used = vec![false; self.arena.block_count()];
        let mut mark = |n: u32| {
            if let Some(u) = used.get_mut(n as usize) {
                *u = true;
            }
        };
        for slot in self.slots.iter().filter(|s| s.is_live()) {
            mark(slot.key.block);
            mark(slot.value.block);
        }
        for &n in self.pending.chunks() {
            mark(n);
        }
        self.arena.free_unused(used);
    }
}

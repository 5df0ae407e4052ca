//! One key's slot: where its key and value text are, where its record is,
//! its state flags and (for trackers) its task state, in 48 bytes.

use super::arena::Loc;

/// The state of a slot, as a set of flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags(u8);

impl Flags {
    /// The key was removed; the slot is a tombstone (no other flag is set).
    pub(crate) const REMOVED: Flags = Flags(1);
    /// The slot has a change not yet written to the log.
    pub(crate) const DIRTY: Flags = Flags(2);
    /// The key has a record in the log (so removing it needs a removal record).
    pub(crate) const ON_DISK: Flags = Flags(4);
    /// The slot's value text is that of its latest record in the pending
    /// block (which implies `DIRTY`).
    pub(crate) const PENDING: Flags = Flags(8);

    pub(crate) fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub(crate) fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }

    pub(crate) const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

/// A tracker task's state, kept in each slot so gates and counters never
/// parse JSON. Unused by plain `Pod`s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SlotTask {
    pub tries: u32,
    pub done: bool,
    pub aborted: bool,
    /// The record holds a lease (`_lease`), expired or not.
    pub claimed: bool,
    /// The record holds a retry time (`_not_before`), past or not.
    pub delayed: bool,
}

/// The done, aborted and claimed bits of a [`SlotTask`] as a slot keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct TaskBits(u8);

impl TaskBits {
    const DONE: u8 = 1;
    const ABORTED: u8 = 2;
    const CLAIMED: u8 = 4;
    const DELAYED: u8 = 8;
}

/// One key.
#[derive(Debug)]
pub(crate) struct Slot<V> {
    tries: u32,
    task: TaskBits,
    /// The low 32 bits of the key's hash (all the table's hash is made of),
    /// so the table grows without reading keys.
    pub(super) hash: u32,
    pub(super) key: Loc,
    /// The value text: of the key's last record on disk, or (`PENDING`) of
    /// its latest record in the pending block.
    pub(super) value: Loc,
    /// The 1-based log line of the key's last record (0 if never on disk),
    /// or (`PENDING`) its latest record's position in the pending block.
    /// Read through [`line`](Slot::line) and [`ordinal`](Slot::ordinal).
    place: u32,
    pub(super) flags: Flags,
    /// Slots are 40 bytes; a value decoded and changed in place is kept
    /// beside them (`Index::lives`), since few slots ever have one.
    _value_type: std::marker::PhantomData<fn() -> V>,
}

impl<V> Slot<V> {
    /// A slot for a key whose value text is `value`: on disk at line `line`,
    /// or with `Flags::PENDING` in the pending block at position `line`.
    pub(super) fn new(hash: u32, key: Loc, value: Loc, line: u32, flags: Flags) -> Self {
        Slot {
            tries: 0,
            task: TaskBits::default(),
            hash,
            key,
            value,
            place: line,
            flags,
            _value_type: std::marker::PhantomData,
        }
    }

    pub(super) fn is_live(&self) -> bool {
        !self.flags.contains(Flags::REMOVED)
    }

    pub(super) fn is_dirty(&self) -> bool {
        self.flags.contains(Flags::DIRTY) && self.is_live()
    }

    pub(super) fn is_pending(&self) -> bool {
        self.flags.contains(Flags::PENDING)
    }

    /// The log line of the record the value text comes from, if on disk.
    pub(super) fn line(&self) -> Option<u32> {
        (!self.is_pending() && self.flags.contains(Flags::ON_DISK)).then_some(self.place)
    }

    /// The position in the pending block of the slot's latest record, if pending.
    pub(super) fn ordinal(&self) -> Option<u32> {
        self.is_pending().then_some(self.place)
    }

    /// The value text's length in the key's record on disk, if the slot
    /// still holds it (no pending record superseded it).
    pub(super) fn disk_value_len(&self) -> Option<usize> {
        self.line().map(|_| self.value.len as usize)
    }

    /// Points the slot at its record written at log line `line`, clean.
    pub(super) fn set_on_disk(&mut self, value: Loc, line: u32) {
        self.value = value;
        self.place = line;
        self.flags = Flags::ON_DISK;
    }

    /// Points the slot at its new latest record in the pending block.
    pub(super) fn set_pending(&mut self, value: Loc, ordinal: u32) {
        self.value = value;
        self.place = ordinal;
        self.flags.insert(Flags::PENDING.union(Flags::DIRTY));
    }

    /// Makes the slot a tombstone.
    pub(super) fn set_removed(&mut self) {
        self.flags = Flags::REMOVED;
    }

    /// Renumbers the line of an on-disk record (after a compaction).
    pub(super) fn set_line(&mut self, line: u32) {
        if self.line().is_some() {
            self.place = line;
        }
    }

    pub(super) fn task(&self) -> SlotTask {
        SlotTask {
            tries: self.tries,
            done: self.task.0 & TaskBits::DONE != 0,
            aborted: self.task.0 & TaskBits::ABORTED != 0,
            claimed: self.task.0 & TaskBits::CLAIMED != 0,
            delayed: self.task.0 & TaskBits::DELAYED != 0,
        }
    }

    pub(super) fn set_task(&mut self, state: SlotTask) {
        self.tries = state.tries;
        let mut bits = 0;
        if state.done {
            bits |= TaskBits::DONE;
        }
        if state.aborted {
            bits |= TaskBits::ABORTED;
        }
        if state.claimed {
            bits |= TaskBits::CLAIMED;
        }
        if state.delayed {
            bits |= TaskBits::DELAYED;
        }
        self.task = TaskBits(bits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_40_bytes() {
        // The memory budget of a million-key store counts on it.
        assert_eq!(std::mem::size_of::<Slot<serde_json::Value>>(), 40);
    }

    #[test]
    fn task_state_round_trips() {
        let mut slot: Slot<()> = Slot::new(0, Loc::default(), Loc::default(), 0, Flags::DIRTY);
        for (tries, done, aborted, claimed, delayed) in [
            (0, false, false, true, false),
            (7, true, false, false, true),
            (u32::MAX, true, true, true, true),
        ] {
            let state = SlotTask {
                tries,
                done,
                aborted,
                claimed,
                delayed,
            };
            slot.set_task(state);
            assert_eq!(slot.task(), state);
        }
        assert_eq!(slot.flags, Flags::DIRTY, "task bits never touch the flags");
    }

    #[test]
    fn a_pending_slot_has_an_ordinal_and_no_line() {
        let mut slot: Slot<()> = Slot::new(0, Loc::default(), Loc::default(), 9, Flags::ON_DISK);
        assert_eq!((slot.line(), slot.ordinal()), (Some(9), None));
        slot.set_pending(Loc::default(), 3);
        assert_eq!((slot.line(), slot.ordinal()), (None, Some(3)));
        assert!(slot.is_dirty() && slot.flags.contains(Flags::ON_DISK));
        slot.set_on_disk(Loc::default(), 12);
        assert_eq!((slot.line(), slot.ordinal()), (Some(12), None));
        assert!(!slot.is_dirty());
    }
}

//! [`PodOptions`] and the small policy enums it takes.

use crate::error::{ErrorKind, Result, fail};
use crate::fsio::{StdStorage, Storage};
use std::fmt;
use std::sync::Arc;

/// What a successful [`Pod::sync`](crate::Pod::sync) promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Write the records, then `fdatasync` the log: once `sync` returns, the
    /// changes survive a killed process and a power loss. The default.
    #[default]
    Full,
    /// Write the records but do not fsync: the changes survive a killed
    /// process (they are in the OS page cache), not a power loss or an OS crash.
    Process,
    /// Every change is durable when the call that made it returns, as if
    /// each call ended with [`sync`](crate::Pod::sync), without a rewrite
    /// and without holding any lock through the fsync. Threads sharing a
    /// handle ([`SharedTracker`](crate::SharedTracker),
    /// [`SharedPod`](crate::SharedPod)) share the fsyncs too (group
    /// commit): a call that finds an fsync running waits for the next one,
    /// which covers every change made meanwhile, so 16 workers pay for far
    /// fewer than 16 fsyncs. The setting for workers that must never redo
    /// finished work.
    ///
    /// Claims ([`Tracker::claim_next`](crate::Tracker::claim_next) and the
    /// like) are written at once but not waited for: a killed process keeps
    /// them (they are in the OS page cache), and the next durable change
    /// makes them durable with it. Changes made under a
    /// [`hold`](crate::Pod::hold) wait for the release, and a change made
    /// through [`Pod::get_mut`](crate::Pod::get_mut) for the next call.
    EveryChange,
}

/// When the log is rewritten without its dead records.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Compaction {
    /// Compact after a sync when the log is at least `min_bytes` long and
    /// dead records (superseded or removed) make up more than `dead_fraction`
    /// of it.
    Auto {
        /// Fraction of the log that must be dead, in `(0, 1)`.
        dead_fraction: f64,
        /// Logs shorter than this are never compacted automatically.
        min_bytes: u64,
    },
    /// Only [`Pod::compact`](crate::Pod::compact) compacts.
    Manual,
}

impl Default for Compaction {
    /// `Auto { dead_fraction: 0.5, min_bytes: 1 MiB }`.
    fn default() -> Self {
        Compaction::Auto {
            dead_fraction: 0.5,
            min_bytes: 1 << 20,
        }
    }
}

/// What opening does with a damaged log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Recovery {
    /// Drop a torn final record (a crash mid-write) and report it; fail on a
    /// damaged record that has valid records after it. The default.
    #[default]
    TornTail,
    /// Keep every valid record, skipping damaged ones; a writable open moves
    /// the damaged log aside (it is never deleted) and writes a clean one.
    Salvage,
}

/// The default of [`PodOptions::max_record_size`]: 128 MiB.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 128 << 20;

/// The largest [`PodOptions::max_record_size`] accepted: 1 GiB.
pub const MAX_RECORD_SIZE_LIMIT: usize = 1 << 30;

/// Options for opening a [`Pod`](crate::Pod); every setter states its default.
///
/// # Examples
///
/// ```
/// use tastypod::{Durability, PodOptions};
/// # let dir = tempfile::tempdir()?;
/// let pod = PodOptions::new()
///     .sync_at(500)
///     .durability(Durability::Full)
///     .open::<serde_json::Value>(dir.path().join("my.pod"))?;
/// assert!(pod.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct PodOptions {
    pub(crate) sync_at: usize,
    pub(crate) read_only: bool,
    pub(crate) durability: Durability,
    pub(crate) compaction: Compaction,
    pub(crate) recovery: Recovery,
    pub(crate) wait_for_lock: bool,
    pub(crate) multi_process: bool,
    pub(crate) max_record: usize,
    pub(crate) storage: Arc<dyn Storage>,
}

impl fmt::Debug for PodOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PodOptions")
            .field("sync_at", &self.sync_at)
            .field("read_only", &self.read_only)
            .field("durability", &self.durability)
            .field("compaction", &self.compaction)
            .field("recovery", &self.recovery)
            .field("wait_for_lock", &self.wait_for_lock)
            .field("multi_process", &self.multi_process)
            .field("max_record_size", &self.max_record)
            .finish_non_exhaustive()
    }
}

impl Default for PodOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl PodOptions {
    /// The default options.
    pub fn new() -> Self {
        PodOptions {
            sync_at: 1000,
            read_only: false,
            durability: Durability::default(),
            compaction: Compaction::default(),
            recovery: Recovery::default(),
            wait_for_lock: false,
            multi_process: false,
            max_record: DEFAULT_MAX_RECORD_SIZE,
            storage: Arc::new(StdStorage),
        }
    }

    /// Sync automatically once this many keys are dirty (unless held).
    /// Must be at least 1. Default: 1000, like tastypy.
    #[must_use]
    pub fn sync_at(mut self, dirty_keys: usize) -> Self {
        self.sync_at = dirty_keys;
        self
    }

    /// Open without the writer lock and never modify any file; writes fail
    /// with [`ErrorKind::ReadOnly`]. Default: false.
    #[must_use]
    pub fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }

    /// What a successful sync promises. Default: [`Durability::Full`].
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// When to compact the log. Default: [`Compaction::Auto`] at half dead and 1 MiB.
    #[must_use]
    pub fn compaction(mut self, compaction: Compaction) -> Self {
        self.compaction = compaction;
        self
    }

    /// What to do with a damaged log. Default: [`Recovery::TornTail`].
    #[must_use]
    pub fn recovery(mut self, recovery: Recovery) -> Self {
        self.recovery = recovery;
        self
    }

    /// Wait for another writer to release the lock instead of failing with
    /// [`ErrorKind::Locked`]. Default: false.
    #[must_use]
    pub fn wait_for_lock(mut self, yes: bool) -> Self {
        self.wait_for_lock = yes;
        self
    }

    /// Open in the multi-process mode, so several processes can write the
    /// store at once, with no server: each call locks the store (a lock
    /// file, `pod.oplock`), first reads what the others appended, then
    /// appends its own records. Exclusive mode, the default, is faster; the
    /// two cannot be mixed on one store (the second open fails with
    /// [`ErrorKind::Locked`]). Not to be confused with [`SharedPod`](crate::SharedPod),
    /// which threads of one process share. Default: false.
    #[must_use]
    pub fn multi_process(mut self, yes: bool) -> Self {
        self.multi_process = yes;
        self
    }

    /// The longest line (one record, newline excluded) the log may hold.
    /// A change whose record would be longer is refused with
    /// [`ErrorKind::RecordTooLarge`]; a longer line found in a log is
    /// damage. It also bounds the memory reading a damaged log takes: a
    /// line is never held beyond this size. Between 64 bytes and
    /// [`MAX_RECORD_SIZE_LIMIT`] (1 GiB). Default:
    /// [`DEFAULT_MAX_RECORD_SIZE`] (128 MiB).
    #[must_use]
    pub fn max_record_size(mut self, bytes: usize) -> Self {
        self.max_record = bytes;
        self
    }

    /// Runs the store on a simulated file system (tests and fuzzing only).
    #[cfg(feature = "sim")]
    #[doc(hidden)]
    #[must_use]
    pub fn simulated(mut self, storage: crate::sim::SimStorage) -> Self {
        self.storage = Arc::new(storage);
        self
    }

    /// Checks the options for values that cannot work.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.sync_at == 0 {
            return fail(ErrorKind::InvalidOption {
                name: "sync_at",
                why: "must be at least 1".into(),
            });
        }
        if !(64..=MAX_RECORD_SIZE_LIMIT).contains(&self.max_record) {
            return fail(ErrorKind::InvalidOption {
                name: "max_record_size",
                why: format!(
                    "must be between 64 and {MAX_RECORD_SIZE_LIMIT} bytes, not {}",
                    self.max_record
                ),
            });
        }
        if let Compaction::Auto { dead_fraction, .. } = self.compaction
            && !(dead_fraction > 0.0 && dead_fraction < 1.0)
        {
            return fail(ErrorKind::InvalidOption {
                name: "compaction",
                why: format!("dead_fraction must be in (0, 1), not {dead_fraction}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_sync_at_is_refused() {
        let err = PodOptions::new().sync_at(0).validate().unwrap_err();
        assert!(matches!(
            err.kind(),
            ErrorKind::InvalidOption {
                name: "sync_at",
                ..
            }
        ));
    }

    #[test]
    fn out_of_range_dead_fraction_is_refused() {
        for f in [0.0, 1.0, -1.0, f64::NAN] {
            let opts = PodOptions::new().compaction(Compaction::Auto {
                dead_fraction: f,
                min_bytes: 0,
            });
            assert!(opts.validate().is_err(), "{f}");
        }
    }

    #[test]
    fn defaults_are_as_documented() {
        let o = PodOptions::new();
        assert_eq!(o.sync_at, 1000);
        assert!(!o.read_only);
        assert_eq!(o.durability, Durability::Full);
        assert_eq!(o.recovery, Recovery::TornTail);
        assert_eq!(o.max_record, 128 << 20);
        assert_eq!(
            o.compaction,
            Compaction::Auto {
                dead_fraction: 0.5,
                min_bytes: 1 << 20
            }
        );
    }
}

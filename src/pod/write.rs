//! Changing a store, and the one write path: every change goes into the
//! pending block ([`crate::index`]); a sync makes it exact, writes it with
//! one write call and fsyncs.

use super::Pod;
use crate::error::{Error, ErrorKind, Result, fail};
use crate::group_commit::Ticket;
use crate::index::ValueRef;
use crate::json;
use crate::options::Durability;
use crate::record;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::TypeId;

/// Encodes a value as compact JSON by the rules of values ([`json`]).
pub(super) fn encode<V: Serialize>(key: &str, value: &V) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    json::encode(&mut out, value).map_err(|source| ErrorKind::Encode {
        key: key.to_string(),
        source,
    })?;
    Ok(out)
}

/// Appends `value`, encoded as [`encode`] does, to `buf`, refusing a value
/// whose put record for `key` would be longer than `max_record` bytes (the
/// bytes appended are then cut off again).
pub(super) fn encode_value<V: Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    key: &str,
    value: &V,
    max_record: usize,
) -> Result<()> {
    let start = buf.len();
    let encoded = json::encode(buf, value).map_err(|source| {
        Error::from(ErrorKind::Encode {
            key: key.to_string(),
            source,
        })
    });
    // The line without its newline.
    let len = record::put_len(key, buf.len() - start) - 1;
    let checked = encoded.and_then(|()| {
        if len > max_record as u64 {
            return fail(ErrorKind::RecordTooLarge {
                key: key.to_string(),
                len,
                max: max_record as u64,
            });
        }
        Ok(())
    });
    if checked.is_err() {
        buf.truncate(start);
    }
    checked
}

impl<V> Pod<V>
where
    V: Serialize + DeserializeOwned,
{
    /// The end of the outermost operation of a call, under
    /// [`Durability::EveryChange`]: its changes are written and made
    /// durable (or, for a claim, written and left to the next fsync),
    /// unless a hold defers them.
    pub(crate) fn end_of_call(&mut self) -> Result<()> {
        if self.opts.durability != Durability::EveryChange || self.holds > 0 || self.opts.read_only
        {
            return Ok(());
        }
        if self.is_poisoned() || !self.log.is_attached() {
            // Another thread's failed fsync may have poisoned the handle
            // during this call: changes it leaves unwritten or unsynced
            // are not durable, and the call must not say they are.
            if self.index.has_changes() || self.log.has_unsynced() {
                return self.log.writable();
            }
            return Ok(());
        }
        if self.multi.is_some() {
            // The operation appended its changes: only the fsync is left.
            return if self.lazy { Ok(()) } else { self.log.fsync() };
        }
        if self.lazy {
            if self.index.has_changes() {
                self.write_pending(false)?;
            }
            return Ok(());
        }
        if self.index.has_changes() || self.log.has_unsynced() {
            self.sync_now()?;
        }
        Ok(())
    }

    /// Whether the current call is to write its changes without waiting for
    /// them to be durable (claims); returns the setting before.
    pub(crate) fn set_lazy(&mut self, lazy: bool) -> bool {
        std::mem::replace(&mut self.lazy, lazy)
    }

    /// Defers fsyncs (see [`take_owed`](Self::take_owed)) or makes them at
    /// once; returns the setting before. A handle that threads share defers
    /// them while it holds its mutex and waits once it let go of it.
    pub(crate) fn defer_fsyncs(&mut self, defer: bool) -> bool {
        self.log.set_defer(defer)
    }

    /// The fsyncs of this handle's log, shared by the threads that wait on them.
    pub(crate) fn syncer(&self) -> std::sync::Arc<crate::group_commit::Syncer> {
        self.log.syncer()
    }

    /// The fsync owed by the calls made while fsyncs were deferred.
    pub(crate) fn take_owed(&mut self) -> Option<Ticket> {
        self.log.take_owed()
    }

    /// Waits for the fsync owed, if any (poisoning the handle if it fails).
    pub(super) fn wait_owed(&mut self) -> Result<()> {
        match self.log.take_owed() {
            Some(ticket) => ticket.wait(),
            None => Ok(()),
        }
    }

    /// Syncs if enough keys are dirty and no hold is active.
    pub(crate) fn after_change(&mut self) -> Result<()> {
        if self.holds == 0 && self.dirty_len() >= self.opts.sync_at {
            self.sync()?;
        }
        Ok(())
    }

    /// Sets `key` to `value`. A new key goes to the end of the order; an
    /// existing key keeps its place.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReadOnly`] or [`ErrorKind::Poisoned`] if the handle
    /// cannot write; [`ErrorKind::Encode`] if `value` cannot be encoded as
    /// one valid JSON value (nested deeper than [`MAX_DEPTH`](crate::MAX_DEPTH),
    /// say), or [`ErrorKind::RecordTooLarge`] if its record would be longer
    /// than the maximum record size (nothing changes either way); any error
    /// of the automatic sync this change may trigger, as [`sync`](Pod::sync)
    /// describes (a failed write leaves the change in memory, unsynced; a
    /// failed compaction after the write does not undo it).
    pub fn insert(&mut self, key: &str, value: V) -> Result<()> {
        self.in_op(|pod| pod.insert_now(key, &value))
    }

    /// [`insert`](Pod::insert) for a value the caller keeps: the value is
    /// encoded at once, so nothing is cloned.
    ///
    /// # Errors
    ///
    /// As [`insert`](Pod::insert).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let mut pod: tastypod::Pod = tastypod::Pod::open(dir.path().join("p"))?;
    /// let config = serde_json::json!({"depth": 3});
    /// pod.insert_ref("config", &config)?;
    /// assert_eq!(pod.get("config")?, Some(config));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert_ref(&mut self, key: &str, value: &V) -> Result<()> {
        self.in_op(|pod| pod.insert_now(key, value))
    }

    /// Inserts the value written as the JSON text `json`, checked by the
    /// rules every stored value follows (one JSON value, nested at most
    /// [`MAX_DEPTH`](crate::MAX_DEPTH) deep, every number kept exactly: an
    /// integer beyond 64 bits or a decimal with more digits than an `f64`
    /// holds is refused rather than rounded), then decoded into `V`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidValue`](crate::ErrorKind::InvalidValue) naming
    /// the rule broken; also as [`insert`](Pod::insert).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let mut pod: tastypod::Pod = tastypod::Pod::open(dir.path().join("p"))?;
    /// pod.insert_json("id", "12345678901234567")?;
    /// assert_eq!(pod.get_json("id")?.as_deref(), Some("12345678901234567"));
    /// // An f64 would round this one: it is refused, not changed.
    /// assert!(pod.insert_json("big", "123456789012345678901234567890").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert_json(&mut self, key: &str, json: &str) -> Result<()>
    where
        V: 'static,
    {
        json::check_json(key, json)?;
        // A value of one line is stored as written (decoded only when read
        // typed), unless `V` may not hold every JSON value: then it must
        // decode into `V` now. JSON's whitespace may hold a newline, which
        // a line of the log cannot: such a text is written anew.
        let any_json = TypeId::of::<V>() == TypeId::of::<serde_json::Value>()
            || TypeId::of::<V>() == TypeId::of::<Box<serde_json::value::RawValue>>();
        if any_json && memchr::memchr2(b'\n', b'\r', json.as_bytes()).is_none() {
            return self.in_op(|pod| pod.insert_text_now(key, json));
        }
        let value: V = serde_json::from_str(json).map_err(|e| {
            Error::from(ErrorKind::InvalidValue {
                key: key.to_string(),
                reason: e.to_string(),
            })
        })?;
        self.insert(key, value)
    }

    /// Inserts the checked JSON text `json` of one line as it is.
    fn insert_text_now(&mut self, key: &str, json: &str) -> Result<()> {
        self.writable()?;
        let hash = self.index.hash(key.as_bytes());
        let max_record = self.opts.max_record as u64;
        self.index.put_pending(hash, key, |buf| {
            // The line without its newline.
            let len = record::put_len(key, json.len()) - 1;
            if len > max_record {
                return fail(ErrorKind::RecordTooLarge {
                    key: key.to_string(),
                    len,
                    max: max_record,
                });
            }
            buf.extend_from_slice(json.as_bytes());
            Ok(())
        })?;
        self.after_change()
    }

    fn insert_now(&mut self, key: &str, value: &V) -> Result<()> {
        self.writable()?;
        let hash = self.index.hash(key.as_bytes());
        let max_record = self.opts.max_record;
        // Encoded now, into the record the next sync writes.
        self.index
            .put_pending(hash, key, |buf| encode_value(buf, key, value, max_record))?;
        self.after_change()
    }

    /// Inserts every pair, in order.
    ///
    /// # Errors
    ///
    /// As [`insert`](Pod::insert); pairs before the failing one stay inserted.
    pub fn extend<K: AsRef<str>>(&mut self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        for (k, v) in pairs {
            self.insert(k.as_ref(), v)?;
        }
        Ok(())
    }

    /// Mutable access to `key`'s value; the key is marked dirty and the
    /// change is written by the next sync.
    ///
    /// A sync that the dirty count calls for happens at the next change,
    /// since it cannot while the value is borrowed. [`update`](Pod::update)
    /// applies the threshold at once.
    ///
    /// # Errors
    ///
    /// As [`insert`](Pod::insert), plus [`ErrorKind::Decode`] if the stored
    /// value does not decode into `V`.
    pub fn get_mut(&mut self, key: &str) -> Result<Option<&mut V>> {
        // In the multi-process mode: read what others appended; the change
        // itself is written by this handle's next operation.
        self.in_op(|pod| {
            pod.writable()?;
            pod.after_change()
        })?;
        let Some(i) = self.index.find(key) else {
            return Ok(None);
        };
        match self.index.value(i) {
            ValueRef::Text(t) => {
                let value = self.decode_text(i, t)?;
                self.index.set_live(i, value);
            }
            ValueRef::Live(_) => {
                self.index.mark_dirty(i);
            }
        }
        Ok(self.index.live_value_mut(i))
    }

    /// Runs `f` on `key`'s value and marks the key dirty; returns what `f`
    /// returns, or `None` if the key is absent.
    ///
    /// # Errors
    ///
    /// As [`get_mut`](Pod::get_mut).
    pub fn update<R>(&mut self, key: &str, f: impl FnOnce(&mut V) -> R) -> Result<Option<R>> {
        self.in_op(|pod| {
            let out = pod.get_mut(key)?.map(f);
            pod.after_change()?;
            Ok(out)
        })
    }

    /// Removes `key`; returns whether it was present. A removal record is
    /// written by the next sync.
    ///
    /// # Errors
    ///
    /// As [`insert`](Pod::insert).
    pub fn remove(&mut self, key: &str) -> Result<bool> {
        self.in_op(|pod| {
            pod.writable()?;
            if !pod.index.remove_pending(key) {
                return Ok(false);
            }
            pod.after_change()?;
            Ok(true)
        })
    }

    /// Marks `key` dirty so the next sync writes it again (tastypy's
    /// `update(key)`); returns whether it is present.
    ///
    /// # Errors
    ///
    /// As [`insert`](Pod::insert).
    pub fn mark_dirty(&mut self, key: &str) -> Result<bool> {
        self.in_op(|pod| {
            pod.writable()?;
            let Some(i) = pod.index.find(key) else {
                return Ok(false);
            };
            pod.index.mark_dirty(i);
            pod.after_change()?;
            Ok(true)
        })
    }

    /// Writes every dirty record with one write call, then fsyncs the log
    /// (with [`Durability::Full`](crate::Durability::Full)). Its cost is
    /// proportional to the dirty keys, not to the store. Once it returns
    /// `Ok`, the changes survive a killed process and a power loss. A sync
    /// is atomic: its records are framed as one batch, so after a crash in
    /// the middle of it, none of them is kept (DESIGN.md, rule 8).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Encode`] if a value cannot be encoded (nothing is
    /// written); [`ErrorKind::Io`] if the write or fsync fails, after which
    /// the handle is poisoned: later writes return [`ErrorKind::Poisoned`]
    /// and reopening shows what is really on disk. If an automatic
    /// compaction fails (it runs in the background and is taken in by a
    /// later sync), that sync returns its error; the records it wrote are
    /// durable regardless, and the old log stays in place.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let mut pod: tastypod::Pod = tastypod::Pod::open(dir.path().join("p"))?;
    /// pod.insert("k", 1.into())?;
    /// assert_eq!(pod.dirty_len(), 1);
    /// pod.sync()?;
    /// assert_eq!(pod.dirty_len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sync(&mut self) -> Result<()> {
        self.in_op(|pod| pod.sync_now())
    }

    pub(super) fn sync_now(&mut self) -> Result<()> {
        self.writable()?;
        if self.multi.is_some() {
            return self.sync_multi();
        }
        let wrote = self.index.has_changes();
        if wrote {
            self.write_pending(true)?;
        } else {
            // Records written and not fsynced yet (claims, under
            // `Durability::EveryChange`): nothing to do if there are none.
            self.log.fsync()?;
        }
        // A background compaction that is done switches in now.
        self.finish_background(false)?;
        if wrote {
            self.maybe_compact()?;
        }
        Ok(())
    }

    /// Writes `key`'s pending change (a new value or a removal) now, with
    /// the changes made before it (so the order on disk stays the order in
    /// memory), then fsyncs; later changes stay pending. Nothing is written
    /// if `key` has no pending change. If a change was made in place
    /// ([`get_mut`](Pod::get_mut), [`update`](Pod::update),
    /// [`mark_dirty`](Pod::mark_dirty)) since the last sync, even one a
    /// later insert replaced, or a key changed twice, every pending change
    /// is written, as by [`sync`](Pod::sync): the records are then not in
    /// the order of the calls, so a part of them might be a state the
    /// program never passed through.
    ///
    /// # Errors
    ///
    /// As [`sync`](Pod::sync).
    pub fn sync_key(&mut self, key: &str) -> Result<()> {
        self.in_op(|pod| {
            pod.writable()?;
            if pod.multi.is_some() {
                // The multi-process mode appends every change at once.
                return pod.sync_multi();
            }
            if pod.needs_upgrade() {
                return pod.upgrade();
            }
            if !pod.index.in_call_order() {
                return pod.sync_now();
            }
            let max_record = pod.opts.max_record;
            pod.index
                .prepare_write(|buf, key, value| encode_value(buf, key, value, max_record))?;
            match pod.index.latest_record_of(key) {
                Some(upto) => pod.write_prepared(Some(upto), true),
                None => Ok(()),
            }
        })
    }
    /// The write path: makes the pending block exact (records for changes
    /// made in place at its end, or rebuilt if a record in it was
    /// superseded), appends it with one write call and (per the durability
    /// policy, if `fsync`) one fsync, and points every changed key at its
    /// record on disk. A failure of the write poisons the handle and keeps
    /// the changes pending.
    pub(super) fn write_pending(&mut self, fsync: bool) -> Result<()> {
        if self.needs_upgrade() {
            return self.upgrade();
        }
        let max_record = self.opts.max_record;
        self.index
            .prepare_write(|buf, key, value| encode_value(buf, key, value, max_record))?;
        self.write_prepared(None, fsync)
    }

    /// Writes the exact pending block (up to record number `upto`, if
    /// given) and takes it back.
    fn write_prepared(&mut self, upto: Option<u32>, fsync: bool) -> Result<()> {
        let pending = match upto {
            Some(upto) => self.index.take_write_upto(upto),
            None => self.index.take_write(),
        };
        // A sync of several records is framed by a batch line (version 3),
        // so a crash keeps all of them or none.
        let records = u64::from(pending.records());
        let mut frame = Vec::new();
        if records >= 2 && self.format >= record::BATCH_VERSION {
            record::encode_batch(&mut frame, records);
        }
        let framed = u64::from(!frame.is_empty());
        let mut parts = pending.parts();
        if framed == 1 {
            parts.insert(0, &frame);
        }
        let first_line = self.log.lines() + 1 + framed;
        // The one writer of the exclusive mode writes at its log's end; the
        // multi-process mode's appends go wherever the file ends then.
        let start = self.log.len();
        let at = self.multi.is_none().then(|| start + frame.len() as u64);
        let written = self.log.append(&parts, records + framed, fsync);
        if written.is_ok() && at.is_some() {
            // The log's CRC up to its end follows the appends (for the
            // next hint: `crate::hint`), while it is known up to here.
            if let Some((end, crc)) = self.crc_marks.last_mut()
                && *end == start
            {
                for part in &parts {
                    crc.update(part);
                    *end += part.len() as u64;
                }
            }
        }
        drop(parts);
        match written {
            Ok(()) => {
                self.index.written(pending, first_line, at);
                #[cfg(debug_assertions)]
                self.index.check();
                Ok(())
            }
            Err(e) => {
                self.index.unwritten(pending);
                Err(e)
            }
        }
    }
}

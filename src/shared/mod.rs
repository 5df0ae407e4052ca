//! Handles that many threads can share: `SharedPod` and `SharedTracker`
//! ([`tracker`]). Each is an `Arc<Mutex<_>>`: every call is atomic, and
//! `locked` runs a closure under the lock for read-modify-write across
//! several calls.

mod tracker;

pub use tracker::SharedTracker;

use crate::error::Result;
use crate::group_commit::Ticket;
use crate::pod::Pod;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// Locks `m`, recovering from a panic in another thread: the store's own
/// invariants hold between calls, so its state is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Lets the `sync_on_signals` handler sync the store behind `inner` itself
/// (as soon as its mutex is free), even while no thread calls it.
pub(crate) fn let_handler_sync<T: Send + 'static>(
    entry: Option<Arc<crate::signals::Entry>>,
    inner: &Arc<Mutex<T>>,
    sync: fn(&mut T),
) {
    let Some(entry) = entry else {
        return;
    };
    let weak = Arc::downgrade(inner);
    entry.set_shared(Box::new(move || {
        let inner = weak.upgrade()?;
        let synced = match inner.try_lock() {
            Ok(mut guard) => {
                sync(&mut guard);
                true
            }
            Err(std::sync::TryLockError::Poisoned(e)) => {
                sync(&mut e.into_inner());
                true
            }
            Err(std::sync::TryLockError::WouldBlock) => false,
        };
        Some(synced)
    }));
}

/// A [`Pod`] that threads share: `Clone + Send + Sync`, every call atomic.
///
/// # Examples
///
/// ```
/// use tastypod::SharedPod;
/// # let dir = tempfile::tempdir()?;
/// let pod: SharedPod = SharedPod::open(dir.path().join("counts.pod"))?;
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         let pod = pod.clone();
///         s.spawn(move || {
///             for _ in 0..100 {
///                 // Read-modify-write under one lock.
///                 pod.locked(|p| {
///                     let n = p.get("n")?.and_then(|v| v.as_u64()).unwrap_or(0);
///                     p.insert("n", (n + 1).into())
///                 })?;
///             }
///             Ok::<(), tastypod::Error>(())
///         });
///     }
/// });
/// assert_eq!(pod.get("n")?, Some(400.into()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedPod<V = Value>
where
    V: Serialize + DeserializeOwned,
{
    inner: Arc<Mutex<Pod<V>>>,
    /// The fsyncs of the pod's log (group commit).
    syncer: Arc<crate::group_commit::Syncer>,
}

impl<V> Clone for SharedPod<V>
where
    V: Serialize + DeserializeOwned,
{
    fn clone(&self) -> Self {
        SharedPod {
            inner: Arc::clone(&self.inner),
            syncer: Arc::clone(&self.syncer),
        }
    }
}

impl<V> std::fmt::Debug for SharedPod<V>
where
    V: Serialize + DeserializeOwned,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedPod")
            .field(&*lock(&self.inner))
            .finish()
    }
}

impl<V> From<Pod<V>> for SharedPod<V>
where
    V: Serialize + DeserializeOwned + Send + 'static,
{
    fn from(pod: Pod<V>) -> Self {
        let entry = pod.signal_entry();
        let syncer = pod.syncer();
        let inner = Arc::new(Mutex::new(pod));
        let_handler_sync(entry, &inner, Pod::sync_for_shutdown);
        SharedPod { inner, syncer }
    }
}

impl SharedPod {
    /// Opens the store at `path` (see [`Pod::open`]) for sharing; its
    /// values are `serde_json::Value`s.
    ///
    /// # Errors
    ///
    /// As [`Pod::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Pod::open(path)?.into())
    }
}

impl<V> SharedPod<V>
where
    V: Serialize + DeserializeOwned + Send + 'static,
{
    /// [`SharedPod::open`] for a store whose values are of type `V`.
    ///
    /// # Errors
    ///
    /// As [`Pod::open`].
    pub fn open_typed(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Pod::open_typed(path)?.into())
    }

    /// Runs `f` with the pod locked: no other thread's call interleaves,
    /// and in the multi-process mode no other process's either (see [`Pod::atomically`]).
    ///
    /// # Errors
    ///
    /// What `f` returns, or an error taking the store's lock.
    pub fn locked<R>(&self, f: impl FnOnce(&mut Pod<V>) -> Result<R>) -> Result<R> {
        self.with(|p| p.atomically(f))
    }

    /// Runs `f` with the pod locked and its fsyncs deferred; then, with the
    /// lock released, waits for the fsync its changes need (shared with the
    /// other threads waiting for one: group commit).
    fn with<R>(&self, f: impl FnOnce(&mut Pod<V>) -> Result<R>) -> Result<R> {
        let busy = self.syncer.enter();
        let (out, owed) = {
            let mut pod = lock(&self.inner);
            pod.defer_fsyncs(true);
            let out = f(&mut pod);
            pod.defer_fsyncs(false);
            (out, pod.take_owed())
        };
        busy.leave(owed.as_ref().is_some_and(Ticket::waits_for_fsync));
        let waited = owed.map_or(Ok(()), |ticket| ticket.wait());
        let out = out?;
        waited?;
        Ok(out)
    }

    /// See [`Pod::get`].
    ///
    /// # Errors
    ///
    /// As [`Pod::get`].
    pub fn get(&self, key: &str) -> Result<Option<V>>
    where
        V: Clone,
    {
        self.locked(|p| p.get(key))
    }

    /// See [`Pod::insert`].
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`].
    pub fn insert(&self, key: &str, value: V) -> Result<()> {
        self.with(|p| p.insert(key, value))
    }

    /// See [`Pod::insert_json`]: the value written as the JSON text `json`,
    /// checked by the store's rules and stored as written.
    ///
    /// # Errors
    ///
    /// As [`Pod::insert_json`].
    pub fn insert_json(&self, key: &str, json: &str) -> Result<()> {
        self.with(|p| p.insert_json(key, json))
    }

    /// See [`Pod::insert_ref`].
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`].
    pub fn insert_ref(&self, key: &str, value: &V) -> Result<()> {
        self.with(|p| p.insert_ref(key, value))
    }

    /// See [`Pod::update`].
    ///
    /// # Errors
    ///
    /// As [`Pod::update`].
    pub fn update<R>(&self, key: &str, f: impl FnOnce(&mut V) -> R) -> Result<Option<R>> {
        self.with(|p| p.update(key, f))
    }

    /// See [`Pod::remove`].
    ///
    /// # Errors
    ///
    /// As [`Pod::remove`].
    pub fn remove(&self, key: &str) -> Result<bool> {
        self.with(|p| p.remove(key))
    }

    /// See [`Pod::contains_key`].
    ///
    /// # Errors
    ///
    /// In the multi-process mode, an error taking in other processes' records.
    pub fn contains_key(&self, key: &str) -> Result<bool> {
        self.locked(|p| Ok(p.contains_key(key)))
    }

    /// See [`Pod::len`].
    ///
    /// # Errors
    ///
    /// As [`contains_key`](SharedPod::contains_key).
    pub fn len(&self) -> Result<usize> {
        self.locked(|p| Ok(p.len()))
    }

    /// See [`Pod::is_empty`].
    ///
    /// # Errors
    ///
    /// As [`contains_key`](SharedPod::contains_key).
    pub fn is_empty(&self) -> Result<bool> {
        self.locked(|p| Ok(p.is_empty()))
    }

    /// The keys in order, copied out under the lock.
    ///
    /// # Errors
    ///
    /// As [`contains_key`](SharedPod::contains_key).
    pub fn keys(&self) -> Result<Vec<String>> {
        self.locked(|p| Ok(p.keys().map(str::to_string).collect()))
    }

    /// See [`Pod::cursor`].
    pub fn cursor(&self) -> crate::Cursor {
        lock(&self.inner).cursor()
    }

    /// See [`Pod::next_keys`].
    ///
    /// # Errors
    ///
    /// As [`Pod::next_keys`].
    pub fn next_keys(&self, cursor: &mut crate::Cursor, n: usize) -> Result<Vec<String>> {
        self.with(|p| p.next_keys(cursor, n))
    }

    /// See [`Pod::next_items_json`].
    ///
    /// # Errors
    ///
    /// As [`Pod::next_items_json`].
    pub fn next_items_json(
        &self,
        cursor: &mut crate::Cursor,
        n: usize,
    ) -> Result<Vec<(String, String)>> {
        self.with(|p| p.next_items_json(cursor, n))
    }

    /// See [`Pod::sync`].
    ///
    /// # Errors
    ///
    /// As [`Pod::sync`].
    pub fn sync(&self) -> Result<()> {
        self.with(|p| p.sync())
    }

    /// See [`Pod::compact`].
    ///
    /// # Errors
    ///
    /// As [`Pod::compact`].
    pub fn compact(&self) -> Result<()> {
        self.with(|p| p.compact())
    }
}

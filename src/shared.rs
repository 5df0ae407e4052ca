//! Handles that many threads can share: `SharedPod` and `SharedTracker`.
//! Each is an `Arc<Mutex<_>>`: every call is atomic, and `locked` runs a
//! closure under the lock for read-modify-write across several calls.

use crate::error::Result;
use crate::pod::Pod;
use crate::tracker::{Tracker, TrackerOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Locks `m`, recovering from a panic in another thread: the store's own
/// invariants hold between calls, so its state is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Lets the `sync_on_signals` handler sync the store behind `inner` itself
/// (as soon as its mutex is free), even while no thread calls it.
fn let_handler_sync<T: Send + 'static>(
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
}

impl<V> Clone for SharedPod<V>
where
    V: Serialize + DeserializeOwned,
{
    fn clone(&self) -> Self {
        SharedPod {
            inner: Arc::clone(&self.inner),
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
        let inner = Arc::new(Mutex::new(pod));
        let_handler_sync(entry, &inner, Pod::sync_for_shutdown);
        SharedPod { inner }
    }
}

impl<V> SharedPod<V>
where
    V: Serialize + DeserializeOwned + Send + 'static,
{
    /// Opens the store at `path` (see [`Pod::open`]) for sharing.
    ///
    /// # Errors
    ///
    /// As [`Pod::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Pod::open(path)?.into())
    }

    /// Runs `f` with the pod locked: no other thread's call interleaves,
    /// and in shared mode no other process's either (see [`Pod::atomically`]).
    ///
    /// # Errors
    ///
    /// What `f` returns, or an error taking the store's lock.
    pub fn locked<R>(&self, f: impl FnOnce(&mut Pod<V>) -> Result<R>) -> Result<R> {
        lock(&self.inner).atomically(f)
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
        lock(&self.inner).insert(key, value)
    }

    /// See [`Pod::insert_ref`].
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`].
    pub fn insert_ref(&self, key: &str, value: &V) -> Result<()> {
        lock(&self.inner).insert_ref(key, value)
    }

    /// See [`Pod::update`].
    ///
    /// # Errors
    ///
    /// As [`Pod::update`].
    pub fn update<R>(&self, key: &str, f: impl FnOnce(&mut V) -> R) -> Result<Option<R>> {
        lock(&self.inner).update(key, f)
    }

    /// See [`Pod::remove`].
    ///
    /// # Errors
    ///
    /// As [`Pod::remove`].
    pub fn remove(&self, key: &str) -> Result<bool> {
        lock(&self.inner).remove(key)
    }

    /// See [`Pod::contains_key`].
    ///
    /// # Errors
    ///
    /// In shared mode, an error taking in other processes' records.
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

    /// See [`Pod::sync`].
    ///
    /// # Errors
    ///
    /// As [`Pod::sync`].
    pub fn sync(&self) -> Result<()> {
        lock(&self.inner).sync()
    }

    /// See [`Pod::compact`].
    ///
    /// # Errors
    ///
    /// As [`Pod::compact`].
    pub fn compact(&self) -> Result<()> {
        lock(&self.inner).compact()
    }
}

/// A [`Tracker`] that threads share, with atomic claims for worker pools.
///
/// # Examples
///
/// ```
/// use tastypod::{SharedTracker, TrackerOptions};
/// # let dir = tempfile::tempdir()?;
/// let tracker = SharedTracker::open(TrackerOptions::new().max_tries(3), dir.path().join("jobs"))?;
/// tracker.locked(|t| t.add_many(["a", "b", "c"]))?;
/// std::thread::scope(|s| {
///     for _ in 0..2 {
///         let tracker = tracker.clone();
///         s.spawn(move || {
///             while let Some(key) = tracker.claim_next()? {
///                 // ... do the work for `key` ...
///                 tracker.mark_done(&key)?;
///             }
///             Ok::<(), tastypod::Error>(())
///         });
///     }
/// });
/// assert_eq!(tracker.locked(|t| Ok(t.num_done()))?, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct SharedTracker {
    inner: Arc<Mutex<Tracker>>,
    owner: Arc<str>,
}

/// A name for this process's claims: `pid-<pid>-<n>`.
fn default_owner() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "pid-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl From<Tracker> for SharedTracker {
    fn from(tracker: Tracker) -> Self {
        let entry = tracker.pod().signal_entry();
        let inner = Arc::new(Mutex::new(tracker));
        let_handler_sync(entry, &inner, Tracker::sync_for_shutdown);
        SharedTracker {
            inner,
            owner: default_owner().into(),
        }
    }
}

impl SharedTracker {
    /// Opens the tracker at `path` with `options` for sharing.
    ///
    /// # Errors
    ///
    /// As [`TrackerOptions::open`].
    pub fn open(options: TrackerOptions, path: impl AsRef<Path>) -> Result<Self> {
        Ok(options.open(path)?.into())
    }

    /// The same tracker, claiming under the name `owner` (written into
    /// each lease, so `jq` shows who holds a task).
    #[must_use]
    pub fn with_owner(&self, owner: &str) -> Self {
        SharedTracker {
            inner: Arc::clone(&self.inner),
            owner: owner.into(),
        }
    }

    /// The name claims are made under.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Runs `f` with the tracker locked: no other thread's call
    /// interleaves, and in shared mode no other process's either.
    ///
    /// # Errors
    ///
    /// What `f` returns, or an error taking the store's lock.
    pub fn locked<R>(&self, f: impl FnOnce(&mut Tracker) -> Result<R>) -> Result<R> {
        lock(&self.inner).atomically(f)
    }

    /// See [`Tracker::claim_next`]; claims under [`owner`](SharedTracker::owner).
    ///
    /// # Errors
    ///
    /// As [`Tracker::claim_next`].
    pub fn claim_next(&self) -> Result<Option<String>> {
        lock(&self.inner).claim_next(&self.owner)
    }

    /// See [`Tracker::mark_done`] (ends the claim).
    ///
    /// # Errors
    ///
    /// As [`Tracker::mark_done`].
    pub fn mark_done(&self, key: &str) -> Result<()> {
        lock(&self.inner).mark_done(key)
    }

    /// See [`Tracker::abort`] (ends the claim).
    ///
    /// # Errors
    ///
    /// As [`Tracker::abort`].
    pub fn abort(&self, key: &str) -> Result<()> {
        lock(&self.inner).abort(key)
    }

    /// See [`Tracker::release`].
    ///
    /// # Errors
    ///
    /// As [`Tracker::release`].
    pub fn release(&self, key: &str) -> Result<()> {
        lock(&self.inner).release(key)
    }

    /// See [`Tracker::sync`].
    ///
    /// # Errors
    ///
    /// As [`Tracker::sync`].
    pub fn sync(&self) -> Result<()> {
        lock(&self.inner).sync()
    }
}

//! Moving a store built elsewhere into place: how `load` and
//! `import-tastypy` create a store, so that it appears with all of its
//! first content or not at all.

use super::{LOCK_FILE, LOG_FILE};
use crate::error::{Error, ErrorKind, Result, fail};
use crate::fsio::{StdStorage, Storage};
use crate::hint::HINT_FILE;
use std::path::Path;

/// Moves the store built in the directory `built` (closed: no handle is
/// open on it) to the directory `dest`, which must hold no store yet.
///
/// `dest` is created if missing; then, holding its writer lock, the log of
/// `built` is renamed into it only if it has no log (so a store another
/// process created there meanwhile is never replaced), and the directory
/// is fsynced; its hint file (if any) follows it. `dest` may be empty, or
/// hold what an interrupted creation leaves (its lock files). Then
/// `built`'s lock file and directory are removed. Nothing in `dest` is ever removed or replaced.
///
/// # Errors
///
/// [`ErrorKind::StoreExists`] if `dest` holds a log;
/// [`ErrorKind::Locked`] if a writer holds `dest`'s lock;
/// [`ErrorKind::Io`] if a step fails (the rename is the last step that
/// changes `dest`: before it, `dest` holds no log of ours).
///
/// # Examples
///
/// ```
/// use tastypod::{Pod, install_store};
/// # let dir = tempfile::tempdir()?;
/// let built = dir.path().join(".new.partial");
/// let mut pod: Pod = Pod::open(&built)?;
/// pod.insert("a", serde_json::json!(1))?;
/// pod.close()?;
/// install_store(&built, dir.path().join("new"))?;
/// let pod: Pod = Pod::open(dir.path().join("new"))?;
/// assert_eq!(pod.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn install_store(built: impl AsRef<Path>, dest: impl AsRef<Path>) -> Result<()> {
    let (built, dest) = (built.as_ref(), dest.as_ref());
    let storage = StdStorage;
    let log = built.join(LOG_FILE);
    if !storage
        .exists(&log)
        .map_err(|e| Error::io("stat", &log, e))?
    {
        return fail(ErrorKind::NotAStore {
            path: log,
            reason: "the built store has no log".into(),
        });
    }
    storage
        .create_dir_all(dest)
        .map_err(|e| Error::io("create directory", dest, e))?;
    let lock_path = dest.join(LOCK_FILE);
    let Some(lock) = storage
        .lock(&lock_path, false)
        .map_err(|e| Error::io("lock", &lock_path, e))?
    else {
        return fail(ErrorKind::Locked {
            path: dest.to_path_buf(),
        });
    };
    let target = dest.join(LOG_FILE);
    if storage
        .exists(&target)
        .map_err(|e| Error::io("stat", &target, e))?
    {
        return fail(ErrorKind::StoreExists {
            path: dest.to_path_buf(),
        });
    }
    storage
        .rename(&log, &target)
        .map_err(|e| Error::io("move the log into", dest, e))?;
    storage
        .sync_dir(dest)
        .map_err(|e| Error::io("fsync directory", dest, e))?;
    // The hint file describes the log moved: it goes with it, unless
    // `dest` has one (of no log of its own), which is left as it is and
    // found stale by the next open.
    let hint = built.join(HINT_FILE);
    if storage.exists(&hint).unwrap_or(false) {
        let dest_hint = dest.join(HINT_FILE);
        if storage.exists(&dest_hint).unwrap_or(true) || storage.rename(&hint, &dest_hint).is_err()
        {
            storage
                .remove_file(&hint)
                .map_err(|e| Error::io("remove", &hint, e))?;
        }
    }
    drop(lock);
    // The built directory holds at most its lock file now.
    let built_lock = built.join(LOCK_FILE);
    if storage.exists(&built_lock).unwrap_or(false) {
        storage
            .remove_file(&built_lock)
            .map_err(|e| Error::io("remove", &built_lock, e))?;
    }
    std::fs::remove_dir(built).map_err(|e| Error::io("remove directory", built, e))?;
    Ok(())
}

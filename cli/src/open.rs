//! Opening stores: every command opens through [`Stores`], which applies
//! the global options, reports what an open found on stderr, and holds
//! the one rule for creating a store.
//!
//! A store is created only where none is: a missing path, an empty
//! directory, or a directory holding only what an interrupted creation
//! leaves (its lock files, a temporary log). `set` checks its value before
//! it creates anything; `load` and `import-tastypy` build the new store
//! beside the destination and move its log in under the destination's lock
//! ([`tastypod::install_store`]). A failed command never removes anything.

use crate::errors::{CliResult, Message, fail};
use crate::output::note_recovery;
use std::path::Path;
use tastypod::{Pod, PodOptions, Tracker, TrackerOptions};

/// The files an interrupted creation can leave in a store directory.
const CREATION_LEFTOVERS: [&str; 3] = [tastypod::LOCK_FILE, tastypod::TMP_FILE, "pod.oplock"];

/// How the commands open stores.
#[derive(Debug, Clone)]
pub struct Stores {
    max_record_size: Option<usize>,
}

/// What is at a path a command would create a store at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Nothing, an empty directory, or only an interrupted creation's files.
    Free,
    /// A directory holding a store's log.
    Store,
}

impl Stores {
    pub fn new(max_record_size: Option<usize>) -> Self {
        Stores { max_record_size }
    }

    /// The options every open starts from.
    pub fn options(&self) -> PodOptions {
        let options = PodOptions::new();
        match self.max_record_size {
            Some(bytes) => options.max_record_size(bytes),
            None => options,
        }
    }

    /// The maximum record size in force.
    pub fn max_record_size(&self) -> usize {
        self.max_record_size
            .unwrap_or(tastypod::DEFAULT_MAX_RECORD_SIZE)
    }

    /// Opens the store at `path` read-only.
    pub fn read_only(&self, path: &Path) -> CliResult<Pod> {
        existing(path)?;
        let pod = self.options().read_only(true).open(path)?;
        note_recovery(pod.log_path(), pod.recovery(), false);
        Ok(pod)
    }

    /// Opens the existing store at `path` for writing.
    pub fn writable(&self, path: &Path) -> CliResult<Pod> {
        existing(path)?;
        opened(self.options().open(path)?)
    }

    /// Opens the store at `path` for writing, creating it if the place is
    /// free (see [`place`]).
    pub fn open_or_create(&self, path: &Path) -> CliResult<Pod> {
        match place(path)? {
            Place::Free => opened(self.options().open(path)?),
            Place::Store => self.writable(path),
        }
    }

    /// Opens the tracker at `path`; `max_tries` overrides the stored try
    /// limit for this handle (a read-only open stores nothing).
    pub fn tracker(
        &self,
        path: &Path,
        max_tries: Option<u32>,
        read_only: bool,
    ) -> CliResult<Tracker> {
        existing(path)?;
        let mut options = TrackerOptions::from(self.options()).read_only(read_only);
        if let Some(max) = max_tries {
            options = options.max_tries(max);
        }
        let tracker = options.open(path)?;
        note_recovery(tracker.pod().log_path(), tracker.recovery(), !read_only);
        Ok(tracker)
    }
}

/// Reports on stderr what opening `pod` for writing found and repaired.
pub fn opened(pod: Pod) -> CliResult<Pod> {
    note_recovery(pod.log_path(), pod.recovery(), true);
    Ok(pod)
}

/// A readable description of why `path` cannot be read.
fn unreadable(path: &Path, e: &std::io::Error) -> Message {
    Message(format!("cannot read {}: {e}", path.display()))
}

/// Fails unless `path` holds a store, naming what is wrong: nothing there,
/// no log, or a directory this user may not read.
pub fn existing(path: &Path) -> CliResult<()> {
    match std::fs::metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fail(format!(
                "no store at {}: the path does not exist",
                path.display()
            ));
        }
        Err(e) => return Err(Box::new(unreadable(path, &e))),
    }
    // A log that is there but not a regular file is the library's to name.
    let log = path.join(tastypod::LOG_FILE);
    match std::fs::symlink_metadata(&log) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fail(format!(
            "no store at {}: it has no {} file",
            path.display(),
            tastypod::LOG_FILE
        )),
        Err(e) => Err(Box::new(unreadable(path, &e))),
    }
}

/// What is at `path`: a place to create a store, or a store (anything
/// else is an error naming it).
pub fn place(path: &Path) -> CliResult<Place> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Place::Free),
        Err(e) => return Err(Box::new(unreadable(path, &e))),
    };
    if !meta.is_dir() {
        return fail(format!("{} is not a directory", path.display()));
    }
    let entries = std::fs::read_dir(path).map_err(|e| unreadable(path, &e))?;
    let mut leftovers_only = true;
    for entry in entries {
        let name = entry.map_err(|e| unreadable(path, &e))?.file_name();
        if name == tastypod::LOG_FILE {
            return Ok(Place::Store);
        }
        leftovers_only &= CREATION_LEFTOVERS.iter().any(|l| name == *l);
    }
    if leftovers_only {
        Ok(Place::Free)
    } else {
        fail(format!(
            "no store at {}: the directory holds other files and no {}",
            path.display(),
            tastypod::LOG_FILE
        ))
    }
}

//! A directory built beside its destination and moved there whole, so that
//! a command that fails or is killed half-way leaves nothing at the
//! destination: `load`, `import-tastypy` and `export-tastypy` build in a
//! hidden sibling `.NAME.partial-PID`. An export is then renamed onto the
//! destination (which must not exist, or be an empty directory, which the
//! rename replaces); a store's log is moved into the destination under its
//! lock ([`tastypod::install_store`]), so a store another process created
//! there meanwhile is never replaced.

use crate::errors::{CliResult, Message, fail};
use crate::open::{Place, place};
use std::path::{Path, PathBuf};

/// A hidden sibling of the destination, removed on drop unless committed.
pub struct Staged {
    dir: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl Staged {
    /// Creates the sibling directory of `dest`, which must not exist or be
    /// an empty directory; `what` names the command's output in errors.
    pub fn new(dest: &Path, what: &str) -> CliResult<Staged> {
        if dest.exists() {
            let empty = std::fs::read_dir(dest)
                .map_err(|e| Message(format!("cannot read {}: {e}", dest.display())))?
                .next()
                .is_none();
            if !empty {
                return fail(format!(
                    "{} is not empty; write the {what} into a new directory",
                    dest.display()
                ));
            }
        }
        Staged::beside(dest)
    }

    /// Creates the sibling directory to build a store for `dest` in, which
    /// must be a place for one ([`place`]).
    pub fn store(dest: &Path) -> CliResult<Staged> {
        if place(dest)? == Place::Store {
            return fail(format!(
                "{} already holds a store; give a new path",
                dest.display()
            ));
        }
        Staged::beside(dest)
    }

    /// Creates the hidden sibling of `dest`.
    fn beside(dest: &Path) -> CliResult<Staged> {
        let name = dest
            .file_name()
            .ok_or_else(|| Message(format!("{} is not a directory name", dest.display())))?;
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)
            .map_err(|e| Message(format!("cannot create {}: {e}", parent.display())))?;
        let dir = parent.join(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        // A directory left by a killed run with the same process id is ours
        // to replace: nothing refers to a partial directory.
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| Message(format!("cannot remove {}: {e}", dir.display())))?;
        }
        std::fs::create_dir(&dir)
            .map_err(|e| Message(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Staged {
            dir,
            dest: dest.to_path_buf(),
            committed: false,
        })
    }

    /// Where to build.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Moves the store built here into the destination (see the module
    /// docs); the built store must be closed.
    pub fn commit_store(mut self) -> CliResult<()> {
        tastypod::install_store(&self.dir, &self.dest)?;
        self.committed = true;
        Ok(())
    }

    /// Moves the built directory onto the destination and makes the move
    /// durable.
    pub fn commit(mut self) -> CliResult<()> {
        std::fs::rename(&self.dir, &self.dest).map_err(|e| {
            Message(format!(
                "cannot move {} to {}: {e}",
                self.dir.display(),
                self.dest.display()
            ))
        })?;
        self.committed = true;
        let parent = self.dir.parent().unwrap_or(Path::new("."));
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| Message(format!("cannot fsync {}: {e}", parent.display())))?;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Inserts the records `insert` gives, one at a time, and writes them all
/// in one atomic rewrite (the log is replaced by a complete new one, so a
/// crash at any point leaves either none of them or all); on any failure,
/// drops them again, so the store is as it was. Returns what `insert`
/// returned.
pub fn load_all<R>(
    pod: &mut tastypod::Pod,
    insert: impl FnOnce(&mut tastypod::Pod) -> CliResult<R>,
) -> CliResult<R> {
    pod.hold();
    let written = insert(pod).and_then(|out| {
        pod.sync_atomic()?;
        Ok(out)
    });
    if written.is_err() {
        // Nothing of the load reached the log; forget it before the drop could sync it.
        pod.revert()?;
    }
    written
}

//! A simulated file system for crash and fault tests (feature `sim`; not a
//! stable API).
//!
//! It keeps, per file, the bytes written and the bytes made durable by the
//! last fsync, and per directory entry, the namespace as of the last
//! directory fsync. A crash image keeps only what was durable (optionally
//! with part of an unsynced tail). Any operation can be made to fail, once
//! or from then on.

pub mod agreement;
pub mod fuzz;
pub mod two_writers;
pub mod workload;

use crate::fsio::{Appender, LockGuard, OpLock, Storage};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The newline padding of a simulated log: a few records' worth, so that
/// crashes fall around many growths of it.
pub const SIM_PADDING: u64 = 256;

/// How an injected failure behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Operation number `at` fails; later ones succeed.
    Once,
    /// Operation number `at` and every later one fail (a frozen machine).
    FromThenOn,
}

/// What a crash image keeps of a file's unsynced tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Only fsynced bytes survive.
    Dropped,
    /// The first `n` unsynced bytes survive (clamped to what was written).
    Kept(usize),
    /// `n` bytes of zeros follow the fsynced bytes (a grown file whose data
    /// blocks were never written).
    Zeroed(usize),
    /// Of the unsynced bytes, only those from the first page boundary
    /// (4096 bytes) after where they start survive: a power loss that wrote
    /// a later page of a write over fsynced bytes (the padding) and not an
    /// earlier one.
    LaterPages,
}

#[derive(Debug, Default, Clone)]
struct SimFile {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// How many changes were made to `data`, and how many of them `durable` holds.
    changes: u64,
    durable_changes: u64,
}

impl SimFile {
    /// Where the written bytes first differ from the durable ones, and
    /// where the last difference ends (equal when everything is durable;
    /// a file cut shorter than its durable bytes and not fsynced counts
    /// as nothing unsynced: a crash gives the durable bytes back).
    fn unsynced(&self) -> (usize, usize) {
        let common = self.data.len().min(self.durable.len());
        let differs = |i: &usize| self.data.get(*i) != self.durable.get(*i);
        let start = (0..common).find(differs).unwrap_or(common);
        if self.data.len() > self.durable.len() {
            return (start, self.data.len());
        }
        let end = (start..common).rev().find(differs).map_or(start, |i| i + 1);
        (start, end)
    }
}

/// Writes `bytes` over `file` from `at`, growing it as needed.
fn overwrite(file: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    if file.len() < at + bytes.len() {
        file.resize(at + bytes.len(), 0);
    }
    if let Some(dest) = file.get_mut(at..at + bytes.len()) {
        dest.copy_from_slice(bytes);
    }
}

#[derive(Debug, Default)]
struct Sim {
    files: Vec<SimFile>,
    names: BTreeMap<PathBuf, usize>,
    durable_names: BTreeMap<PathBuf, usize>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    ops: u64,
    fail: Option<(u64, FailMode)>,
    /// The next operation of this kind fails (once).
    fail_next: Option<&'static str>,
    /// Copies of the file system as each fsync of a file began, if asked.
    before_fsyncs: Option<Vec<Sim>>,
    /// How long each fsync takes (a slow disk), with the file system free meanwhile.
    fsync_delay: std::time::Duration,
    /// How many fsyncs of files were made.
    fsyncs: u64,
    /// How many writes at a file's end (appends) were made.
    appends: u64,
}

impl Sim {
    /// Counts one operation and fails it if the plan says so.
    fn op(&mut self, what: &str) -> io::Result<()> {
        self.ops += 1;
        let mut failing = match self.fail {
            Some((at, FailMode::Once)) => self.ops == at,
            Some((at, FailMode::FromThenOn)) => self.ops >= at,
            None => false,
        };
        if self.fail_next == Some(what) {
            self.fail_next = None;
            failing = true;
        }
        if failing {
            return Err(io::Error::other(format!(
                "simulated failure of operation {} ({what})",
                self.ops
            )));
        }
        Ok(())
    }

    /// A copy of the files, names and directories (no failure plan).
    fn copy(&self) -> Sim {
        Sim {
            files: self.files.clone(),
            names: self.names.clone(),
            durable_names: self.durable_names.clone(),
            dirs: self.dirs.clone(),
            ..Sim::default()
        }
    }

    fn file_mut(&mut self, id: usize) -> io::Result<&mut SimFile> {
        self.files
            .get_mut(id)
            .ok_or_else(|| io::Error::other("bad file id"))
    }
}

/// The simulated file system; clones share it.
#[derive(Debug, Default, Clone)]
pub struct SimStorage {
    sim: Arc<Mutex<Sim>>,
}

impl SimStorage {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, Sim> {
        // A panic while the lock was held poisoned it; the data is still usable.
        self.sim.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates (or replaces) the file `path` holding `bytes`, durable, and
    /// its directory.
    pub fn put_file(&self, path: &Path, bytes: &[u8]) {
        let mut sim = self.state();
        if let Some(dir) = path.parent() {
            sim.dirs.insert(dir.to_path_buf());
        }
        sim.files.push(SimFile {
            data: bytes.to_vec(),
            durable: bytes.to_vec(),
            ..SimFile::default()
        });
        let id = sim.files.len() - 1;
        sim.names.insert(path.to_path_buf(), id);
        sim.durable_names.insert(path.to_path_buf(), id);
    }

    /// How many operations have been performed.
    pub fn ops(&self) -> u64 {
        self.state().ops
    }

    /// How many writes at a file's end (appends, not padding) were made.
    pub fn appends(&self) -> u64 {
        self.state().appends
    }

    /// Makes operation number `at` (counting from 1 over the whole life of
    /// this file system) fail, per `mode`; `None` stops injecting.
    pub fn fail_at(&self, plan: Option<(u64, FailMode)>) {
        self.state().fail = plan;
    }

    /// From now on, keeps a copy of the file system as each fsync of a file
    /// begins (what was written, and what was durable before it), for
    /// [`take_images_before_fsyncs`](Self::take_images_before_fsyncs).
    pub fn keep_images_before_fsyncs(&self) {
        self.state().before_fsyncs = Some(Vec::new());
    }

    /// The copies kept since [`keep_images_before_fsyncs`](Self::keep_images_before_fsyncs):
    /// crash images of each (`crash_image`) are the power losses during that fsync.
    pub fn take_images_before_fsyncs(&self) -> Vec<SimStorage> {
        let copies = self
            .state()
            .before_fsyncs
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        copies
            .into_iter()
            .map(|sim| SimStorage {
                sim: Arc::new(Mutex::new(sim)),
            })
            .collect()
    }

    /// Makes the next operation of kind `what` ("append", "pad", "fsync",
    /// "truncate", "open", "rename", ...) fail, once.
    pub fn fail_next(&self, what: &'static str) {
        self.state().fail_next = Some(what);
    }

    /// The current (written) contents of `path`, if it exists.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let sim = self.state();
        let id = *sim.names.get(path)?;
        sim.files.get(id).map(|f| f.data.clone())
    }

    /// Makes every fsync take `delay` (a slow disk); other operations go on meanwhile.
    pub fn set_fsync_delay(&self, delay: std::time::Duration) {
        self.state().fsync_delay = delay;
    }

    /// How many fsyncs of files were made.
    pub fn fsyncs(&self) -> u64 {
        self.state().fsyncs
    }

    /// The durable (fsynced) bytes of the file at `path`.
    pub fn read_durable(&self, path: &Path) -> Option<Vec<u8>> {
        let sim = self.state();
        let id = *sim.names.get(path)?;
        sim.files.get(id).map(|f| f.durable.clone())
    }

    /// How many bytes of `path` were written but not fsynced: from the
    /// first byte that differs from the durable bytes (an append, or a write
    /// over the newline padding) to the end of the last.
    pub fn unsynced_len(&self, path: &Path) -> usize {
        let sim = self.state();
        sim.durable_names
            .get(path)
            .and_then(|&id| sim.files.get(id))
            .map_or(0, |f| {
                let (start, end) = f.unsynced();
                end - start
            })
    }

    /// The file system a power loss now would leave: every durable
    /// directory entry with its file's fsynced bytes, plus `tail` of the
    /// unsynced bytes of the file at `tail_of`.
    pub fn crash_image(&self, tail_of: Option<&Path>, tail: Tail) -> SimStorage {
        let sim = self.state();
        let mut image = Sim {
            dirs: sim.dirs.clone(),
            ..Sim::default()
        };
        for (path, &id) in &sim.durable_names {
            let Some(file) = sim.files.get(id) else {
                continue;
            };
            let mut bytes = file.durable.clone();
            let (start, end) = file.unsynced();
            if tail_of == Some(path.as_path()) && end > start {
                let unsynced = file.data.get(start..end).unwrap_or_default();
                match tail {
                    Tail::Dropped => {}
                    // A prefix of what was written, over what was durable.
                    Tail::Kept(n) => {
                        let kept = unsynced.get(..n.min(unsynced.len())).unwrap_or_default();
                        overwrite(&mut bytes, start, kept);
                    }
                    // Blocks past the durable end that were never written
                    // read as zeros; bytes over durable ones keep those.
                    Tail::Zeroed(n) => {
                        let to = (start + n.min(unsynced.len())).max(bytes.len());
                        bytes.resize(to, 0);
                    }
                    Tail::LaterPages => {
                        let page = (start / 4096 + 1) * 4096;
                        if let Some(later) = file.data.get(page..end) {
                            if bytes.len() < page {
                                bytes.resize(page, 0);
                            }
                            overwrite(&mut bytes, page, later);
                        }
                    }
                }
            }
            image.files.push(SimFile {
                data: bytes.clone(),
                durable: bytes,
                ..SimFile::default()
            });
            let new_id = image.files.len() - 1;
            image.names.insert(path.clone(), new_id);
            image.durable_names.insert(path.clone(), new_id);
        }
        SimStorage {
            sim: Arc::new(Mutex::new(image)),
        }
    }
}

#[derive(Debug)]
struct SimAppender {
    sim: Arc<Mutex<Sim>>,
    id: usize,
    /// Where the next write goes, for a file opened with `open_write_at`
    /// (`None`: at the end).
    pos: Option<usize>,
}

/// Locks the simulation; a panic while the lock was held poisoned it, and
/// the data is still usable.
fn lock_sim(sim: &Mutex<Sim>) -> MutexGuard<'_, Sim> {
    sim.lock().unwrap_or_else(|e| e.into_inner())
}

impl Appender for SimAppender {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut sim = lock_sim(&self.sim);
        sim.op("append")?;
        sim.appends += 1;
        let file = sim.file_mut(self.id)?;
        file.changes += 1;
        match self.pos.as_mut() {
            Some(pos) => {
                overwrite(&mut file.data, *pos, bytes);
                *pos += bytes.len();
            }
            None => file.data.extend_from_slice(bytes),
        }
        Ok(())
    }

    fn pad(&mut self, at: u64, len: u64) -> io::Result<()> {
        let mut sim = lock_sim(&self.sim);
        sim.op("pad")?;
        let (at, len) = (
            usize::try_from(at).map_err(io::Error::other)?,
            usize::try_from(len).map_err(io::Error::other)?,
        );
        let file = sim.file_mut(self.id)?;
        file.changes += 1;
        overwrite(&mut file.data, at, &vec![b'\n'; len]);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut sim = lock_sim(&self.sim);
        sim.op("fsync")?;
        sim.fsyncs += 1;
        if sim.before_fsyncs.is_some() {
            let copy = sim.copy();
            if let Some(copies) = sim.before_fsyncs.as_mut() {
                copies.push(copy);
            }
        }
        // What was written before the call is what the fsync makes durable.
        let file = sim.file_mut(self.id)?;
        let (snapshot, changes) = (file.data.clone(), file.changes);
        let delay = sim.fsync_delay;
        if !delay.is_zero() {
            drop(sim);
            std::thread::sleep(delay);
            sim = lock_sim(&self.sim);
        }
        let file = sim.file_mut(self.id)?;
        // Slow fsyncs may end out of order: a later one never undoes an earlier one.
        if changes >= file.durable_changes {
            file.durable = snapshot;
            file.durable_changes = changes;
        }
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut sim = lock_sim(&self.sim);
        sim.op("truncate")?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        let file = sim.file_mut(self.id)?;
        file.changes += 1;
        file.data.truncate(len);
        if let Some(pos) = self.pos.as_mut() {
            *pos = len;
        }
        Ok(())
    }

    fn try_clone(&self) -> io::Result<Box<dyn Appender>> {
        // A real `dup` shares the file offset; clones only fsync, so a copy
        // of the position is never used to write.
        Ok(Box::new(SimAppender {
            sim: Arc::clone(&self.sim),
            id: self.id,
            pos: self.pos,
        }))
    }
}

#[derive(Debug)]
struct SimLock {
    sim: Arc<Mutex<Sim>>,
    path: PathBuf,
}

impl LockGuard for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut sim = self.sim.lock().unwrap_or_else(|e| e.into_inner());
        sim.locks.remove(&self.path);
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl Storage for SimStorage {
    fn allows_threads(&self) -> bool {
        false
    }

    fn padding(&self) -> u64 {
        SIM_PADDING
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut sim = self.state();
        sim.op("create directory")?;
        sim.dirs.insert(dir.to_path_buf());
        Ok(())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let mut sim = self.state();
        sim.op("stat")?;
        Ok(sim.names.contains_key(path) || sim.dirs.contains(path))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn Appender>> {
        let mut sim = self.state();
        sim.op("open")?;
        let id = *sim.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(Box::new(SimAppender {
            sim: Arc::clone(&self.sim),
            id,
            pos: None,
        }))
    }

    fn open_write_at(&self, path: &Path, at: u64) -> io::Result<(Box<dyn Appender>, u64)> {
        let mut sim = self.state();
        sim.op("open")?;
        let id = *sim.names.get(path).ok_or_else(|| not_found(path))?;
        let size = sim.files.get(id).map_or(0, |f| f.data.len() as u64);
        let pos = Some(usize::try_from(at).map_err(io::Error::other)?);
        let appender = SimAppender {
            sim: Arc::clone(&self.sim),
            id,
            pos,
        };
        Ok((Box::new(appender), size))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn Appender>> {
        let mut sim = self.state();
        sim.op("create")?;
        if sim.names.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        sim.files.push(SimFile::default());
        let id = sim.files.len() - 1;
        sim.names.insert(path.to_path_buf(), id);
        Ok(Box::new(SimAppender {
            sim: Arc::clone(&self.sim),
            id,
            pos: None,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut sim = self.state();
        sim.op("rename")?;
        let id = sim.names.remove(from).ok_or_else(|| not_found(from))?;
        sim.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut sim = self.state();
        sim.op("fsync directory")?;
        let in_dir = |p: &Path| p.parent() == Some(dir);
        let mut durable: BTreeMap<PathBuf, usize> = sim
            .durable_names
            .iter()
            .filter(|(p, _)| !in_dir(p))
            .map(|(p, &id)| (p.clone(), id))
            .collect();
        for (p, &id) in &sim.names {
            if in_dir(p) {
                durable.insert(p.clone(), id);
            }
        }
        sim.durable_names = durable;
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut sim = self.state();
        sim.op("remove")?;
        sim.names.remove(path).ok_or_else(|| not_found(path))?;
        Ok(())
    }

    fn lock(&self, path: &Path, _wait: bool) -> io::Result<Option<Box<dyn LockGuard>>> {
        let mut sim = self.state();
        sim.op("lock")?;
        if !sim.locks.insert(path.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(Box::new(SimLock {
            sim: Arc::clone(&self.sim),
            path: path.to_path_buf(),
        })))
    }

    fn lock_shared(&self, path: &Path) -> io::Result<Option<Box<dyn LockGuard>>> {
        let mut sim = self.state();
        sim.op("lock")?;
        if sim.locks.contains(path) {
            return Ok(None);
        }
        Ok(Some(Box::new(SimSharedLock)))
    }

    fn open_oplock(&self, _path: &Path) -> io::Result<Box<dyn OpLock>> {
        let mut sim = self.state();
        sim.op("open")?;
        Ok(Box::new(SimOpLock))
    }

    fn file_id(&self, path: &Path) -> io::Result<(u64, u64)> {
        let mut sim = self.state();
        sim.op("stat")?;
        let id = *sim.names.get(path).ok_or_else(|| not_found(path))?;
        Ok((
            id as u64,
            sim.files.get(id).map_or(0, |f| f.data.len() as u64),
        ))
    }

    fn open_read_at(&self, path: &Path, offset: u64) -> io::Result<(Box<dyn Read + Send>, u64)> {
        let mut sim = self.state();
        sim.op("read")?;
        let id = *sim.names.get(path).ok_or_else(|| not_found(path))?;
        let data = sim
            .files
            .get(id)
            .map(|f| f.data.clone())
            .unwrap_or_default();
        let len = data.len() as u64;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let tail = data.get(start..).unwrap_or_default().to_vec();
        Ok((Box::new(Cursor::new(tail)), len))
    }
}

/// A shared lock in a single simulated process: nothing to release.
#[derive(Debug)]
struct SimSharedLock;

impl LockGuard for SimSharedLock {}

/// The per-operation lock in a single simulated process: always free.
#[derive(Debug)]
struct SimOpLock;

impl OpLock for SimOpLock {
    fn lock(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn unlock(&mut self) -> io::Result<()> {
        Ok(())
    }
}

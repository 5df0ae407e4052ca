//! Every file operation tastypod performs goes through [`Storage`], so tests
//! and fuzzers can swap in a simulated file system that fails or crashes at
//! any operation. [`StdStorage`] is the real one.

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::Path;
use std::sync::Arc;

/// A file opened for appending (or freshly created).
pub(crate) trait Appender: Send + Debug {
    /// Writes all of `bytes` at the end of the file (of one opened with
    /// [`Storage::open_write_at`]: where the last write ended).
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Writes all of `parts`, in order, as [`append`](Self::append) (with one
    /// write call where the file system allows).
    fn append_parts(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        for part in parts {
            self.append(part)?;
        }
        Ok(())
    }
    /// Makes everything appended so far durable (fdatasync).
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes; the next append goes at `len`.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// Writes `len` newline bytes at byte `at` without moving where the
    /// next append goes: the padding of a file opened with
    /// [`Storage::open_write_at`] (never called on one opened to append).
    fn pad(&mut self, at: u64, len: u64) -> io::Result<()>;
    /// A second handle on the same file (for fsyncs made without the
    /// store's lock, [`crate::group_commit`]).
    fn try_clone(&self) -> io::Result<Box<dyn Appender>>;
}

/// A held writer lock; dropping it releases the lock.
pub(crate) trait LockGuard: Send + Debug {}

/// The per-operation lock of a store in the multi-process mode, held open between
/// operations and locked for each one.
pub(crate) trait OpLock: Send + Debug {
    /// Waits for and takes the exclusive lock.
    fn lock(&mut self) -> io::Result<()>;
    /// Releases the lock.
    fn unlock(&mut self) -> io::Result<()>;
}

/// The file operations of a store.
pub(crate) trait Storage: Send + Sync + Debug {
    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Opens the regular file `path` for reading; returns it and its size.
    /// Anything else (a FIFO, a device, a directory) is an error, never a
    /// wait.
    fn open_read(&self, path: &Path) -> io::Result<(Box<dyn Read + Send>, u64)> {
        self.open_read_at(path, 0)
    }
    /// Opens the existing file `path` for appending (`O_APPEND`: several
    /// processes may append to it).
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn Appender>>;
    /// Opens the existing file `path` for writing at byte `at` and on (no
    /// `O_APPEND`: the one writer overwrites the newline padding past its
    /// records); returns it and the file's size.
    fn open_write_at(&self, path: &Path, at: u64) -> io::Result<(Box<dyn Appender>, u64)>;
    /// Creates the new file `path` for writing; fails if anything, a
    /// symbolic link included, is already there (`O_EXCL`), so nothing is
    /// ever written through a planted link.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn Appender>>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory entries of `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Removes the file `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Takes the exclusive lock on `path` (creating it), waiting for it if
    /// `wait`; `Ok(None)` if another holder has it and `wait` is false.
    fn lock(&self, path: &Path, wait: bool) -> io::Result<Option<Box<dyn LockGuard>>>;
    /// Takes a shared lock on `path` (creating it); `Ok(None)` if an
    /// exclusive holder has it.
    fn lock_shared(&self, path: &Path) -> io::Result<Option<Box<dyn LockGuard>>>;
    /// Opens (creating) the per-operation lock file `path`.
    fn open_oplock(&self, path: &Path) -> io::Result<Box<dyn OpLock>>;
    /// An identity of the file now at `path` (it changes when another file
    /// is renamed over it) and its length, in one call.
    fn file_id(&self, path: &Path) -> io::Result<(u64, u64)>;
    /// [`open_read`](Storage::open_read) from byte `offset` (the size is
    /// the whole file's).
    fn open_read_at(&self, path: &Path, offset: u64) -> io::Result<(Box<dyn Read + Send>, u64)>;
    /// Opens the regular file `path` for reading, as [`open_read`](Storage::open_read),
    /// and maps it too, if this storage maps files (`None`: not mapped).
    /// The map is not read here: its pages are touched only when a value
    /// is read. Only a writable open that does not salvage maps its log
    /// (DESIGN.md, "Mapped logs", says why that is safe).
    #[expect(clippy::type_complexity, reason = "a reader, its size, its map")]
    fn open_mapped(
        &self,
        _path: &Path,
    ) -> io::Result<Option<(Box<dyn Read + Send>, u64, Arc<LogMap>)>> {
        Ok(None)
    }
    /// Why other users could change the files in `dir`, if they can: it
    /// is writable by all without the sticky bit, or owned by another user.
    fn unsafe_dir(&self, _dir: &Path) -> io::Result<Option<String>> {
        Ok(None)
    }
    /// Whether work such as compaction may run on another thread; a
    /// simulation says no, so that its operations happen in a fixed order.
    fn allows_threads(&self) -> bool {
        true
    }
    /// How many bytes of newline padding the one writer keeps past its
    /// last record (`crate::log`); a simulation keeps a few, so that
    /// crashes fall around many growths of the padding.
    fn padding(&self) -> u64 {
        256 * 1024
    }
}

/// The real file system, through `std::fs`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StdStorage;

#[derive(Debug)]
struct StdAppender(File);

impl Appender for StdAppender {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn append_parts(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let mut slices: Vec<io::IoSlice<'_>> = parts
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| io::IoSlice::new(p))
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match self.0.write_vectored(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)?;
        // Harmless on a file opened to append, where writes go to its end.
        self.0.seek(io::SeekFrom::Start(len)).map(|_| ())
    }

    fn pad(&mut self, at: u64, len: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        static NEWLINES: [u8; 64 * 1024] = [b'\n'; 64 * 1024];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(NEWLINES.len() as u64);
            let chunk = NEWLINES.get(..n as usize).unwrap_or_default();
            self.0.write_all_at(chunk, at + done)?;
            done += n;
        }
        Ok(())
    }

    fn try_clone(&self) -> io::Result<Box<dyn Appender>> {
        Ok(Box::new(StdAppender(self.0.try_clone()?)))
    }
}

#[derive(Debug)]
struct StdLock(#[expect(dead_code, reason = "held for the lock it carries, never read")] File);

impl LockGuard for StdLock {}

#[derive(Debug)]
struct StdOpLock(File);

impl OpLock for StdOpLock {
    fn lock(&mut self) -> io::Result<()> {
        self.0.lock()
    }

    fn unlock(&mut self) -> io::Result<()> {
        self.0.unlock()
    }
}

/// How long a lock that is taken is tried again before the store is
/// reported locked: a child process that another thread forks holds a copy
/// of every descriptor (and so of the lock) until its `exec` closes it.
pub(crate) const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// Runs `attempt` until it takes the lock, for up to [`LOCK_RETRY`];
/// returns whether it did.
fn try_briefly(attempt: impl Fn() -> Result<(), fs::TryLockError>) -> io::Result<bool> {
    let deadline = std::time::Instant::now() + LOCK_RETRY;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match attempt() {
            Ok(()) => return Ok(true),
            Err(fs::TryLockError::Error(e)) => return Err(e),
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() >= deadline => {
                return Ok(false);
            }
            Err(fs::TryLockError::WouldBlock) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(32));
            }
        }
    }
}

/// Opens (creating) a lock file without following a symbolic link at
/// `path` (`O_NOFOLLOW`: a planted `pod.lock -> /etc/x` is refused, never
/// created or opened through), and refuses anything that is not a regular
/// file (a FIFO is opened without blocking, then refused).
fn open_lock_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is a symbolic link; a lock file is never followed through a link \
                 (remove the link)",
            ));
        }
        Err(e) => return Err(e),
    };
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file; a lock file must be one (remove it)",
        ));
    }
    Ok(file)
}

/// Who holds a lock file's `flock` right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LockHolders {
    /// Nobody (or there is no lock file).
    None,
    /// One exclusive holder.
    Exclusive,
    /// Shared holders, with their process ids if the system lists them.
    Shared(Option<Vec<u32>>),
}

/// Tests who holds the lock file `path`, taking no lock that lasts: a
/// shared attempt tells an exclusive holder apart; the system's list of
/// locks (`/proc/locks`) names shared holders, else a brief exclusive
/// attempt tells whether there are any.
pub(crate) fn probe_lock(path: &Path) -> io::Result<LockHolders> {
    use std::os::unix::fs::MetadataExt;
    let Some(file) = open_lock_to_probe(path)? else {
        return Ok(LockHolders::None);
    };
    match file.try_lock_shared() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Ok(LockHolders::Exclusive),
        Err(fs::TryLockError::Error(e)) => return Err(e),
    }
    // Ours is not theirs: let go before looking.
    let _ = file.unlock();
    if let Some(pids) = shared_lock_holders(file.metadata()?.ino()) {
        return Ok(if pids.is_empty() {
            LockHolders::None
        } else {
            LockHolders::Shared(Some(pids))
        });
    }
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(LockHolders::None)
        }
        Err(fs::TryLockError::WouldBlock) => Ok(LockHolders::Shared(None)),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// The process ids holding shared `flock`s on the file with inode `inode`,
/// from `/proc/locks`; `None` if that list cannot be read.
fn shared_lock_holders(inode: u64) -> Option<Vec<u32>> {
    let list = fs::read_to_string("/proc/locks").ok()?;
    let mut pids = Vec::new();
    for line in list.lines() {
        // `1: FLOCK  ADVISORY  READ 31496 fe:00:10043395 0 EOF`
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(&"FLOCK"), Some(&"READ"), Some(pid), Some(dev_inode)) =
            (fields.get(1), fields.get(3), fields.get(4), fields.get(5))
        else {
            continue;
        };
        let same = dev_inode
            .rsplit(':')
            .next()
            .and_then(|i| i.parse::<u64>().ok())
            == Some(inode);
        if same && let Ok(pid) = pid.parse() {
            pids.push(pid);
        }
    }
    Some(pids)
}

/// Opens the existing lock file `path` to test who holds it: read-only,
/// never through a symbolic link, never blocking; `Ok(None)` if there is
/// no lock file. Anything but a regular file is an error.
fn open_lock_to_probe(path: &Path) -> io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is a symbolic link; a lock file is never followed through a link",
            ));
        }
        Err(e) => return Err(e),
    };
    if !file.metadata()?.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ));
    }
    Ok(Some(file))
}

impl Storage for StdStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn Appender>> {
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Box::new(StdAppender(file)))
    }

    fn open_write_at(&self, path: &Path, at: u64) -> io::Result<(Box<dyn Appender>, u64)> {
        let mut file = OpenOptions::new().write(true).open(path)?;
        let size = file.metadata()?.len();
        file.seek(io::SeekFrom::Start(at))?;
        Ok((Box::new(StdAppender(file)), size))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn Appender>> {
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(Box::new(StdAppender(file)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn lock(&self, path: &Path, wait: bool) -> io::Result<Option<Box<dyn LockGuard>>> {
        let file = open_lock_file(path)?;
        if wait {
            file.lock()?;
        } else if !try_briefly(|| file.try_lock())? {
            return Ok(None);
        }
        Ok(Some(Box::new(StdLock(file))))
    }

    fn lock_shared(&self, path: &Path) -> io::Result<Option<Box<dyn LockGuard>>> {
        let file = open_lock_file(path)?;
        if !try_briefly(|| file.try_lock_shared())? {
            return Ok(None);
        }
        Ok(Some(Box::new(StdLock(file))))
    }

    fn open_oplock(&self, path: &Path) -> io::Result<Box<dyn OpLock>> {
        Ok(Box::new(StdOpLock(open_lock_file(path)?)))
    }

    fn file_id(&self, path: &Path) -> io::Result<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(path)?;
        Ok((meta.ino(), meta.len()))
    }

    fn open_read_at(&self, path: &Path, offset: u64) -> io::Result<(Box<dyn Read + Send>, u64)> {
        use std::io::{Seek, SeekFrom};
        let (mut file, len) = open_regular_file(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok((Box::new(file), len))
    }

    fn open_mapped(
        &self,
        path: &Path,
    ) -> io::Result<Option<(Box<dyn Read + Send>, u64, Arc<LogMap>)>> {
        let (file, len) = open_regular_file(path)?;
        let Ok(size) = usize::try_from(len) else {
            return Ok(None);
        };
        if size == 0 {
            return Ok(None);
        }
        // The same open file is mapped and read: the same bytes. A file
        // system that cannot map, or a process out of maps, reads instead.
        let Ok(map) = LogMap::of(&file, size) else {
            return Ok(None);
        };
        Ok(Some((Box::new(file), len, Arc::new(map))))
    }

    fn unsafe_dir(&self, dir: &Path) -> io::Result<Option<String>> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = fs::metadata(dir)?;
        let mode = meta.permissions().mode();
        if mode & 0o002 != 0 && mode & 0o1000 == 0 {
            return Ok(Some(format!(
                "{} is writable by every user (mode {:o}): another user could replace its files",
                dir.display(),
                mode & 0o7777
            )));
        }
        if mode & 0o020 != 0 && mode & 0o1000 == 0 {
            return Ok(Some(format!(
                "{} is writable by its group {} (mode {:o}): another member could replace its files",
                dir.display(),
                meta.gid(),
                mode & 0o7777
            )));
        }
        let me = effective_uid();
        if meta.uid() != me {
            return Ok(Some(format!(
                "{} is owned by user {}, not by this process's user {me}: its owner could replace its files",
                dir.display(),
                meta.uid()
            )));
        }
        Ok(None)
    }
}

/// The effective user id of this process.
#[expect(unsafe_code, reason = "geteuid, which std does not offer")]
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// A log file mapped for reading (`memmap2`): its first `len` bytes, as
/// they were when it was mapped, read in place.
pub(crate) struct LogMap {
    map: memmap2::Mmap,
    /// Bytes read through the map since its pages were last released
    /// ([`note_read`](LogMap::note_read)); a count that concurrent readers
    /// may undercount, which only delays a release.
    read: std::sync::atomic::AtomicUsize,
}

/// After this many bytes read through a map, its pages leave the
/// process's page tables (they stay in the page cache).
const RELEASE_EVERY: usize = 32 << 20;

impl std::fmt::Debug for LogMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMap")
            .field("len", &self.map.len())
            .finish()
    }
}

impl LogMap {
    /// Maps the first `len` bytes of `file`.
    #[expect(unsafe_code, reason = "mapping a file: argued below")]
    fn of(file: &File, len: usize) -> io::Result<LogMap> {
        // SAFETY: a mapped file whose bytes change under the map, or that
        // is truncated below a page the program then reads (SIGBUS), breaks
        // Rust's guarantees. Only a writable open that does not salvage
        // maps its log (`Pod::read_log`), and it replays the log with
        // read(2) from this same open file while it holds the store's lock
        // (the exclusive lock, or the operation lock in the multi-process
        // mode); the map is then read only at the value texts of the
        // records that replay took as complete (a batch cut short is read
        // again without it). tastypod never changes or removes such bytes:
        // it only appends, or (the exclusive writer) writes past its last
        // complete record over its newline padding, which holds no record;
        // it truncates only past every complete record: the torn tail a
        // strict open finds, the part of an append that failed (written
        // under the lock, so read by no handle that maps), and the padding
        // (before a sync of several records, after a failed pad, at a
        // clean close); and it replaces a log by renaming a new file over it,
        // which leaves the mapped file whole (unlinked, it lives on until
        // the map is dropped). Handles that hold no lock (read-only ones)
        // read in place only the values of the part of the log a hint file
        // covers (complete records, matching the CRC the hint was written
        // with, before every cut and every write over the padding), and
        // copy the rest; a salvage (it keeps what a strict open cuts)
        // reads and copies.
        // What no store that maps its files can prevent is a program
        // outside tastypod truncating or rewriting a live log in place:
        // DESIGN.md ("Mapped logs") names it.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(file)? };
        Ok(LogMap {
            map,
            read: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// How many bytes are mapped.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Notes that `n` bytes of the map were read; every [`RELEASE_EVERY`]
    /// bytes, the pages read so far leave this process's page tables, so
    /// that a pass over every value (W3, a compaction, a tracker's open)
    /// does not keep the whole log in its resident memory: the pages stay
    /// in the kernel's page cache, and a later read maps them again.
    pub(crate) fn note_read(&self, n: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let read = self.read.load(Relaxed).saturating_add(n);
        if read < RELEASE_EVERY {
            self.read.store(read, Relaxed);
            return;
        }
        self.read.store(0, Relaxed);
        self.release();
    }

    /// Drops the map's pages from this process's page tables.
    #[expect(
        unsafe_code,
        reason = "MADV_DONTNEED, which memmap2 marks unsafe for private maps"
    )]
    fn release(&self) {
        // SAFETY: MADV_DONTNEED frees a private mapping's pages, whose
        // contents are then lost (zero-filled). This map is a shared,
        // read-only mapping of a file: dropping its pages only removes them
        // from this process's page tables, and the next read of an address
        // maps the file's page again, from the page cache or the disk,
        // with the same bytes (the file's bytes under the map do not
        // change: the argument of `LogMap::of`). The range stays mapped,
        // so slices borrowed from it stay valid. A failure changes nothing.
        let _ = unsafe {
            self.map
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        };
    }
}

/// Opens `path` for reading if it is a regular file; returns it and its size.
/// The open does not block on a FIFO (`O_NONBLOCK`, which has no effect on
/// a regular file's reads), and what it opened is checked before any read.
pub(crate) fn open_regular_file(path: &Path) -> io::Result<(File, u64)> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {what}, not a regular file"),
        ));
    }
    Ok((file, meta.len()))
}

/// [`open_regular_file`], with the error naming the file.
pub(crate) fn open_regular(path: &Path) -> crate::Result<(File, u64)> {
    open_regular_file(path).map_err(|e| crate::Error::io("open", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's `RssFile`, in KiB.
    fn rss_file_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssFile:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn a_released_map_reads_the_same_bytes_and_leaves_the_resident_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..64u32 << 20).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let map = LogMap::of(&file, bytes.len()).unwrap();
        let sum = |m: &LogMap| m.bytes().iter().map(|&b| u64::from(b)).sum::<u64>();
        let expected = bytes.iter().map(|&b| u64::from(b)).sum::<u64>();
        let before = rss_file_kib();
        assert_eq!(sum(&map), expected);
        let mapped_in = rss_file_kib();
        // Past the threshold: the pages leave the page tables.
        map.note_read(RELEASE_EVERY - 1);
        map.note_read(1);
        let released = rss_file_kib();
        assert_eq!(sum(&map), expected, "the same bytes after a release");
        assert!(
            mapped_in.saturating_sub(released) > 32 << 10,
            "RssFile {before} KiB, {mapped_in} mapped in, {released} released"
        );
    }
}

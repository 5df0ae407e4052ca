//! Every file operation tastypod performs goes through [`Storage`], so tests
//! and fuzzers can swap in a simulated file system that fails or crashes at
//! any operation. [`StdStorage`] is the real one.

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

/// A file opened for appending (or freshly created).
pub(crate) trait Appender: Send + Debug {
    /// Writes all of `bytes` at the end of the file.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Writes all of `parts`, in order, at the end of the file (with one
    /// write call where the file system allows).
    fn append_parts(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        for part in parts {
            self.append(part)?;
        }
        Ok(())
    }
    /// Makes everything appended so far durable (fdatasync).
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// A held writer lock; dropping it releases the lock.
pub(crate) trait LockGuard: Send + Debug {}

/// The per-operation lock of a store in shared mode, held open between
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
    /// The size of the file at `path`.
    fn len(&self, path: &Path) -> io::Result<u64>;
    /// Opens `path` for reading.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>>;
    /// Opens the existing file `path` for appending.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn Appender>>;
    /// Creates `path` empty (truncating it if it exists) for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn Appender>>;
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
    /// Opens `path` for reading from byte `offset`.
    fn open_read_at(&self, path: &Path, offset: u64) -> io::Result<Box<dyn Read + Send>>;
    /// Whether work such as compaction may run on another thread; a
    /// simulation says no, so that its operations happen in a fixed order.
    fn allows_threads(&self) -> bool {
        true
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
        self.0.set_len(len)
    }
}

#[derive(Debug)]
struct StdLock(#[allow(dead_code)] File);

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

fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

impl Storage for StdStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(path)?))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn Appender>> {
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Box::new(StdAppender(file)))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn Appender>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
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
        } else {
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => return Ok(None),
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
        }
        Ok(Some(Box::new(StdLock(file))))
    }

    fn lock_shared(&self, path: &Path) -> io::Result<Option<Box<dyn LockGuard>>> {
        let file = open_lock_file(path)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(Some(Box::new(StdLock(file)))),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn open_oplock(&self, path: &Path) -> io::Result<Box<dyn OpLock>> {
        Ok(Box::new(StdOpLock(open_lock_file(path)?)))
    }

    fn file_id(&self, path: &Path) -> io::Result<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(path)?;
        Ok((meta.ino(), meta.len()))
    }

    fn open_read_at(&self, path: &Path, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        use std::io::{Seek, SeekFrom};
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(file))
    }
}

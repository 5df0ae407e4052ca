//! The one error type of the crate, with the context needed to act on it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The result type of every fallible tastypod call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from tastypod: what went wrong, and where (path, line, key).
///
/// `Display` gives one lowercase line for this layer; [`std::error::Error::source`]
/// gives the underlying I/O or JSON error, if any.
pub struct Error(Box<ErrorKind>);

/// What went wrong. Match on it through [`Error::kind`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An operating-system call failed.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// What was being done ("open", "append to", "fsync", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The error the operating system returned.
        #[source]
        source: io::Error,
    },
    /// A record in the log is damaged and valid records follow it, so it is
    /// not a torn write from a crash.
    #[error("{reason} in {} at line {line} (byte {offset})", path.display())]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// The 1-based line number of the damaged record.
        line: u64,
        /// The byte offset at which that line starts.
        offset: u64,
        /// What is wrong with the line.
        reason: String,
    },
    /// The file is not a tastypod log (its first line is not a valid header).
    #[error("{} is not a tastypod log: {reason}", path.display())]
    NotAStore {
        /// The file.
        path: PathBuf,
        /// Why it was not recognised.
        reason: String,
    },
    /// The log was written by a newer format version than this build reads.
    #[error("{} has format version {found}, but this build reads only version {supported}", path.display())]
    UnsupportedVersion {
        /// The log file.
        path: PathBuf,
        /// The version found in the header.
        found: u64,
        /// The newest version this build reads.
        supported: u64,
    },
    /// Another handle (in this process or another) holds the store's writer lock.
    #[error("{} is locked by another writer", path.display())]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// An earlier write or fsync failed; this handle refuses further writes.
    #[error("{} refuses writes after an earlier write or fsync failed; reopen it", path.display())]
    Poisoned {
        /// The store directory.
        path: PathBuf,
    },
    /// A write was attempted through a read-only handle.
    #[error("{} was opened read-only", path.display())]
    ReadOnly {
        /// The store directory.
        path: PathBuf,
    },
    /// An option has a value that cannot work.
    #[error("invalid option {name}: {why}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// Why the value was refused.
        why: String,
    },
    /// A stored value could not be decoded into the requested type.
    #[error("cannot decode the value of key {key:?} (line {line} of {})", path.display())]
    Decode {
        /// The log file.
        path: PathBuf,
        /// The key whose value failed to decode.
        key: String,
        /// The line of the record that holds the value (0 when it was never on disk).
        line: u64,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be encoded as JSON.
    #[error("cannot encode the value of key {key:?} as JSON")]
    Encode {
        /// The key whose value failed to encode.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A change would write a record longer than the maximum record size
    /// (see `PodOptions::max_record_size`); nothing changed.
    #[error(
        "the record of key {key:?} would be {len} bytes, longer than the maximum record size ({max} bytes)"
    )]
    RecordTooLarge {
        /// The key.
        key: String,
        /// The record's length in bytes.
        len: u64,
        /// The maximum record size.
        max: u64,
    },
    /// A key was added that is already present.
    #[error("key {key:?} is already present")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// A key was needed that is not present.
    #[error("key {key:?} is not present")]
    MissingKey {
        /// The key.
        key: String,
    },
    /// A value does not have the shape a tracker task record needs.
    #[error("the value of key {key:?} (line {line} of {}) is not a task record: {why}", path.display())]
    NotATask {
        /// The log file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The line of its record (0 when it was never on disk).
        line: u64,
        /// What is missing or wrong.
        why: String,
    },
    /// A value given as JSON text is not one this store keeps.
    #[error("the value given for key {key:?} is refused: {reason}")]
    InvalidValue {
        /// The key.
        key: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A worker finished, released or extended a task through a lease that
    /// is no longer the task's claim: another worker claimed it since, or
    /// it was finished. Nothing changed.
    #[error("the lease on {key:?} is lost: {why}")]
    LeaseLost {
        /// The task's key.
        key: String,
        /// What happened to it.
        why: String,
    },
    /// A writing call came after a shutdown signal
    /// ([`sync_on_signals`](crate::sync_on_signals)): the stores were
    /// synced, and the process is exiting.
    #[error("{} was synced for a shutdown (signal {signal}); the process is exiting", path.display())]
    ShuttingDown {
        /// The store directory.
        path: PathBuf,
        /// The signal.
        signal: i32,
    },
    /// A [`Cursor`](crate::Cursor) was used after the store's keys were
    /// renumbered (a compaction, a revert, a reload): make a new one.
    #[error("a cursor over {} outlived a compaction or reload of the store; start a new one", path.display())]
    StaleCursor {
        /// The store directory.
        path: PathBuf,
    },
    /// A store was to be created where one already is.
    #[error("{} already holds a store", path.display())]
    StoreExists {
        /// The store directory.
        path: PathBuf,
    },
    /// A database server refused a statement or could not be reached (the
    /// PostgreSQL tracker; a lost connection is retried first, see
    /// `PgTracker::reconnect_within`).
    #[error("{what} on {url} failed{}", code.as_deref().map(|c| format!(" (SQLSTATE {c})")).unwrap_or_default())]
    Database {
        /// The database's URL, without its password.
        url: String,
        /// What was being done.
        what: String,
        /// The server's SQLSTATE code, if it sent one.
        code: Option<String>,
        /// The client library's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The settings stored in the log's header (line 1) cannot be read.
    #[error("the settings in the header (line 1) of {} cannot be read: {reason}", path.display())]
    BadSettings {
        /// The log file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }

    /// Consumes the error and returns what went wrong.
    pub fn into_kind(self) -> ErrorKind {
        *self.0
    }

    /// The file or directory the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match &*self.0 {
            ErrorKind::Io { path, .. }
            | ErrorKind::Corrupt { path, .. }
            | ErrorKind::NotAStore { path, .. }
            | ErrorKind::UnsupportedVersion { path, .. }
            | ErrorKind::Locked { path }
            | ErrorKind::StoreExists { path }
            | ErrorKind::StaleCursor { path }
            | ErrorKind::ShuttingDown { path, .. }
            | ErrorKind::Poisoned { path }
            | ErrorKind::ReadOnly { path }
            | ErrorKind::Decode { path, .. }
            | ErrorKind::NotATask { path, .. }
            | ErrorKind::BadSettings { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The 1-based line number in the log the error is about, if any.
    pub fn line(&self) -> Option<u64> {
        match &*self.0 {
            ErrorKind::Corrupt { line, .. }
            | ErrorKind::Decode { line, .. }
            | ErrorKind::NotATask { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The key the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match &*self.0 {
            ErrorKind::Decode { key, .. }
            | ErrorKind::Encode { key, .. }
            | ErrorKind::InvalidValue { key, .. }
            | ErrorKind::RecordTooLarge { key, .. }
            | ErrorKind::DuplicateKey { key }
            | ErrorKind::MissingKey { key }
            | ErrorKind::LeaseLost { key, .. }
            | ErrorKind::NotATask { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The signal that ended the run, if this is
    /// [`ErrorKind::ShuttingDown`]: the stores are synced and the process
    /// is exiting, so a program that handles errors should end at once,
    /// with status 128 + the signal, as the handler of
    /// [`sync_on_signals`](crate::sync_on_signals) does.
    pub fn shutdown_signal(&self) -> Option<i32> {
        match &*self.0 {
            ErrorKind::ShuttingDown { signal, .. } => Some(*signal),
            _ => None,
        }
    }

    /// Whether the error is an I/O error from the operating system.
    pub fn is_io(&self) -> bool {
        matches!(*self.0, ErrorKind::Io { .. })
    }

    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        ErrorKind::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
        .into()
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error(Box::new(kind))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Shorthand for `Err(kind.into())`.
pub(crate) fn fail<T>(kind: ErrorKind) -> Result<T> {
    Err(kind.into())
}

//! Writing a whole new log: compaction, store creation, salvage,
//! `sync_atomic` and a change of settings.
//!
//! Order of operations, each a crash point:
//! 1. write the header and every live record to `pod.log.tmp`;
//! 2. fsync `pod.log.tmp`;
//! 3. rename `pod.log.tmp` over `pod.log`;
//! 4. fsync the directory.
//!
//! This module does 1 and 2; [`LogFile::install`](crate::log::LogFile::install)
//! does 3 and 4, for every kind of rewrite. A crash before 3 leaves the old
//! log (and a stale temp file, removed on the next writable open); after 3
//! the new log is complete because of 2.

use crate::error::{Error, Result};
use crate::fsio::{Appender, Storage};
use crate::index::{Index, Relocation, Snapshot, ValueRef};
use crate::record;
use std::borrow::Cow;
use std::path::Path;

/// Flush the temp file's buffer at this size.
const WRITE_BUF: usize = 1 << 20;

/// The new log's state after a successful rewrite.
#[derive(Debug)]
pub(crate) struct Rewritten {
    /// Where every live key's record went, for [`Index::relocate`].
    pub relocation: Relocation,
    /// The new log's length in bytes.
    pub len: u64,
    /// The new log's number of lines.
    pub lines: u64,
    /// The CRC-32 of its bytes (for a hint file: `crate::hint`).
    pub crc: crc32fast::Hasher,
}

/// The temp file a rewrite writes, and the header's settings.
pub(crate) struct LogPaths<'a> {
    pub tmp: &'a Path,
    /// The settings the new header holds (a JSON object's text).
    pub settings: Option<&'a [u8]>,
}

/// Writes the live records of `index` (their texts, or the values changed
/// in place, which `encode` appends to a buffer) as a fresh log to
/// `paths.tmp` and fsyncs it; returns the open temp file and what it holds,
/// for [`LogFile::install`](crate::log::LogFile::install). On failure the
/// temp file is removed.
pub(crate) fn rewrite<V>(
    storage: &dyn Storage,
    paths: &LogPaths<'_>,
    index: &Index<V>,
    mut encode: impl FnMut(&mut Vec<u8>, &str, &V) -> Result<()>,
) -> Result<(Box<dyn Appender>, Rewritten)> {
    let mut file = create_tmp(storage, paths.tmp)?;
    let records = index.slots().map(|i| {
        let key = index.key(i);
        match index.value(i) {
            ValueRef::Text(t) => Ok((key, Cow::Borrowed(t))),
            ValueRef::Live(v) => {
                let mut text = Vec::new();
                encode(&mut text, key, v).map(|()| (key, Cow::Owned(text)))
            }
        }
    });
    let written = write_all(&mut *file, paths, index.len(), records).and_then(|r| {
        file.sync()
            .map_err(|e| Error::io("fsync", paths.tmp, e))
            .map(|()| r)
    });
    match written {
        Ok(rewritten) => Ok((file, rewritten)),
        Err(error) => {
            drop(file);
            // Best effort: a leftover temp file is removed on the next open anyway.
            let _ = storage.remove_file(paths.tmp);
            Err(error)
        }
    }
}

/// A log written in full to the temp file and fsynced, not yet renamed
/// into place (a background compaction's result).
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The temp file, open for appending what was logged since the snapshot.
    pub file: Box<dyn Appender>,
    pub rewritten: Rewritten,
    /// The snapshot's live slots, as [`Index::adopt_compacted`] needs them.
    pub snapshot: Snapshot,
}

/// Writes the live records of `snapshot` to `paths.tmp` and fsyncs it (the
/// body of a background compaction; it touches nothing but the temp file).
/// On failure the temp file is removed.
pub(crate) fn prepare(
    storage: &dyn Storage,
    paths: &LogPaths<'_>,
    snapshot: Snapshot,
) -> Result<Prepared> {
    let tmp = paths.tmp;
    let written = create_tmp(storage, tmp).and_then(|mut file| {
        let rewritten = write_all(&mut *file, paths, snapshot.len(), snapshot.records())?;
        file.sync().map_err(|e| Error::io("fsync", tmp, e))?;
        Ok((file, rewritten))
    });
    match written {
        Ok((file, rewritten)) => Ok(Prepared {
            file,
            rewritten,
            snapshot,
        }),
        Err(e) => {
            // Best effort: a leftover temp file is removed on the next open anyway.
            let _ = storage.remove_file(tmp);
            Err(e)
        }
    }
}

/// Creates the temp file anew. One left by a failed compaction is removed
/// first (a symbolic link itself, not what it points to); the file is
/// created with `O_EXCL`, so nothing is ever written through a link
/// planted in the directory.
fn create_tmp(storage: &dyn Storage, tmp: &Path) -> Result<Box<dyn Appender>> {
    match storage.create_new(tmp) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            storage
                .remove_file(tmp)
                .map_err(|e| Error::io("remove stale", tmp, e))?;
            storage.create_new(tmp)
        }
        created => created,
    }
    .map_err(|e| Error::io("create", tmp, e))
}

/// Writes a header and a put record for each of `records` (there are `n`),
/// in order, to `file` (the temp file of `paths`).
fn write_all<'a>(
    file: &mut dyn Appender,
    paths: &LogPaths<'_>,
    n: usize,
    records: impl Iterator<Item = Result<(&'a str, Cow<'a, [u8]>)>>,
) -> Result<Rewritten> {
    let mut relocation = Relocation::with_capacity(n);
    // The block of the new arena the chunk being filled will become.
    let mut chunk = relocation.reserve_block();
    let mut buf = Vec::with_capacity(WRITE_BUF + 4096);
    record::encode_header(&mut buf, paths.settings);
    let tmp = paths.tmp;
    let mut len = 0u64;
    let mut lines = 1u64;
    let mut crc = crc32fast::Hasher::new();
    for entry in records {
        let (key, text) = entry?;
        let start = buf.len();
        let value = record::encode_put(&mut buf, key, &text);
        lines += 1;
        let line = u32::try_from(lines).unwrap_or(u32::MAX);
        relocation.place(key, chunk, value, buf.len() - start, line);
        if buf.len() >= WRITE_BUF {
            file.append(&buf).map_err(|e| Error::io("write", tmp, e))?;
            crc.update(&buf);
            let at = len;
            len += buf.len() as u64;
            let full = std::mem::replace(&mut buf, Vec::with_capacity(WRITE_BUF + 4096));
            relocation.fill_block(chunk, full, at);
            chunk = relocation.reserve_block();
        }
    }
    file.append(&buf).map_err(|e| Error::io("write", tmp, e))?;
    crc.update(&buf);
    let at = len;
    len += buf.len() as u64;
    buf.shrink_to_fit();
    relocation.fill_block(chunk, buf, at);
    Ok(Rewritten {
        relocation,
        len,
        lines,
        crc,
    })
}

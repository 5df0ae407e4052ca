//! Reading a log in three stages: a thread reads it into jobs of whole
//! lines ([`LineReader`]); two workers process jobs (checksums, JSON,
//! hashing); the caller takes the results in file order. A log of at most
//! one job is read on the calling thread alone.

use super::reader::{CHUNK, Job, LineReader};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc;

/// Jobs queued per worker, and results waiting for the caller.
const QUEUED: usize = 2;
/// Worker threads.
const WORKERS: usize = 2;

/// Runs `work` on every job `lines` reads and `sink` on the results, in
/// file order; returns the number of bytes read. `size_hint` (the file's
/// size) decides whether to use threads. Stops at the first error of
/// `sink` or of reading.
pub(crate) fn run<R, T>(
    mut lines: LineReader<'_, R>,
    size_hint: u64,
    work: impl Fn(&Job) -> T + Sync,
    mut sink: impl FnMut(T) -> Result<()>,
) -> Result<u64>
where
    R: Read + Send,
    T: Send,
{
    if size_hint <= CHUNK as u64 {
        while let Some(job) = lines.next_job()? {
            sink(work(&job))?;
        }
        return Ok(lines.position());
    }
    let (recycle_tx, recycle_rx) = mpsc::channel::<Vec<u8>>();
    lines.recycle_from(recycle_rx);
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::sync_channel::<(usize, T)>(QUEUED);
        let mut workers = Vec::new();
        for _ in 0..WORKERS {
            let (tx, rx) = mpsc::sync_channel::<(usize, Job)>(QUEUED);
            let done_tx = done_tx.clone();
            let recycle = recycle_tx.clone();
            let work = &work;
            let worker = move || {
                for (n, job) in rx {
                    let result = work(&job);
                    // The reader may be done: then the buffer is just dropped.
                    let _ = recycle.send(job.into_buffer());
                    // The caller stopped (an error): stop too.
                    if done_tx.send((n, result)).is_err() {
                        break;
                    }
                }
            };
            std::thread::Builder::new()
                .name("tastypod-decode".into())
                .spawn_scoped(scope, worker)
                .map_err(|e| Error::io("start a thread to read", Path::new("the log"), e))?;
            workers.push(tx);
        }
        drop(done_tx);
        drop(recycle_tx);
        let read = move || -> Result<u64> {
            let mut sent = 0usize;
            while let Some(job) = lines.next_job()? {
                let worker = workers.get(sent % workers.len()).ok_or_else(stopped)?;
                worker.send((sent, job)).map_err(|_| stopped())?;
                sent += 1;
            }
            Ok(lines.position())
        };
        let reading = std::thread::Builder::new()
            .name("tastypod-read".into())
            .spawn_scoped(scope, read)
            .map_err(|e| Error::io("start a thread to read", Path::new("the log"), e))?;
        let mut next = 0usize;
        let mut waiting = BTreeMap::new();
        for (n, result) in done_rx.iter() {
            waiting.insert(n, result);
            while let Some(result) = waiting.remove(&next) {
                next += 1;
                // Returning drops `done_rx`, which stops the workers and
                // then the reading thread.
                sink(result)?;
            }
        }
        reading.join().unwrap_or_else(|_| Err(stopped()))
    })
}

fn stopped() -> Error {
    Error::io(
        "read",
        Path::new("the log"),
        io::Error::other("a reading stage stopped"),
    )
}

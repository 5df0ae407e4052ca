//! `tastypod copy SRC DEST`: a tracker copied, in order and with every
//! task's state and fields, between a tracker directory and PostgreSQL (in
//! either direction, or between two of either kind). The destination must
//! be new (a directory: no store there; PostgreSQL: no tracker of that
//! name, or an empty one) and takes the source's settings. Nothing of a
//! failed copy is left at the destination: a directory is built beside it
//! and moved in whole, PostgreSQL rows are added in one transaction.

use crate::errors::{CliResult, fail};
use crate::open::{Stores, opened};
use crate::output::print_json;
use crate::pg_cmd::{self, is_url};
use crate::staging::{Staged, load_all};
use serde_json::{Value, json};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use tastypod::{ErrorKind, PgTracker, RetryDelay, TrackerOptions};

/// A tracker's settings, which the copy takes along.
#[derive(Clone, Copy)]
struct Settings {
    max_tries: u32,
    lease: Duration,
    retry: RetryDelay,
}

impl Settings {
    fn options(self, stores: &Stores) -> TrackerOptions {
        TrackerOptions::from(stores.options())
            .max_tries(self.max_tries)
            .lease(self.lease)
            .retry_delay(self.retry)
    }
}

type Record = tastypod::Result<(String, Value)>;

fn text(path: &Path) -> CliResult<&str> {
    path.to_str()
        .ok_or_else(|| crate::errors::Message(format!("{} is not UTF-8", path.display())).into())
}

pub fn copy(stores: &Stores, src: &Path, dest: &Path, as_json: bool) -> CliResult<ExitCode> {
    if src == dest {
        return fail("the source and the destination are the same tracker");
    }
    let copied = if is_url(src) {
        let source = pg_cmd::open(text(src)?)?;
        let settings = Settings {
            max_tries: source.max_tries(),
            lease: source.lease_length(),
            retry: source.retry_delay(),
        };
        // The rows are read on a thread of their own and handed over a
        // page at a time, so memory holds a page, not the tracker.
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Record>(2000);
            let reader = s.spawn(move || {
                source.for_each_record(|key, record| {
                    tx.send(Ok((key.to_string(), record))).map_err(|_| {
                        tastypod::Error::from(ErrorKind::InvalidOption {
                            name: "copy",
                            why: "the destination stopped taking records".into(),
                        })
                    })
                })
            });
            let written = write(stores, dest, settings, rx.into_iter());
            let read = reader.join().unwrap_or_else(|_| {
                Err(ErrorKind::InvalidOption {
                    name: "copy",
                    why: "the reading thread panicked".into(),
                }
                .into())
            });
            // The destination's error first: the reader stops because of it.
            let written = written?;
            read?;
            Ok::<usize, Box<dyn std::error::Error>>(written)
        })?
    } else {
        let source = stores.tracker(src, None, true)?;
        let settings = Settings {
            max_tries: source.max_tries(),
            lease: source.lease_length(),
            retry: source.retry_delay(),
        };
        let records = source.iter().map(|r| r.map(|(k, v)| (k.to_string(), v)));
        write(stores, dest, settings, records)?
    };
    let shown = |p: &Path| match p.to_str() {
        Some(t) if is_url(p) => tastypod::url_without_password(t),
        _ => p.display().to_string(),
    };
    if as_json {
        print_json(&json!({"copied": copied}))?;
    } else {
        outln!(
            "copied {copied} tasks from {} to {}",
            shown(src),
            shown(dest)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `records` as the new tracker `dest`; returns how many.
fn write(
    stores: &Stores,
    dest: &Path,
    settings: Settings,
    records: impl Iterator<Item = Record>,
) -> CliResult<usize> {
    if is_url(dest) {
        let url = text(dest)?;
        if PgTracker::exists(url)? && !pg_cmd::open(url)?.is_empty()? {
            return fail(format!(
                "{} already holds tasks; copy into a new tracker",
                tastypod::url_without_password(url)
            ));
        }
        let tracker = settings.options(stores).open_postgres(url)?;
        return Ok(tracker.insert_all(records)?);
    }
    let staged = Staged::store(dest)?;
    // The header with the settings first, then the records.
    settings.options(stores).open(staged.path())?.close()?;
    let mut pod = opened(stores.options().open(staged.path())?)?;
    let copied = load_all(&mut pod, |pod| {
        let mut n = 0;
        for record in records {
            let (key, value) = record?;
            pod.insert(&key, value)?;
            n += 1;
        }
        Ok(n)
    })?;
    pod.close()?;
    staged.commit_store()?;
    Ok(copied)
}

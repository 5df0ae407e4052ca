//! tastypod keeps a persistent ordered dict ([`Pod`]) in a directory on
//! disk: a map from string keys to JSON values, iterated in first-insertion
//! order, that survives crashes, Ctrl-C and reboots. It is the Rust successor
//! of Python's `tastypy`.
//!
//! ```
//! use serde_json::json;
//! use tastypod::Pod;
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("crawl.pod");
//!
//! let mut pod: Pod = Pod::open(&path)?; // creates the directory if missing
//! pod.insert("https://example.com", json!({"status": 200}))?;
//! pod.sync()?; // durable now: survives kill -9 and power loss
//! drop(pod);
//!
//! let pod: Pod = Pod::open(&path)?;
//! assert_eq!(pod.get("https://example.com")?, Some(json!({"status": 200})));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What is here
//!
//! - [`Pod`]: the persistent ordered dict, configured with [`PodOptions`].
//! - [`Tracker`]: a `Pod` of task records (`_done`, `_tries`, `_aborted`)
//!   with gates ([`Tracker::should_try`]), counters and resumable loops
//!   ([`Tracker::try_keys`]); [`TrackerOptions`].
//! - [`SharedPod`] and [`SharedTracker`]: handles that threads share, with
//!   [`SharedTracker::claim_next_wait`] for worker pools ([`Claim`],
//!   [`Lease`], [`RetryDelay`]); [`PodOptions::multi_process`] lets several
//!   processes write one store.
//! - [`TaskQueue`]: what a worker pool needs of a tracker, whatever keeps
//!   it; [`TaskState`] is the task-record codec every backend maps to.
//! - [`sync_on_signals`]: make Ctrl-C, SIGTERM and SIGHUP sync every open
//!   store before the process exits; [`stop_on_signals`]: sync, then let
//!   the program stop by itself ([`stop_requested`]). Never installed unasked.
//! - [`verify`] and [`is_locked`]: read-only inspection, as the `tastypod`
//!   command-line tool uses them.
//!
//! # Storage
//!
//! A store is a directory holding `pod.log`, an append-only JSON-lines log
//! with one checksummed record per change, and `pod.lock`, which the single
//! writer locks; beside a log of 1 MiB or more, `pod.hint` ([`HINT_FILE`])
//! says where each live value is in the log, so that an open need not
//! decode every record (it is checked against the log's CRC at every use,
//! and safe to delete). `less`, `grep` and `jq` work on the log. Opening replays
//! the log; [`Pod::sync`] appends the dirty records and fsyncs;
//! [`Pod::compact`] atomically rewrites the log. DESIGN.md in the repository
//! gives the exact format and the durability guarantees.
//!
//! # Errors
//!
//! Every call that can do I/O returns [`Result`]. A damaged record followed
//! by valid ones fails the open with [`ErrorKind::Corrupt`] naming the file,
//! line and byte offset; a torn final record (a crash mid-write) is dropped
//! and reported by [`Pod::recovery`].

#![deny(unsafe_code, missing_docs)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::dbg_macro
)]

mod compact;
mod error;
mod fsio;
mod group_commit;
mod hint;
mod index;
mod inspect;
mod json;
mod log;
mod options;
#[cfg(feature = "postgres")]
mod pg;
mod pod;
#[cfg(feature = "progress")]
mod progress;
mod queue;
mod record;
mod replay;
mod shared;
mod signals;
#[cfg(feature = "sim")]
#[doc(hidden)]
pub mod sim;
mod tracker;

pub use error::{Error, ErrorKind, Result};
pub use hint::HINT_FILE;
pub use inspect::{
    Verdict, VerifyReport, Writers, is_locked, log_path, verify, verify_with, writers,
};
pub use json::{MAX_DEPTH, check_json};
pub use options::{
    Compaction, DEFAULT_MAX_RECORD_SIZE, Durability, MAX_RECORD_SIZE_LIMIT, PodOptions, Recovery,
};
#[cfg(feature = "postgres")]
pub use pg::{DEFAULT_TRACKER, PgTracker, is_postgres_url, url_without_password};
pub use pod::{
    Cursor, Held, HintUse, LOCK_FILE, LOG_FILE, Pod, PodStats, RecoveryReport, TMP_FILE,
    install_store,
};
#[cfg(feature = "progress")]
pub use progress::{Progress, Watch};
pub use queue::TaskQueue;
pub use record::FORMAT_VERSION;
pub use replay::{BadLine, TornTail};
pub use shared::{SharedPod, SharedTracker};
pub use signals::{GRACE, stop_on_signals, stop_requested, sync_on_signals};
pub use tracker::{
    ABORTED, Aborted, Claim, DEFAULT_LEASE, DONE, FreedClaims, LEASE, Lease, NOT_BEFORE, RESERVED,
    RetryDelay, Status, TRIES, TaskCounts, TaskMut, TaskState, Tracker, TrackerOptions, TryItems,
    TryKeys,
};
#[doc(hidden)]
pub use tracker::{Clock, ManualClock};

/// Formats an error and its chain of sources as one line joined by ": ".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

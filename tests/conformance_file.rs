//! Invariant: the file store's `SharedTracker` passes the tracker trait's
//! conformance suite, in the exclusive and the multi-process mode, on a
//! clock the test moves.

mod common;
mod conformance;

use conformance::Backend;
use std::sync::Arc;
use std::time::Duration;
use tastypod::{ManualClock, RetryDelay, SharedTracker, TrackerOptions};

struct File {
    multi_process: bool,
    dirs: Vec<tempfile::TempDir>,
    clocks: Vec<(SharedTracker, Arc<ManualClock>)>,
}

impl Backend for File {
    type Queue = SharedTracker;

    fn make(&mut self, max_tries: u32, lease: Duration, retry: RetryDelay) -> SharedTracker {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::starting_now());
        let tracker = TrackerOptions::new()
            .max_tries(max_tries)
            .lease(lease)
            .retry_delay(retry)
            .multi_process(self.multi_process)
            .clock(clock.clone())
            .open_shared(dir.path().join("t"))
            .unwrap()
            .with_owner("first");
        self.dirs.push(dir);
        self.clocks.push((tracker.clone(), clock));
        tracker
    }

    fn second(&mut self, queue: &SharedTracker) -> SharedTracker {
        queue.with_owner("second")
    }

    fn advance(&mut self, queue: &SharedTracker, by: Duration) {
        let (_, clock) = self
            .clocks
            .iter()
            .find(|(t, _)| t.same_tracker(queue))
            .unwrap();
        clock.advance(by);
    }
}

#[test]
fn shared_tracker_passes_the_conformance_suite() {
    conformance::run_all(&mut File {
        multi_process: false,
        dirs: Vec::new(),
        clocks: Vec::new(),
    });
}

#[test]
fn shared_tracker_in_the_multi_process_mode_passes_it_too() {
    conformance::run_all(&mut File {
        multi_process: true,
        dirs: Vec::new(),
        clocks: Vec::new(),
    });
}

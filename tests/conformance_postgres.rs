//! Invariant: the PostgreSQL tracker passes the tracker trait's conformance
//! suite unchanged, on a server the test starts, its clock moved by an
//! offset the test adds to the server's.

mod conformance;
mod pg_server;

use conformance::Backend;
use std::time::Duration;
use tastypod::{PgTracker, RetryDelay, TrackerOptions};

struct Pg {
    server: &'static pg_server::Server,
}

impl Backend for Pg {
    type Queue = PgTracker;

    fn make(&mut self, max_tries: u32, lease: Duration, retry: RetryDelay) -> PgTracker {
        TrackerOptions::new()
            .max_tries(max_tries)
            .lease(lease)
            .retry_delay(retry)
            .open_postgres(&self.server.url("conformance"))
            .unwrap()
            .with_owner("first")
    }

    fn second(&mut self, queue: &PgTracker) -> PgTracker {
        queue.with_owner("second")
    }

    fn advance(&mut self, queue: &PgTracker, by: Duration) {
        queue.advance_clock(by);
    }
}

#[test]
fn the_postgres_tracker_passes_the_conformance_suite() {
    let Some(server) = pg_server::shared() else {
        return;
    };
    conformance::run_all(&mut Pg { server });
}

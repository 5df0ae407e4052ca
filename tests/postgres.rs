//! Invariants of the PostgreSQL tracker beyond the conformance suite.

mod pg_server;

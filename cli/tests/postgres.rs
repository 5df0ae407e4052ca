//! Invariant: the `tracker` subcommands take a PostgreSQL tracker's URL
//! where they take a directory and print the same, and `tastypod copy`
//! moves a tracker between a directory and PostgreSQL in either direction
//! keeping every task's order, state and fields; a refused copy changes
//! and creates nothing. On a server the test starts.
#![cfg(feature = "postgres")]

mod binary;
#[path = "../../tests/pg_server/mod.rs"]
mod pg_server;
use binary::*;
use serde_json::{Map, Value, json};
use std::path::Path;
use std::time::Duration;
use tastypod::{Aborted, PgTracker, RetryDelay, TaskQueue, Tracker, TrackerOptions};

fn ok(args: &[&str]) -> String {
    let o = tastypod(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

/// A tracker directory with tasks in every state.
fn sample(path: &Path) {
    let mut t = TrackerOptions::new()
        .max_tries(2)
        .lease(Duration::from_secs(90))
        .retry_delay(RetryDelay::Fixed(Duration::from_secs(5)))
        .open(path)
        .unwrap();
    for i in 0..50 {
        t.add_with(
            &format!("k{i:02}"),
            Map::from_iter([("i".into(), json!(i))]),
        )
        .unwrap();
    }
    for i in 0..10 {
        t.mark_done_with(
            &format!("k{i:02}"),
            Map::from_iter([("r".into(), json!([i]))]),
        )
        .unwrap();
    }
    t.abort("k10").unwrap();
    for _ in 0..2 {
        t.increment_tries("k11").unwrap();
    }
    t.increment_tries("k12").unwrap();
    t.close().unwrap();
}

fn records(path: &Path) -> Vec<(String, Value)> {
    let t = TrackerOptions::new().read_only(true).open(path).unwrap();
    t.iter()
        .map(|r| r.map(|(k, v)| (k.to_string(), v)).unwrap())
        .collect()
}

fn counts_json(path_or_url: &str) -> Value {
    let mut v: Value = serde_json::from_str(&ok(&["tracker", path_or_url, "--json"])).unwrap();
    // `tries` is printed for a PostgreSQL tracker only.
    v.as_object_mut().unwrap().remove("tries");
    v
}

#[test]
fn copy_there_and_back_keeps_order_state_and_fields() {
    let Some(server) = pg_server::shared() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (src, back) = (dir.path().join("src"), dir.path().join("back"));
    sample(&src);
    let url = server.url("cli-copy");
    let out = ok(&["copy", src.to_str().unwrap(), &url]);
    assert!(out.contains("copied 50 tasks"), "{out}");
    let pg = PgTracker::open(&url).unwrap();
    assert_eq!(
        (pg.max_tries(), pg.lease_length(), pg.retry_delay()),
        (
            2,
            Duration::from_secs(90),
            RetryDelay::Fixed(Duration::from_secs(5))
        )
    );
    assert_eq!(counts_json(&url), counts_json(src.to_str().unwrap()));
    assert_eq!(
        ok(&["tracker", "todo", &url]),
        ok(&["tracker", "todo", src.to_str().unwrap()])
    );
    assert_eq!(
        ok(&["tracker", "todo", &url, "--aborted", "--json"]),
        ok(&[
            "tracker",
            "todo",
            src.to_str().unwrap(),
            "--aborted",
            "--json"
        ])
    );
    ok(&["copy", &url, back.to_str().unwrap()]);
    assert_eq!(records(&back), records(&src), "order, state and fields");
    let t = Tracker::open(&back).unwrap();
    assert_eq!(
        (t.max_tries(), t.lease_length()),
        (2, Duration::from_secs(90))
    );
    assert_eq!(
        t.todo_keys(Aborted::Skip).count(),
        TaskQueue::counts(&pg).unwrap().todo
    );
}

#[test]
fn tracker_reset_on_a_url() {
    let Some(server) = pg_server::shared() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    sample(&src);
    let url = server.url("cli-reset");
    ok(&["copy", src.to_str().unwrap(), &url]);
    let out = ok(&[
        "tracker",
        "reset",
        &url,
        "--aborted",
        "--exhausted",
        "--json",
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"reset": 2})
    );
    let c = TaskQueue::counts(&PgTracker::open(&url).unwrap()).unwrap();
    assert_eq!((c.aborted, c.exhausted, c.todo), (0, 0, 40));
    let o = tastypod(&["tracker", "reset", &url, "no-such-key"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no-such-key"), "{}", stderr(&o));
    let o = tastypod(&["tracker", &url, "--max-tries", "5"]);
    assert_eq!(o.status.code(), Some(2), "an override is refused, clearly");
}

#[test]
fn a_refused_copy_changes_and_creates_nothing() {
    let Some(server) = pg_server::shared() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    sample(&src);
    let url = server.url("cli-refused");
    ok(&["copy", src.to_str().unwrap(), &url]);
    // Into a tracker that holds tasks: refused, nothing added.
    let o = tastypod(&["copy", src.to_str().unwrap(), &url]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already holds tasks"), "{}", stderr(&o));
    assert_eq!(
        TaskQueue::counts(&PgTracker::open(&url).unwrap())
            .unwrap()
            .total,
        50
    );
    // From a tracker that does not exist: refused, and none is created.
    let missing = server.url("cli-missing");
    let dest = dir.path().join("dest");
    let o = tastypod(&["copy", &missing, dest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no tracker at"), "{}", stderr(&o));
    assert!(!PgTracker::exists(&missing).unwrap());
    assert!(!dest.exists());
    // Into a directory that holds a store: refused.
    let o = tastypod(&["copy", &url, src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(records(&src).len(), 50);
    // A URL with a bad tracker name: one clear line.
    let o = tastypod(&["tracker", "postgres://u:secret@127.0.0.1:1/db?tracker=a;b"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("secret"), "{}", stderr(&o));
}

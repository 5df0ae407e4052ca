//! Invariant: on a full disk, sync and compaction fail with a clear error,
//! the log on disk keeps everything acknowledged, and once space is freed a
//! reopen (after a failed sync) or a retry (after a failed compaction)
//! succeeds. Uses a small tmpfs, so root only (skipped with a message
//! elsewhere, required when CI=true).

mod common;
use common::tmpfs::*;
use serde_json::json;
use tastypod::{Compaction, ErrorKind, Pod, PodOptions};

#[test]
fn sync_on_a_full_disk_fails_cleanly_and_loses_nothing_acknowledged() {
    let Some(fs) = Tmpfs::mount("2m") else { return };
    let store = fs.path().join("s.pod");
    let mut pod: Pod = PodOptions::new()
        .compaction(Compaction::Manual)
        .open(&store)
        .unwrap();
    for i in 0..50 {
        pod.insert(&format!("acked-{i}"), json!(i)).unwrap();
    }
    pod.sync().unwrap();
    let filler = fill(fs.path(), 8 * 1024);
    let mut failure = None;
    for i in 0..2000 {
        pod.insert(&format!("big-{i}"), json!("x".repeat(1000)))
            .unwrap();
        if let Err(e) = pod.sync() {
            failure = Some(e);
            break;
        }
    }
    let err = failure.expect("the disk never filled up");
    assert!(err.is_io(), "{err}");
    let chain = tastypod::error_chain(&err);
    assert!(chain.contains("No space left on device"), "{chain}");
    assert!(pod.is_poisoned());
    assert!(matches!(
        pod.insert("x", json!(1)).unwrap_err().kind(),
        ErrorKind::Poisoned { .. }
    ));
    drop(pod);
    // Free the space; a reopen recovers the torn tail, with every acknowledged key.
    free(&filler);
    let mut pod: Pod = Pod::open(&store).unwrap();
    for i in 0..50 {
        assert_eq!(pod.get(&format!("acked-{i}")).unwrap(), Some(json!(i)));
    }
    pod.insert("after", json!(true)).unwrap();
    pod.close().unwrap();
    assert!(tastypod::verify(&store).unwrap().is_clean());
}

#[test]
fn compaction_on_a_full_disk_keeps_the_old_log_and_can_be_retried() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let store = fs.path().join("s.pod");
    let mut pod: Pod = PodOptions::new()
        .compaction(Compaction::Manual)
        .open(&store)
        .unwrap();
    for i in 0..400 {
        pod.insert(
            &format!("k{}", i % 200),
            json!({"i": i, "pad": "y".repeat(500)}),
        )
        .unwrap();
    }
    pod.sync().unwrap();
    let before = std::fs::read(store.join(tastypod::LOG_FILE)).unwrap();
    let filler = fill(fs.path(), 16 * 1024);
    let err = pod.compact().unwrap_err();
    assert!(
        tastypod::error_chain(&err).contains("No space left on device"),
        "{err}"
    );
    assert!(
        !pod.is_poisoned(),
        "a failed compaction before the rename leaves the handle usable"
    );
    assert_eq!(
        std::fs::read(store.join(tastypod::LOG_FILE)).unwrap(),
        before
    );
    assert!(!store.join(tastypod::TMP_FILE).exists());
    free(&filler);
    pod.compact().unwrap();
    assert_eq!(pod.len(), 200);
    pod.close().unwrap();
    assert_eq!(Pod::<serde_json::Value>::open(&store).unwrap().len(), 200);
}

#[test]
fn a_background_compaction_on_a_full_disk_reports_and_keeps_the_old_log() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let store = fs.path().join("s.pod");
    let mut pod: Pod = PodOptions::new()
        .compaction(Compaction::Auto {
            dead_fraction: 0.5,
            min_bytes: 64 * 1024,
        })
        .sync_at(100_000)
        .open(&store)
        .unwrap();
    for i in 0..200 {
        pod.insert(&format!("k{i}"), json!("y".repeat(500)))
            .unwrap();
    }
    pod.sync().unwrap();
    // Room for the updates (about 48 KB), not for them and a compaction.
    let filler = fill(fs.path(), 72 * 1024);
    for i in 0..200 {
        pod.insert(&format!("k{i}"), json!("z".repeat(200)))
            .unwrap();
    }
    pod.sync().unwrap(); // starts the compaction, which runs out of space
    let mut failure = None;
    for _ in 0..500 {
        if let Err(e) = pod.sync() {
            failure = Some(e);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let err = failure.expect("the compaction's failure is reported by a sync");
    let chain = tastypod::error_chain(&err);
    assert!(chain.contains("No space left on device"), "{chain}");
    assert!(!pod.is_poisoned(), "the old log is still the log");
    assert!(!store.join(tastypod::TMP_FILE).exists());
    // Everything synced is in the old log.
    let ro: Pod = PodOptions::new().read_only(true).open(&store).unwrap();
    assert_eq!(ro.len(), 200);
    assert_eq!(ro.get("k199").unwrap(), Some(json!("z".repeat(200))));
    drop(ro);
    free(&filler);
    pod.insert("after", json!(true)).unwrap();
    pod.compact().unwrap();
    pod.close().unwrap();
    let pod: Pod = Pod::open(&store).unwrap();
    assert_eq!(pod.len(), 201);
    assert_eq!(pod.get("k0").unwrap(), Some(json!("z".repeat(200))));
    assert_eq!(pod.stats().dead_bytes, 0);
}

//! Invariant: the files a store creates (the compaction temp file, the
//! copies of a damaged log or of a cut tail) are created anew with
//! `O_EXCL`, so a symbolic link planted under their names is never
//! followed: what it points to is never written. Lock files are opened
//! with `O_NOFOLLOW`: a link planted as `pod.lock` or `pod.oplock` is
//! refused with a clear error, its target never created nor opened, and a
//! lock path that is not a regular file (a FIFO, a directory) is refused
//! at once.

mod common;
use common::*;
use serde_json::json;
use std::os::unix::fs::symlink;
use tastypod::{PodOptions, Recovery};

#[test]
fn a_planted_temp_file_link_is_not_followed_by_compaction() {
    let s = scratch();
    let victim = s.dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let mut pod = open(&s.path);
    for i in 0..50 {
        pod.insert("k", json!(i)).unwrap();
        pod.sync().unwrap();
    }
    // Planted while the program runs.
    symlink(&victim, s.path.join(tastypod::TMP_FILE)).unwrap();
    pod.compact().unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!s.path.join(tastypod::TMP_FILE).exists());
    drop(pod);
    assert_eq!(open(&s.path).get("k").unwrap(), Some(json!(49)));
}

#[test]
fn planted_links_under_the_copies_names_are_not_followed() {
    let s = scratch();
    let mut pod = open(&s.path);
    for i in 0..5 {
        pod.insert(&format!("k{i}"), json!(i)).unwrap();
    }
    pod.close().unwrap();
    flip_byte(&s.path, line_starts(&s.path)[2] + 20, 0x01);
    append_garbage(&s.path, b"a torn tail\nof two lines");
    let victim = s.dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let log = log_of(&s.path);
    for t in secs..secs + 5 {
        for what in ["damaged", "torn"] {
            let name = format!("{}.{what}-{t}", log.display());
            symlink(&victim, name).unwrap();
        }
    }
    let pod: tastypod::Pod = PodOptions::new()
        .recovery(Recovery::Salvage)
        .open(&s.path)
        .unwrap();
    let copy = pod.recovery().damaged_copy.clone().unwrap();
    assert!(!copy.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(pod.len(), 4);
}

#[test]
fn a_planted_lock_link_is_refused_and_its_target_never_created() {
    for lock in [tastypod::LOCK_FILE, "pod.oplock"] {
        let s = scratch();
        open(&s.path).close().unwrap();
        let target = s.dir.path().join("created-through-the-link");
        let _ = std::fs::remove_file(s.path.join(lock));
        symlink(&target, s.path.join(lock)).unwrap();
        for multi in [false, true] {
            let err = PodOptions::new()
                .multi_process(multi)
                .open::<serde_json::Value>(&s.path)
                .map(drop);
            if lock == tastypod::LOCK_FILE || multi {
                let err = tastypod::error_chain(&err.unwrap_err());
                assert!(err.contains(lock) && err.contains("symbolic link"), "{err}");
            }
            assert!(!target.exists(), "{lock}: the link was followed");
        }
        // Read-only opens and the lock probe never follow it either.
        if lock == tastypod::LOCK_FILE {
            assert!(tastypod::writers(&s.path).is_err());
        }
        assert!(!target.exists());
    }
}

#[test]
fn a_lock_path_that_is_not_a_regular_file_is_refused_at_once() {
    let s = scratch();
    open(&s.path).close().unwrap();
    let lock = s.path.join(tastypod::LOCK_FILE);
    std::fs::remove_file(&lock).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&lock)
        .status()
        .unwrap();
    assert!(made.success());
    let start = std::time::Instant::now();
    let err = PodOptions::new()
        .open::<serde_json::Value>(&s.path)
        .unwrap_err();
    let err = tastypod::error_chain(&err);
    assert!(err.contains("not a regular file"), "{err}");
    assert!(tastypod::writers(&s.path).is_err());
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    assert!(
        PodOptions::new()
            .open::<serde_json::Value>(&s.path)
            .is_err()
    );
}

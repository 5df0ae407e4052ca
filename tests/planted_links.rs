//! Invariant: the files a store creates (the compaction temp file, the
//! copies of a damaged log or of a cut tail) are created anew with
//! `O_EXCL`, so a symbolic link planted under their names is never
//! followed: what it points to is never written.

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

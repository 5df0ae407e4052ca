//! Invariant: creating a store follows one rule, and a failed command
//! removes nothing. `set` checks its value before it creates anything;
//! `load` and `import-tastypy` build the store beside the destination and
//! move its log in under the destination's lock, only where no log is; a
//! directory that an interrupted creation left (only its lock file) is a
//! place for a new store, never "not a store" forever.

#[path = "../../tests/common/mod.rs"]
mod common;
use common::*;
mod binary;
use binary::*;
use std::process::{Command, Stdio};

fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_tastypod"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Runs a failing `set` (bad JSON) beside a good one on `path`, `rounds`
/// times (with `prepare` run on the path before each round); returns how
/// often the good one succeeded and its key was then missing.
fn race_bad_and_good_set(path: &std::path::Path, rounds: usize, prepare: impl Fn()) -> usize {
    let mut lost = 0;
    for _ in 0..rounds {
        let _ = std::fs::remove_dir_all(path);
        prepare();
        let mut bad = spawn(&["set", p(path), "k", "{bad"]);
        let good = tastypod(&["set", p(path), "good", "1"]);
        let bad_status = bad.wait().unwrap();
        assert_eq!(bad_status.code(), Some(2), "the bad value is refused");
        if good.status.success() && !tastypod(&["get", p(path), "good"]).status.success() {
            lost += 1;
        }
    }
    lost
}

#[test]
fn a_failed_set_never_removes_a_store_another_process_created() {
    let s = scratch();
    let lost = race_bad_and_good_set(&s.path, 60, || {});
    assert_eq!(lost, 0, "acknowledged writes lost to a failing set");
    let lost = race_bad_and_good_set(&s.path, 60, || std::fs::create_dir(&s.path).unwrap());
    assert_eq!(lost, 0, "acknowledged writes lost (the directory existed)");
}

#[test]
fn a_refused_set_creates_nothing() {
    let s = scratch();
    let o = tastypod(&["set", p(&s.path), "k", "{bad"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!s.path.exists(), "no directory for a refused value");
    std::fs::create_dir(&s.path).unwrap();
    let o = tastypod(&["set", p(&s.path), "k", "[1,"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read_dir(&s.path).unwrap().count(), 0);
}

#[test]
fn a_failed_load_into_a_new_path_leaves_nothing() {
    let s = scratch();
    let input = "{\"key\":\"a\",\"value\":1}\n{\"key\":\"b\",\"value\":{bad}\n";
    let o = with_stdin(&["load", p(&s.path), "-"], input);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("-:2"), "{}", stderr(&o));
    assert!(!s.path.exists(), "a failed load left {:?}", s.path);
    let siblings: Vec<_> = std::fs::read_dir(s.dir.path()).unwrap().collect();
    assert!(siblings.is_empty(), "a failed load left {siblings:?}");
    std::fs::create_dir(&s.path).unwrap();
    let o = with_stdin(&["load", p(&s.path), "-"], input);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        std::fs::read_dir(&s.path).unwrap().count(),
        0,
        "still empty"
    );
    // A good load creates the store whole.
    let o = with_stdin(&["load", p(&s.path), "-"], "{\"key\":\"a\",\"value\":1}\n");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(open_ro(&s.path).len(), 1);
}

#[test]
fn a_directory_an_interrupted_creation_left_takes_a_new_store() {
    let s = scratch();
    // What a creation that failed after its lock (disk full) leaves.
    std::fs::create_dir(&s.path).unwrap();
    std::fs::write(s.path.join(tastypod::LOCK_FILE), b"").unwrap();
    let o = tastypod(&["get", p(&s.path), "k"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no pod.log"), "{}", stderr(&o));
    let o = tastypod(&["set", p(&s.path), "k", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&tastypod(&["get", p(&s.path), "k"])).trim(), "1");

    let other = s.dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join(tastypod::LOCK_FILE), b"").unwrap();
    let o = with_stdin(&["load", p(&other), "-"], "{\"key\":\"a\",\"value\":1}\n");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(open_ro(&other).len(), 1);
    // A directory of other files is not a place for a store.
    let busy = s.dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), b"mine").unwrap();
    for o in [
        tastypod(&["set", p(&busy), "k", "1"]),
        with_stdin(&["load", p(&busy), "-"], "{\"key\":\"a\",\"value\":1}\n"),
    ] {
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("other files"), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(busy.join("notes.txt")).unwrap(), b"mine");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);
}

#[test]
fn a_store_is_never_moved_over_another() {
    let s = scratch();
    let built = s.dir.path().join("built");
    let mut pod = open(&built);
    pod.insert("mine", serde_json::json!(1)).unwrap();
    pod.close().unwrap();
    let mut theirs = open(&s.path);
    theirs.insert("theirs", serde_json::json!(2)).unwrap();
    theirs.close().unwrap();
    let err = tastypod::install_store(&built, &s.path).unwrap_err();
    assert!(
        matches!(err.kind(), tastypod::ErrorKind::StoreExists { .. }),
        "{err}"
    );
    assert_eq!(open_ro(&s.path).keys().collect::<Vec<_>>(), ["theirs"]);
    assert_eq!(open_ro(&built).len(), 1, "the built store is kept");
    // While a writer holds the destination, nothing is moved in.
    let empty = s.dir.path().join("held");
    let holder = open(&empty);
    std::fs::remove_file(log_of(&empty)).unwrap();
    let err = tastypod::install_store(&built, &empty).unwrap_err();
    assert!(
        matches!(err.kind(), tastypod::ErrorKind::Locked { .. }),
        "{err}"
    );
    drop(holder);
}

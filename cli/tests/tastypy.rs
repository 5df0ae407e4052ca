//! Invariant: a store written by tastypy migrates to one holding every key,
//! value, order and task state tastypy held. The fixtures in
//! `fixtures/tastypy/` are written by `make.py` with tastypy's own
//! serializer rules (quoted keys with backslashes doubled, `\uXXXX`
//! escapes, int and tuple keys, Python's separators, gzipped parts, 1000
//! lines per file); each has `expected.jsonl`, what tastypod must hold.
//! `export-tastypy` writes such a directory back, and importing the export
//! gives the same store.

#[path = "../../tests/common/mod.rs"]
mod common;
use common::*;
mod binary;
use binary::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tastypod::{Pod, Tracker};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tastypy")
        .join(name)
}

fn expected(name: &str) -> Vec<(String, Value)> {
    std::fs::read_to_string(fixture(name).join("expected.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["key"].as_str().unwrap().to_string(), v["value"].clone())
        })
        .collect()
}

fn import(name: &str, dest: &Path, extra: &[&str]) -> Output {
    let src = fixture(name);
    let mut args = vec!["import-tastypy", "--json"];
    args.extend_from_slice(extra);
    args.extend([p(&src), p(dest)]);
    tastypod(&args)
}

fn report(o: &Output) -> Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn error(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn the_issue_lines_decode_as_tastypy_reads_them() {
    let s = scratch();
    let r = report(&import("issue-lines", &s.path, &[]));
    assert_eq!(r["tracker"], json!(false), "not every record is a task");
    let pod: Pod = Pod::open(&s.path).unwrap();
    assert_eq!(contents(&pod), expected("issue-lines"));
    for key in ["yo", "café", r"C:\temp\new", "say \"hi\"", "7", "[1,1]"] {
        assert!(pod.contains_key(key), "{key}");
    }
}

#[test]
fn a_gzipped_pod_of_three_parts_keeps_every_key_value_and_order() {
    let s = scratch();
    let r = report(&import("pod-gz", &s.path, &[]));
    assert_eq!(
        (r["files"].clone(), r["records"].clone()),
        (json!(3), json!(2500))
    );
    let pod: Pod = Pod::open(&s.path).unwrap();
    assert_eq!(contents(&pod), expected("pod-gz"));
}

#[test]
fn a_tracker_keeps_its_task_states() {
    let s = scratch();
    let r = report(&import("tracker", &s.path, &[]));
    assert_eq!(r["tracker"], json!(true));
    let expected = expected("tracker");
    let negative = expected.len() / 50;
    assert_eq!(r["negative_tries_reset"], json!(negative));
    let t = Tracker::open(&s.path).unwrap();
    let got: Vec<(String, Value)> = t
        .iter()
        .map(|e| {
            let (k, v) = e.unwrap();
            (k.to_string(), v)
        })
        .collect();
    assert_eq!(got, expected);
    let done = expected
        .iter()
        .filter(|(_, v)| v["_done"] == json!(true))
        .count();
    assert_eq!(t.num_done(), done);
    assert_eq!(t.tries("https://x/7"), 0, "-1 tries stored as 0");
    assert!(!t.aborted("https://x/0"), "a missing _aborted is false");
    assert!(t.aborted("https://x/11"));
}

#[test]
fn nan_and_infinity_are_refused_or_made_null_on_request() {
    let s = scratch();
    let err = error(&import("nan", &s.path, &[]));
    assert!(
        err.contains("0.json:2") && err.contains("NaN") && err.contains("--nan-to-null"),
        "{err}"
    );
    assert!(!s.path.exists(), "a refused import leaves nothing");
    let r = report(&import("nan", &s.path, &["--nan-to-null"]));
    assert_eq!(r["nan_replaced"], json!(3));
    let pod: Pod = Pod::open(&s.path).unwrap();
    assert_eq!(contents(&pod), expected("nan"));
}

#[test]
fn two_keys_that_become_one_are_refused_naming_both_lines() {
    let s = scratch();
    let err = error(&import("collide", &s.path, &[]));
    assert!(
        err.contains("0.json:3") && err.contains("0.json:2"),
        "{err}"
    );
    assert!(err.contains("\"7\""), "{err}");
    assert!(!s.path.exists());
}

#[test]
fn a_number_no_f64_holds_is_refused_not_rounded() {
    let s = scratch();
    let err = error(&import("bigint", &s.path, &[]));
    assert!(
        err.contains("0.json:2") && err.contains("cannot be kept exactly"),
        "{err}"
    );
}

#[test]
fn export_writes_what_tastypy_reads_and_import_gives_the_same_store() {
    let s = scratch();
    report(&import("pod-gz", &s.path, &[]));
    let out = s.dir.path().join("exported.pod");
    let o = tastypod(&["export-tastypy", "--json", p(&s.path), p(&out)]);
    let r = report(&o);
    assert_eq!(
        (r["records"].clone(), r["files"].clone()),
        (json!(2500), json!(3))
    );
    let first = std::fs::read_to_string(out.join("0.json")).unwrap();
    assert_eq!(first.lines().count(), 1000);
    assert_eq!(
        first.lines().nth(2).unwrap(),
        r#""C:\\\\dir\\\\2\\\\file"	{"f": 0.25, "i": 2, "list": [2, null, true], "text": "v\u00e92\n\"q\""}"#
    );
    let back = s.dir.path().join("back.pod");
    let o = tastypod(&["import-tastypy", p(&out), p(&back)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b): (Pod, Pod) = (Pod::open(&s.path).unwrap(), Pod::open(&back).unwrap());
    assert_eq!(contents(&a), contents(&b));
    // A tracker comes back a tracker.
    let t = s.dir.path().join("t");
    report(&import("tracker", &t, &[]));
    let out = s.dir.path().join("exported.tracker");
    report(&tastypod(&["export-tastypy", "--json", p(&t), p(&out)]));
    let back = s.dir.path().join("back.tracker");
    assert_eq!(report(&import_dir(&out, &back))["tracker"], json!(true));
    assert_eq!(
        contents(&Pod::open(&t).unwrap()),
        contents(&Pod::open(&back).unwrap())
    );
    // An export never writes into a directory that holds anything.
    let err = error(&tastypod(&["export-tastypy", p(&s.path), p(&s.path)]));
    assert!(err.contains("not empty"), "{err}");
}

fn import_dir(src: &Path, dest: &Path) -> Output {
    tastypod(&["import-tastypy", "--json", p(src), p(dest)])
}

#[test]
fn gaps_malformed_lines_and_empty_directories_are_refused() {
    let s = scratch();
    let old = s.dir.path().join("old.pod");
    std::fs::create_dir(&old).unwrap();
    std::fs::write(old.join("0.json"), "\"a\"\t1\n").unwrap();
    std::fs::write(old.join("2.json"), "\"b\"\t2\n").unwrap();
    assert!(error(&import_dir(&old, &s.path)).contains("part 1 is missing"));
    std::fs::remove_file(old.join("2.json")).unwrap();
    std::fs::write(old.join("1.json"), "\"b\"\t2\nno tab here\n").unwrap();
    assert!(error(&import_dir(&old, &s.path)).contains("1.json:2"));
    std::fs::write(old.join("1.json"), "b\t2\n").unwrap();
    let err = error(&import_dir(&old, &s.path));
    assert!(
        err.contains("1.json:1") && err.contains("not a tastypy key"),
        "{err}"
    );
    std::fs::write(old.join("1.json"), "\"b\"\t{bad json\n").unwrap();
    assert!(error(&import_dir(&old, &s.path)).contains("1.json:1"));
    assert!(!s.path.join("pod.log").exists());
    let empty = s.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(error(&import_dir(&empty, &s.dir.path().join("x"))).contains("no tastypy files"));
    // Importing over an existing store is refused.
    std::fs::write(old.join("1.json"), "\"b\"\t[2]\n").unwrap();
    report(&import_dir(&old, &s.path));
    assert!(error(&import_dir(&old, &s.path)).contains("already holds a store"));
}

#[test]
fn tastypys_own_reader_reads_an_export() {
    if Command::new("python3").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI must run this test");
        eprintln!("skipped: no python3");
        return;
    }
    let s = scratch();
    report(&import("pod-gz", &s.path, &[]));
    let out = s.dir.path().join("exported.pod");
    report(&tastypod(&[
        "export-tastypy",
        "--json",
        p(&s.path),
        p(&out),
    ]));
    let read = Command::new("python3")
        .arg(fixture("read.py"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let got: Vec<(String, Value)> = String::from_utf8(read.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["key"].as_str().unwrap().to_string(), v["value"].clone())
        })
        .collect();
    assert_eq!(got, expected("pod-gz"));
}

/// A tastypy directory holding `lines` in `0.json`.
fn tastypy_dir(s: &Scratch, name: &str, lines: &str) -> PathBuf {
    let dir = s.dir.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("0.json"), lines).unwrap();
    dir
}

/// The names in `dir` (a refused command must leave no partial sibling).
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn integer_keys_beyond_64_bits_keep_every_digit() {
    let s = scratch();
    let old = tastypy_dir(
        &s,
        "old",
        "1180591620717411303424\t1\n1180591620717411303425\t2\n[1, 1180591620717411303424]\t3\n",
    );
    report(&import_dir(&old, &s.path));
    let pod: Pod = Pod::open(&s.path).unwrap();
    let keys: Vec<&str> = pod.keys().collect();
    assert_eq!(
        keys,
        [
            "1180591620717411303424",
            "1180591620717411303425",
            "[1,1180591620717411303424]"
        ]
    );
}

#[test]
fn a_refused_import_leaves_the_destination_as_it_was() {
    let s = scratch();
    let old = tastypy_dir(&s, "old", "\"a\"\t1\n\"b\"\t{bad\n");
    // An empty directory stays empty, and a new path is not created.
    let empty = s.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(error(&import_dir(&old, &empty)).contains("0.json:2"));
    assert!(names(&empty).is_empty());
    let new = s.dir.path().join("new");
    assert!(error(&import_dir(&old, &new)).contains("0.json:2"));
    assert!(!new.exists());
    assert_eq!(names(s.dir.path()), ["empty", "old"]);
    // Once fixed, the same command goes through, into the empty directory too.
    std::fs::write(old.join("0.json"), "\"a\"\t1\n\"b\"\t2\n").unwrap();
    assert_eq!(report(&import_dir(&old, &empty))["keys"], json!(2));
    assert_eq!(report(&import_dir(&old, &new))["keys"], json!(2));
    assert_eq!(names(s.dir.path()), ["empty", "new", "old"]);
    // An export goes into an empty directory whole, leaving nothing beside it.
    let back = s.dir.path().join("back");
    std::fs::create_dir(&back).unwrap();
    report(&tastypod(&["export-tastypy", "--json", p(&new), p(&back)]));
    assert_eq!(names(&back), ["0.json"]);
    assert_eq!(names(s.dir.path()), ["back", "empty", "new", "old"]);
}

#[test]
fn records_that_are_almost_tasks_make_a_pod_and_say_why() {
    let s = scratch();
    let old = tastypy_dir(
        &s,
        "old",
        "\"a\"\t{\"_done\": true, \"_tries\": 1, \"_aborted\": false}\n\
         \"b\"\t{\"_done\": false, \"_tries\": 0, \"_aborted\": null}\n",
    );
    let r = report(&import_dir(&old, &s.path));
    assert_eq!(r["tracker"], json!(false));
    let why = r["not_a_tracker_because"].as_str().unwrap();
    assert!(
        why.contains("0.json:2") && why.contains("_aborted"),
        "{why}"
    );
}

#[test]
fn part_names_tastypy_would_not_write_are_refused() {
    let s = scratch();
    let old = tastypy_dir(&s, "old", "\"a\"\t1\n");
    std::fs::write(old.join("01.json"), "\"b\"\t2\n").unwrap();
    let err = error(&import_dir(&old, &s.path));
    assert!(
        err.contains("01.json") && err.contains("not a tastypy part name"),
        "{err}"
    );
    std::fs::remove_file(old.join("01.json")).unwrap();
    // Other names are not parts, and are left alone.
    std::fs::write(old.join("notes.json"), "anything").unwrap();
    assert_eq!(report(&import_dir(&old, &s.path))["keys"], json!(1));
}

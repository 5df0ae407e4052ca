//! Invariant: every `tastypod` subcommand does what its help says, prints
//! errors as one `tastypod: ...` line with a non-zero status, never panics,
//! never colours a pipe, and never changes a store on bad input.

#[path = "../../tests/common/mod.rs"]
mod common;
use common::*;
mod binary;
use binary::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use tastypod::{Pod, PodOptions, Tracker, TrackerOptions};

/// Asserts a clean one-line error with exit status 2 and no panic.
fn assert_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(err.starts_with("tastypod: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert!(!err.contains('\x1b'), "colour in a pipe: {err:?}");
}

fn sample(path: &Path) {
    let mut pod = open(path);
    pod.insert("a", json!(1)).unwrap();
    pod.insert("b", json!({"x": [1, "two"]})).unwrap();
    pod.insert("c\twith tab", json!("s\nline")).unwrap();
    pod.close().unwrap();
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    for sub in [
        "stat",
        "get",
        "set",
        "rm",
        "keys",
        "dump",
        "load",
        "verify",
        "repair",
        "compact",
        "tracker",
        "import-tastypy",
        "export-tastypy",
        "copy",
    ] {
        let o = tastypod(&[sub, "--help"]);
        assert!(o.status.success(), "{sub}");
        assert!(
            stdout(&o).contains("Example"),
            "{sub} --help has no example"
        );
    }
    for sub in ["todo", "reset"] {
        let o = tastypod(&["tracker", sub, "--help"]);
        assert!(stdout(&o).contains("Example"), "tracker {sub}");
    }
}

#[test]
fn get_set_rm_keys() {
    let s = scratch();
    sample(&s.path);
    let o = tastypod(&["get", p(&s.path), "b"]);
    assert!(o.status.success());
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&o)).unwrap(),
        json!({"x": [1, "two"]})
    );
    let o = tastypod(&["get", p(&s.path), "zzz"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty());
    assert!(
        tastypod(&["set", p(&s.path), "d", r#"{"n": 5e49}"#])
            .status
            .success()
    );
    assert_eq!(open_ro(&s.path).get("d").unwrap(), Some(json!({"n": 5e49})));
    // Bad JSON is an error that changes nothing.
    let before = log_bytes(&s.path);
    assert_error(
        &tastypod(&["set", p(&s.path), "d", "{oops"]),
        "not one valid JSON value",
    );
    assert_eq!(log_bytes(&s.path), before);
    assert!(tastypod(&["rm", p(&s.path), "a"]).status.success());
    assert_eq!(tastypod(&["rm", p(&s.path), "a"]).status.code(), Some(1));
    let o = tastypod(&["keys", p(&s.path)]);
    assert_eq!(
        stdout(&o),
        "b\n\"c\\twith tab\"\nd\n",
        "a tab is a control character"
    );
    let o = tastypod(&["keys", "--json", p(&s.path)]);
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&o)).unwrap(),
        json!(["b", "c\twith tab", "d"])
    );
}

#[test]
fn missing_and_foreign_paths_get_their_own_messages() {
    let s = scratch();
    assert_error(&tastypod(&["get", p(&s.path), "k"]), "does not exist");
    std::fs::create_dir_all(&s.path).unwrap();
    assert_error(&tastypod(&["keys", p(&s.path)]), "has no pod.log");
    std::fs::write(s.path.join("pod.log"), b"hello world\n").unwrap();
    assert_error(&tastypod(&["stat", p(&s.path)]), "is not a tastypod log");
    let body = b"\"format\":\"tastypod\",\"version\":7}";
    let line = format!(
        "{{\"c\":\"{:08x}\",{}\n",
        crc32(body),
        std::str::from_utf8(body).unwrap()
    );
    std::fs::write(s.path.join("pod.log"), line).unwrap();
    assert_error(&tastypod(&["dump", p(&s.path)]), "format version 7");
    // Usage errors come from clap: status 2, a usage hint, no panic.
    let o = tastypod(&["nonsense"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unrecognized subcommand"));
}

#[test]
fn dump_then_load_gives_an_identical_store() {
    let s = scratch();
    sample(&s.path);
    let dump = tastypod(&["dump", p(&s.path)]);
    assert!(dump.status.success());
    let copy = s.dir.path().join("copy.pod");
    let o = with_stdin(&["load", p(&copy), "-"], &stdout(&dump));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(contents(&open_ro(&copy)), contents(&open_ro(&s.path)));
    let again = tastypod(&["dump", p(&copy)]);
    assert_eq!(stdout(&again), stdout(&dump));
    // --object is one JSON object in order.
    let o = tastypod(&["dump", "--object", p(&s.path)]);
    let obj: serde_json::Map<String, Value> = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        obj.keys().cloned().collect::<Vec<_>>(),
        ["a", "b", "c\twith tab"]
    );
}

#[test]
fn load_is_all_or_nothing() {
    let s = scratch();
    sample(&s.path);
    let before = log_bytes(&s.path);
    let input = "{\"key\":\"n1\",\"value\":1}\n{\"key\":\"n2\",\"value\":oops}\n";
    let o = with_stdin(&["load", p(&s.path), "-"], input);
    assert_error(&o, "-:2");
    assert_eq!(log_bytes(&s.path), before);
    let file = s.dir.path().join("in.jsonl");
    std::fs::write(
        &file,
        "{\"key\":\"n1\",\"value\":1}\n{\"key\":\"a\",\"value\":9}\n",
    )
    .unwrap();
    let o = tastypod(&["load", "--json", p(&s.path), p(&file)]);
    assert!(o.status.success());
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&o)).unwrap(),
        json!({"loaded": 2, "keys": 4})
    );
    let pod = open_ro(&s.path);
    assert_eq!(pod.get("a").unwrap(), Some(json!(9)));
    assert_eq!(pod.keys().last(), Some("n1"));
    assert_error(
        &tastypod(&["load", p(&s.path), "/nonexistent/file"]),
        "cannot open",
    );
}

#[test]
fn verify_reports_the_damaged_line_and_repair_keeps_the_original() {
    let s = scratch();
    let mut pod = open(&s.path);
    for i in 0..20 {
        pod.insert(&format!("k{i}"), json!(i)).unwrap();
    }
    pod.close().unwrap();
    let o = tastypod(&["verify", p(&s.path)]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("ok"));
    let starts = line_starts(&s.path);
    flip_byte(&s.path, starts[7] + 25, 0x02);
    let damaged = log_bytes(&s.path);
    let o = tastypod(&["verify", p(&s.path)]);
    assert_eq!(o.status.code(), Some(1));
    let log = log_of(&s.path);
    assert!(
        stdout(&o).starts_with(&format!("{}:8: ", log.display())),
        "{}",
        stdout(&o)
    );
    let o = tastypod(&["verify", "--json", p(&s.path)]);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["problems"][0]["line"], json!(8));
    assert_eq!(report["torn_tail"], json!(false));
    // The store itself refuses to open, naming the line.
    assert_error(&tastypod(&["keys", p(&s.path)]), "line 8");
    let o = tastypod(&["repair", p(&s.path)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("kept 19 keys"), "{out}");
    let copy = out
        .lines()
        .find_map(|l| l.strip_prefix("the damaged log is kept at "))
        .unwrap();
    assert_eq!(std::fs::read(copy).unwrap(), damaged);
    assert!(tastypod(&["verify", p(&s.path)]).status.success());
    assert!(stdout(&tastypod(&["repair", p(&s.path)])).contains("nothing to repair"));
}

#[test]
fn repair_of_a_torn_tail_keeps_the_dropped_bytes() {
    let s = scratch();
    sample(&s.path);
    append_garbage(&s.path, b"{\"c\":\"0000");
    let damaged = log_bytes(&s.path);
    let o = tastypod(&["verify", p(&s.path)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("torn tail"));
    let o = tastypod(&["repair", "--json", p(&s.path)]);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["keys"], json!(3));
    assert_eq!(
        std::fs::read(report["damaged_copy"].as_str().unwrap()).unwrap(),
        damaged
    );
}

#[test]
fn stat_and_compact() {
    let s = scratch();
    let mut pod = PodOptions::new()
        .sync_at(1)
        .compaction(tastypod::Compaction::Manual)
        .open(&s.path)
        .unwrap();
    for i in 0..10 {
        pod.insert("k", json!(i)).unwrap();
    }
    drop(pod);
    let o = tastypod(&["stat", "--json", p(&s.path)]);
    let st: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(st["keys"], json!(1));
    assert_eq!(st["format_version"], json!(3));
    assert_eq!(st["writer_holds_lock"], json!(false));
    assert_eq!(st["torn_tail"], Value::Null);
    assert!(st["dead_bytes"].as_u64().unwrap() > 0);
    assert_eq!(st["tracker"], Value::Null);
    let before = st["log_bytes"].as_u64().unwrap();
    let o = tastypod(&["compact", "--json", p(&s.path)]);
    let sizes: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(sizes["before"].as_u64(), Some(before));
    assert!(sizes["after"].as_u64().unwrap() < before);
    assert_eq!(
        sizes["after"].as_u64().unwrap(),
        log_bytes(&s.path).len() as u64
    );
    let o = tastypod(&["stat", p(&s.path)]);
    assert!(stdout(&o).contains("torn tail:      no"));
    assert!(!stdout(&o).contains('\x1b'));
}

#[test]
fn writers_report_a_held_lock_and_stat_sees_it() {
    let s = scratch();
    sample(&s.path);
    let holder = open(&s.path);
    assert_error(&tastypod(&["set", p(&s.path), "k", "1"]), "locked");
    assert_error(&tastypod(&["compact", p(&s.path)]), "locked");
    let o = tastypod(&["stat", "--json", p(&s.path)]);
    let st: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(st["writer_holds_lock"], json!(true));
    assert_eq!(st["writer"], json!("exclusive"));
    // Readers still work.
    assert!(tastypod(&["get", p(&s.path), "a"]).status.success());
    drop(holder);
    let st: Value =
        serde_json::from_str(&stdout(&tastypod(&["stat", "--json", p(&s.path)]))).unwrap();
    assert_eq!(st["writer"], json!("none"));
    // Handles of the multi-process mode are writers too, one per handle.
    let multi = || {
        PodOptions::new()
            .multi_process(true)
            .open::<Value>(&s.path)
            .unwrap()
    };
    let (a, b) = (multi(), multi());
    let o = tastypod(&["stat", "--json", p(&s.path)]);
    let st: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(st["writer"], json!("multi-process"), "{st}");
    let me = std::process::id();
    assert_eq!(st["writer_pids"], json!([me, me]), "{st}");
    let text = stdout(&tastypod(&["stat", p(&s.path)]));
    assert!(
        text.contains("2 handles of the multi-process mode"),
        "{text}"
    );
    drop((a, b));
}

#[test]
fn tracker_commands_use_the_stored_try_limit_unless_overridden() {
    let s = scratch();
    let mut t = TrackerOptions::new().max_tries(2).open(&s.path).unwrap();
    t.add_many(["a", "b", "c"]).unwrap();
    t.increment_tries("a").unwrap();
    t.increment_tries("a").unwrap();
    t.increment_tries("b").unwrap();
    t.close().unwrap();
    let st: Value =
        serde_json::from_str(&stdout(&tastypod(&["tracker", "--json", p(&s.path)]))).unwrap();
    assert_eq!(st["max_tries"], json!(2), "stored with the tracker");
    assert_eq!(st["exhausted"], json!(1));
    assert_eq!(st["todo"], json!(2));
    assert_eq!(
        stdout(&tastypod(&["tracker", "todo", p(&s.path)])),
        "b\nc\n"
    );
    // An override counts with its own limit and is not stored.
    let st: Value = serde_json::from_str(&stdout(&tastypod(&[
        "tracker",
        "--json",
        "--max-tries",
        "1",
        p(&s.path),
    ])))
    .unwrap();
    assert_eq!(st["exhausted"], json!(2));
    assert!(
        tastypod(&["tracker", "reset", p(&s.path), "--exhausted"])
            .status
            .success()
    );
    let t = Tracker::open(&s.path).unwrap();
    assert_eq!((t.max_tries(), t.tries("a"), t.tries("b")), (2, 0, 1));
    let st: Value =
        serde_json::from_str(&stdout(&tastypod(&["stat", "--json", p(&s.path)]))).unwrap();
    assert_eq!(st["format_version"], json!(3));
    assert_eq!(st["tracker"]["max_tries"], json!(2));
}

#[test]
fn tracker_summary_todo_and_reset() {
    let s = scratch();
    let mut t = TrackerOptions::new().max_tries(2).open(&s.path).unwrap();
    t.add_many(["a", "b", "c", "d"]).unwrap();
    t.mark_done("a").unwrap();
    t.abort("b").unwrap();
    t.increment_tries("c").unwrap();
    t.increment_tries("c").unwrap();
    t.close().unwrap();
    let o = tastypod(&["tracker", p(&s.path), "--max-tries", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("25.00 %"), "{}", stdout(&o));
    assert!(stdout(&o).contains('['));
    let o = tastypod(&["tracker", "--json", "--max-tries", "2", p(&s.path)]);
    let st: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(st["done"], json!(1));
    assert_eq!(st["aborted"], json!(1));
    assert_eq!(st["todo"], json!(1));
    assert_eq!(st["exhausted"], json!(1));
    let o = tastypod(&["tracker", "todo", "--max-tries", "2", p(&s.path)]);
    assert_eq!(stdout(&o), "d\n");
    let o = tastypod(&[
        "tracker",
        "todo",
        "--aborted",
        "--max-tries",
        "2",
        p(&s.path),
    ]);
    assert_eq!(stdout(&o), "b\nd\n");
    let o = tastypod(&["stat", "--json", p(&s.path)]);
    let st: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(st["tracker"]["total"], json!(4));
    assert!(
        tastypod(&[
            "tracker",
            "reset",
            p(&s.path),
            "--exhausted",
            "--max-tries",
            "2"
        ])
        .status
        .success()
    );
    assert!(
        tastypod(&["tracker", "reset", p(&s.path), "--aborted"])
            .status
            .success()
    );
    let t = Tracker::open(&s.path).unwrap();
    assert_eq!(t.tries("c"), 0);
    assert!(!t.aborted("b"));
    assert!(t.done("a"));
    drop(t);
    assert_error(
        &tastypod(&["tracker", "reset", p(&s.path), "nope"]),
        "not in",
    );
    assert_error(&tastypod(&["tracker", "reset", p(&s.path)]), "needs KEYs");
    // A plain pod is not a tracker.
    let plain = s.dir.path().join("plain.pod");
    sample(&plain);
    assert_error(&tastypod(&["tracker", p(&plain)]), "not a task record");
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.hold();
    for i in 0..100_000 {
        pod.insert(&format!("key-{i:06}"), json!(i)).unwrap();
    }
    pod.close().unwrap();
    for args in [
        vec!["keys", p(&s.path)],
        vec!["dump", p(&s.path)],
        vec!["keys", "--json", p(&s.path)],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tastypod"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        use std::io::Read;
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut first)
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn tracker_counts_never_underflow_and_reset_needs_a_limit() {
    let s = scratch();
    let mut t = TrackerOptions::new().open(&s.path).unwrap();
    t.add_many(["a", "b"]).unwrap();
    t.abort("a").unwrap();
    t.mark_done("a").unwrap(); // done and aborted at once
    t.close().unwrap();
    let o = tastypod(&["tracker", "--json", "--max-tries", "1", p(&s.path)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let st: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(st["exhausted"], json!(0));
    assert_eq!(st["todo"], json!(1));
    assert_error(
        &tastypod(&[
            "tracker",
            "reset",
            p(&s.path),
            "--exhausted",
            "--max-tries",
            "0",
        ]),
        "at least 1",
    );
}

/// A log line with a correct checksum over `body` (valid or not).
fn checksummed(body: &[u8]) -> Vec<u8> {
    let mut line = format!("{{\"c\":\"{:08x}\",", crc32(body)).into_bytes();
    line.extend_from_slice(body);
    line.push(b'\n');
    line
}

fn header() -> Vec<u8> {
    checksummed(b"\"format\":\"tastypod\",\"version\":1}")
}

#[test]
fn a_record_whose_newline_is_damaged_is_corruption_and_no_writer_cuts_it() {
    let s = scratch();
    let o = with_stdin(
        &["load", p(&s.path), "-"],
        "{\"key\":\"a\",\"value\":1}\n{\"key\":\"b\",\"value\":2}\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let mut bytes = log_bytes(&s.path);
    let last = bytes.len() - 1;
    bytes[last] = b'X';
    std::fs::write(log_of(&s.path), &bytes).unwrap();
    for args in [
        vec!["set", p(&s.path), "c", "3"],
        vec!["rm", p(&s.path), "a"],
        vec!["compact", p(&s.path)],
        vec!["get", p(&s.path), "b"],
    ] {
        assert_error(&tastypod(&args), "line 4");
        assert_eq!(log_bytes(&s.path), bytes, "{args:?} changed the log");
    }
    let o = with_stdin(&["load", p(&s.path), "-"], "{\"key\":\"c\",\"value\":3}\n");
    assert_error(&o, "line 4");
    assert_eq!(log_bytes(&s.path), bytes);
    // Repair keeps the record: its checksum holds.
    let o = tastypod(&["repair", p(&s.path)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&tastypod(&["keys", p(&s.path)])), "a\nb\n");
    assert_eq!(stdout(&tastypod(&["get", p(&s.path), "b"])), "2\n");
}

#[test]
fn repair_keeps_records_glued_together_by_a_damaged_newline() {
    let s = scratch();
    let o = with_stdin(
        &["load", p(&s.path), "-"],
        "{\"key\":\"a\",\"value\":1}\n{\"key\":\"b\",\"value\":2}\n{\"key\":\"c\",\"value\":3}\n",
    );
    assert!(o.status.success());
    let mut bytes = log_bytes(&s.path);
    let nl = 50 + bytes[50..].iter().position(|&b| b == b'\n').unwrap();
    bytes[nl] = b'X';
    std::fs::write(log_of(&s.path), &bytes).unwrap();
    let o = tastypod(&["verify", p(&s.path)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("newline is damaged"), "{}", stdout(&o));
    let o = tastypod(&["repair", p(&s.path)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&tastypod(&["keys", p(&s.path)])), "a\nb\nc\n");
    assert!(tastypod(&["verify", p(&s.path)]).status.success());
}

#[test]
fn every_cut_of_a_torn_tail_is_reported_and_more_than_a_record_is_kept() {
    let s = scratch();
    sample(&s.path);
    let clean = log_bytes(&s.path);
    // A crash's leftover: part of a record. Cut, and said so.
    let partial = b"{\"c\":\"12345678\",\"k\":\"d\",\"v\":[1,";
    append_garbage(&s.path, partial);
    let o = tastypod(&["set", p(&s.path), "d", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let expected = format!(
        "cut a torn final write of 1 lines ({} bytes) from line 6",
        partial.len()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(err.contains(&format!("(byte {})", clean.len())), "{err}");
    assert!(err.contains("one partial record"), "{err}");
    // Far more than a record: cut by compact, and kept beside the log.
    let garbage: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut tail = garbage.clone();
    tail.extend_from_slice(b"\nmore\n");
    append_garbage(&s.path, &tail);
    let o = tastypod(&["compact", p(&s.path)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("cut a torn final write of 2 lines"), "{err}");
    let copy = err
        .split("the cut bytes are kept at ")
        .nth(1)
        .unwrap()
        .trim();
    assert_eq!(std::fs::read(copy).unwrap(), tail);
    assert!(tastypod(&["verify", p(&s.path)]).status.success());
    assert_eq!(stdout(&tastypod(&["get", p(&s.path), "d"])), "4\n");
}

#[test]
fn a_value_that_is_not_one_json_value_is_never_handed_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s4");
    std::fs::create_dir(&store).unwrap();
    let mut bytes = header();
    bytes.extend(checksummed(b"\"k\":\"a\",\"v\":1,\"evil\":2}"));
    bytes.extend(checksummed(b"\"k\":\"b\",\"v\":1e400}"));
    std::fs::write(log_of(&store), &bytes).unwrap();
    for args in [
        vec!["get", p(&store), "a"],
        vec!["dump", "--object", p(&store)],
        vec!["dump", p(&store)],
        vec!["keys", p(&store)],
    ] {
        let o = tastypod(&args);
        assert_error(&o, "line 2");
        assert!(!stdout(&o).contains("evil"), "{args:?}: {}", stdout(&o));
    }
    let o = tastypod(&["verify", "--json", p(&store)]);
    assert_eq!(o.status.code(), Some(1));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["problem_count"], json!(2), "{report}");
    // The checks verify makes are the ones set makes.
    for bad in [
        "1e400",
        "\"\\ud800\"",
        &format!("{}{}", "[".repeat(127), "]".repeat(127)),
    ] {
        let body = format!("\"k\":\"x\",\"v\":{bad}}}");
        let mut log = header();
        log.extend(checksummed(body.as_bytes()));
        std::fs::write(log_of(&store), &log).unwrap();
        assert_eq!(
            tastypod(&["verify", p(&store)]).status.code(),
            Some(1),
            "{bad}"
        );
        let s = scratch();
        assert_eq!(
            tastypod(&["set", p(&s.path), "x", bad]).status.code(),
            Some(2),
            "{bad}"
        );
    }
}

#[test]
fn a_log_that_verifies_clean_survives_dump_and_load() {
    let s = scratch();
    let mut log = header();
    let deep = format!("{}{}", "[".repeat(126), "]".repeat(126));
    for (n, value) in [
        "12345678901234567890",
        "0.30000000000000004",
        "-0.0",
        "1E5",
        "\"\\u00e9\\ud83d\\ude00\"",
        " [ 1 , 2 ] ",
        "{\"a\":1,\"b\":{\"a\":2}}",
        &deep,
        "\"caf\u{e9}\"",
    ]
    .iter()
    .enumerate()
    {
        let body = format!("\"k\":\"k{n}\",\"v\":{value}}}");
        log.extend(checksummed(body.as_bytes()));
    }
    std::fs::create_dir_all(&s.path).unwrap();
    std::fs::write(log_of(&s.path), &log).unwrap();
    let o = tastypod(&["verify", p(&s.path)]);
    assert!(o.status.success(), "{}", stdout(&o));
    let dump = tastypod(&["dump", p(&s.path)]);
    assert!(dump.status.success(), "{}", stderr(&dump));
    let copy = s.dir.path().join("copy.pod");
    let o = with_stdin(&["load", p(&copy), "-"], &stdout(&dump));
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (open_ro(&s.path), open_ro(&copy));
    assert_eq!(contents(&a), contents(&b));
    let o = tastypod(&["dump", "--object", p(&s.path)]);
    let object: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(object.as_object().unwrap().len(), 9);
}

#[test]
fn a_store_whose_creation_was_interrupted_opens_empty_for_writers_and_repair() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("torn-header", b"{\"c\":\"b8e8".to_vec()),
        ("blank-lines", b"\n\n\n".to_vec()),
    ] {
        let store = dir.path().join(name);
        std::fs::create_dir(&store).unwrap();
        std::fs::write(log_of(&store), &bytes).unwrap();
        let o = tastypod(&["verify", p(&store)]);
        assert_eq!(o.status.code(), Some(1), "{name}");
        let o = tastypod(&["set", p(&store), "k", "1"]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("cut a torn final write"),
            "{name}: {}",
            stderr(&o)
        );
        assert_eq!(stdout(&tastypod(&["get", p(&store), "k"])), "1\n");
        std::fs::write(log_of(&store), &bytes).unwrap();
        let o = tastypod(&["repair", p(&store)]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert!(tastypod(&["verify", p(&store)]).status.success(), "{name}");
    }
}

#[test]
fn a_store_directory_other_users_may_write_gets_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let s = scratch();
    sample(&s.path);
    std::fs::set_permissions(&s.path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = tastypod(&["set", p(&s.path), "k", "1"]);
    assert!(o.status.success());
    assert!(stderr(&o).contains("warning:") && stderr(&o).contains("writable by every user"));
    assert!(!open(&s.path).recovery().warnings.is_empty());
    // Writable by its group: a member could replace the files too.
    std::fs::set_permissions(&s.path, std::fs::Permissions::from_mode(0o775)).unwrap();
    let o = tastypod(&["get", p(&s.path), "k"]);
    assert!(
        stderr(&o).contains("writable by its group"),
        "{}",
        stderr(&o)
    );
    // The sticky bit (as on /tmp) keeps others from replacing the files.
    std::fs::set_permissions(&s.path, std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(open(&s.path).recovery().warnings.is_empty());
    std::fs::set_permissions(&s.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(stderr(&tastypod(&["get", p(&s.path), "k"])).is_empty());
}

#[test]
fn set_creates_the_store_and_takes_negative_numbers() {
    let s = scratch();
    let o = tastypod(&["set", p(&s.path), "balance", "-1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&tastypod(&["get", p(&s.path), "balance"])), "-1\n");
    assert!(
        tastypod(&["set", p(&s.path), "-k", "-2.5e3"])
            .status
            .success()
    );
    // Stored as written.
    assert_eq!(stdout(&tastypod(&["get", p(&s.path), "-k"])), "-2.5e3\n");
    // A bad value creates nothing.
    let fresh = s.dir.path().join("fresh.pod");
    assert_error(&tastypod(&["set", p(&fresh), "k", "{bad"]), "refused");
    assert!(!fresh.exists());
    let empty = s.dir.path().join("empty.pod");
    std::fs::create_dir(&empty).unwrap();
    assert_error(&tastypod(&["set", p(&empty), "k", "{bad"]), "refused");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    // get and rm of a missing store stay errors.
    assert_error(&tastypod(&["get", p(&fresh), "k"]), "no store at");
    assert_error(&tastypod(&["rm", p(&fresh), "k"]), "no store at");
    // A directory that holds other things is not made a store.
    let busy = s.dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine").unwrap();
    assert_error(&tastypod(&["set", p(&busy), "k", "1"]), "no store at");
}

#[test]
fn argument_errors_are_one_line_and_help_is_unchanged() {
    let s = scratch();
    for args in [
        &["set"][..],
        &["get", "a", "b", "c"],
        &["bogus"],
        &[],
        &["tracker", "reset", "x", "--max-tries", "3"],
        &["dump", "--nope", "x"],
    ] {
        assert_error(&tastypod(args), "(see tastypod --help)");
    }
    let o = tastypod(&["set", "--help"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("Usage: tastypod set") && stdout(&o).lines().count() > 5);
    assert!(tastypod(&["--version"]).status.success());
    drop(s);
}

#[test]
fn keys_prints_one_line_per_key_escaping_control_characters() {
    let s = scratch();
    let mut pod: Pod = Pod::open(&s.path).unwrap();
    for key in [
        "plain",
        "two\nlines",
        "esc\u{1b}[31mred",
        "\"quoted",
        "del\u{7f}",
        "é",
    ] {
        pod.insert(key, json!(1)).unwrap();
    }
    pod.close().unwrap();
    let out = stdout(&tastypod(&["keys", p(&s.path)]));
    assert_eq!(
        out,
        "plain\n\"two\\nlines\"\n\"esc\\u001b[31mred\"\n\"\\\"quoted\"\ndel\\u007f\né\n"
            .replace("del\\u007f", "\"del\\u007f\"")
    );
    let json: Value =
        serde_json::from_str(&stdout(&tastypod(&["keys", "--json", p(&s.path)]))).unwrap();
    assert_eq!(json[1], json!("two\nlines"), "--json is unchanged");
}

#[test]
fn numbers_are_never_changed_silently() {
    let s = scratch();
    let big = "123456789012345678901234567890";
    assert_error(
        &tastypod(&["set", p(&s.path), "n", big]),
        "cannot be kept exactly",
    );
    assert!(!s.path.exists());
    assert!(
        tastypod(&["set", p(&s.path), "n", "12345678901234567"])
            .status
            .success()
    );
    assert_eq!(
        stdout(&tastypod(&["get", p(&s.path), "n"])),
        "12345678901234567\n"
    );
    let line = format!("{{\"key\":\"a\",\"value\":{{\"n\":{big}}}}}\n");
    assert_error(&with_stdin(&["load", p(&s.path), "-"], &line), "-:1");
    // The library refuses it the same way.
    let mut pod: Pod = Pod::open(&s.path).unwrap();
    let err = pod.insert_json("x", big).unwrap_err();
    assert!(
        matches!(err.kind(), tastypod::ErrorKind::InvalidValue { .. }),
        "{err}"
    );
    assert!(pod.insert_json("x", "0.1").is_ok());
    pod.close().unwrap();
    // A log holding such a number (a valid checksum) is corruption.
    let body = format!("\"k\":\"b\",\"v\":{big}}}");
    let mut log = std::fs::read(s.path.join("pod.log")).unwrap();
    log.extend(checksummed(body.as_bytes()));
    std::fs::write(s.path.join("pod.log"), log).unwrap();
    let o = tastypod(&["verify", p(&s.path)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("cannot be kept exactly"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_path_that_is_not_utf8_never_panics() {
    use std::os::unix::ffi::OsStrExt;
    let s = scratch();
    let odd = s.dir.path().join(std::ffi::OsStr::from_bytes(b"s\xff"));
    let run = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_tastypod"))
            .args(args)
            .output()
            .unwrap()
    };
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    let o = run(&[os("set"), odd.as_os_str(), os("a"), os("1")]);
    assert!(o.status.success(), "{}", stderr(&o));
    for cmd in ["stat", "verify", "tracker", "keys", "compact", "repair"] {
        let o = run(&[os(cmd), os("--json"), odd.as_os_str()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{cmd}: {err}");
        assert_ne!(o.status.code(), Some(101), "{cmd}: {err}");
    }
    let o = run(&[os("stat"), os("--json"), odd.as_os_str()]);
    assert!(o.status.success());
    let st: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(st["path"].as_str().unwrap().ends_with("s\u{fffd}"));
}

#[test]
fn a_checksummed_record_over_the_maximum_size_is_never_cut() {
    let s = scratch();
    let mut log = header();
    log.extend(checksummed(b"\"k\":\"a\",\"v\":1}"));
    let big = format!("\"k\":\"big\",\"v\":\"{}\"}}", "x".repeat(200));
    log.extend(checksummed(big.as_bytes()));
    std::fs::create_dir_all(&s.path).unwrap();
    std::fs::write(log_of(&s.path), &log).unwrap();
    for args in [
        vec!["--max-record-size", "100", "set", p(&s.path), "b", "2"],
        vec!["get", p(&s.path), "a", "--max-record-size", "100"],
        vec!["--max-record-size", "100", "compact", p(&s.path)],
    ] {
        let o = tastypod(&args);
        assert_error(&o, "--max-record-size");
        assert!(stderr(&o).contains("line 3"), "{}", stderr(&o));
    }
    let o = tastypod(&["--max-record-size", "100", "verify", p(&s.path)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains(":3: a record of"), "{}", stdout(&o));
    assert_eq!(log_bytes(&s.path), log, "nothing cut, nothing rewritten");
    let names: Vec<_> = std::fs::read_dir(&s.path)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.iter().all(|n| !n.to_string_lossy().contains("torn")),
        "{names:?}"
    );
    // With the default maximum it is an ordinary record.
    let o = tastypod(&["get", p(&s.path), "big"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_error(
        &tastypod(&["--max-record-size", "lots", "get", p(&s.path), "a"]),
        "invalid value",
    );
}

#[test]
fn integers_beyond_64_bits_minus_zero_and_repeated_members_are_refused() {
    let s = scratch();
    for value in [
        "200000000000000000000",
        "-0",
        "[1,-0]",
        "{\"_done\":false,\"_done\":true}",
        "{\"a\":{\"b\":1,\"b\":2}}",
    ] {
        let o = tastypod(&["set", p(&s.path), "k", value]);
        assert_error(&o, "refused");
        let line = format!("{{\"key\":\"k\",\"value\":{value}}}\n");
        assert_error(&with_stdin(&["load", p(&s.path), "-"], &line), "-:1");
    }
    assert!(!s.path.exists());
    let o = tastypod(&["set", p(&s.path), "k", "{\"a\":-0.0,\"b\":{\"a\":1}}"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&tastypod(&["get", p(&s.path), "k"])).trim(),
        "{\"a\":-0.0,\"b\":{\"a\":1}}"
    );
    // Written by another program with a valid checksum: every reader refuses it alike.
    let mut log = header();
    log.extend(checksummed(
        b"\"k\":\"t\",\"v\":{\"_aborted\":false,\"_done\":false,\"_done\":true,\"_tries\":0}}",
    ));
    let other = s.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(log_of(&other), &log).unwrap();
    for cmd in ["tracker", "dump", "keys"] {
        assert_error(&tastypod(&[cmd, p(&other)]), "given twice");
    }
    let o = tastypod(&["verify", p(&other)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("given twice"), "{}", stdout(&o));
}

#[test]
fn tries_beyond_what_a_tracker_counts_are_refused_never_rewritten() {
    let s = scratch();
    let mut log = header();
    log.extend(checksummed(
        b"\"k\":\"t\",\"v\":{\"_aborted\":false,\"_done\":false,\"_lease\":{\"owner\":\"w\",\"until\":1},\"_tries\":4294967296}}",
    ));
    std::fs::create_dir_all(&s.path).unwrap();
    std::fs::write(log_of(&s.path), &log).unwrap();
    assert_error(&tastypod(&["tracker", p(&s.path)]), "4294967296");
    let err = Tracker::open(&s.path).unwrap_err();
    assert!(err.to_string().contains("not a task record"), "{err}");
    assert_eq!(log_bytes(&s.path), log, "the record is never rewritten");
}

#[test]
fn reset_exhausted_leaves_tasks_the_program_aborted() {
    let s = scratch();
    let mut t = TrackerOptions::new().max_tries(1).open(&s.path).unwrap();
    t.add_many(["gone", "flaky", "fine"]).unwrap();
    for _ in 0..3 {
        let key = t.claim_next("w").unwrap().task().unwrap().key;
        match key.as_str() {
            "gone" => t.abort(&key).unwrap(),    // a 404: the program's verdict
            "flaky" => t.release(&key).unwrap(), // out of tries
            _ => t.mark_done(&key).unwrap(),
        }
    }
    t.close().unwrap();
    let o = tastypod(&["tracker", "--json", p(&s.path)]);
    let st: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (st["aborted"].clone(), st["exhausted"].clone()),
        (json!(1), json!(1))
    );
    let o = tastypod(&["tracker", "reset", "--exhausted", p(&s.path)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("reset 1 tasks"), "{}", stdout(&o));
    let t = Tracker::open(&s.path).unwrap();
    assert!(t.aborted("gone"), "an abort on purpose stays");
    assert!(!t.exhausted("flaky") && t.should_do("flaky", tastypod::Aborted::Skip));
}

#[test]
fn tracker_todo_escapes_keys_as_keys_does() {
    let s = scratch();
    let mut t = Tracker::open(&s.path).unwrap();
    t.add_many(["two\nlines", "esc\u{1b}[31m", "plain"])
        .unwrap();
    t.close().unwrap();
    let todo = stdout(&tastypod(&["tracker", "todo", p(&s.path)]));
    let keys = stdout(&tastypod(&["keys", p(&s.path)]));
    assert_eq!(todo, keys);
    assert_eq!(todo.lines().count(), 3, "{todo:?}");
    assert!(!todo.contains('\u{1b}'), "{todo:?}");
}

#[test]
fn messages_say_what_is_wrong_once() {
    let s = scratch();
    // A log of one word: not a store, and not "only blank lines" too.
    std::fs::create_dir_all(&s.path).unwrap();
    std::fs::write(log_of(&s.path), b"hello\n").unwrap();
    let o = tastypod(&["verify", p(&s.path)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("checksum field"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("blank"), "{}", stdout(&o));
    // One damaged header is one damaged line.
    let h = s.dir.path().join("h.pod");
    sample(&h);
    flip_byte(&h, 20, 0x01);
    let o = tastypod(&["repair", p(&h)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("dropped 1 damaged line"),
        "{}",
        stdout(&o)
    );
    // A byte order mark before the first dump line is read past.
    let b = s.dir.path().join("b.pod");
    let o = with_stdin(
        &["load", p(&b), "-"],
        "\u{feff}{\"key\":\"a\",\"value\":1}\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // A JSON array is named as such.
    let o = with_stdin(&["load", p(&b), "-"], "[{\"key\":\"a\",\"value\":1}]\n");
    assert_error(&o, "JSON array");
    assert_error(
        &with_stdin(&["load", p(&b), "-"], "42\n"),
        "not a JSON object",
    );
}

#[test]
fn a_directory_this_user_may_not_read_is_named_as_such() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let s = scratch();
    sample(&s.path);
    std::fs::set_permissions(&s.path, std::fs::Permissions::from_mode(0o700)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tastypod"));
        cmd.args(args);
        if root {
            // Root reads anything: run as nobody, who may enter the temp dir.
            std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            cmd.uid(65534).gid(65534);
        } else {
            std::fs::set_permissions(&s.path, std::fs::Permissions::from_mode(0o000)).unwrap();
        }
        cmd.output().unwrap()
    };
    for args in [["get", p(&s.path), "a"], ["keys", p(&s.path), "--json"]] {
        let o = run(&args);
        assert_error(&o, "ermission denied");
        assert!(!stderr(&o).contains("no pod.log"), "{}", stderr(&o));
    }
    std::fs::set_permissions(&s.path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn verify_beside_a_writer_calls_its_unfinished_record_no_damage() {
    let s = scratch();
    sample(&s.path);
    let writer = open(&s.path);
    // What a reader sees while the writer's append is half-way.
    let mut record = checksummed(b"\"k\":\"next\",\"v\":\"a long value\"}");
    record.truncate(record.len() / 2);
    append_garbage(&s.path, &record);
    let o = tastypod(&["verify", p(&s.path)]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("a writer was appending"),
        "{}",
        stdout(&o)
    );
    let o = tastypod(&["verify", "--json", p(&s.path)]);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["being_written"], json!(record.len()));
    drop(writer);
    // With no writer, the same bytes are a torn tail.
    let o = tastypod(&["verify", p(&s.path)]);
    assert_eq!(o.status.code(), Some(1));
}

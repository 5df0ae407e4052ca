//! Invariant: the hint file (`pod.hint`) is only ever a shortcut. An open
//! through it gives exactly the state a whole replay gives; a hint that is
//! damaged, cut, stale or of another log is ignored (and replaced), never
//! believed; corruption in the log is found as without a hint
//! (DESIGN.md, "The hint file").

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use tastypod::{ErrorKind, HINT_FILE, HintUse, Pod, PodOptions, Tracker};

fn value(i: usize) -> Value {
    json!({"n": i, "text": format!("value number {i} {}", "x".repeat(60 + i % 50))})
}

fn hint_of(store: &Path) -> PathBuf {
    store.join(HINT_FILE)
}

/// A store of about 2 MB (a hint is kept for logs of 1 MiB or more):
/// keys inserted, some changed (their last record is later), some
/// removed, some removed and inserted again, a key with escapes.
fn large(path: &Path) {
    let mut pod = open(path);
    for i in 0..12_000 {
        pod.insert(&format!("k{i}"), value(i)).unwrap();
    }
    for i in (0..12_000).step_by(7) {
        pod.insert(&format!("k{i}"), json!({"changed": i})).unwrap();
    }
    for i in (0..12_000).step_by(11) {
        pod.remove(&format!("k{i}")).unwrap();
    }
    for i in (0..12_000).step_by(33) {
        pod.insert(&format!("k{i}"), json!(["back", i])).unwrap();
    }
    pod.insert("tab\there \"quoted\" \u{e9}", json!("escaped"))
        .unwrap();
    pod.close().unwrap();
}

/// The state as a whole replay finds it: the log alone, copied to a
/// store of its own, opened read-only (which writes no hint).
fn replayed(path: &Path) -> State {
    let alone = tempfile::tempdir().unwrap();
    std::fs::copy(log_of(path), alone.path().join(tastypod::LOG_FILE)).unwrap();
    let pod = open_ro(alone.path());
    assert_eq!(pod.recovery().hint, HintUse::None);
    state(&pod)
}

/// Keys and values in order, the number of keys, the live bytes and the
/// log's length up to its last record.
type State = (Vec<(String, Value)>, u64, u64, u64);

fn state(pod: &Pod) -> State {
    let stats = pod.stats();
    (
        contents(pod),
        stats.keys as u64,
        stats.live_bytes,
        stats.log_bytes,
    )
}

/// Opens `path`, checking that the open went through a hint of the whole
/// log and found what a whole replay finds.
fn opens_through_a_whole_hint(path: &Path) -> Pod {
    let expected = replayed(path);
    let pod = open(path);
    assert_eq!(covered(&pod), records_len(path));
    assert_eq!(state(&pod), expected);
    pod
}

fn covered(pod: &Pod) -> u64 {
    match pod.recovery().hint {
        HintUse::Used { covered } => covered,
        ref other => panic!("the hint was not used: {other:?}"),
    }
}

fn ignored(pod: &Pod) -> String {
    match &pod.recovery().hint {
        HintUse::Ignored { why } => why.clone(),
        other => panic!("the hint was not ignored: {other:?}"),
    }
}

#[test]
fn a_closed_large_store_reopens_through_its_hint_to_the_same_state() {
    let s = scratch();
    large(&s.path);
    assert!(
        hint_of(&s.path).exists(),
        "a close of a large store writes a hint"
    );
    let pod = opens_through_a_whole_hint(&s.path);
    assert!(pod.recovery().is_clean());
    // Writes after a hinted open land where they should.
    let mut pod = pod;
    pod.insert("after", json!(1)).unwrap();
    pod.insert("k1", json!("k1 again")).unwrap();
    pod.close().unwrap();
    let expected = replayed(&s.path);
    let pod = open(&s.path);
    covered(&pod);
    assert_eq!(state(&pod), expected);
    assert_eq!(pod.get("k1").unwrap(), Some(json!("k1 again")));
    assert_eq!(pod.keys().last(), Some("after"));
}

#[test]
fn a_small_store_has_no_hint() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("a", json!(1)).unwrap();
    pod.close().unwrap();
    assert!(!hint_of(&s.path).exists());
    assert_eq!(open(&s.path).recovery().hint, HintUse::None);
}

#[test]
fn records_after_the_hinted_part_are_replayed_and_a_torn_tail_there_is_cut() {
    let s = scratch();
    large(&s.path);
    let hinted = records_len(&s.path);
    // Records another session wrote after the hint (too few to renew it),
    // then half a record, as a crash leaves it.
    let mut pod = open(&s.path);
    for i in 0..50 {
        pod.insert(&format!("later{i}"), json!(i)).unwrap();
    }
    pod.remove("k2").unwrap();
    pod.insert("k3", json!("k3 changed")).unwrap();
    pod.close().unwrap();
    append_garbage(&s.path, br#"{"c":"00000000","k":"torn","v":{"ha"#);
    let pod = open(&s.path);
    assert_eq!(covered(&pod), hinted);
    let torn = pod.recovery().torn_tail.clone().expect("a torn tail");
    assert!(torn.partial_record);
    assert_eq!(pod.get("k2").unwrap(), None);
    assert_eq!(pod.get("k3").unwrap(), Some(json!("k3 changed")));
    assert_eq!(pod.get("later49").unwrap(), Some(json!(49)));
    drop(pod);
    assert_eq!(state(&open(&s.path)), replayed(&s.path));
}

#[test]
fn a_damaged_or_cut_hint_is_ignored_and_replaced() {
    let s = scratch();
    large(&s.path);
    let expected = replayed(&s.path);
    let good = std::fs::read(hint_of(&s.path)).unwrap();
    let len = good.len();
    let mut damaged = Vec::new();
    for at in [
        0,
        9,
        17,
        25,
        33,
        41,
        49,
        57,
        65,
        100,
        len / 2,
        len - 30,
        len - 1,
    ] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        damaged.push((format!("byte {at} flipped"), bad));
    }
    for cut in [0, 10, 80, len / 3, len - 1] {
        damaged.push((format!("cut to {cut}"), good[..cut].to_vec()));
    }
    let mut longer = good.clone();
    longer.extend_from_slice(b"more");
    damaged.push(("bytes after it".into(), longer));
    for (what, bytes) in damaged {
        std::fs::write(hint_of(&s.path), &bytes).unwrap();
        let pod = open(&s.path);
        let why = ignored(&pod);
        assert_eq!(state(&pod), expected, "{what}: {why}");
        drop(pod);
        // The open wrote a good hint in its place.
        assert_eq!(std::fs::read(hint_of(&s.path)).unwrap(), good, "{what}");
    }
}

#[test]
fn a_hint_of_another_log_of_the_same_length_is_ignored() {
    let s = scratch();
    let a = s.path.join("a");
    let b = s.path.join("b");
    large(&a);
    large(&b);
    // The same records but one value, of the same length: logs of the
    // same length and lines, told apart only by their bytes.
    let mut pod = open(&b);
    let mut other = value(1);
    other["text"] = json!("y".repeat(other["text"].as_str().unwrap().len()));
    pod.insert("k1", other.clone()).unwrap();
    pod.compact().unwrap();
    pod.close().unwrap();
    let mut pod = open(&a);
    pod.insert("k1", value(1)).unwrap();
    pod.compact().unwrap();
    pod.close().unwrap();
    // Each close wrote its compacted log's hint.
    assert_eq!(records_len(&a), records_len(&b));
    std::fs::copy(hint_of(&b), hint_of(&a)).unwrap();
    let expected = replayed(&a);
    let pod = open(&a);
    assert!(ignored(&pod).contains("not the one"));
    assert_eq!(state(&pod), expected);
    assert_eq!(pod.get("k1").unwrap(), Some(value(1)));
}

#[test]
fn a_log_changed_in_place_is_never_read_through_the_hint() {
    let s = scratch();
    large(&s.path);
    // A bit flipped inside a record the hint covers: a whole replay finds
    // the corruption, as it would with no hint.
    let starts = line_starts(&s.path);
    let at = starts[starts.len() / 2] + 30;
    flip_byte(&s.path, at, 0x04);
    let err = PodOptions::new().open::<Value>(&s.path).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Corrupt { .. }), "{err}");
}

#[test]
fn a_huge_junk_hint_is_not_read() {
    let s = scratch();
    large(&s.path);
    let junk = std::fs::File::create(hint_of(&s.path)).unwrap();
    junk.set_len(8 << 30).unwrap();
    drop(junk);
    let expected = replayed(&s.path);
    let pod = open(&s.path);
    assert!(ignored(&pod).contains("larger"));
    assert_eq!(state(&pod), expected);
}

#[test]
fn a_compaction_removes_the_hint_and_the_close_writes_the_new_logs() {
    let s = scratch();
    large(&s.path);
    let mut pod = open(&s.path);
    pod.compact().unwrap();
    assert!(!hint_of(&s.path).exists());
    pod.close().unwrap();
    opens_through_a_whole_hint(&s.path);
}

#[test]
fn a_read_only_handle_opens_through_the_hint_and_follows_the_writer() {
    let s = scratch();
    large(&s.path);
    let expected = replayed(&s.path);
    let mut reader = open_ro(&s.path);
    covered(&reader);
    assert_eq!(state(&reader), expected);
    assert!(
        !std::fs::read_dir(&s.path)
            .unwrap()
            .any(|e| { e.unwrap().file_name().to_string_lossy().ends_with(".tmp") })
    );
    // A writer appends, then compacts: the reader follows both.
    let mut writer = open(&s.path);
    writer.insert("new", json!("written later")).unwrap();
    writer.sync().unwrap();
    reader.refresh().unwrap();
    assert_eq!(reader.get("new").unwrap(), Some(json!("written later")));
    writer.compact().unwrap();
    writer.insert("newer", json!(2)).unwrap();
    writer.sync().unwrap();
    reader.refresh().unwrap();
    assert_eq!(reader.get("newer").unwrap(), Some(json!(2)));
    assert_eq!(reader.get("k5").unwrap(), Some(value(5)));
    drop(writer);
    assert_eq!(state(&reader), replayed(&s.path));
}

#[test]
fn the_multi_process_mode_opens_through_the_hint() {
    let s = scratch();
    large(&s.path);
    let expected = replayed(&s.path);
    let mut one = PodOptions::new().multi_process(true).open(&s.path).unwrap();
    covered(&one);
    assert_eq!(state(&one), expected);
    let two: Pod = PodOptions::new().multi_process(true).open(&s.path).unwrap();
    covered(&two);
    one.insert("from one", json!(1)).unwrap();
    one.sync().unwrap();
    drop(one);
    drop(two);
    let pod = open(&s.path);
    assert_eq!(pod.get("from one").unwrap(), Some(json!(1)));
    assert_eq!(state(&pod), replayed(&s.path));
}

#[test]
fn a_tracker_reopens_through_its_hint_with_every_task_state() {
    let s = scratch();
    let mut t = Tracker::open(&s.path).unwrap();
    let keys: Vec<String> = (0..20_000)
        .map(|i| format!("https://example.com/page/{i}"))
        .collect();
    t.add_many(keys.iter().map(String::as_str)).unwrap();
    for k in keys.iter().step_by(3) {
        t.mark_done(k).unwrap();
    }
    for k in keys.iter().skip(1).step_by(5) {
        t.increment_tries(k).unwrap();
    }
    let before = t.summary();
    t.close().unwrap();
    let t = Tracker::open(&s.path).unwrap();
    covered(t.pod());
    assert_eq!(t.summary(), before);
    assert!(t.done(&keys[3]));
    assert_eq!(t.tries(&keys[6]), 1);
}

#[test]
fn a_salvage_reads_every_line_by_its_own_rules_whatever_the_hint() {
    let s = scratch();
    large(&s.path);
    let mut pod = open(&s.path);
    for k in ["x1", "x2", "x3"] {
        pod.insert(k, json!(k)).unwrap();
    }
    pod.close().unwrap();
    // x2's line, after the part the hint describes, is damaged.
    let starts = line_starts(&s.path);
    flip_byte(&s.path, starts[starts.len() - 2] + 8, 0x01);
    let err = PodOptions::new().open::<Value>(&s.path).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Corrupt { .. }), "{err}");
    let pod: Pod = PodOptions::new()
        .recovery(tastypod::Recovery::Salvage)
        .open(&s.path)
        .unwrap();
    assert_eq!(pod.recovery().skipped_count, 1);
    assert_eq!(pod.get("x1").unwrap(), Some(json!("x1")));
    assert_eq!(pod.get("x3").unwrap(), Some(json!("x3")));
    assert_eq!(pod.get("x2").unwrap(), None);
}

const CHILD_ENV: &str = "TASTYPOD_HINT_KILL_CHILD";

/// Run as a child: rounds of open (through the hint), a bulk write of new
/// keys in one sync, and close (which writes a hint when it is stale),
/// printing "ack R" once round R's close returned.
#[test]
#[ignore = "a child process that this file's kill test starts (with --ignored); not a test by itself"]
fn hint_writer_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        panic!("a child process of the kill test in this file; run that test instead");
    };
    loop {
        let mut pod = open(Path::new(&path));
        let round = pod
            .get("round")
            .unwrap()
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
            + 1;
        pod.hold();
        for i in 0..2_000 {
            pod.insert(&format!("r{round}-{i}"), value(i)).unwrap();
        }
        pod.insert("round", json!(round)).unwrap();
        pod.unhold().unwrap();
        pod.sync().unwrap();
        // Small syncs: the writer pads the log past its last record.
        for i in 0..6 {
            pod.insert(&format!("r{round}-small{i}"), json!(i)).unwrap();
            pod.sync().unwrap();
        }
        pod.close().unwrap();
        println!("ack {round}");
    }
}

#[test]
fn a_writer_killed_while_it_writes_or_uses_a_hint_loses_nothing() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let s = scratch();
    large(&s.path);
    let exe = std::env::current_exe().unwrap();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut acked = 0u64;
    for kill in 0..16 {
        let mut child = Command::new(&exe)
            .args(["hint_writer_child", "--exact", "--ignored", "--nocapture"])
            .args(["--test-threads=1"])
            .env(CHILD_ENV, &s.path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let reader = std::thread::spawn(move || {
            out.lines()
                .map_while(Result::ok)
                .filter_map(|l| l.split("ack ").nth(1)?.trim().parse::<u64>().ok())
                .max()
        });
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(std::time::Duration::from_millis(20 + rng % 400));
        child.kill().unwrap();
        child.wait().unwrap();
        acked = acked.max(reader.join().unwrap().unwrap_or(0));
        // Every acknowledged round is there, and an open through whatever
        // hint the kill left gives the state a whole replay gives.
        let expected = replayed(&s.path);
        let pod = open(&s.path);
        assert_eq!(
            state(&pod),
            expected,
            "kill {kill}: {:?}",
            pod.recovery().hint
        );
        // A hint the children wrote describes the log (unless the log has
        // grown too far past it since).
        if let HintUse::Ignored { why } = &pod.recovery().hint {
            assert!(why.contains("grown far past"), "kill {kill}: {why}");
        }
        let round = pod
            .get("round")
            .unwrap()
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        assert!(
            round >= acked,
            "kill {kill}: round {round}, {acked} acknowledged"
        );
        for r in 1..=round {
            assert_eq!(pod.get(&format!("r{r}-1999")).unwrap(), Some(value(1999)));
        }
        drop(pod);
        // Whatever hint that open left describes the log: the next open
        // through it finds nothing changed.
        let pod = open(&s.path);
        assert!(
            !matches!(pod.recovery().hint, HintUse::Ignored { .. }),
            "kill {kill}: {:?}",
            pod.recovery().hint
        );
        assert_eq!(state(&pod), expected, "kill {kill}");
    }
    assert!(
        acked >= 3,
        "the children acknowledged too little: {acked} rounds"
    );
}

#[test]
fn a_hint_written_after_records_replaced_blank_lines_still_describes_the_log() {
    let s = scratch();
    large(&s.path);
    // Blank lines after the last record, as a crash leaves the padding:
    // a writer writes its next records where they are.
    append_garbage(&s.path, &vec![b'\n'; 300 << 10]);
    std::fs::remove_file(hint_of(&s.path)).unwrap();
    let mut pod = open(&s.path);
    for i in 0..3_000 {
        pod.insert(&format!("after{i}"), value(i)).unwrap();
    }
    pod.close().unwrap();
    opens_through_a_whole_hint(&s.path);
}

#[test]
fn a_multi_process_open_writes_no_hint_ending_in_blank_lines() {
    let s = scratch();
    large(&s.path);
    // The padding a killed exclusive writer leaves: blank lines.
    append_garbage(&s.path, &vec![b'\n'; 4096]);
    std::fs::remove_file(hint_of(&s.path)).unwrap();
    let multi: Pod = PodOptions::new().multi_process(true).open(&s.path).unwrap();
    drop(multi);
    assert!(!hint_of(&s.path).exists(), "a hint past the last record");
    // An exclusive open writes one, up to the last record.
    drop(open(&s.path));
    opens_through_a_whole_hint(&s.path);
}

#[test]
fn a_record_longer_than_the_maximum_is_damage_with_a_hint_too() {
    let s = scratch();
    large(&s.path);
    assert!(hint_of(&s.path).exists());
    let err = PodOptions::new()
        .max_record_size(64)
        .open::<Value>(&s.path)
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Corrupt { .. }), "{err}");
}

#[test]
fn an_open_through_a_stale_hint_writes_a_new_one() {
    let s = scratch();
    large(&s.path);
    let hinted = records_len(&s.path);
    // Records written where no hint follows them (the multi-process mode
    // writes none at its close): the log grows past an eighth of the hint.
    let mut multi: Pod = PodOptions::new().multi_process(true).open(&s.path).unwrap();
    for i in 0..2_500 {
        multi.insert(&format!("grown{i}"), value(i)).unwrap();
    }
    multi.close().unwrap();
    let grown = records_len(&s.path);
    assert!(grown - hinted > hinted / 8 && grown - hinted <= hinted / 4);
    let pod = open(&s.path);
    assert_eq!(covered(&pod), hinted);
    assert_eq!(state(&pod), replayed(&s.path));
    drop(pod);
    // That open read the rest in place, so it could write a new hint.
    let pod = open(&s.path);
    assert_eq!(covered(&pod), grown);
    assert_eq!(state(&pod), replayed(&s.path));
}

#[test]
fn a_store_built_elsewhere_keeps_its_hint_when_installed() {
    let s = scratch();
    let built = s.path.join(".built.partial");
    large(&built);
    assert!(hint_of(&built).exists());
    let dest = s.path.join("dest");
    tastypod::install_store(&built, &dest).unwrap();
    assert!(!built.exists());
    opens_through_a_whole_hint(&dest);
}

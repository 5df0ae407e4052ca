//! Invariant: the tracker's gates, counters and iterators follow tastypy's
//! rules (with its known bugs fixed), its state reaches disk through the
//! pod's sync machinery, and counters are exact after reopen and revert.

mod common;
use common::*;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use tastypod::{Aborted, ErrorKind, Pod, Tracker, TrackerOptions};

fn tracker(path: &std::path::Path, max_tries: u32) -> Tracker {
    TrackerOptions::new()
        .max_tries(max_tries)
        .open(path)
        .unwrap()
}

fn fields(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn add_and_duplicates() {
    let s = scratch();
    let mut t = tracker(&s.path, 0);
    t.add("a").unwrap();
    let err = t.add("a").unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::DuplicateKey { .. }));
    assert_eq!(err.key(), Some("a"));
    assert!(!t.add_if_absent("a").unwrap());
    assert!(t.add_if_absent("b").unwrap());
    // add_many is all or nothing.
    assert!(t.add_many(["c", "a"]).is_err());
    assert!(t.add_many(["c", "c"]).is_err());
    assert!(!t.contains_key("c"));
    t.add_many(["c", "d"]).unwrap();
    assert_eq!(t.add_many_if_absent(["d", "e", "f"]).unwrap(), 2);
    assert_eq!(t.keys().collect::<Vec<_>>(), ["a", "b", "c", "d", "e", "f"]);
    assert_eq!(
        t.get("a").unwrap(),
        Some(json!({"_done": false, "_tries": 0, "_aborted": false}))
    );
}

#[test]
fn state_changes_and_unknown_keys() {
    let s = scratch();
    let mut t = tracker(&s.path, 0);
    assert!(!t.done("nope"));
    assert_eq!(t.tries("nope"), 0);
    assert!(!t.aborted("nope"));
    assert!(matches!(
        t.mark_done("nope").unwrap_err().kind(),
        ErrorKind::MissingKey { .. }
    ));
    t.add("a").unwrap();
    t.mark_done("a").unwrap();
    assert!(t.done("a"));
    t.mark_not_done("a").unwrap();
    assert!(!t.done("a"));
    t.increment_tries("a").unwrap();
    t.increment_tries("a").unwrap();
    assert_eq!(t.tries("a"), 2);
    t.decrement_tries("a").unwrap();
    assert_eq!(t.tries("a"), 1);
    t.reset_tries("a").unwrap();
    t.decrement_tries("a").unwrap();
    assert_eq!(t.tries("a"), 0);
    t.abort("a").unwrap();
    assert!(t.aborted("a"));
    t.unabort("a").unwrap();
    assert!(!t.aborted("a"));
}

#[test]
fn gates_without_a_try_limit() {
    let s = scratch();
    let mut t = tracker(&s.path, 0);
    assert!(!t.should_do("a", Aborted::Skip));
    assert!(!t.should_try("a", Aborted::Skip).unwrap());
    assert!(t.should_do_add("a", Aborted::Skip).unwrap());
    for n in 1..=5 {
        assert!(t.should_try("a", Aborted::Skip).unwrap());
        assert_eq!(t.tries("a"), n);
    }
    t.mark_done("a").unwrap();
    assert!(!t.should_do("a", Aborted::Skip));
    assert!(!t.should_try("a", Aborted::Allow).unwrap());
    assert_eq!(t.tries("a"), 5);
}

#[test]
fn gates_with_a_try_limit_and_aborted_tasks() {
    let s = scratch();
    let mut t = tracker(&s.path, 2);
    assert!(t.should_try_add("a", Aborted::Skip).unwrap());
    assert!(t.should_try("a", Aborted::Skip).unwrap());
    assert!(!t.should_try("a", Aborted::Skip).unwrap());
    assert_eq!(t.tries("a"), 2);
    // should_do honours the try limit, like tastypy's (0.0.3: max_tries=1,
    // one try, should_do is False).
    assert!(!t.should_do("a", Aborted::Skip));
    assert!(!t.should_do("a", Aborted::Allow));
    assert!(!t.should_do_add("a", Aborted::Skip).unwrap());
    t.add("b").unwrap();
    t.abort("b").unwrap();
    assert!(!t.should_do("b", Aborted::Skip));
    assert!(t.should_do("b", Aborted::Allow));
    assert!(!t.should_try("b", Aborted::Skip).unwrap());
    assert!(t.should_try("b", Aborted::Allow).unwrap());
    assert_eq!(t.tries("b"), 1);
}

#[test]
fn iteration_in_insertion_order() {
    let s = scratch();
    let mut t = tracker(&s.path, 2);
    t.add_many(["a", "b", "c", "d", "e"]).unwrap();
    t.mark_done("b").unwrap();
    t.abort("c").unwrap();
    t.increment_tries("d").unwrap();
    t.increment_tries("d").unwrap();
    assert_eq!(t.todo_keys(Aborted::Skip).collect::<Vec<_>>(), ["a", "e"]);
    assert_eq!(
        t.todo_keys(Aborted::Allow).collect::<Vec<_>>(),
        ["a", "c", "e"]
    );
    assert_eq!(t.aborted_keys().collect::<Vec<_>>(), ["c"]);
    let items: Vec<(String, Value)> = t
        .aborted_items()
        .map(|r| r.map(|(k, v)| (k.to_string(), v)))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        items,
        [(
            "c".to_string(),
            json!({"_done": false, "_tries": 0, "_aborted": true})
        )]
    );
    assert_eq!(t.todo_items(Aborted::Skip).count(), 2);
}

#[test]
fn try_keys_iterates_and_counts_each_try() {
    let s = scratch();
    let mut t = tracker(&s.path, 3);
    t.add_many(["a", "b", "c"]).unwrap();
    t.mark_done("b").unwrap();
    let mut seen = Vec::new();
    let mut tasks = t.try_keys(Aborted::Skip);
    while let Some(key) = tasks.next() {
        let key = key.unwrap();
        assert_eq!(tasks.tries(&key), 1);
        if key == "a" {
            tasks.mark_done(&key).unwrap();
        }
        seen.push(key);
    }
    drop(tasks);
    assert_eq!(seen, ["a", "c"]); // not just the first item (tastypy's bug)
    assert_eq!(t.tries("c"), 1);
    assert_eq!(t.num_tried(), 2);
    // A second pass retries only what is left.
    assert_eq!(
        t.try_keys(Aborted::Skip)
            .map(Result::unwrap)
            .collect::<Vec<_>>(),
        ["c"]
    );
    assert_eq!(t.try_keys(Aborted::Skip).count(), 1);
    assert_eq!(t.try_keys(Aborted::Skip).count(), 0);
    assert_eq!(t.tries("c"), 3);
}

#[test]
fn try_items_iterates_with_records_and_counts_each_try() {
    let s = scratch();
    let mut t = tracker(&s.path, 0);
    t.add_with("a", fields(json!({"url": "u-a"}))).unwrap();
    t.add_with("b", fields(json!({"url": "u-b"}))).unwrap();
    let mut items = t.try_items(Aborted::Skip);
    let mut seen = Vec::new();
    while let Some(item) = items.next() {
        let (key, record) = item.unwrap();
        assert_eq!(record["_tries"], json!(1));
        items.mark_done(&key).unwrap();
        seen.push((key, record["url"].clone()));
    }
    drop(items);
    assert_eq!(
        seen,
        [
            ("a".to_string(), json!("u-a")),
            ("b".to_string(), json!("u-b"))
        ]
    );
    assert_eq!(t.num_done(), 2);
}

#[test]
fn counters_and_percentages() {
    let s = scratch();
    let mut t = tracker(&s.path, 0);
    assert_eq!(t.fraction_done(), 0.0); // no division by zero
    assert_eq!(t.percent_done(2), "0.00 %");
    assert_eq!(t.percent_not_done(2), "0.00 %");
    t.add_many((0..1000).map(|i| format!("k{i}"))).unwrap();
    for i in 0..347 {
        t.mark_done(&format!("k{i}")).unwrap();
    }
    for i in 0..10 {
        t.abort(&format!("k{}", 999 - i)).unwrap();
        t.increment_tries(&format!("k{i}")).unwrap();
    }
    assert_eq!(t.num_done(), 347);
    assert_eq!(t.percent_done(2), "34.70 %");
    assert_eq!(t.percent_not_done(1), "65.3 %");
    assert_eq!(t.percent_tried(0), "1 %");
    assert_eq!(t.percent_not_tried(2), "99.00 %");
    assert_eq!(t.percent_aborted(2), "1.00 %");
    assert_eq!(t.percent_not_aborted(2), "99.00 %");
    assert!((t.fraction_aborted() - 0.01).abs() < 1e-12);
    assert!((t.fraction_tried() - 0.01).abs() < 1e-12);
    t.close().unwrap();
    let t = tracker(&s.path, 0);
    assert_eq!(
        (t.num_done(), t.num_tried(), t.num_aborted()),
        (347, 10, 10)
    );
}

#[test]
fn counters_after_revert() {
    let s = scratch();
    let mut t = tracker(&s.path, 0);
    t.add_many(["a", "b"]).unwrap();
    t.mark_done("a").unwrap();
    t.sync().unwrap();
    t.mark_done("b").unwrap();
    t.abort("a").unwrap();
    assert_eq!(t.num_done(), 2);
    t.revert().unwrap();
    assert_eq!((t.num_done(), t.num_aborted()), (1, 0));
    assert!(!t.done("b"));
}

#[test]
fn update_merges_fields_and_keeps_state() {
    let s = scratch();
    let mut t = tracker(&s.path, 0);
    t.add("a").unwrap();
    t.mark_done("a").unwrap();
    t.update([
        ("a", fields(json!({"url": "https://a"}))),
        ("b", fields(json!({"url": "https://b", "size": 3}))),
    ])
    .unwrap();
    assert_eq!(
        t.get("a").unwrap(),
        Some(json!({"_done": true, "_tries": 0, "_aborted": false, "url": "https://a"}))
    );
    assert!(!t.done("b"));
    assert_eq!(t.get("b").unwrap().unwrap()["size"], json!(3));
    // Setting a reserved field through update is honoured.
    t.update([("b", fields(json!({"_done": true})))]).unwrap();
    assert!(t.done("b"));
    assert_eq!(t.num_done(), 2);
}

#[test]
fn sub_field_mutation_reaches_disk() {
    let s = scratch();
    let mut t = tracker(&s.path, 0);
    t.add("a").unwrap();
    t.sync().unwrap();
    {
        let mut task = t.task_mut("a").unwrap().unwrap();
        task["result"] = json!({"pages": [1, 2]});
        task["result"]["pages"]
            .as_array_mut()
            .unwrap()
            .push(json!(3));
        task["_tries"] = json!("not a number"); // wrong type: restored
        task["_done"] = json!(true);
    }
    assert!(t.done("a"));
    assert_eq!(t.tries("a"), 0);
    t.update_task("a", |v| v["note"] = json!("hi")).unwrap();
    assert_eq!(t.dirty_len(), 1);
    t.close().unwrap();
    let t = tracker(&s.path, 0);
    let v = t.get("a").unwrap().unwrap();
    assert_eq!(v["result"]["pages"], json!([1, 2, 3]));
    assert_eq!(v["note"], json!("hi"));
    assert_eq!(v["_tries"], json!(0));
    assert!(t.done("a"));
}

#[test]
fn state_changes_follow_the_sync_threshold() {
    let s = scratch();
    let mut t = TrackerOptions::new().sync_at(3).open(&s.path).unwrap();
    t.add_many(["a", "b"]).unwrap();
    assert_eq!(open_ro(&s.path).len(), 0);
    t.mark_done("a").unwrap(); // "a" was already dirty: still 2
    assert_eq!(open_ro(&s.path).len(), 0);
    t.add("c").unwrap();
    assert_eq!(open_ro(&s.path).len(), 3);
    assert!(open_ro(&s.path).get("a").unwrap().unwrap()["_done"] == json!(true));
    t.hold();
    for k in ["d", "e", "f", "g"] {
        t.add(k).unwrap();
    }
    assert_eq!(open_ro(&s.path).len(), 3);
    t.unhold().unwrap();
    assert_eq!(open_ro(&s.path).len(), 7);
    // A dropped tracker syncs.
    t.mark_done("f").unwrap();
    drop(t);
    assert!(tracker(&s.path, 0).done("f"));
}

#[test]
fn state_is_readable_with_jq_style_tools() {
    let s = scratch();
    let mut t = tracker(&s.path, 0);
    t.add("task-1").unwrap();
    t.mark_done("task-1").unwrap();
    t.close().unwrap();
    let log = String::from_utf8(log_bytes(&s.path)).unwrap();
    let last: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["k"], "task-1");
    assert_eq!(last["v"]["_done"], true);
    // A tracker directory is a valid pod directory.
    assert_eq!(
        open(&s.path).get("task-1").unwrap().unwrap()["_done"],
        json!(true)
    );
}

#[test]
fn a_plain_pod_is_not_a_tracker_until_converted() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("ok", json!({"_done": true, "_tries": 1, "_aborted": false}))
        .unwrap();
    pod.insert("plain", json!({"url": "x"})).unwrap();
    pod.insert("scalar", json!(5)).unwrap();
    pod.close().unwrap();
    let err = Tracker::open(&s.path).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::NotATask { .. }));
    assert_eq!(err.key(), Some("plain"));
    assert_eq!(err.line(), Some(4), "header, batch line, ok, plain");
    let mut pod: Pod = Pod::open(&s.path).unwrap();
    assert_eq!(Tracker::convert_pod(&mut pod).unwrap(), 2);
    pod.close().unwrap();
    let t = Tracker::open(&s.path).unwrap();
    assert_eq!(t.num_done(), 1);
    assert_eq!(t.get("plain").unwrap().unwrap()["url"], json!("x"));
    assert_eq!(t.get("scalar").unwrap().unwrap()["value"], json!(5));
}

#[test]
fn counters_survive_compaction() {
    let s = scratch();
    let mut t = tracker(&s.path, 0);
    t.add_many(["a", "b", "c"]).unwrap();
    t.mark_done("b").unwrap();
    t.abort("c").unwrap();
    t.compact().unwrap();
    assert!(t.done("b") && t.aborted("c"));
    t.mark_done("a").unwrap();
    assert_eq!(t.num_done(), 2);
}

// ---- model test ----

#[derive(Debug, Clone)]
enum Op {
    Add(u8),
    Done(u8),
    NotDone(u8),
    Inc(u8),
    Dec(u8),
    Reset(u8),
    Abort(u8),
    Unabort(u8),
    ShouldTry(u8, bool),
    SetField(u8, u8),
    Sync,
    Reopen,
    Revert,
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u8..6;
    prop_oneof![
        k.clone().prop_map(Op::Add),
        k.clone().prop_map(Op::Done),
        k.clone().prop_map(Op::NotDone),
        k.clone().prop_map(Op::Inc),
        k.clone().prop_map(Op::Dec),
        k.clone().prop_map(Op::Reset),
        k.clone().prop_map(Op::Abort),
        k.clone().prop_map(Op::Unabort),
        (k.clone(), any::<bool>()).prop_map(|(k, a)| Op::ShouldTry(k, a)),
        (k, any::<u8>()).prop_map(|(k, v)| Op::SetField(k, v)),
        Just(Op::Sync),
        Just(Op::Reopen),
        Just(Op::Revert),
    ]
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Task {
    done: bool,
    tries: u32,
    aborted: bool,
    field: Option<u8>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn tracker_matches_a_simple_model(ops in proptest::collection::vec(op(), 1..60), max_tries in 0u32..3) {
        let s = scratch();
        let mut t = TrackerOptions::new().max_tries(max_tries).sync_at(4).open(&s.path).unwrap();
        // `synced` is the model of what is on disk; `model` of memory.
        let mut model: Vec<(String, Task)> = Vec::new();
        let mut synced = model.clone();
        let find = |m: &mut Vec<(String, Task)>, k: &str| m.iter().position(|(x, _)| x == k);
        for op in ops {
            let key = |k: u8| format!("k{k}");
            match op {
                Op::Add(k) => {
                    let added = t.add_if_absent(&key(k)).unwrap();
                    prop_assert_eq!(added, find(&mut model, &key(k)).is_none());
                    if added { model.push((key(k), Task::default())); }
                }
                Op::Done(k) | Op::NotDone(k) | Op::Inc(k) | Op::Dec(k) | Op::Reset(k) | Op::Abort(k) | Op::Unabort(k) => {
                    let pos = find(&mut model, &key(k));
                    let r = match op {
                        Op::Done(_) => t.mark_done(&key(k)),
                        Op::NotDone(_) => t.mark_not_done(&key(k)),
                        Op::Inc(_) => t.increment_tries(&key(k)),
                        Op::Dec(_) => t.decrement_tries(&key(k)),
                        Op::Reset(_) => t.reset_tries(&key(k)),
                        Op::Abort(_) => t.abort(&key(k)),
                        _ => t.unabort(&key(k)),
                    };
                    prop_assert_eq!(r.is_ok(), pos.is_some());
                    if let Some(p) = pos {
                        let task = &mut model[p].1;
                        match op {
                            Op::Done(_) => task.done = true,
                            Op::NotDone(_) => task.done = false,
                            Op::Inc(_) => task.tries += 1,
                            Op::Dec(_) => task.tries = task.tries.saturating_sub(1),
                            Op::Reset(_) => task.tries = 0,
                            Op::Abort(_) => task.aborted = true,
                            _ => task.aborted = false,
                        }
                    }
                }
                Op::ShouldTry(k, allow) => {
                    let aborted = if allow { Aborted::Allow } else { Aborted::Skip };
                    let got = t.should_try(&key(k), aborted).unwrap();
                    let want = match find(&mut model, &key(k)) {
                        Some(p) => {
                            let task = &mut model[p].1;
                            let yes = !task.done && (allow || !task.aborted) && (max_tries == 0 || task.tries < max_tries);
                            if yes { task.tries += 1; }
                            yes
                        }
                        None => false,
                    };
                    prop_assert_eq!(got, want);
                }
                Op::SetField(k, v) => {
                    let r = t.update_task(&key(k), |rec| rec["field"] = json!(v)).unwrap();
                    if let Some(p) = find(&mut model, &key(k)) {
                        prop_assert!(r.is_some());
                        model[p].1.field = Some(v);
                    } else {
                        prop_assert!(r.is_none());
                    }
                }
                Op::Sync => { t.sync().unwrap(); }
                Op::Reopen => {
                    drop(t);
                    t = TrackerOptions::new().max_tries(max_tries).sync_at(4).open(&s.path).unwrap();
                }
                Op::Revert => {
                    t.revert().unwrap();
                    model = synced.clone();
                }
            }
            if t.dirty_len() == 0 {
                synced = model.clone();
            }
            // Check everything against the model.
            prop_assert_eq!(t.keys().collect::<Vec<_>>(), model.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>());
            for (k, task) in &model {
                prop_assert_eq!(t.done(k), task.done);
                prop_assert_eq!(t.tries(k), task.tries);
                prop_assert_eq!(t.aborted(k), task.aborted);
                let rec = t.get(k).unwrap().unwrap();
                prop_assert_eq!(rec["_done"].as_bool(), Some(task.done));
                prop_assert_eq!(rec["_tries"].as_u64(), Some(u64::from(task.tries)));
                prop_assert_eq!(rec.get("field").and_then(Value::as_u64), task.field.map(u64::from));
            }
            prop_assert_eq!(t.num_done(), model.iter().filter(|(_, x)| x.done).count());
            prop_assert_eq!(t.num_tried(), model.iter().filter(|(_, x)| x.tries > 0).count());
            prop_assert_eq!(t.num_aborted(), model.iter().filter(|(_, x)| x.aborted).count());
            let exhausted = |x: &Task| !x.done && !x.aborted && max_tries > 0 && x.tries >= max_tries;
            prop_assert_eq!(t.num_exhausted(), model.iter().filter(|(_, x)| exhausted(x)).count());
            for (k, task) in &model {
                prop_assert_eq!(t.exhausted(k), exhausted(task));
            }
        }
    }
}

#[test]
fn convert_pod_replaces_reserved_fields_of_the_wrong_type() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert(
        "bad-types",
        json!({"_done": "yes", "_tries": -1, "url": "u"}),
    )
    .unwrap();
    pod.close().unwrap();
    let mut pod: Pod = Pod::open(&s.path).unwrap();
    assert_eq!(Tracker::convert_pod(&mut pod).unwrap(), 1);
    assert!(!pod.is_held());
    pod.close().unwrap();
    let t = Tracker::open(&s.path).unwrap();
    assert!(!t.done("bad-types"));
    assert_eq!(t.get("bad-types").unwrap().unwrap()["url"], json!("u"));
}

#[test]
fn out_of_tries_is_exhausted_not_aborted_and_a_higher_limit_retries_it() {
    let s = scratch();
    let mut t = tracker(&s.path, 2);
    t.add_many(["a", "b"]).unwrap();
    for _ in 0..2 {
        assert!(t.should_try("a", Aborted::Skip).unwrap());
    }
    t.abort("b").unwrap();
    assert!(t.exhausted("a") && !t.aborted("a"));
    assert!(!t.exhausted("b") && t.aborted("b"));
    assert_eq!(
        (t.num_exhausted(), t.num_aborted(), t.num_todo()),
        (1, 1, 0)
    );
    assert_eq!(t.exhausted_keys().collect::<Vec<_>>(), ["a"]);
    assert!(
        t.summary().ends_with("aborted 1, exhausted 1"),
        "{}",
        t.summary()
    );
    t.close().unwrap();
    let t = tracker(&s.path, 3);
    assert!(!t.exhausted("a") && t.should_do("a", Aborted::Skip));
    assert_eq!((t.num_exhausted(), t.num_todo()), (0, 1));
}

#[test]
fn a_try_beyond_the_most_a_tracker_counts_is_refused_and_nothing_changes() {
    let s = scratch();
    let mut t = tracker(&s.path, 0);
    t.add("a").unwrap();
    t.update_task("a", |rec| rec["_tries"] = json!(u32::MAX))
        .unwrap();
    assert_eq!(t.tries("a"), u32::MAX);
    let err = t.increment_tries("a").unwrap_err();
    assert!(err.to_string().contains("4294967295"), "{err}");
    assert!(t.should_try("a", Aborted::Skip).is_err());
    assert!(t.claim_next("w").is_err());
    assert_eq!(t.tries("a"), u32::MAX);
    assert_eq!(t.get("a").unwrap().unwrap()["_tries"], json!(u32::MAX));
}

/// `remove` takes a task out with its counts, claims and retry times; the
/// rest is as before, also after a reopen.
#[test]
fn remove_takes_a_task_out_and_keeps_the_counts_right() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    let mut t = tastypod::TrackerOptions::new()
        .max_tries(3)
        .open(&path)
        .unwrap();
    t.add_many(["a", "b", "c", "d"]).unwrap();
    t.mark_done("a").unwrap();
    let claim = t.claim_next("w").unwrap();
    assert_eq!(claim.key(), Some("b"));
    assert!(t.remove("a").unwrap());
    assert!(t.remove("b").unwrap());
    assert!(!t.remove("zz").unwrap());
    let counts = t.counts();
    assert_eq!(
        (counts.total, counts.done, counts.claimed, counts.todo),
        (2, 0, 0, 2)
    );
    assert!(t.lease("b").is_none());
    assert_eq!(t.claim_next("w").unwrap().key(), Some("c"));
    drop(t);
    let t = tastypod::Tracker::open(&path).unwrap();
    assert_eq!(t.keys().collect::<Vec<_>>(), ["c", "d"]);
    assert_eq!(t.counts().total, 2);
}

/// `Tracker::from_opened` makes a tracker of a store opened as a pod (one
/// open for a look at a store that may be either), or hands the pod back.
#[test]
fn from_opened_reads_a_store_once_as_either() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    let mut t = tastypod::TrackerOptions::new()
        .max_tries(2)
        .open(&path)
        .unwrap();
    t.add_many(["a", "b"]).unwrap();
    t.mark_done("a").unwrap();
    drop(t);
    let pod: tastypod::Pod = tastypod::PodOptions::new()
        .read_only(true)
        .open(&path)
        .unwrap();
    let t = tastypod::Tracker::from_opened(pod).unwrap_or_else(|(e, _)| panic!("{e}"));
    assert_eq!(
        (t.counts().total, t.counts().done, t.max_tries()),
        (2, 1, 2)
    );
    let mut plain: tastypod::Pod = tastypod::Pod::open(dir.path().join("p")).unwrap();
    plain.insert("x", serde_json::json!([1])).unwrap();
    let (e, plain) = tastypod::Tracker::from_opened(plain)
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(e.kind(), tastypod::ErrorKind::NotATask { .. }),
        "{e}"
    );
    assert_eq!(plain.get("x").unwrap(), Some(serde_json::json!([1])));
}

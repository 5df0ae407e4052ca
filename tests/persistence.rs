//! Invariant: what was synced (explicitly, by the threshold, by drop or by
//! close) is what a later open sees, value for value.

mod common;
use common::*;
use serde_json::json;
use tastypod::{Durability, Pod, PodOptions};

#[test]
fn synced_values_survive_reopen() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("a", json!(1)).unwrap();
    pod.insert("b", json!({"x": [1, 2, "three"]})).unwrap();
    pod.sync().unwrap();
    drop(pod);
    let pod = open(&s.path);
    assert_eq!(
        contents(&pod),
        pairs(&[("a", json!(1)), ("b", json!({"x": [1, 2, "three"]}))])
    );
}

#[test]
fn drop_syncs_pending_changes() {
    let s = scratch();
    {
        let mut pod = open(&s.path);
        pod.insert("k", json!("v")).unwrap();
    }
    assert_eq!(open(&s.path).get("k").unwrap(), Some(json!("v")));
}

#[test]
fn drop_syncs_while_unwinding_from_a_panic() {
    let s = scratch();
    let path = s.path.clone();
    let result = std::panic::catch_unwind(move || {
        let mut pod = open(&path);
        pod.insert("before-panic", json!(true)).unwrap();
        panic!("job crashed");
    });
    assert!(result.is_err());
    assert_eq!(
        open(&s.path).get("before-panic").unwrap(),
        Some(json!(true))
    );
}

#[test]
fn close_syncs_and_reports_success() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("k", json!(1)).unwrap();
    pod.close().unwrap();
    assert_eq!(open(&s.path).len(), 1);
}

#[test]
fn floats_round_trip_exactly() {
    let s = scratch();
    let values = [5e49, 0.1, 1.0 / 3.0, f64::MAX, f64::MIN_POSITIVE, -2.5e-308];
    let mut pod = open(&s.path);
    for (i, v) in values.iter().enumerate() {
        pod.insert(&i.to_string(), json!(v)).unwrap();
    }
    pod.compact().unwrap();
    drop(pod);
    let pod = open(&s.path);
    for (i, v) in values.iter().enumerate() {
        assert_eq!(pod.get(&i.to_string()).unwrap().unwrap().as_f64(), Some(*v));
    }
}

#[test]
fn nan_and_infinity_are_refused_never_stored_as_null() {
    let s = scratch();
    let mut pod: Pod<Vec<f64>> = Pod::open_typed(&s.path).unwrap();
    pod.insert("x", vec![1.5]).unwrap();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = pod.insert("x", vec![2.0, bad]).unwrap_err();
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            cause.is_some_and(|c| c.contains("has no JSON form")),
            "{err}"
        );
        assert!(pod.insert("y", vec![bad]).is_err());
    }
    assert_eq!(pod.get("x").unwrap(), Some(vec![1.5]));
    assert!(!pod.contains_key("y"));
    pod.close().unwrap();
    let pod: Pod<Vec<f64>> = Pod::open_typed(&s.path).unwrap();
    assert_eq!(pod.get("x").unwrap(), Some(vec![1.5]));
    assert_eq!(pod.len(), 1);
}

#[test]
fn odd_keys_and_strings_stay_on_one_line() {
    let s = scratch();
    let keys = [
        "",
        "with\nnewline",
        "tab\there",
        "quote\"",
        "back\\slash",
        "ünïcødé ☃",
        "\u{0}\u{1f}",
    ];
    let mut pod = open(&s.path);
    for k in keys {
        pod.insert(k, json!(format!("{k}\r\n{k}"))).unwrap();
    }
    pod.sync().unwrap();
    drop(pod);
    let bytes = log_bytes(&s.path);
    // The header, the sync's batch line, one line per key.
    assert_eq!(
        bytes.iter().filter(|&&b| b == b'\n').count(),
        keys.len() + 2
    );
    for line in String::from_utf8(bytes).unwrap().lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    let pod = open(&s.path);
    let got: Vec<String> = pod.keys().map(String::from).collect();
    assert_eq!(got, keys);
    for k in keys {
        assert_eq!(pod.get(k).unwrap(), Some(json!(format!("{k}\r\n{k}"))));
    }
}

#[test]
fn process_durability_still_writes_on_sync() {
    let s = scratch();
    let mut pod: Pod = PodOptions::new()
        .durability(Durability::Process)
        .open(&s.path)
        .unwrap();
    pod.insert("k", json!(1)).unwrap();
    pod.sync().unwrap();
    assert!(
        String::from_utf8(log_bytes(&s.path))
            .unwrap()
            .contains("\"k\":\"k\"")
    );
}

#[test]
fn revert_discards_unsynced_changes() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("kept", json!(1)).unwrap();
    pod.sync().unwrap();
    pod.insert("kept", json!(2)).unwrap();
    pod.insert("new", json!(3)).unwrap();
    pod.remove("kept").unwrap();
    pod.revert().unwrap();
    assert_eq!(contents(&pod), pairs(&[("kept", json!(1))]));
    assert_eq!(pod.dirty_len(), 0);
}

#[test]
fn get_mut_and_update_mark_dirty_and_reach_disk() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("a", json!({"n": 0, "sub": {"list": []}}))
        .unwrap();
    pod.sync().unwrap();
    if let Some(v) = pod.get_mut("a").unwrap() {
        v["sub"]["list"].as_array_mut().unwrap().push(json!(1));
    }
    assert_eq!(pod.dirty_keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(pod.update("a", |v| v["n"] = json!(5)).unwrap(), Some(()));
    assert_eq!(pod.update("missing", |_| ()).unwrap(), None);
    drop(pod);
    let pod = open(&s.path);
    assert_eq!(
        pod.get("a").unwrap(),
        Some(json!({"n": 5, "sub": {"list": [1]}}))
    );
}

#[test]
fn get_never_marks_dirty() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("a", json!(1)).unwrap();
    pod.sync().unwrap();
    let _ = pod.get("a").unwrap();
    let _ = pod.get("zzz").unwrap();
    let _ = pod.iter().count();
    assert_eq!(pod.dirty_len(), 0);
}

#[test]
fn mark_dirty_rewrites_a_key() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("a", json!(1)).unwrap();
    pod.sync().unwrap();
    let before = log_bytes(&s.path).len();
    assert!(pod.mark_dirty("a").unwrap());
    assert!(!pod.mark_dirty("nope").unwrap());
    pod.sync().unwrap();
    assert!(log_bytes(&s.path).len() > before);
}

#[test]
fn sync_key_writes_one_key_and_keeps_order() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("a", json!(1)).unwrap();
    pod.insert("b", json!(2)).unwrap();
    pod.insert("c", json!(3)).unwrap();
    pod.sync_key("b").unwrap();
    assert_eq!(pod.dirty_keys().collect::<Vec<_>>(), ["c"]);
    // Simulate a crash: the unsynced "c" is lost, a and b are on disk in order.
    let on_disk = open_ro(&s.path);
    assert_eq!(
        contents(&on_disk),
        pairs(&[("a", json!(1)), ("b", json!(2))])
    );
}

#[test]
fn extend_inserts_in_order() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.extend([("x", json!(1)), ("y", json!(2))]).unwrap();
    pod.extend(vec![(String::from("z"), json!(3))]).unwrap();
    assert_eq!(pod.keys().collect::<Vec<_>>(), ["x", "y", "z"]);
}

#[test]
fn stats_track_live_and_dead_bytes() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("a", json!(1)).unwrap();
    pod.sync().unwrap();
    let st = pod.stats();
    assert_eq!(st.dead_bytes, 0);
    assert_eq!(st.log_bytes, records_len(&s.path));
    pod.insert("a", json!(2)).unwrap();
    pod.sync().unwrap();
    let st = pod.stats();
    assert!(st.dead_bytes > 0);
    assert_eq!(st.log_bytes, records_len(&s.path));
    drop(pod);
    let reopened = open(&s.path).stats();
    assert_eq!(reopened.live_bytes, st.live_bytes);
    assert_eq!(reopened.log_bytes, st.log_bytes);
}

#[test]
fn a_sync_of_megabytes_of_inserts_writes_every_chunk_in_order() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.hold();
    let pad = "p".repeat(200);
    for i in 0..20_000 {
        pod.insert_ref(&format!("k{i:05}"), &json!({"i": i, "pad": pad}))
            .unwrap();
    }
    pod.sync().unwrap();
    // A second batch in place and inserted, over several chunks again.
    for i in (0..20_000).step_by(3) {
        pod.get_mut(&format!("k{i:05}")).unwrap().unwrap()["i"] = json!(-i);
    }
    for i in 20_000..30_000 {
        pod.insert(&format!("k{i:05}"), json!({"i": i, "pad": pad}))
            .unwrap();
    }
    pod.sync().unwrap();
    let before = contents(&pod);
    assert_eq!(before.len(), 30_000);
    drop(pod);
    let pod = open(&s.path);
    assert!(pod.recovery().is_clean());
    assert_eq!(contents(&pod), before);
    assert_eq!(pod.get("k00003").unwrap().unwrap()["i"], json!(-3));
    assert_eq!(pod.get("k29999").unwrap().unwrap()["i"], json!(29_999));
}

#[test]
fn a_record_longer_than_the_maximum_record_size_is_refused_and_changes_nothing() {
    let s = scratch();
    let mut pod: Pod = PodOptions::new()
        .max_record_size(100)
        .open(&s.path)
        .unwrap();
    pod.insert("a", json!(1)).unwrap();
    pod.sync().unwrap();
    let err = pod.insert("b", json!("x".repeat(100))).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            tastypod::ErrorKind::RecordTooLarge { max: 100, .. }
        ),
        "{err}"
    );
    assert_eq!(err.key(), Some("b"));
    assert!(!pod.contains_key("b"));
    // A change in place that grows too big is refused by the sync.
    pod.update("a", |v| *v = json!("y".repeat(100))).unwrap();
    assert!(pod.sync().is_err());
    pod.revert().unwrap();
    pod.close().unwrap();
    assert_eq!(contents(&open(&s.path)), pairs(&[("a", json!(1))]));
    // Values deeper than JSON readers take are refused too.
    let mut pod = open(&s.path);
    let deep: serde_json::Value =
        serde_json::from_str(&format!("{}{}", "[".repeat(127), "]".repeat(127))).unwrap();
    assert!(matches!(
        pod.insert("deep", deep).unwrap_err().kind(),
        tastypod::ErrorKind::Encode { .. }
    ));
}

/// `insert_json` stores the text as written: members keep their order and
/// spacing, on disk and through `get_json`, across a reopen; a text whose
/// whitespace holds a newline is written anew on one line.
#[test]
fn insert_json_stores_the_text_as_written() {
    let s = common::scratch();
    let mut pod: tastypod::Pod = tastypod::Pod::open(&s.path).unwrap();
    pod.insert_json("a", r#"{"z": 1, "a": [true, null]}"#)
        .unwrap();
    pod.insert_json("b", "[1,\n2]").unwrap();
    assert_eq!(
        pod.get_json("a").unwrap().as_deref(),
        Some(r#"{"z": 1, "a": [true, null]}"#)
    );
    assert_eq!(
        pod.get("a").unwrap(),
        Some(serde_json::json!({"a": [true, null], "z": 1}))
    );
    drop(pod);
    let text = String::from_utf8(common::log_bytes(&s.path)).unwrap();
    assert!(
        text.contains(r#","v":{"z": 1, "a": [true, null]}}"#),
        "{text}"
    );
    assert_eq!(text.lines().count(), 4, "{text}"); // header, batch, a, b
    let pod: tastypod::Pod = tastypod::Pod::open(&s.path).unwrap();
    assert_eq!(
        pod.get_json("a").unwrap().as_deref(),
        Some(r#"{"z": 1, "a": [true, null]}"#)
    );
    assert_eq!(pod.get("b").unwrap(), Some(serde_json::json!([1, 2])));
    assert!(pod.recovery().is_clean());
}

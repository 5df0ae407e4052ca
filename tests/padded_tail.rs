//! The exclusive mode's writer keeps newline padding past its last record
//! and writes over it (DESIGN.md, "The padded tail"): the padding is there
//! while the store is open and gone after a clean close; a crash at any
//! byte of a write over it opens as the last complete state, cutting one
//! partial record without keeping a copy; a read-only handle sees records
//! written over the padding; the multi-process mode reads a padded log.

use serde_json::json;
use std::path::{Path, PathBuf};
use tastypod::sim::{SIM_PADDING, SimStorage, Tail};
use tastypod::{Durability, Pod, PodOptions};

fn store() -> PathBuf {
    PathBuf::from("/sim/store")
}

fn log() -> PathBuf {
    store().join("pod.log")
}

fn open_sim(sim: &SimStorage) -> Pod {
    PodOptions::new()
        .simulated(sim.clone())
        .open(store())
        .unwrap()
}

/// The bytes after the last non-newline byte of `bytes`.
fn trailing_newlines(bytes: &[u8]) -> usize {
    bytes.iter().rev().take_while(|&&b| b == b'\n').count()
}

#[test]
fn the_writer_pads_while_open_and_cuts_the_padding_at_close() {
    let sim = SimStorage::new();
    let mut pod = open_sim(&sim);
    for i in 0..3 {
        pod.insert(&format!("k{i}"), json!(i)).unwrap();
        pod.sync().unwrap();
    }
    let open = sim.read(&log()).unwrap();
    assert!(
        trailing_newlines(&open) > 1,
        "no padding while open: {:?}",
        String::from_utf8_lossy(&open)
    );
    // The padding was made durable with the records.
    assert_eq!(sim.read_durable(&log()).unwrap(), open);
    pod.close().unwrap();
    let closed = sim.read(&log()).unwrap();
    assert_eq!(trailing_newlines(&closed), 1, "padding left after close");
    assert_eq!(&open[..closed.len()], &closed[..]);
}

#[test]
fn a_crash_at_any_byte_of_a_write_over_the_padding_opens_as_the_last_state() {
    let sim = SimStorage::new();
    let mut pod = open_sim(&sim);
    for i in 0..3 {
        pod.insert(&format!("k{i}"), json!(i)).unwrap();
        pod.sync().unwrap();
    }
    let durable = sim.read_durable(&log()).unwrap();
    assert!(trailing_newlines(&durable) > 1, "no padding");
    // A sync of two records (one batch) written over the padding, whose
    // fsync fails: the crash images keep any prefix of what it wrote.
    pod.insert("new", json!("a value long enough to span bytes"))
        .unwrap();
    pod.insert("two", json!(2)).unwrap();
    sim.fail_next("fsync");
    assert!(pod.sync().is_err());
    assert_eq!(
        sim.read(&log()).unwrap().len(),
        durable.len(),
        "the write went over the padding"
    );
    let unsynced = sim.unsynced_len(&log());
    assert!(unsynced > 50, "{unsynced}");
    drop(pod);
    // The write starts with the batch line: a cut inside it leaves one
    // partial record, a cut after it a batch cut short.
    let written = sim.read(&log()).unwrap();
    let start = durable.len() - trailing_newlines(&durable) + 1;
    let batch_line = written[start..].iter().position(|&b| b == b'\n').unwrap();
    assert!(written[start..].starts_with(b"{\"c\":\""));
    assert!(String::from_utf8_lossy(&written[start..start + batch_line]).contains("batch"));
    for keep in 0..=unsynced {
        let image = sim.crash_image(Some(&log()), Tail::Kept(keep));
        let mut pod = open_sim(&image);
        let whole = keep == unsynced;
        let keys: Vec<String> = pod.keys().map(str::to_string).collect();
        if whole {
            assert_eq!(keys, ["k0", "k1", "k2", "new", "two"], "keep {keep}");
        } else {
            assert_eq!(keys, ["k0", "k1", "k2"], "keep {keep}");
        }
        let report = pod.recovery().clone();
        match &report.torn_tail {
            // A cut inside the batch line or a record is one partial
            // record: cut, no copy. A batch cut short after its line is
            // kept aside (checksums hold in it).
            Some(torn) => {
                assert!(!whole && keep > 0, "keep {keep}: {torn:?}");
                assert_eq!(
                    torn.partial_record,
                    keep < batch_line,
                    "keep {keep}: {torn:?}"
                );
                assert_eq!(
                    torn.copy.is_none(),
                    torn.partial_record,
                    "keep {keep}: {torn:?}"
                );
            }
            None => assert!(whole || keep == 0, "keep {keep}: nothing reported"),
        }
        // The next write goes right after the last record kept.
        pod.insert("after", json!(true)).unwrap();
        pod.close().unwrap();
        let pod = open_sim(&image);
        assert!(
            pod.recovery().is_clean(),
            "keep {keep}: {:?}",
            pod.recovery()
        );
        assert_eq!(pod.get("after").unwrap(), Some(json!(true)), "keep {keep}");
        assert_eq!(pod.len(), keys.len() + 1, "keep {keep}");
    }
}

#[test]
fn crash_images_of_the_padding_growth_keep_everything_synced() {
    // Small records synced one by one: the padding (SIM_PADDING bytes) is
    // extended many times; a crash with any part of the unsynced bytes
    // kept opens with every synced key.
    let sim = SimStorage::new();
    let mut pod = open_sim(&sim);
    let mut synced = Vec::new();
    for i in 0..40 {
        let key = format!("key-{i}");
        pod.insert(&key, json!({ "n": i, "pad": "x".repeat(i % 7 * 9) }))
            .unwrap();
        let unsynced = sim.unsynced_len(&log());
        for tail in [
            Tail::Dropped,
            Tail::Kept(unsynced),
            Tail::Kept(unsynced / 2),
            Tail::Zeroed(unsynced),
        ] {
            let image = sim.crash_image(Some(&log()), tail);
            let reopened = open_sim(&image);
            let keys: Vec<&str> = reopened.keys().collect();
            assert_eq!(keys, synced, "key {i}, {tail:?}");
        }
        pod.sync().unwrap();
        synced.push(key);
        assert!(sim.read(&log()).unwrap().len() as u64 <= 2 * SIM_PADDING + 4096);
    }
}

/// A real store on disk, exclusive mode, durable syncs.
fn open_disk(dir: &Path) -> Pod {
    PodOptions::new()
        .durability(Durability::Full)
        .open(dir)
        .unwrap()
}

#[test]
fn a_read_only_handle_sees_records_written_over_the_padding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let mut writer = open_disk(&path);
    for i in 0..3 {
        writer.insert(&format!("k{i}"), json!(i)).unwrap();
        writer.sync().unwrap();
    }
    let bytes = std::fs::read(path.join("pod.log")).unwrap();
    assert!(trailing_newlines(&bytes) > 1000, "no padding on disk");
    let mut reader: Pod = PodOptions::new().read_only(true).open(&path).unwrap();
    assert_eq!(reader.len(), 3);
    for i in 3..6 {
        writer.insert(&format!("k{i}"), json!(i)).unwrap();
        writer.sync().unwrap();
        reader.refresh().unwrap();
        assert_eq!(reader.len(), i + 1);
        assert_eq!(reader.get(&format!("k{i}")).unwrap(), Some(json!(i)));
    }
    // The file did not grow: the records went over the padding.
    assert_eq!(
        std::fs::metadata(path.join("pod.log")).unwrap().len(),
        bytes.len() as u64
    );
    writer.close().unwrap();
    reader.refresh().unwrap();
    assert_eq!(reader.len(), 6);
    let closed = std::fs::read(path.join("pod.log")).unwrap();
    assert_eq!(trailing_newlines(&closed), 1);
}

#[test]
fn a_padded_log_left_by_a_crash_opens_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let mut writer = open_disk(&path);
    for i in 0..3 {
        writer.insert(&format!("k{i}"), json!(i)).unwrap();
        writer.sync().unwrap();
    }
    let padded = std::fs::read(path.join("pod.log")).unwrap();
    writer.close().unwrap();
    // What a crash would have left: the records and the padding.
    std::fs::write(path.join("pod.log"), &padded).unwrap();

    let multi: Pod = PodOptions::new().multi_process(true).open(&path).unwrap();
    assert!(multi.recovery().is_clean(), "{:?}", multi.recovery());
    let mut other: Pod = PodOptions::new().multi_process(true).open(&path).unwrap();
    drop(multi);
    other.insert("k3", json!(3)).unwrap();
    other.sync().unwrap();
    drop(other);

    let mut exclusive = open_disk(&path);
    assert!(exclusive.recovery().is_clean());
    let keys: Vec<&str> = exclusive.keys().collect();
    assert_eq!(keys, ["k0", "k1", "k2", "k3"]);
    exclusive.insert("k4", json!(4)).unwrap();
    exclusive.close().unwrap();
    let pod = open_disk(&path);
    assert_eq!(pod.len(), 5);
    assert_eq!(pod.get("k4").unwrap(), Some(json!(4)));
}

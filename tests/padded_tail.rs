//! The exclusive mode's writer keeps newline padding past its last record
//! and writes over it (DESIGN.md, "The padded tail"): the padding is there
//! while the store is open and gone after a clean close; a crash at any
//! byte of a write over it opens as the last complete state, cutting one
//! partial record without keeping a copy; a read-only handle sees records
//! written over the padding; the multi-process mode reads a padded log.

use serde_json::json;
use std::path::{Path, PathBuf};
use tastypod::sim::{SimStorage, Tail};
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

/// The room left in the padding of the log at `path` in `sim`.
fn room(sim: &SimStorage) -> usize {
    trailing_newlines(&sim.read(&log()).unwrap()).saturating_sub(1)
}

/// Inserts `k0` .. `k{n-1}`, syncing each: small syncs in a row, which
/// start the padding.
fn sync_one_by_one(pod: &mut Pod, n: usize) {
    for i in 0..n {
        pod.insert(&format!("k{i}"), json!(i)).unwrap();
        pod.sync().unwrap();
    }
}

/// Whether `bytes` hold a blank line before their last record.
fn blank_line_inside(bytes: &[u8]) -> bool {
    let content = &bytes[..bytes.len() - trailing_newlines(bytes) + 1];
    content.windows(2).any(|w| w == b"\n\n")
}

#[test]
fn the_writer_pads_while_open_and_cuts_the_padding_at_close() {
    let sim = SimStorage::new();
    let mut pod = open_sim(&sim);
    // A single sync does not pad; padding starts after a few small syncs
    // in a row.
    pod.insert("k0", json!(0)).unwrap();
    pod.sync().unwrap();
    assert_eq!(
        trailing_newlines(&sim.read(&log()).unwrap()),
        1,
        "padded after one sync"
    );
    sync_one_by_one(&mut pod, 8);
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
    let mut synced = Vec::new();
    for i in 0..60 {
        pod.insert(&format!("k{i}"), json!(i)).unwrap();
        pod.sync().unwrap();
        synced.push(format!("k{i}"));
        if i >= 6 && room(&sim) >= 150 {
            break;
        }
    }
    assert!(room(&sim) >= 150, "no room in the padding");
    let durable = sim.read_durable(&log()).unwrap();
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
        let mut expected = synced.clone();
        if whole {
            expected.extend(["new".to_string(), "two".to_string()]);
        }
        assert_eq!(keys, expected, "keep {keep}");
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
        let bytes = image.read(&log()).unwrap();
        assert!(
            !blank_line_inside(&bytes),
            "keep {keep}: a gap before the new record"
        );
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
fn power_losses_during_every_fsync_around_the_padding_keep_everything_synced() {
    // Small records synced one by one: the padding (SIM_PADDING bytes) is
    // extended many times. A power loss during any fsync, keeping none,
    // half or all of what it was writing, opens with every key synced
    // before it, and the key being synced or not; a record cut short is
    // one partial record, cut without a copy.
    let sim = SimStorage::new();
    let mut pod = open_sim(&sim);
    sim.keep_images_before_fsyncs();
    // Records of 40 to 180 bytes: over 16 KiB of them, so that a few
    // writes over the padding cross a page.
    let keys: Vec<String> = (0..160).map(|i| format!("key-{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        pod.insert(key, json!({ "n": i, "pad": "x".repeat(i % 7 * 20) }))
            .unwrap();
        pod.sync().unwrap();
    }
    pod.close().unwrap();
    let images = sim.take_images_before_fsyncs();
    assert!(images.len() >= 160, "{} fsyncs", images.len());
    let mut padded = 0;
    let mut torn = 0;
    let mut across = 0;
    for (n, image) in images.iter().enumerate() {
        let durable = image.read_durable(&log()).unwrap_or_default();
        let pads = trailing_newlines(&durable) > 1;
        padded += usize::from(pads);
        let written = image.read(&log()).unwrap_or_default();
        let content = durable.len() - trailing_newlines(&durable) + 1;
        across += usize::from(
            pads && written.len() > content
                && content / 4096 != (content + image.unsynced_len(&log())) / 4096,
        );
        let unsynced = image.unsynced_len(&log());
        let before: Vec<String> = {
            let pod = open_sim(&image.crash_image(Some(&log()), Tail::Dropped));
            pod.keys().map(str::to_string).collect()
        };
        assert_eq!(before, keys[..before.len()], "fsync {n}");
        for tail in [
            Tail::Kept(unsynced),
            Tail::Kept(unsynced / 2),
            Tail::Zeroed(unsynced),
            Tail::LaterPages,
        ] {
            let crashed = image.crash_image(Some(&log()), tail);
            let pod = open_sim(&crashed);
            let got: Vec<String> = pod.keys().map(str::to_string).collect();
            let with_next = keys[..(before.len() + 1).min(keys.len())].to_vec();
            assert!(
                got == before || got == with_next,
                "fsync {n}, {tail:?}: {got:?}"
            );
            if let Some(t) = &pod.recovery().torn_tail {
                torn += 1;
                // A prefix is one partial record; the end of a record
                // without its start (a later page only) is kept aside.
                if tail != Tail::LaterPages {
                    assert!(
                        t.partial_record && t.copy.is_none(),
                        "fsync {n}, {tail:?}: {t:?}"
                    );
                } else {
                    assert_eq!(t.copy.is_none(), t.partial_record, "fsync {n}: {t:?}");
                }
            }
        }
    }
    assert!(padded > 100, "only {padded} fsyncs with padding");
    assert!(torn > 100, "only {torn} torn images");
    assert!(
        across > 2,
        "only {across} writes over the padding across a page"
    );
}

#[test]
fn a_sync_of_several_records_across_pages_cuts_the_padding_first() {
    let sim = SimStorage::new();
    let mut pod = open_sim(&sim);
    sync_one_by_one(&mut pod, 8);
    assert!(
        trailing_newlines(&sim.read(&log()).unwrap()) > 1,
        "no padding"
    );
    // A sync of one record goes over the padding: no cut.
    sim.fail_next("truncate");
    pod.insert("one", json!(1)).unwrap();
    pod.sync().unwrap();
    // A sync of many records across pages cuts the padding first (a power
    // loss could keep a later page of it without an earlier one).
    for i in 0..60 {
        pod.insert(&format!("many-{i}"), json!("v".repeat(100)))
            .unwrap();
    }
    let err = pod.sync().unwrap_err();
    assert!(err.to_string().contains("cut the padding"), "{err}");
}

#[test]
fn damage_at_the_end_of_a_clean_log_is_kept_aside_not_taken_for_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let mut pod = open_disk(&path);
    pod.insert("a", json!(1)).unwrap();
    pod.sync().unwrap();
    // Its own sync: a record line, not the end of a batch.
    pod.insert("b", json!("the last record")).unwrap();
    pod.close().unwrap();
    // A byte of the last record flipped: its line is whole, with nothing
    // after it. No crash leaves that: it is kept aside when cut.
    let log = path.join("pod.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.len() - 5;
    bytes[at] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();
    let pod = open_disk(&path);
    let torn = pod.recovery().torn_tail.clone().unwrap();
    assert!(!torn.partial_record, "{torn:?}");
    assert!(torn.copy.is_some(), "{torn:?}");
    drop(pod);
    // A store of a damaged header alone is not taken for an empty one.
    let header_only = dir.path().join("h");
    std::fs::create_dir(&header_only).unwrap();
    std::fs::write(
        header_only.join("pod.log"),
        b"{\"c\":\"00000000\",\"format\":\"tastypod\",\"version\":3}\n",
    )
    .unwrap();
    let err = PodOptions::new().open::<serde_json::Value>(&header_only);
    assert!(err.is_err(), "a damaged header opened as an empty store");
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
    sync_one_by_one(&mut writer, 8);
    let bytes = std::fs::read(path.join("pod.log")).unwrap();
    assert!(trailing_newlines(&bytes) > 1000, "no padding on disk");
    let mut reader: Pod = PodOptions::new().read_only(true).open(&path).unwrap();
    assert_eq!(reader.len(), 8);
    for i in 8..11 {
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
    assert_eq!(reader.len(), 11);
    let closed = std::fs::read(path.join("pod.log")).unwrap();
    assert_eq!(trailing_newlines(&closed), 1);
}

#[test]
fn a_padded_log_left_by_a_crash_opens_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let mut writer = open_disk(&path);
    sync_one_by_one(&mut writer, 8);
    let padded = std::fs::read(path.join("pod.log")).unwrap();
    writer.close().unwrap();
    // What a crash would have left: the records and the padding.
    std::fs::write(path.join("pod.log"), &padded).unwrap();

    let multi: Pod = PodOptions::new().multi_process(true).open(&path).unwrap();
    assert!(multi.recovery().is_clean(), "{:?}", multi.recovery());
    let mut other: Pod = PodOptions::new().multi_process(true).open(&path).unwrap();
    drop(multi);
    // The multi-process mode appends after the blank lines and never pads,
    // however many small syncs it makes.
    for n in 0..8 {
        other.insert("k8", json!(8 + n)).unwrap();
        other.sync().unwrap();
    }
    let bytes = std::fs::read(path.join("pod.log")).unwrap();
    assert_eq!(
        trailing_newlines(&bytes),
        1,
        "the multi-process mode padded"
    );
    assert!(blank_line_inside(&bytes));
    drop(other);

    let mut exclusive = open_disk(&path);
    assert!(exclusive.recovery().is_clean());
    let keys: Vec<String> = exclusive.keys().map(str::to_string).collect();
    let expected: Vec<String> = (0..9).map(|i| format!("k{i}")).collect();
    assert_eq!(keys, expected);
    assert_eq!(exclusive.get("k8").unwrap(), Some(json!(15)));
    exclusive.insert("k9", json!(9)).unwrap();
    exclusive.close().unwrap();
    let pod = open_disk(&path);
    assert_eq!(pod.len(), 10);
    assert_eq!(pod.get("k9").unwrap(), Some(json!(9)));
}

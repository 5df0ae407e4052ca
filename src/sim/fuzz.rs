//! The fuzz targets' entry points (`fuzz/fuzz_targets/`), replayed on
//! saved inputs by `tests/fuzz_regressions.rs`: `replay` (any bytes as a
//! log) and `ops` (a workload with a crash point, on one writer or two).

use super::SimStorage;
use super::two_writers::{Step, run_two};
use super::workload::{Op, check, check_passed, contents, log, open_sim, run, store};
use crate::{Compaction, Pod, PodOptions};
use serde_json::Value;

/// Fuzz target `replay`: any bytes as a log either fail to open with an
/// error or open; when they open, compacting and reopening gives the same
/// keys and value texts in the same order; every reader of a log agrees on
/// it ([`super::agreement`]); the quick JSON scan never accepts what
/// serde_json refuses. Panics on a violation.
pub fn fuzz_replay(data: &[u8]) {
    assert!(
        crate::json::quick_is_sound(data),
        "the quick JSON scan accepted what serde_json refuses"
    );
    let fixed = fix_checksums(data);
    for bytes in [data, &fixed] {
        // The same bytes with every checksum made right, so the record
        // grammar gets fuzzed too, not only the checksum check.
        replay_and_compact(bytes);
        super::agreement::check(bytes);
    }
}

/// Rewrites the checksum field of every line that has one to match its body.
fn fix_checksums(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for line in data.split_inclusive(|&b| b == b'\n') {
        let start = out.len();
        out.extend_from_slice(line);
        let body_end = out.len() - usize::from(line.ends_with(b"\n"));
        if body_end >= start + 16 && out[start..].starts_with(b"{\"c\":\"") {
            let crc = crc32fast::hash(&out[start + 16..body_end]);
            out[start + 6..start + 14].copy_from_slice(format!("{crc:08x}").as_bytes());
        }
    }
    out
}

fn replay_and_compact(data: &[u8]) {
    let sim = SimStorage::new();
    sim.put_file(&log(), data);
    let texts = |pod: &Pod| -> Vec<(String, String)> {
        pod.iter_json()
            .filter_map(|e| e.ok())
            .map(|(k, v)| (k.to_string(), v.into_owned()))
            .collect()
    };
    let Ok(mut pod) = PodOptions::new()
        .compaction(Compaction::Manual)
        .simulated(sim.clone())
        .open::<Value>(store())
    else {
        return;
    };
    let before = texts(&pod);
    let keys = pod.len();
    assert_eq!(pod.keys().count(), keys);
    assert!(
        pod.compact().is_ok(),
        "compaction failed on a store that opened"
    );
    drop(pod);
    let reopened = match PodOptions::new()
        .read_only(true)
        .simulated(sim)
        .open::<Value>(store())
    {
        Ok(p) => p,
        Err(e) => unreachable!("a compacted store does not reopen: {e}"),
    };
    assert_eq!(texts(&reopened), before, "compaction changed the contents");
    assert!(reopened.recovery().is_clean());
}

/// Reads a workload from bytes, two bytes a step.
fn ops_of(bytes: &[u8]) -> Vec<Op> {
    bytes
        .chunks(2)
        .take(200)
        .map(|c| {
            let (a, b) = (
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            );
            let k = a % 8;
            match a >> 3 {
                0..=9 => Op::Insert(k, u32::from(b)),
                10..=14 => Op::Remove(k),
                15..=18 => Op::Mutate(k),
                19..=24 => Op::Sync,
                25..=26 => Op::SyncKey(k),
                27..=29 => Op::Compact,
                _ => Op::Reopen,
            }
        })
        .collect()
}

/// Fuzz target `ops`: bytes become a workload and a crash point; the crash
/// image must hold everything acknowledged. Panics on a violation.
///
/// The first byte is the crash point; if the second byte is odd, the
/// workload runs on two writers of the multi-process mode: the first third
/// of the bytes after it pick the writer of each step, the rest are the
/// steps (`fuzz_two`).
pub fn fuzz_ops(data: &[u8]) {
    let Some((&crash, rest)) = data.split_first() else {
        return;
    };
    if let Some((&mode, rest)) = rest.split_first()
        && mode & 1 == 1
    {
        let (writers, ops) = rest.split_at(rest.len() / 3);
        fuzz_two(crash, ops_of(ops), writers);
        return;
    }
    let script = ops_of(rest);
    let sim = SimStorage::new();
    sim.fail_at(Some((u64::from(crash) + 1, super::FailMode::FromThenOn)));
    let trace = run(&sim, &script);
    let unsynced = sim.unsynced_len(&log());
    for tail in [
        super::Tail::Dropped,
        super::Tail::Kept(unsynced),
        super::Tail::Kept(unsynced / 3),
        super::Tail::Zeroed(unsynced),
    ] {
        let image = sim.crash_image(Some(&log()), tail);
        match open_sim(&image) {
            Ok(pod) => {
                let what = format!("crash at {crash}, {tail:?}");
                check(&contents(&pod), &trace, &what);
                check_passed(&contents(&pod), &trace, &what);
            }
            Err(e) => unreachable!("crash image does not open: {e}"),
        }
    }
}

/// Fuzz target `ops`, multi-process half: bytes become a two-writer
/// workload and a crash point; the crash image must hold everything
/// acknowledged. Panics on a violation.
fn fuzz_two(crash: u8, script: Vec<Op>, writers: &[u8]) {
    let steps: Vec<Step> = script
        .into_iter()
        .zip(writers.iter().chain(std::iter::repeat(&0)))
        .map(|(op, &w)| (usize::from(w & 1), op))
        .collect();
    let sim = SimStorage::new();
    sim.fail_at(Some((u64::from(crash) + 1, super::FailMode::FromThenOn)));
    let trace = run_two(&sim, &steps);
    let log = log();
    let unsynced = sim.unsynced_len(&log);
    for tail in [
        super::Tail::Dropped,
        super::Tail::Kept(unsynced),
        super::Tail::Kept(unsynced / 3),
        super::Tail::Zeroed(unsynced),
    ] {
        let image = sim.crash_image(Some(&log), tail);
        match open_sim(&image) {
            Ok(pod) => {
                let what = format!("two writers, crash at {crash}, {tail:?}");
                check(&contents(&pod), &trace, &what);
                check_passed(&contents(&pod), &trace, &what);
            }
            Err(e) => unreachable!("crash image does not open: {e}"),
        }
    }
}

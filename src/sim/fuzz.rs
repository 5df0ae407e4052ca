//! The fuzz targets' entry points (`fuzz/fuzz_targets/`), replayed on
//! saved inputs by `tests/fuzz_regressions.rs`: `replay` (any bytes as a
//! log), `ops` (a workload with a crash point, on one writer or two) and
//! `hint` (a damaged or crafted hint file beside a real log).

use super::SimStorage;
use super::two_writers::{Step, run_two};
use super::workload::{
    Op, Trace, check, check_passed, contents, log, open_sim, run, run_shared, store,
};
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
/// steps (`fuzz_two`). If it is 2 modulo 4, the steps after it run through
/// a `SharedPod` under `Durability::EveryChange` (`run_shared`: each call
/// stages its records for the fsync's leader to write). Otherwise all the
/// bytes after the first are the steps of one exclusive writer.
pub fn fuzz_ops(data: &[u8]) {
    let Some((&crash, rest)) = data.split_first() else {
        return;
    };
    if let Some((&mode, after)) = rest.split_first() {
        if mode & 1 == 1 {
            let (writers, ops) = after.split_at(after.len() / 3);
            fuzz_two(crash, ops_of(ops), writers);
            return;
        }
        if mode & 3 == 2 {
            check_crash_images(crash, "shared handle", |sim| {
                run_shared(sim, &ops_of(after))
            });
            return;
        }
    }
    check_crash_images(crash, "one writer", |sim| run(sim, &ops_of(rest)));
}

/// Runs a workload on a simulated file system that crashes at operation
/// `crash` + 1; the crash images of its log (the unsynced tail dropped,
/// kept, partly kept, zeroed) must hold everything it acknowledged.
fn check_crash_images(crash: u8, what: &str, workload: impl FnOnce(&SimStorage) -> Trace) {
    let sim = SimStorage::new();
    sim.fail_at(Some((u64::from(crash) + 1, super::FailMode::FromThenOn)));
    let trace = workload(&sim);
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
                let what = format!("{what}, crash at {crash}, {tail:?}");
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

/// A store on the real file system (a hint needs a mapped log), with the
/// bytes of its log and of the hint of that log.
struct HintBase {
    log: Vec<u8>,
    hint: Vec<u8>,
}

/// The base store of the `hint` target, made once per process.
fn hint_base() -> &'static HintBase {
    static BASE: std::sync::OnceLock<HintBase> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        let dir = scratch_dir("base");
        let mut pod: Pod = match PodOptions::new().open(&dir) {
            Ok(p) => p,
            Err(e) => unreachable!("the hint target's base store: {e}"),
        };
        let ok = |r: crate::Result<()>| {
            if let Err(e) = r {
                unreachable!("the hint target's base store: {e}");
            }
        };
        for i in 0..300u32 {
            let value = serde_json::json!({"n": i, "s": "x".repeat((i % 40) as usize)});
            ok(pod.insert(&format!("k{i}"), value));
        }
        ok(pod.insert("tab\t\"q\" \u{e9}", serde_json::json!([1, "two"])));
        for i in (0..300).step_by(7) {
            ok(pod.insert(&format!("k{i}"), serde_json::json!(i)));
        }
        for i in (0..300).step_by(11) {
            ok(pod.remove(&format!("k{i}")).map(|_| ()));
        }
        ok(pod.sync());
        // Reopened, its values are in the mapped log, where a hint needs them.
        drop(pod);
        let pod: Pod = match PodOptions::new().open(&dir) {
            Ok(p) => p,
            Err(e) => unreachable!("the hint target's base store: {e}"),
        };
        let Some(hint) = pod.hint_bytes() else {
            unreachable!("the hint target's base store has no hint");
        };
        drop(pod);
        let log = std::fs::read(dir.join(crate::LOG_FILE)).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        HintBase { log, hint }
    })
}

/// A new directory under the system's temp directory.
fn scratch_dir(what: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "tastypod-fuzz-hint-{}-{what}-{n}",
        std::process::id()
    ))
}

/// Fuzz target `hint`: the base store's log (with bytes appended, as
/// later writes or a torn tail) beside its hint changed by the input:
/// bytes flipped, cut, or replaced, with its own checksum left or made
/// right again (a crafted hint). An open never panics; a hint whose
/// checksum was not remade never changes what the open finds (it is that
/// of a whole replay, or the same error); a crafted one may be believed,
/// but every key and value it gives can be read.
///
/// The input: byte 0 picks the mode (bit 0: remake the checksum; bits
/// 1-2: flip pairs, cut, the input as the hint, or none), byte 1 how many
/// of the next bytes are appended to the log, then the mode's bytes.
pub fn fuzz_hint(data: &[u8]) {
    let base = hint_base();
    let (mode, data) = data.split_first().map_or((0, &[][..]), |(m, d)| (*m, d));
    let (append, data) = data
        .split_first()
        .map_or((0, &[][..]), |(n, d)| (*n as usize, d));
    let (tail, data) = data.split_at(append.min(data.len()));
    let mut hint = base.hint.clone();
    match (mode >> 1) & 3 {
        0 => {
            for pair in data.chunks_exact(3) {
                let at = usize::from(u16::from_le_bytes([pair[0], pair[1]]));
                if let Some(b) = hint.get_mut(at % base.hint.len().max(1)) {
                    *b ^= pair[2];
                }
            }
        }
        1 => {
            let at = data
                .iter()
                .fold(0usize, |a, &b| a.wrapping_mul(251) + usize::from(b));
            hint.truncate(at % (hint.len() + 1));
        }
        2 => hint = data.to_vec(),
        _ => {}
    }
    let crafted = mode & 1 == 1 && hint.len() >= 4;
    if crafted {
        let body = hint.len() - 4;
        let crc = crc32fast::hash(&hint[..body]);
        hint[body..].copy_from_slice(&crc.to_le_bytes());
    }
    let dir = scratch_dir("case");
    let _ = std::fs::create_dir_all(&dir);
    let mut log = base.log.clone();
    log.extend_from_slice(tail);
    let written = std::fs::write(dir.join(crate::LOG_FILE), &log)
        .and_then(|()| std::fs::write(dir.join(crate::HINT_FILE), &hint));
    if written.is_ok() {
        check_hinted_open(&dir, crafted);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Opens `dir` through its hint and checks it against a whole replay
/// (of the log alone), unless the hint was `crafted`.
fn check_hinted_open(dir: &std::path::Path, crafted: bool) {
    // The log alone, in a store of its own: a whole replay.
    let alone = scratch_dir("alone");
    let _ = std::fs::create_dir_all(&alone);
    let _ = std::fs::copy(dir.join(crate::LOG_FILE), alone.join(crate::LOG_FILE));
    let whole = PodOptions::new().read_only(true).open::<Value>(&alone);
    let texts = |pod: &Pod| -> Vec<(String, String)> {
        pod.iter_json()
            .map(|e| match e {
                Ok((k, v)) => (k.to_string(), v.into_owned()),
                Err(e) => (String::from("error"), e.to_string()),
            })
            .collect()
    };
    let expected = whole
        .as_ref()
        .ok()
        .map(|p| (texts(p), p.stats().live_bytes));
    let hinted = PodOptions::new().open::<Value>(dir);
    match (&hinted, crafted) {
        (Ok(pod), true) => {
            // Believed or not, every key and value it gives can be read.
            for key in pod.keys() {
                let _ = pod.get(key);
            }
        }
        (Ok(pod), false) => {
            let found = Some((texts(pod), pod.stats().live_bytes));
            assert_eq!(
                found,
                expected,
                "a hint changed what an open finds: {:?}",
                pod.recovery().hint
            );
        }
        (Err(e), false) => {
            assert!(whole.is_err(), "a hint made an open fail: {e}");
        }
        (Err(_), true) => {}
    }
    drop(whole);
    let _ = std::fs::remove_dir_all(&alone);
}

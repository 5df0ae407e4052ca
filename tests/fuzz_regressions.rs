//! Invariant: every input the fuzzers ever found a bug with (saved under
//! `fuzz/regressions/<target>/`) stays fixed, and a few hand-made seeds of
//! each target pass.

use std::path::Path;
use tastypod::sim::fuzz::{fuzz_hint, fuzz_ops, fuzz_replay};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path.extension().is_none_or(|e| e != "md") {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

/// Runs `target` on every input saved for it (there must be some).
fn run_saved(target: &str, run: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty());
    for (name, data) in files {
        eprintln!("{target} {name}");
        run(&data);
    }
}

#[test]
fn replay_regressions_stay_fixed() {
    run_saved("replay", fuzz_replay);
}

#[test]
fn ops_regressions_stay_fixed() {
    run_saved("ops", fuzz_ops);
}

#[test]
fn replay_target_handles_hand_made_logs() {
    let mut good = Vec::new();
    for line in [
        "{\"c\":\"b8e828f5\",\"format\":\"tastypod\",\"version\":1}",
        "{\"c\":\"35de1cfb\",\"k\":\"alpha\",\"v\":{\"n\":1}}",
    ] {
        good.extend_from_slice(line.as_bytes());
        good.push(b'\n');
    }
    for data in [&b""[..], b"\n", b"\0\0", &good, &good[..good.len() - 3]] {
        fuzz_replay(data);
    }
}

#[test]
fn hint_regressions_stay_fixed() {
    run_saved("hint", fuzz_hint);
}

/// A short run of the `hint` target on pseudo-random inputs, so that CI
/// fuzzes the hint reader too (the full target is `cargo fuzz run hint`).
#[test]
fn hint_target_survives_random_damage() {
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..300 {
        let len = (next() % 64) as usize;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        fuzz_hint(&data);
    }
}

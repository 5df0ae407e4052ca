//! Invariant: `tastypod load` killed with SIGKILL at any moment leaves the
//! store as it was or with every record of the load, never part of it; a
//! killed `tastypod import-tastypy` or `export-tastypy` leaves no
//! destination or a whole one.

#[path = "../../tests/common/mod.rs"]
mod common;
use common::*;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `tastypod load` killed at any moment (while it reads its input, or
/// while it writes the new log) leaves the store as it was, or with every
/// record of the load: never part of it.
#[test]
fn a_load_killed_at_any_moment_is_all_or_nothing() {
    use std::io::Write;
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("before", json!(0)).unwrap();
    pod.close().unwrap();
    let mut input = Vec::new();
    for i in 0..20_000 {
        writeln!(input, "{{\"key\":\"k{i}\",\"value\":{{\"n\":{i}}}}}").unwrap();
    }
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let (mut none, mut all) = (0, 0);
    for round in 0..30 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tastypod"))
            .args(["load", s.path.to_str().unwrap(), "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Half the rounds stop feeding part-way; the rest feed everything.
        let upto = if round % 2 == 0 {
            (rng as usize) % input.len()
        } else {
            input.len()
        };
        let _ = stdin.write_all(&input[..upto]);
        if upto == input.len() {
            drop(stdin);
        }
        std::thread::sleep(Duration::from_micros(rng % 30_000));
        let _ = child.kill();
        child.wait().unwrap();
        let pod = open(&s.path);
        match pod.len() {
            1 => none += 1,
            20_001 => {
                all += 1;
                // Loaded: put the store back as it was for the next round.
                drop(pod);
                let mut pod = open(&s.path);
                for i in 0..20_000 {
                    pod.remove(&format!("k{i}")).unwrap();
                }
                pod.compact().unwrap();
                continue;
            }
            n => panic!("round {round}: a killed load left {n} keys"),
        }
        assert_eq!(pod.get("before").unwrap(), Some(json!(0)));
        // A load killed while it wrote leaves its batch cut short: dropped
        // whole, and kept aside (its records' checksums hold).
        if let Some(torn) = &pod.recovery().torn_tail {
            assert!(
                torn.first.reason.contains("cut short") && torn.copy.is_some(),
                "round {round}: {torn:?}"
            );
        }
    }
    assert!(
        none > 0,
        "no load was killed before it finished ({all} finished)"
    );
}

/// `tastypod import-tastypy` (and `export-tastypy`) killed at any moment
/// leaves no destination, or a complete one: never a half-made store that
/// would block the retry, or a directory tastypy would read in part (at
/// most a hidden `.NAME.partial-PID` sibling is left behind).
#[test]
fn an_import_or_export_killed_at_any_moment_leaves_nothing_or_everything() {
    use std::fmt::Write as _;
    let s = scratch();
    let old = s.dir.path().join("old");
    std::fs::create_dir(&old).unwrap();
    for part in 0..20 {
        let mut text = String::new();
        for i in part * 1000..(part + 1) * 1000 {
            writeln!(text, "\"k{i}\"\t{{\"n\": {i}}}").unwrap();
        }
        std::fs::write(old.join(format!("{part}.json")), text).unwrap();
    }
    let dest = s.dir.path().join("new");
    let (none, all) = kill_at_random_moments(
        || tastypod(&["import-tastypy", p(&old), p(&dest)]),
        |round| {
            if !dest.exists() {
                return false;
            }
            if !log_of(&dest).exists() {
                // Killed while the store was moved in, before its log:
                // only the lock file, which a retry accepts.
                let names: Vec<String> = std::fs::read_dir(&dest)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                assert!(
                    names.iter().all(|n| n == tastypod::LOCK_FILE),
                    "round {round}: a killed import left {names:?}"
                );
                return false;
            }
            let pod = open_ro(&dest);
            assert_eq!(
                pod.len(),
                20_000,
                "round {round}: a killed import left a partial store"
            );
            assert_eq!(pod.get("k19999").unwrap(), Some(json!({"n": 19999})));
            drop(pod);
            std::fs::remove_dir_all(&dest).unwrap();
            true
        },
    );
    assert!(none > 0 && all > 0, "{none} killed early, {all} finished");
    // The way back: an export killed at any moment leaves no directory, or
    // one with every part.
    let store = s.dir.path().join("store");
    assert!(
        tastypod(&["import-tastypy", p(&old), p(&store)])
            .wait()
            .unwrap()
            .success()
    );
    let (none, all) = kill_at_random_moments(
        || tastypod(&["export-tastypy", p(&store), p(&dest)]),
        |round| {
            if !dest.exists() {
                return false;
            }
            let parts = std::fs::read_dir(&dest).unwrap().count();
            assert_eq!(
                parts, 20,
                "round {round}: a killed export left {parts} parts"
            );
            std::fs::remove_dir_all(&dest).unwrap();
            true
        },
    );
    assert!(none > 0 && all > 0, "{none} killed early, {all} finished");
}

fn tastypod(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tastypod"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn p(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

/// Runs `start` once to the end to time it, then 20 times killed after a
/// random time up to twice that; `finished(round)` checks what a killed run
/// left and says whether it had finished (and cleans up for the next round).
/// Returns how many runs were killed before they finished, and how many
/// after.
fn kill_at_random_moments(
    start: impl Fn() -> Child,
    mut finished: impl FnMut(usize) -> bool,
) -> (usize, usize) {
    let began = std::time::Instant::now();
    assert!(start().wait().unwrap().success());
    let whole = began.elapsed().as_micros() as u64;
    assert!(finished(0), "an uninterrupted run finished");
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let (mut none, mut all) = (0, 0);
    for round in 1..=20 {
        let mut child = start();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_micros(rng % (2 * whole + 1)));
        let _ = child.kill();
        child.wait().unwrap();
        if finished(round) {
            all += 1;
        } else {
            none += 1;
        }
    }
    (none, all)
}

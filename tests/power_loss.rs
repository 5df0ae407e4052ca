//! Invariants: after `sync` returns, a power loss keeps the change; and a
//! sync is atomic: the store a power loss leaves is the state after some
//! sync, never part of one (each sync here writes 4 records, one batch).
//! Checked on a real ext4 file system by `tests/power_loss.sh` (root only:
//! it mounts a loop device; skipped with a message elsewhere, required when
//! CI=true).

mod common;
use serde_json::json;
use std::process::Command;
use tastypod::{Compaction, Pod, PodOptions};

const ITERATIONS: &str = "50";

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

/// What a child process entry point says when run as a test.
const NOT_A_TEST: &str = "a child process of the tests in this file, which start it with its environment; run those tests instead";

/// The writer the script kills: increasing values per key, a sync every few
/// writes, compaction in the mix; prints "ack KEY VALUE" after each sync.
#[test]
#[ignore = "a child process that this file's tests start (with --ignored); not a test by itself"]
fn power_writer() {
    let Ok(path) = std::env::var("TASTYPOD_POWER_WRITE") else {
        panic!("{}", NOT_A_TEST);
    };
    let mut pod: Pod = PodOptions::new()
        .compaction(Compaction::Auto {
            dead_fraction: 0.5,
            min_bytes: 32 * 1024,
        })
        .open(&path)
        .unwrap();
    let base = pod
        .get("base")
        .unwrap()
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
        + 1_000_000;
    pod.insert("base", json!(base)).unwrap();
    pod.sync().unwrap();
    for n in 1u64.. {
        let key = format!("k{}", n % 40);
        pod.insert(
            &key,
            json!({"v": base + n, "pad": "x".repeat((n % 200) as usize)}),
        )
        .unwrap();
        if n.is_multiple_of(4) {
            pod.sync().unwrap();
            println!("ack {key} {}", base + n);
        }
        if n.is_multiple_of(300) {
            pod.compact().unwrap();
        }
    }
}

/// The checker the script runs on the copied image.
#[test]
#[ignore = "a child process that this file's tests start (with --ignored); not a test by itself"]
fn power_checker() {
    let Ok(path) = std::env::var("TASTYPOD_POWER_CHECK") else {
        panic!("{}", NOT_A_TEST);
    };
    let acks = std::fs::read_to_string(std::env::var("TASTYPOD_POWER_ACKS").unwrap()).unwrap();
    let pod: Pod = PodOptions::new().read_only(true).open(&path).unwrap();
    let mut latest = std::collections::BTreeMap::new();
    for line in acks.lines() {
        let mut it = line.split_whitespace().skip(1);
        let (k, v) = (
            it.next().unwrap(),
            it.next().unwrap().parse::<u64>().unwrap(),
        );
        latest.insert(k.to_string(), v);
    }
    for (k, v) in latest {
        let got = pod.get(&k).unwrap().and_then(|x| x["v"].as_u64());
        assert!(
            got.is_some_and(|g| g >= v),
            "{k}: acknowledged {v}, found {got:?}"
        );
    }
    // Atomic syncs: the last run's values are those after its sync number
    // `s` for some `s` (write `n` went to key `k{n % 40}` as base + n, 4
    // writes a sync), never a part of a sync.
    let base = pod.get("base").unwrap().and_then(|v| v.as_u64()).unwrap();
    let value = |j: u64| {
        pod.get(&format!("k{j}"))
            .unwrap()
            .and_then(|x| x["v"].as_u64())
    };
    let last_n = (0..40)
        .filter_map(value)
        .filter(|&v| v > base)
        .map(|v| v - base)
        .max()
        .unwrap_or(0);
    assert!(
        last_n.is_multiple_of(4),
        "the last write on disk is write {last_n} of a sync of writes {}..={}",
        last_n.div_ceil(4) * 4 - 3,
        last_n.div_ceil(4) * 4
    );
    for j in 0..40u64 {
        // The last write to key j up to write last_n, if any in this run.
        let expected = (1..=last_n).rev().find(|n| n % 40 == j).map(|n| base + n);
        let got = value(j);
        match expected {
            Some(e) => assert_eq!(got, Some(e), "k{j} after sync {}", last_n / 4),
            None => assert!(
                got.is_none_or(|g| g < base),
                "k{j} holds {got:?}, written after sync {}",
                last_n / 4
            ),
        }
    }
}

#[test]
fn acknowledged_data_survives_power_loss_on_ext4() {
    if !is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and must run this test"
        );
        eprintln!("skipped: the power-loss test needs root (it mounts a loop device)");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/power_loss.sh");
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("bash")
        .args([script, exe.to_str().unwrap(), ITERATIONS])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(stdout.contains("iterations"), "{stdout}");
}

//! Invariant: a writer killed with SIGKILL at a random moment loses nothing
//! it acknowledged (printed after `sync` returned), and the store opens every
//! time. The writer is this test binary, re-run as a child process that
//! writes, syncs and compacts in a loop.

mod common;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use tastypod::{Compaction, Pod, PodOptions};

const CHILD_ENV: &str = "TASTYPOD_KILL9_CHILD";
const ROUNDS: usize = 200;

/// What a child process entry point says when run as a test.
const NOT_A_TEST: &str = "a child process of the tests in this file, which start it with its environment; run those tests instead";

/// Run as a child: append to counters forever, printing "ack K N" once the
/// value N of key K is synced.
#[test]
#[ignore = "a child process that this file's tests start (with --ignored); not a test by itself"]
fn kill9_writer_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        panic!("{}", NOT_A_TEST);
    };
    let mut pod: Pod = PodOptions::new()
        .compaction(Compaction::Auto {
            dead_fraction: 0.5,
            min_bytes: 16 * 1024,
        })
        .open(&path)
        .unwrap();
    let start: u64 = pod
        .get("round")
        .unwrap()
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
        + 1;
    pod.insert("round", json!(start)).unwrap();
    let mut n = 0u64;
    loop {
        n += 1;
        let key = format!("k{}", n % 50);
        let value = start * 1_000_000 + n;
        pod.insert(
            &key,
            json!({"v": value, "pad": "p".repeat((n % 97) as usize)}),
        )
        .unwrap();
        if n.is_multiple_of(7) {
            pod.remove(&format!("gone{}", n % 5)).unwrap();
            pod.insert(&format!("gone{}", n % 5), json!(n)).unwrap();
        }
        if n.is_multiple_of(3) {
            pod.sync().unwrap();
            println!("ack {key} {value}");
        }
        if n.is_multiple_of(500) {
            pod.compact().unwrap();
            println!("ack {key} {value}");
        }
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let s = scratch();
    let exe = std::env::current_exe().unwrap();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut acked: std::collections::BTreeMap<String, u64> = Default::default();
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "kill9_writer_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &s.path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_micros(2_000 + rng % 40_000);
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in out.lines() {
                let Ok(line) = line else { break };
                // libtest may print "test name ... " before the child's first line.
                if let Some(rest) = line.split("ack ").nth(1) {
                    let mut it = rest.split_whitespace();
                    if let (Some(k), Some(v)) = (it.next(), it.next()) {
                        acks.push((k.to_string(), v.parse::<u64>().unwrap()));
                    }
                }
            }
            acks
        });
        std::thread::sleep(delay);
        child.kill().unwrap();
        child.wait().unwrap();
        for (k, v) in reader.join().unwrap() {
            acked.insert(k, v);
        }
        let pod = PodOptions::new()
            .read_only(true)
            .open::<serde_json::Value>(&s.path)
            .unwrap_or_else(|e| panic!("round {round}: the store does not open: {e}"));
        for (k, v) in &acked {
            let got = pod.get(k).unwrap().and_then(|x| x["v"].as_u64());
            // A later unacknowledged write may have landed too, never an older one.
            assert!(
                got.is_some_and(|g| g >= *v),
                "round {round}: {k} acked {v}, found {got:?}"
            );
        }
    }
    assert!(
        acked.len() > 10,
        "the children acknowledged too little: {}",
        acked.len()
    );
    assert!(open(&s.path).len() >= acked.len());
}

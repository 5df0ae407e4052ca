//! Invariant: `tastypod load` killed with SIGKILL at any moment leaves the
//! store as it was or with every record of the load, never part of it.

#[path = "../../tests/common/mod.rs"]
mod common;
use common::*;
use serde_json::json;
use std::process::{Command, Stdio};
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
        assert!(pod.recovery().torn_tail.is_none(), "round {round}");
    }
    assert!(
        none > 0,
        "no load was killed before it finished ({all} finished)"
    );
}

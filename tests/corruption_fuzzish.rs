//! Invariant: damage to a log is always detected, never read as a wrong
//! value: 2,000 random bit flips each give an error naming a line, a torn
//! tail, or the original contents; garbage files give a clear error or an
//! empty store, with no panic and bounded memory.

mod common;
use common::*;
use serde_json::json;
use tastypod::{ErrorKind, Pod, PodOptions};

fn build(path: &std::path::Path) -> Vec<(String, serde_json::Value)> {
    let mut pod = PodOptions::new().sync_at(1).open(path).unwrap();
    for i in 0..12 {
        pod.insert(
            &format!("key-{i}"),
            json!({"i": i, "s": "text\n\"quoted\"", "f": 1.5}),
        )
        .unwrap();
    }
    pod.remove("key-3").unwrap();
    pod.insert("key-5", json!([1, 2, 3])).unwrap();
    contents(&pod)
}

fn ro(path: &std::path::Path) -> tastypod::Result<Pod> {
    PodOptions::new().read_only(true).open(path)
}

#[test]
fn random_bit_flips_are_always_detected() {
    let s = scratch();
    let original = build(&s.path);
    assert_eq!(contents(&ro(&s.path).unwrap()), original);
    let bytes = log_bytes(&s.path);
    let starts = line_starts(&s.path);
    let last_line = *starts.last().unwrap();
    // What a torn last line leaves: the state before the last record.
    std::fs::write(log_of(&s.path), &bytes[..last_line]).unwrap();
    let before_last = contents(&ro(&s.path).unwrap());
    assert_ne!(before_last, original);
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let (mut errors, mut torn) = (0, 0);
    for _ in 0..2000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let at = (rng % bytes.len() as u64) as usize;
        let bit = 1u8 << ((rng >> 32) % 8);
        let mut damaged = bytes.clone();
        damaged[at] ^= bit;
        std::fs::write(log_of(&s.path), &damaged).unwrap();
        match ro(&s.path) {
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        ErrorKind::Corrupt { .. } | ErrorKind::NotAStore { .. }
                    ),
                    "flip at {at}: {e}"
                );
                errors += 1;
            }
            Ok(pod) => {
                // Only damage in the last line may open, as a torn tail.
                assert!(
                    at >= last_line,
                    "flip at {at} (line start {last_line}) was not detected"
                );
                assert!(pod.recovery().torn_tail.is_some(), "flip at {at}");
                assert_eq!(contents(&pod), before_last, "flip at {at}");
                torn += 1;
            }
        }
    }
    assert!(errors > 1500 && torn > 0, "{errors} errors, {torn} torn");
}

#[test]
fn garbage_files_give_a_clear_error_or_an_empty_store() {
    let s = scratch();
    std::fs::create_dir_all(&s.path).unwrap();
    let mut rng = 12345u64;
    let random: Vec<u8> = (0..100_000)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u8
        })
        .collect();
    let mut long_line = b"{\"c\":\"00000000\",\"k\":\"x\",\"v\":\"".to_vec();
    long_line.resize(16 << 20, b'a');
    long_line.extend_from_slice(b"\"}\n");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("only newlines", vec![b'\n'; 1000]),
        ("zeros", vec![0; 100_000]),
        ("random bytes", random),
        ("invalid utf-8", b"\xff\xfe\xfd\n\xc3\x28\n".to_vec()),
        ("a 16 MiB line", long_line),
    ];
    for (name, bytes) in cases {
        std::fs::write(log_of(&s.path), &bytes).unwrap();
        match ro(&s.path) {
            Ok(pod) => assert!(pod.is_empty(), "{name}"),
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::NotAStore { .. }),
                    "{name}: {e}"
                );
                assert!(e.to_string().contains("not a tastypod log"), "{name}: {e}");
            }
        }
        // A writable open does not destroy what it cannot read (blank
        // lines hold nothing: they become an empty store).
        if !bytes.is_empty() && name != "only newlines" {
            assert!(Pod::<serde_json::Value>::open(&s.path).is_err(), "{name}");
            assert_eq!(log_bytes(&s.path), bytes, "{name}");
        }
    }
}

#[test]
fn a_16_mib_line_after_a_valid_header_is_corruption_or_a_torn_tail() {
    let s = scratch();
    build(&s.path);
    let mut big = b"{\"c\":\"00000000\",\"k\":\"x\",\"v\":\"".to_vec();
    big.resize(16 << 20, b'a');
    append_garbage(&s.path, &big);
    let pod = ro(&s.path).unwrap();
    assert_eq!(
        pod.recovery().torn_tail.as_ref().unwrap().bytes,
        big.len() as u64
    );
    big.extend_from_slice(b"\n");
    let mut bytes = log_bytes(&s.path);
    bytes.extend_from_slice(b"\n");
    std::fs::write(log_of(&s.path), &bytes).unwrap();
    append_garbage(&s.path, &log_bytes(&s.path)[..0]);
    let mut pod = open(&s.path);
    pod.insert("after", json!(1)).unwrap();
    pod.sync().unwrap();
    drop(pod);
    assert!(open(&s.path).contains_key("after"));
}

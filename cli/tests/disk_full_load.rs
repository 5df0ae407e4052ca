//! Invariant: `tastypod load` on a full disk fails with a clear error and
//! changes nothing in the store.

#[path = "../../tests/common/mod.rs"]
mod common;
use common::tmpfs::*;
use serde_json::json;
use std::process::Command;
use tastypod::Pod;

#[test]
fn cli_load_on_a_full_disk_changes_nothing() {
    let Some(fs) = Tmpfs::mount("2m") else { return };
    let store = fs.path().join("s.pod");
    let mut pod: Pod = Pod::open(&store).unwrap();
    for i in 0..200 {
        pod.insert(&format!("k{i}"), json!("v".repeat(200)))
            .unwrap();
    }
    pod.close().unwrap();
    let before = std::fs::read(store.join(tastypod::LOG_FILE)).unwrap();
    let dump: String = (0..2000)
        .map(|i| format!("{{\"key\":\"new{i}\",\"value\":\"{}\"}}\n", "w".repeat(400)))
        .collect();
    let input = std::env::temp_dir().join(format!("tastypod-load-{}.jsonl", std::process::id()));
    std::fs::write(&input, dump).unwrap();
    let filler = fill(fs.path(), 64 * 1024);
    let out = Command::new(env!("CARGO_BIN_EXE_tastypod"))
        .args(["load", store.to_str().unwrap(), input.to_str().unwrap()])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&input);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("No space left on device"));
    free(&filler);
    assert_eq!(
        std::fs::read(store.join(tastypod::LOG_FILE)).unwrap(),
        before
    );
    assert_eq!(Pod::<serde_json::Value>::open(&store).unwrap().len(), 200);
}

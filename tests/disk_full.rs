//! Invariant: on a full disk, sync and compaction fail with a clear error,
//! the log on disk keeps everything acknowledged, and once space is freed a
//! reopen (after a failed sync) or a retry (after a failed compaction)
//! succeeds. Uses a small tmpfs, so root only (skipped with a message
//! elsewhere, required when CI=true).

mod common;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use tastypod::{Compaction, ErrorKind, Pod, PodOptions};

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        if !is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root and must run this test"
            );
            eprintln!("skipped: the disk-full test needs root (it mounts a tmpfs)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(ok.success(), "mount tmpfs failed");
        Some(Tmpfs(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// Fills the file system with a file, leaving about `leave` bytes free.
fn fill(dir: &Path, leave: u64) -> std::path::PathBuf {
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![7u8; 4096];
    use std::io::Write;
    loop {
        let free = fs_free(dir);
        if free <= leave + 4096 {
            break;
        }
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    f.sync_all().ok();
    filler
}

/// Removes the filler and waits until its space is free: a child process
/// forked by another test thread holds the file open until its `exec`.
fn free(filler: &Path) {
    let dir = filler.parent().unwrap();
    let size = std::fs::metadata(filler).unwrap().len();
    let before = fs_free(dir);
    std::fs::remove_file(filler).unwrap();
    for _ in 0..500 {
        if fs_free(dir) >= before + size / 2 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the filler's space was not freed");
}

fn fs_free(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn sync_on_a_full_disk_fails_cleanly_and_loses_nothing_acknowledged() {
    let Some(fs) = Tmpfs::mount("2m") else { return };
    let store = fs.path().join("s.pod");
    let mut pod: Pod = PodOptions::new()
        .compaction(Compaction::Manual)
        .open(&store)
        .unwrap();
    for i in 0..50 {
        pod.insert(&format!("acked-{i}"), json!(i)).unwrap();
    }
    pod.sync().unwrap();
    let filler = fill(fs.path(), 8 * 1024);
    let mut failure = None;
    for i in 0..2000 {
        pod.insert(&format!("big-{i}"), json!("x".repeat(1000)))
            .unwrap();
        if let Err(e) = pod.sync() {
            failure = Some(e);
            break;
        }
    }
    let err = failure.expect("the disk never filled up");
    assert!(err.is_io(), "{err}");
    let chain = tastypod::error_chain(&err);
    assert!(chain.contains("No space left on device"), "{chain}");
    assert!(pod.is_poisoned());
    assert!(matches!(
        pod.insert("x", json!(1)).unwrap_err().kind(),
        ErrorKind::Poisoned { .. }
    ));
    drop(pod);
    // Free the space; a reopen recovers the torn tail, with every acknowledged key.
    free(&filler);
    let mut pod: Pod = Pod::open(&store).unwrap();
    for i in 0..50 {
        assert_eq!(pod.get(&format!("acked-{i}")).unwrap(), Some(json!(i)));
    }
    pod.insert("after", json!(true)).unwrap();
    pod.close().unwrap();
    assert!(tastypod::verify(&store).unwrap().is_clean());
}

#[test]
fn compaction_on_a_full_disk_keeps_the_old_log_and_can_be_retried() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let store = fs.path().join("s.pod");
    let mut pod: Pod = PodOptions::new()
        .compaction(Compaction::Manual)
        .open(&store)
        .unwrap();
    for i in 0..400 {
        pod.insert(
            &format!("k{}", i % 200),
            json!({"i": i, "pad": "y".repeat(500)}),
        )
        .unwrap();
    }
    pod.sync().unwrap();
    let before = std::fs::read(store.join(tastypod::LOG_FILE)).unwrap();
    let filler = fill(fs.path(), 16 * 1024);
    let err = pod.compact().unwrap_err();
    assert!(
        tastypod::error_chain(&err).contains("No space left on device"),
        "{err}"
    );
    assert!(
        !pod.is_poisoned(),
        "a failed compaction before the rename leaves the handle usable"
    );
    assert_eq!(
        std::fs::read(store.join(tastypod::LOG_FILE)).unwrap(),
        before
    );
    assert!(!store.join(tastypod::TMP_FILE).exists());
    free(&filler);
    pod.compact().unwrap();
    assert_eq!(pod.len(), 200);
    pod.close().unwrap();
    assert_eq!(Pod::<serde_json::Value>::open(&store).unwrap().len(), 200);
}

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

#[test]
fn a_background_compaction_on_a_full_disk_reports_and_keeps_the_old_log() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let store = fs.path().join("s.pod");
    let mut pod: Pod = PodOptions::new()
        .compaction(Compaction::Auto {
            dead_fraction: 0.5,
            min_bytes: 64 * 1024,
        })
        .sync_at(100_000)
        .open(&store)
        .unwrap();
    for i in 0..200 {
        pod.insert(&format!("k{i}"), json!("y".repeat(500)))
            .unwrap();
    }
    pod.sync().unwrap();
    // Room for the updates (about 48 KB), not for them and a compaction.
    let filler = fill(fs.path(), 72 * 1024);
    for i in 0..200 {
        pod.insert(&format!("k{i}"), json!("z".repeat(200)))
            .unwrap();
    }
    pod.sync().unwrap(); // starts the compaction, which runs out of space
    let mut failure = None;
    for _ in 0..500 {
        if let Err(e) = pod.sync() {
            failure = Some(e);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let err = failure.expect("the compaction's failure is reported by a sync");
    let chain = tastypod::error_chain(&err);
    assert!(chain.contains("No space left on device"), "{chain}");
    assert!(!pod.is_poisoned(), "the old log is still the log");
    assert!(!store.join(tastypod::TMP_FILE).exists());
    // Everything synced is in the old log.
    let ro: Pod = PodOptions::new().read_only(true).open(&store).unwrap();
    assert_eq!(ro.len(), 200);
    assert_eq!(ro.get("k199").unwrap(), Some(json!("z".repeat(200))));
    drop(ro);
    free(&filler);
    pod.insert("after", json!(true)).unwrap();
    pod.compact().unwrap();
    pod.close().unwrap();
    let pod: Pod = Pod::open(&store).unwrap();
    assert_eq!(pod.len(), 201);
    assert_eq!(pod.get("k0").unwrap(), Some(json!("z".repeat(200))));
    assert_eq!(pod.stats().dead_bytes, 0);
}

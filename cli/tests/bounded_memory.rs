//! Invariant: memory is bounded by the data, never by damage. Reading a
//! log with a huge run of NUL bytes (a crash on ext4 can leave one) takes
//! a fixed buffer, not the run's size; anything that is not a regular file
//! is refused at once, never waited on; `load` holds one record at a time
//! beyond the store itself. Each command runs as a child process whose
//! peak memory the kernel reports.

#[path = "../../tests/common/mod.rs"]
mod common;
use common::*;
mod binary;
use binary::p;
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MEASURE_ENV: &str = "TASTYPOD_MEASURE_ARGS";

/// What a child process entry point says when run as a test.
const NOT_A_TEST: &str = "a child process of the tests in this file, which start it with its environment; run those tests instead";

/// Run as a child of this test binary (a small process, so that what it
/// forks starts small): runs `tastypod` with the arguments in
/// `MEASURE_ENV`, stdin passed on, and prints `code kib` of it, then its
/// stderr.
#[test]
#[ignore = "a child process that this file's tests start (with --ignored); not a test by itself"]
fn measure_child() {
    let Ok(args) = std::env::var(MEASURE_ENV) else {
        panic!("{}", NOT_A_TEST);
    };
    let args: Vec<String> = serde_json::from_str(&args).unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tastypod"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be filled in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our unwaited child; both pointers are valid.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    std::mem::forget(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    println!("measured {code} {}", usage.ru_maxrss);
    print!("{}", std::fs::read_to_string(err.path()).unwrap());
}

/// Runs `tastypod args` (with `input` on stdin); returns its exit code,
/// stderr and peak resident memory in KiB.
fn run_measured(args: &[&str], input: Option<&[u8]>) -> (i32, String, u64) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "--ignored",
            "measure_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MEASURE_ENV, serde_json::to_string(args).unwrap())
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        // A command that refuses its input may stop reading it.
        if let Err(e) = stdin.write_all(input) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    }
    let out = child.wait_with_output().unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    let at = out
        .find("measured ")
        .expect("the measuring child reported nothing");
    let mut rest = out[at + "measured ".len()..].splitn(3, [' ', '\n']);
    let code: i32 = rest.next().unwrap().parse().unwrap();
    let kib: u64 = rest.next().unwrap().parse().unwrap();
    let stderr = rest.next().unwrap_or("").to_string();
    (code, stderr, kib)
}

const MIB: u64 = 1024;

#[test]
fn a_run_of_nul_bytes_is_read_with_a_fixed_buffer() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("a", json!(1)).unwrap();
    pod.close().unwrap();
    let log = log_of(&s.path);
    let len = std::fs::metadata(&log).unwrap().len();
    // What `truncate -s +256M pod.log` leaves: a sparse run of zeros.
    let zeros = 256 << 20;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(len + zeros)
        .unwrap();
    for args in [vec!["keys", p(&s.path)], vec!["verify", p(&s.path)]] {
        let (code, err, kib) = run_measured(&args, None);
        assert!(code == 0 || code == 1, "{args:?}: {err}");
        assert!(
            kib < 64 * MIB,
            "{args:?} peaked at {kib} KiB for {zeros} bytes of zeros"
        );
    }
    // A writer cuts the run (it is what a crash leaves, so nothing is kept aside).
    let (code, err, kib) = run_measured(&["set", p(&s.path), "b", "2"], None);
    assert_eq!(code, 0, "{err}");
    assert!(kib < 64 * MIB, "set peaked at {kib} KiB");
    assert!(err.contains(&format!("({zeros} bytes)")), "{err}");
    assert!(!err.contains("kept at"), "{err}");
    assert_eq!(open_ro(&s.path).len(), 2);
}

/// Appends `bytes` to the log of a one-key store at `path`, about `times`
/// times (in whole blocks of 1 MiB); returns how many times.
fn one_key_store_followed_by(path: &std::path::Path, bytes: &[u8], times: usize) -> usize {
    let mut pod = open(path);
    pod.insert("a", json!(1)).unwrap();
    pod.close().unwrap();
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(log_of(path))
        .unwrap();
    let per_block = (1 << 20) / bytes.len();
    let block = bytes.repeat(per_block);
    let blocks = times / per_block;
    for _ in 0..blocks {
        log.write_all(&block).unwrap();
    }
    blocks * per_block
}

#[test]
fn a_run_of_blank_lines_costs_neither_memory_nor_a_line_each() {
    let s = scratch();
    // 100 MiB of newlines: 100 million blank lines, which `verify` calls clean.
    one_key_store_followed_by(&s.path, b"\n", 100 << 20);
    for args in [
        vec!["get", p(&s.path), "a"],
        vec!["stat", p(&s.path)],
        vec!["verify", p(&s.path)],
    ] {
        let (code, err, kib) = run_measured(&args, None);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(
            kib < 40 * MIB,
            "{args:?} peaked at {kib} KiB for 100 MiB of blank lines"
        );
    }
    let (code, err, kib) = run_measured(&["set", p(&s.path), "b", "2"], None);
    assert_eq!(code, 0, "{err}");
    assert!(kib < 40 * MIB, "set peaked at {kib} KiB");
    assert_eq!(open_ro(&s.path).len(), 2);
}

#[test]
fn a_damaged_tail_of_short_lines_is_bounded_too() {
    let s = scratch();
    // 104 MiB of short junk lines: 4 million damaged lines at the end.
    let junk = one_key_store_followed_by(&s.path, b"garbage-line-xxxxxxxxxxxx\n", 4_000_000);
    for args in [vec!["get", p(&s.path), "a"], vec!["verify", p(&s.path)]] {
        let (code, err, kib) = run_measured(&args, None);
        assert!(code == 0 || code == 1, "{args:?}: {err}");
        assert!(
            kib < 40 * MIB,
            "{args:?} peaked at {kib} KiB for 4 million junk lines"
        );
    }
    let o = binary::tastypod(&["verify", p(&s.path)]);
    let out = String::from_utf8_lossy(&o.stdout);
    let more = format!("and {} more problems", junk - 100);
    assert!(
        out.contains(&more),
        "{}",
        &out[out.len().saturating_sub(200)..]
    );
}

#[test]
fn a_line_longer_than_the_maximum_record_size_is_not_held_whole() {
    let s = scratch();
    let mut pod = open(&s.path);
    pod.insert("a", json!(1)).unwrap();
    pod.close().unwrap();
    // 300 MiB of one line that looks like a record's start: held only up
    // to the maximum record size (128 MiB), then streamed past.
    let mut garbage = b"{\"c\":\"00000000\",\"k\":\"x\",\"v\":\"".to_vec();
    garbage.resize(300 << 20, b'a');
    append_garbage(&s.path, &garbage);
    drop(garbage);
    let (code, err, kib) = run_measured(&["verify", p(&s.path)], None);
    assert_eq!(code, 1, "{err}");
    assert!(
        kib < 200 * MIB,
        "verify peaked at {kib} KiB for a 300 MiB line"
    );
}

/// Runs `tastypod args` and fails if it does not finish within 10 s.
fn finishes(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tastypod"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        if start.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("{args:?} did not finish within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_log_that_is_not_a_regular_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let zero = dir.path().join("zero.pod");
    std::fs::create_dir(&zero).unwrap();
    std::os::unix::fs::symlink("/dev/zero", log_of(&zero)).unwrap();
    let fifo = dir.path().join("fifo.pod");
    std::fs::create_dir(&fifo).unwrap();
    let made = Command::new("mkfifo").arg(log_of(&fifo)).status().unwrap();
    assert!(made.success());
    let inner = dir.path().join("dir.pod");
    std::fs::create_dir_all(log_of(&inner)).unwrap();
    for (store, what) in [
        (&zero, "a device"),
        (&fifo, "a FIFO"),
        (&inner, "a directory"),
    ] {
        for cmd in ["verify", "keys", "stat"] {
            let (code, err) = finishes(&[cmd, p(store)]);
            assert_eq!(code, 2, "{cmd} {what}: {err}");
            assert!(
                err.contains(what) && err.contains("not a regular file"),
                "{cmd}: {err}"
            );
        }
        let (code, err) = finishes(&["set", p(store), "k", "1"]);
        assert_eq!(code, 2, "set {what}: {err}");
    }
}

#[test]
fn load_holds_one_record_at_a_time_beyond_the_store() {
    let s = scratch();
    let n = 200_000;
    let mut dump = Vec::new();
    for i in 0..n {
        writeln!(
            dump,
            "{{\"key\":\"task-{i:08}\",\"value\":{{\"url\":\"https://example.com/page/{i}\",\"_done\":false}}}}"
        )
        .unwrap();
    }
    let (code, err, kib) = run_measured(&["load", p(&s.path), "-"], Some(&dump));
    assert_eq!(code, 0, "{err}");
    let log_kib = std::fs::metadata(log_of(&s.path)).unwrap().len() / 1024;
    // The store keeps every key and value text (about the log's size) and
    // a slot per key; a load that held every record decoded took 8 times
    // the log's size.
    assert!(
        kib < 3 * log_kib + 24 * MIB,
        "load peaked at {kib} KiB for a {log_kib} KiB log"
    );
    assert_eq!(open_ro(&s.path).len(), n);
}

#[test]
fn an_input_line_longer_than_a_record_may_be_is_refused_unbuffered() {
    use std::io::Write as _;
    let s = scratch();
    // 300 MiB of one line: a 300 KiB gzipped tastypy part, and a dump.
    let old = s.dir.path().join("old");
    std::fs::create_dir(&old).unwrap();
    let part = std::fs::File::create(old.join("0.json.gz")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(part, flate2::Compression::fast());
    gz.write_all(b"\"a\"\t\"").unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..300 {
        gz.write_all(&chunk).unwrap();
    }
    gz.finish().unwrap();
    let dest = s.dir.path().join("new");
    let (code, err, kib) = run_measured(&["import-tastypy", p(&old), p(&dest)], None);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("0.json.gz:1") && err.contains("longer than"),
        "{err}"
    );
    assert!(
        kib < 200 * MIB,
        "import peaked at {kib} KiB for a 300 MiB line"
    );
    assert!(!dest.exists());
    let mut dump = b"{\"key\":\"a\",\"value\":\"".to_vec();
    dump.resize(300 << 20, b'a');
    let (code, err, kib) = run_measured(&["load", p(&s.path), "-"], Some(&dump));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("-:1") && err.contains("longer than"), "{err}");
    assert!(
        kib < 200 * MIB,
        "load peaked at {kib} KiB for a 300 MiB line"
    );
}

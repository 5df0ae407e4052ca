//! Running the `tastypod` binary from the CLI's integration tests.
#![allow(
    dead_code,
    reason = "included by several test binaries, each using some helpers: an expectation would go unfulfilled in those that use them all"
)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `tastypod args` to the end.
pub fn tastypod(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tastypod"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `tastypod args` with `input` on its stdin.
pub fn with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tastypod"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A child that refuses before reading its input closes the pipe early.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// A path as an argument.
pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

//! Helpers shared by the integration tests.
#![allow(
    dead_code,
    reason = "included by several test binaries, each using some helpers: an expectation would go unfulfilled in those that use them all"
)]

pub mod job;
pub mod tmpfs;

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use tastypod::{LOG_FILE, Pod, PodOptions};

/// A temporary directory and a store path inside it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.pod");
    Scratch { dir, path }
}

pub fn log_of(store: &Path) -> PathBuf {
    store.join(LOG_FILE)
}

pub fn log_bytes(store: &Path) -> Vec<u8> {
    fs::read(log_of(store)).unwrap()
}

/// The length of the log up to the end of its last record: without the
/// newline padding an open writer keeps past it.
pub fn records_len(store: &Path) -> u64 {
    let bytes = log_bytes(store);
    let padding = bytes.iter().rev().take_while(|&&b| b == b'\n').count();
    (bytes.len() - padding.saturating_sub(1)) as u64
}

pub fn truncate_to(store: &Path, len: usize) {
    let bytes = log_bytes(store);
    fs::write(log_of(store), &bytes[..len]).unwrap();
}

pub fn flip_byte(store: &Path, offset: usize, mask: u8) {
    let mut bytes = log_bytes(store);
    bytes[offset] ^= mask;
    fs::write(log_of(store), bytes).unwrap();
}

pub fn append_garbage(store: &Path, garbage: &[u8]) {
    let mut bytes = log_bytes(store);
    bytes.extend_from_slice(garbage);
    fs::write(log_of(store), bytes).unwrap();
}

/// Byte offsets at which each line of the log starts.
pub fn line_starts(store: &Path) -> Vec<usize> {
    let bytes = log_bytes(store);
    let mut starts = vec![0];
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' && i + 1 < bytes.len() {
            starts.push(i + 1);
        }
    }
    starts
}

/// The whole contents of a store, in order.
pub fn contents(pod: &Pod) -> Vec<(String, Value)> {
    pod.iter()
        .map(|r| r.map(|(k, v)| (k.to_string(), v)))
        .collect::<Result<_, _>>()
        .unwrap()
}

pub fn open(path: &Path) -> Pod {
    Pod::open(path).unwrap()
}

pub fn open_ro(path: &Path) -> Pod {
    PodOptions::new().read_only(true).open(path).unwrap()
}

pub fn pairs(p: &[(&str, Value)]) -> Vec<(String, Value)> {
    p.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// CRC-32/ISO-HDLC computed bit by bit, independent of the crate under test.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

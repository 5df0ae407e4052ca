//! The demo job (`examples/job.rs`) as its tests see it: its binary and
//! the rules of its synthetic tasks, written again here so that a change
//! of the example's rules fails the tests that rely on them.

use std::path::PathBuf;

/// Task `i` succeeds from this try number on (unless it is broken).
pub fn first_success(i: usize) -> u32 {
    match (i.wrapping_mul(2_654_435_761)) % 10 {
        0..=6 => 1,
        7 => 2,
        8 => 3,
        _ => 5,
    }
}

/// Task `i` is aborted on its first try.
pub fn broken(i: usize) -> bool {
    i % 997 == 13
}

/// The example binary, which `cargo test` builds next to the test binaries.
pub fn job_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("examples").join("job");
    bin.exists().then_some(bin)
}

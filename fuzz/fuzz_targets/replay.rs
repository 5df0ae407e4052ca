//! Arbitrary bytes as a log: an error or a store; a store compacts and
//! reopens to the same contents. Never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tastypod::sim::fuzz::fuzz_replay(data);
});

//! Arbitrary operations and a crash point on the simulated file system: the
//! crash image holds everything acknowledged.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tastypod::sim::fuzz::fuzz_ops(data);
});

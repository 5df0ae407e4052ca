//! A damaged or crafted hint file beside a real log: an open never panics,
//! and a hint whose checksum does not hold never changes what it finds.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tastypod::sim::fuzz::fuzz_hint(data);
});

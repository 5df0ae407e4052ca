//! The simulated-storage workloads live in the library (`tastypod::sim::workload`)
//! so the fuzz targets run the same code as these tests.
pub use tastypod::sim::workload::*;

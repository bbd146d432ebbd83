//! Test support shared by the e2e tests and the benchmarks: fakes of Google Cloud services that have no emulator.

pub mod fake_compute;
pub mod scenario;

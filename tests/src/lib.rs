//! Test support shared by the e2e tests and the benchmarks: the SDK's emulators, fakes of Google
//! Cloud services that have no emulator, the containment scenario, and incidents put into a store as intake would.

pub mod emulator;
pub mod fake_compute;
pub mod fake_gcs;
pub mod fake_gke;
pub mod fake_http;
pub mod intake;
pub mod scenario;

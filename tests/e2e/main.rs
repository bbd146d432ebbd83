//! riposte's end-to-end and integration tests: one test binary, modules by subject.
//!
//! Intake, policies, the embedded store, the Firestore emulator and the browser are real. Compute
//! Engine has no emulator: `compute` runs the real client against the stateful fake in
//! `riposte_e2e::fake_compute`, and its test names say so.

mod approval;
mod binary;
mod browser;
mod compute;
mod connections;
mod console;
mod container;
mod crash;
mod fixtures;
mod gke;
mod helpers;
mod http;
mod lambda;
mod limits;
mod metrics;
mod notifiers;
mod parser_properties;
mod planned;
mod policy_errors;
mod policy_properties;
mod pubsub_emulator;
mod runner;
mod secrets;
mod store;
mod storm;
mod sweep;
mod terraform;
mod traces;
mod variants;

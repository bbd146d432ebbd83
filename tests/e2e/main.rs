//! riposte's end-to-end and integration tests: one test binary, modules by subject.
//!
//! Nothing here runs against a fake yet: intake, policies and the embedded store are all real;
//! executors are the dry-run one.

mod approval;
mod binary;
mod browser;
mod fixtures;
mod helpers;
mod http;
mod notifiers;
mod parser_properties;
mod policy_errors;
mod policy_properties;
mod runner;
mod secrets;
mod store;
mod variants;

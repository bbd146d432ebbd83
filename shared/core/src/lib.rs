//! riposte's domain, with no network: alerts and their parsers, policies, plans, the store and the
//! runner that executes plans through an [`executor::Executor`].

pub mod action;
pub mod admission;
pub mod alert;
pub mod approval;
pub mod crash;
pub mod digest;
pub mod executor;
pub mod firewall;
pub mod incident;
pub mod intake;
pub mod kubernetes;
pub mod limits;
pub mod locate;
pub mod metrics;
pub mod names;
pub mod notify;
pub mod plan;
pub mod policy;
pub mod release;
pub mod requests;
pub mod runner;
pub mod sampling;
pub mod severity;
pub mod sources;
pub mod store;
pub mod target;

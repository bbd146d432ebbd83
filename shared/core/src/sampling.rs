//! How a request's root span says whether its sender already decided to sample its trace. Cloud
//! Run's `X-Cloud-Trace-Context` carries that decision (`o=1` / `o=0`); the exporter's filter
//! (riposte's `traces` module) reads it from the span's target, so that an alert whose trace is
//! not exported never costs an OpenTelemetry span (a span is made for the logs all the same).

/// The target of a root span whose sender sampled its trace.
pub const SAMPLED: &str = "riposte::trace::sampled";

/// The target of a root span whose sender did not sample its trace.
pub const UNSAMPLED: &str = "riposte::trace::unsampled";

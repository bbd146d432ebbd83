//! What riposte counts and times, exposed in the Prometheus text format (`GET /metrics`).
//!
//! Every label value is bounded: sources, outcomes, actions, store operations and error kinds are
//! `&'static str` names from the code (the `metric_label()`s); policies and notifiers are the
//! names in the policy file. No alert field ever becomes a label.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::alert::Source;

/// The `Content-Type` of [`Metrics::render`]: OpenMetrics text, which Prometheus and Google
/// Cloud Managed Service for Prometheus read.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What became of one alert for one policy that took it (or of an alert no policy took).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertFate {
    /// It opened an incident.
    Opened,
    /// It was counted on an open incident.
    Duplicate,
    /// Its source said the condition ended; the incident was closed to new alerts.
    Resolved,
    /// No policy took it (it is in the intake log).
    NoMatch,
}

impl AlertFate {
    fn as_str(self) -> &'static str {
        match self {
            AlertFate::Opened => "opened",
            AlertFate::Duplicate => "duplicate",
            AlertFate::Resolved => "resolved",
            AlertFate::NoMatch => "no_match",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    source: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyOutcomeLabels {
    policy: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    action: &'static str,
    outcome: &'static str,
    /// The executor error's `metric_label()`, empty when the step did not fail.
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotifierLabels {
    notifier: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    operation: &'static str,
    outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn containment_buckets() -> Histogram {
    // From a fast embedded run (well under a second) to a slow drain of a big node.
    Histogram::new([0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0])
}

fn approval_buckets() -> Histogram {
    // A person answering a chat message: a minute to a day.
    Histogram::new([30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0])
}

fn store_buckets() -> Histogram {
    // 0.25 ms (an embedded read) to 8 s (a Firestore commit retried under contention).
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

struct Families {
    registry: Registry,
    alerts: Family<AlertLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    incidents_opened: Family<PolicyLabels, Counter>,
    steps: Family<StepLabels, Counter>,
    containment: Histograms<PolicyOutcomeLabels>,
    approval_wait: Histograms<PolicyOutcomeLabels>,
    notifications: Family<NotifierLabels, Counter>,
    store: Histograms<StoreLabels>,
}

/// The process's metrics; clones share them. [`Metrics::off`] records nothing (tests, `replay`,
/// and the benchmark that measures what recording costs).
#[derive(Clone, Default)]
pub struct Metrics(Option<Arc<Families>>);

impl Metrics {
    /// Metrics that record, every family registered (so that `/metrics` lists each one from the
    /// start, with its help text).
    pub fn new() -> Metrics {
        let alerts = Family::default();
        let requests = Family::default();
        let incidents_opened = Family::default();
        let steps = Family::default();
        let containment = Histograms::new_with_constructor(containment_buckets as fn() -> Histogram);
        let approval_wait = Histograms::new_with_constructor(approval_buckets as fn() -> Histogram);
        let notifications = Family::default();
        let store = Histograms::new_with_constructor(store_buckets as fn() -> Histogram);
        let mut registry = Registry::with_prefix("riposte");
        registry.register(
            "alerts",
            "Alerts admitted, by source and outcome (opened, duplicate, resolved, no_match), once durable; an alert two policies take counts once per policy",
            alerts.clone(),
        );
        registry.register(
            "intake_requests",
            "Intake requests by endpoint and outcome: accepted, rejected (a Pub/Sub message acknowledged and kept without processing), or the error refusing it (unauthenticated, forbidden, payload_too_large, malformed, unknown_format, overloaded when shed, …)",
            requests.clone(),
        );
        registry.register("incidents_opened", "Incidents opened, by policy", incidents_opened.clone());
        registry.register(
            "steps",
            "Step executions by action and outcome (done, skipped, failed, retry, lease_lost), with the executor's error kind (gave_up: failed after its maximum attempts)",
            steps.clone(),
        );
        registry.register(
            "containment_seconds",
            "From an incident's first alert until every automatic step ended, by policy and outcome (contained, or failed when a step failed)",
            containment.clone(),
        );
        registry.register(
            "approval_wait_seconds",
            "From an incident's opening (its approval request) until the request was approved, rejected or expired",
            approval_wait.clone(),
        );
        registry.register(
            "notifications",
            "Notifications by notifier (its name in the policy file) and outcome (delivered, failed)",
            notifications.clone(),
        );
        registry.register(
            "store_operation_seconds",
            "Store operations by kind and outcome (ok or the store error's kind)",
            store.clone(),
        );
        Metrics(Some(Arc::new(Families {
            registry,
            alerts,
            requests,
            incidents_opened,
            steps,
            containment,
            approval_wait,
            notifications,
            store,
        })))
    }

    /// Metrics that record nothing and render empty.
    pub fn off() -> Metrics {
        Metrics(None)
    }

    /// The metrics in the Prometheus (OpenMetrics) text format, [`CONTENT_TYPE`].
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Some(f) = &self.0 {
            // Writing into a String cannot fail.
            let _ = prometheus_client::encoding::text::encode(&mut text, &f.registry);
        }
        text
    }

    /// `n` alerts of `source` had `fate`.
    pub fn alerts(&self, source: Source, fate: AlertFate, n: u64) {
        if let Some(f) = &self.0 {
            f.alerts.get_or_create(&AlertLabels { source: source.as_str(), outcome: fate.as_str() }).inc_by(n);
        }
    }

    /// An intake request to `endpoint` ended with `outcome`.
    pub fn intake_request(&self, endpoint: &'static str, outcome: &'static str) {
        if let Some(f) = &self.0 {
            f.requests.get_or_create(&RequestLabels { endpoint, outcome }).inc();
        }
    }

    /// An incident of `policy` opened.
    pub fn incident_opened(&self, policy: &str) {
        if let Some(f) = &self.0 {
            f.incidents_opened.get_or_create(&PolicyLabels { policy: policy.to_string() }).inc();
        }
    }

    /// One execution of an `action` step ended with `outcome` (`error`: the executor error's label).
    pub fn step(&self, action: &'static str, outcome: &'static str, error: Option<&'static str>) {
        if let Some(f) = &self.0 {
            f.steps.get_or_create(&StepLabels { action, outcome, error: error.unwrap_or("") }).inc();
        }
    }

    /// Every automatic step of an incident of `policy` opened at `opened` ended at `now`.
    pub fn contained(&self, policy: &str, failed: bool, opened: Timestamp, now: Timestamp) {
        if let Some(f) = &self.0 {
            let outcome = if failed { "failed" } else { "contained" };
            let labels = PolicyOutcomeLabels { policy: policy.to_string(), outcome };
            f.containment.get_or_create(&labels).observe(seconds_between(opened, now));
        }
    }

    /// The approval request of an incident of `policy` opened at `opened` ended at `at` with
    /// `outcome` (approved, rejected, expired).
    pub fn approval_ended(&self, policy: &str, outcome: &'static str, opened: Timestamp, at: Timestamp) {
        if let Some(f) = &self.0 {
            let labels = PolicyOutcomeLabels { policy: policy.to_string(), outcome };
            f.approval_wait.get_or_create(&labels).observe(seconds_between(opened, at));
        }
    }

    /// A notification to `notifier` was delivered or failed.
    pub fn notification(&self, notifier: &str, delivered: bool) {
        if let Some(f) = &self.0 {
            let outcome = if delivered { "delivered" } else { "failed" };
            f.notifications.get_or_create(&NotifierLabels { notifier: notifier.to_string(), outcome }).inc();
        }
    }

    /// A store `operation` took `took` and ended with `outcome`.
    pub fn store_operation(&self, operation: &'static str, outcome: &'static str, took: Duration) {
        if let Some(f) = &self.0 {
            f.store.get_or_create(&StoreLabels { operation, outcome }).observe(took.as_secs_f64());
        }
    }
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64().max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_appear_under_their_bounded_labels_and_off_records_nothing() {
        let metrics = Metrics::new();
        metrics.alerts(Source::Falco, AlertFate::Duplicate, 3);
        metrics.alerts(Source::Falco, AlertFate::Duplicate, 2);
        metrics.step("cordon_node", "failed", Some("permission_denied"));
        let opened = Timestamp::from_second(1_000).expect("time");
        metrics.contained("mining", false, opened, Timestamp::from_second(1_004).expect("time"));
        let text = metrics.render();
        assert!(text.contains(r#"riposte_alerts_total{source="falco",outcome="duplicate"} 5"#), "{text}");
        assert!(
            text.contains(r#"riposte_steps_total{action="cordon_node",outcome="failed",error="permission_denied"} 1"#),
            "{text}"
        );
        for (le, n) in [("2.0", 0), ("5.0", 1)] {
            let line =
                format!(r#"riposte_containment_seconds_bucket{{le="{le}",policy="mining",outcome="contained"}} {n}"#);
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");

        let off = Metrics::off();
        off.alerts(Source::Falco, AlertFate::Opened, 1);
        assert_eq!(off.render(), "");
    }
}
